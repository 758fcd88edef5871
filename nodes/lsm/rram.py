"""RRAM crossbar model: formed 1T1R differential pairs in 256 Kb macros, plus non-idealities.

The weight source is the stochastic *forming* of the cells (PAPER.md): each weight is a
differential pair ``(G+ - G-) * const`` whose two formed conductances are drawn from a device
distribution, so that ``G+ - G-`` follows the measured law ``N(mu, sigma)`` in µS.  Everything
else is a non-ideality layered on top, each one a parameter that can be switched off
(``DeviceConfig.ideal()`` switches them all off and gives the software LSM).

Non-idealities, in the order they act (names follow IBM aihwkit where the concept matches):

1. programming noise ``prog_noise_scale`` (µS std added once, at programming);
2. stuck cells ``stuck_on_prob`` (cell at ``g_max``) and ``stuck_off_prob`` (cell at ``g_min``);
3. finite conductance levels ``n_levels`` (uniform grid over ``[g_min, g_max]``; 0 = analogue);
4. drift ``drift_nu`` / ``drift_nu_std`` / ``t_inference``: ``G(t) = G0 ((t + t0)/t0)^-nu`` with a
   per-cell exponent, as aihwkit's drift model (``t0 = drift_t0`` s);
5. static IR drop ``ir_drop`` (first order: a cell far from the drivers and the sense amplifier
   sees ``1 - ir_drop * (r/R + c/C)/2`` of the read voltage);
6. cycle-to-cycle read noise ``read_noise_scale`` (relative std of each cell per read; drawn at
   every read, summed per column in closed form: std = ``read_noise_scale * sqrt(sum G^2)``,
   with each driven row's G^2 taken as its mean over columns);
7. ADC resolution ``adc_bits`` on each column's partial current of each row tile, signed,
   full scale ``adc_full_scale_us`` (µS at unit read voltage).

Layout: input and recurrent matrices are stacked into one ``(n_inputs + n_neurons) x n_neurons``
matrix of pairs (rows are driven by input spikes and by last bin's reservoir spikes); it is tiled
over macros of ``macro_rows x macro_cols`` cells (512 x 512 = 256 Kb), two columns per pair.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from rram_lsm.stream.energy import MACRO_COLS, MACRO_ROWS
from rram_lsm.stream.node import ConfigError

DEVICE_SETTINGS = ("ideal", "rram")


@dataclass(frozen=True)
class DeviceConfig:
    """Device parameters. Conductances in µS, times in seconds.

    ``rram`` defaults (``DeviceConfig.rram()``), each an order-of-magnitude anchor, not a fit:

    - ``g_form_us = 30``: formed HfO2 1T1R cells sit at tens of µS with a few-µS spread
      (PAPER.md; Lin et al., Nat. Comput. Sci. 5, 37 (2025), Fig. 2; Li et al., "Analogue signal
      and image processing with large memristor crossbars", Nat. Electron. 1, 52 (2018)).
    - ``prog_noise_scale = 1.0`` µS: write-verify precision of Ta/HfO2 1T1R cells is about
      1 µS (Li et al., Nat. Electron. 1, 52 (2018)); forming-only chips see it as extra spread.
    - ``read_noise_scale = 0.02``: random telegraph / read-to-read fluctuation of a few % of G
      in the low-resistance range of HfOx cells (Ambrogio et al., "Statistical fluctuations in
      HfOx resistive-switching memory: Part II - random telegraph noise", IEEE TED 61, 2920
      (2014)).
    - ``stuck_on_prob = 0.001``, ``stuck_off_prob = 0.005``: device yield above 99% in
      HfO2/TaOx 1T1R arrays (Li et al., Nat. Electron. 1, 52 (2018); Wan et al., "A
      compute-in-memory chip based on resistive random-access memory", Nature 608, 504
      (2022)); the split between on and off is an assumption.
    - ``drift_nu = 0.01 +- 0.005``, ``t_inference = 3600`` s: filamentary RRAM relaxes by a
      few % in the first hours (Zhao et al., "Investigation of statistical retention of
      filamentary analog RRAM for neuromorphic computing", IEDM 2017; Wan et al. 2022); the
      power-law form is aihwkit's, the exponent is an assumption that reproduces that size.
    - ``adc_bits = 8``: 4-8-bit column ADCs in RRAM CIM macros (Wan et al. 2022: up to
      8-bit outputs); ``adc_full_scale_us = 200`` (20 µA at a 0.1 V read) is an assumption.
    - ``n_levels = 0`` and ``ir_drop = 0``: the reservoir uses as-formed cells (no multi-level
      programming) and one 256 Kb macro per encoder, where IR drop is small; both can be set.
    """

    name: str = "ideal"
    g_form_us: float = 30.0
    g_min_us: float = 0.0
    g_max_us: float = 100.0
    prog_noise_scale: float = 0.0
    read_noise_scale: float = 0.0
    stuck_on_prob: float = 0.0
    stuck_off_prob: float = 0.0
    n_levels: int = 0
    drift_nu: float = 0.0
    drift_nu_std: float = 0.0
    drift_t0: float = 20.0
    t_inference: float = 0.0
    ir_drop: float = 0.0
    adc_bits: int = 0
    adc_full_scale_us: float = 200.0
    macro_rows: int = MACRO_ROWS
    macro_cols: int = MACRO_COLS

    def __post_init__(self) -> None:
        nonneg = ("prog_noise_scale", "read_noise_scale", "drift_nu", "drift_nu_std",
                  "t_inference", "ir_drop", "g_min_us")
        for key in nonneg:
            v = getattr(self, key)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ConfigError(f"device parameter {key!r} must be a finite number >= 0, got {v!r}")
        for key in ("stuck_on_prob", "stuck_off_prob"):
            v = getattr(self, key)
            if not (isinstance(v, (int, float)) and 0.0 <= v <= 1.0):
                raise ConfigError(f"device parameter {key!r} must be a probability in [0, 1], got {v!r}")
        if self.stuck_on_prob + self.stuck_off_prob > 1.0:
            raise ConfigError("device parameters 'stuck_on_prob' + 'stuck_off_prob' exceed 1")
        if not self.g_max_us > self.g_min_us:
            raise ConfigError(f"device parameter 'g_max_us' ({self.g_max_us}) must exceed 'g_min_us' ({self.g_min_us})")
        if not self.g_min_us <= self.g_form_us <= self.g_max_us:
            raise ConfigError(f"device parameter 'g_form_us' ({self.g_form_us}) must lie in [g_min_us, g_max_us]")
        if self.ir_drop >= 1.0:
            raise ConfigError(f"device parameter 'ir_drop' must be < 1, got {self.ir_drop}")
        for key in ("n_levels", "adc_bits"):
            v = getattr(self, key)
            if not isinstance(v, int) or v < 0 or v == 1:
                raise ConfigError(f"device parameter {key!r} must be 0 (off) or an integer >= 2, got {v!r}")
        if self.adc_bits > 24:
            raise ConfigError(f"device parameter 'adc_bits' must be <= 24, got {self.adc_bits}")
        if not self.adc_full_scale_us > 0:
            raise ConfigError(f"device parameter 'adc_full_scale_us' must be > 0, got {self.adc_full_scale_us}")
        if not self.drift_t0 > 0:
            raise ConfigError(f"device parameter 'drift_t0' must be > 0, got {self.drift_t0}")
        for key in ("macro_rows", "macro_cols"):
            v = getattr(self, key)
            if not isinstance(v, int) or v < 2:
                raise ConfigError(f"device parameter {key!r} must be an integer >= 2, got {v!r}")

    @classmethod
    def ideal(cls) -> "DeviceConfig":
        """Forming spread only: the software LSM."""
        return cls(name="ideal")

    @classmethod
    def rram(cls) -> "DeviceConfig":
        """Published HfO2/TaOx magnitudes (see the class docstring for each citation)."""
        return cls(
            name="rram", prog_noise_scale=1.0, read_noise_scale=0.02, stuck_on_prob=0.001,
            stuck_off_prob=0.005, drift_nu=0.01, drift_nu_std=0.005, t_inference=3600.0,
            adc_bits=8,
        )

    @property
    def runtime_noisy(self) -> bool:
        """True when reads need the non-ideal kernel (read noise or ADC)."""
        return self.read_noise_scale > 0 or self.adc_bits > 0

    @property
    def adc_lsb_us(self) -> float:
        """Conductance step of one ADC code (signed, symmetric: 2^(bits-1) - 1 codes per side)."""
        return self.adc_full_scale_us / (2 ** (self.adc_bits - 1) - 1) if self.adc_bits else 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def make_device(device: "DeviceConfig | str | dict") -> DeviceConfig:
    """A DeviceConfig from a setting name, a dict (``{"base": "rram", "adc_bits": 6}``) or itself."""
    if isinstance(device, DeviceConfig):
        return device
    if isinstance(device, str):
        if device not in DEVICE_SETTINGS:
            raise ConfigError(f"unknown device setting {device!r}; expected one of {DEVICE_SETTINGS}")
        return getattr(DeviceConfig, device)()
    if isinstance(device, dict):
        d = dict(device)
        base = make_device(d.pop("base", "ideal"))
        known = {f.name for f in fields(DeviceConfig)}
        for key in d:
            if key not in known:
                raise ConfigError(f"unknown device parameter {key!r}; known: {sorted(known)}")
        return replace(base, **d)
    raise ConfigError(f"device must be 'ideal', 'rram', a dict or a DeviceConfig, got {device!r}")


def crossbar_tiles(n_inputs: int, n_neurons: int, macro_rows: int = MACRO_ROWS,
                   macro_cols: int = MACRO_COLS) -> tuple[int, int]:
    """(row tiles, column tiles) of macros for the stacked ``(n_inputs + n_neurons) x n_neurons``
    matrix of differential pairs (two cell columns per pair)."""
    return (math.ceil((n_inputs + n_neurons) / macro_rows), math.ceil(2 * n_neurons / macro_cols))


def adc_quantise(current_us: np.ndarray, bits: int, full_scale_us: float) -> np.ndarray:
    """Signed ADC: round to the nearest code, clip to +-(2^(bits-1) - 1) codes (same as the kernel)."""
    if bits <= 0:
        return np.asarray(current_us, dtype=np.float64)
    top = 2 ** (bits - 1) - 1
    lsb = full_scale_us / top
    codes = np.clip(np.rint(np.asarray(current_us, dtype=np.float64) / lsb), -top, top)
    return codes * lsb


class RramCrossbar:
    """The stacked input + recurrent matrix programmed into differential 1T1R pairs.

    Attributes (all ``(n_inputs + n_neurons, n_neurons)``, µS, float64):
    ``g_pos``/``g_neg`` as formed (before non-idealities), ``g_pos_eff``/``g_neg_eff`` as read
    at ``t_inference`` (after programming noise, stuck cells, levels, drift and IR drop),
    ``g_diff = g_pos_eff - g_neg_eff`` and ``g_sq = g_pos_eff**2 + g_neg_eff**2`` (read-noise
    variance per unit ``read_noise_scale**2``); ``stuck_on``/``stuck_off`` boolean masks per cell,
    shape ``(2, rows, cols)`` for (G+, G-); ``nu`` the per-cell drift exponents.
    """

    def __init__(self, n_inputs: int, n_neurons: int, *, mu_in: float, sigma_in: float,
                 mu_rec: float, sigma_rec: float, device: DeviceConfig | str | dict = "ideal",
                 seed: int = 0):
        self.device = make_device(device)
        self.n_inputs, self.n_neurons = int(n_inputs), int(n_neurons)
        self.seed = int(seed)
        dev = self.device
        rows, cols = self.n_inputs + self.n_neurons, self.n_neurons
        # Independent child streams: switching one non-ideality off leaves the others unchanged.
        ss = np.random.SeedSequence(self.seed)
        s_form, s_prog, s_stuck, s_drift, s_read = ss.spawn(5)
        self.read_seed = int(s_read.generate_state(1, dtype=np.uint32)[0])

        rng = np.random.default_rng(s_form)
        mu = np.empty((rows, 1))
        sigma = np.empty((rows, 1))
        mu[: self.n_inputs], sigma[: self.n_inputs] = mu_in, sigma_in
        mu[self.n_inputs:], sigma[self.n_inputs:] = mu_rec, sigma_rec
        # G+ ~ N(g_form + mu/2, sigma/sqrt2), G- ~ N(g_form - mu/2, sigma/sqrt2) => G+ - G- ~ N(mu, sigma).
        half = sigma / math.sqrt(2.0)
        self.g_pos = dev.g_form_us + mu / 2 + half * rng.standard_normal((rows, cols))
        self.g_neg = dev.g_form_us - mu / 2 + half * rng.standard_normal((rows, cols))

        g = np.stack([self.g_pos, self.g_neg])
        if dev.prog_noise_scale > 0:
            g = g + dev.prog_noise_scale * np.random.default_rng(s_prog).standard_normal(g.shape)
        g = np.clip(g, dev.g_min_us, dev.g_max_us)
        u = np.random.default_rng(s_stuck).random(g.shape)
        self.stuck_on = u < dev.stuck_on_prob
        self.stuck_off = (u >= dev.stuck_on_prob) & (u < dev.stuck_on_prob + dev.stuck_off_prob)
        if dev.n_levels:
            step = (dev.g_max_us - dev.g_min_us) / (dev.n_levels - 1)
            g = dev.g_min_us + np.rint((g - dev.g_min_us) / step) * step
        g[self.stuck_on] = dev.g_max_us
        g[self.stuck_off] = dev.g_min_us
        self.nu = np.zeros(g.shape)
        if dev.t_inference > 0 and (dev.drift_nu > 0 or dev.drift_nu_std > 0):
            nu = dev.drift_nu + dev.drift_nu_std * np.random.default_rng(s_drift).standard_normal(g.shape)
            self.nu = np.maximum(nu, 0.0)
            self.nu[self.stuck_on | self.stuck_off] = 0.0  # a shorted/open cell does not relax
            g = g * ((dev.t_inference + dev.drift_t0) / dev.drift_t0) ** (-self.nu)
        if dev.ir_drop > 0:
            r = (np.arange(rows) % dev.macro_rows) / dev.macro_rows
            c = ((2 * np.arange(cols)) % dev.macro_cols) / dev.macro_cols
            g = g * (1.0 - dev.ir_drop * (r[:, None] + c[None, :]) / 2.0)
        self.g_pos_eff, self.g_neg_eff = g[0], g[1]
        self.g_diff = self.g_pos_eff - self.g_neg_eff
        self.g_sq = self.g_pos_eff ** 2 + self.g_neg_eff ** 2

    PER_CELL = ("g_pos", "g_neg", "g_pos_eff", "g_neg_eff", "g_diff", "g_sq", "nu", "stuck_on",
                "stuck_off")

    def release(self) -> None:
        """Drop the per-cell arrays (nine float64-sized copies of the matrix, ~85 MB for 1,000
        neurons) once a reservoir has read its weights out: a running node needs only the layout
        and the read seed.  :meth:`summary` keeps its figures; :meth:`read` and :meth:`weights`
        are refused after this."""
        if self.g_diff is not None:
            self._summary = self.summary()
        for name in self.PER_CELL:
            setattr(self, name, None)

    def _check_held(self, what: str) -> None:
        if self.g_diff is None:
            raise RuntimeError(f"RramCrossbar.{what}: the per-cell arrays were released (release())")

    # ------------------------------------------------------------------ layout
    @property
    def shape(self) -> tuple[int, int]:
        return self.n_inputs + self.n_neurons, self.n_neurons

    @property
    def tiles(self) -> tuple[int, int]:
        """(row tiles, column tiles) of macros; two cell columns per differential pair."""
        return crossbar_tiles(self.n_inputs, self.n_neurons, self.device.macro_rows,
                              self.device.macro_cols)

    @property
    def n_macros(self) -> int:
        r, c = self.tiles
        return r * c

    def weights(self, const: float, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
        """(W_in, W_rec) = (G+ - G-) * const, as read at ``t_inference`` without read noise."""
        self._check_held("weights")
        w = (self.g_diff * const).astype(dtype)
        return np.ascontiguousarray(w[: self.n_inputs]), np.ascontiguousarray(w[self.n_inputs:])

    # ------------------------------------------------------------------ reads (numpy model)
    def read(self, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Column currents (µS at unit read voltage) for one read with ``rows`` driven.

        Read noise and the ADC act on each row tile's partial sum, exactly as in the kernel.
        """
        self._check_held("read")
        rows = np.asarray(rows, dtype=np.int64)
        out = np.zeros(self.n_neurons)
        tile = rows // self.device.macro_rows
        for t in np.unique(tile):
            sel = rows[tile == t]
            part = self.g_diff[sel].sum(axis=0)
            if self.device.read_noise_scale > 0:
                # the kernel's variance: each driven row contributes its column-mean G+^2 + G-^2
                sd = self.device.read_noise_scale * np.sqrt(self.g_sq[sel].mean(axis=1).sum())
                part = part + sd * rng.standard_normal(self.n_neurons)
            out += adc_quantise(part, self.device.adc_bits, self.device.adc_full_scale_us)
        return out

    def summary(self) -> dict:
        """Figures for reports: macro count, tiles, measured stuck fractions and conductance stats."""
        if self.g_diff is None:
            return dict(self._summary)
        return {
            "device": self.device.name, "n_macros": self.n_macros, "tiles": list(self.tiles),
            "stuck_on_frac": float(self.stuck_on.mean()), "stuck_off_frac": float(self.stuck_off.mean()),
            "g_mean_us": float(np.mean([self.g_pos_eff.mean(), self.g_neg_eff.mean()])),
            "g_diff_std_us": float(self.g_diff.std()),
        }
