"""RRAM crossbar model: formed 1T1R differential pairs in 256 Kb macros, plus non-idealities.

The weight source is the stochastic *forming* of the cells (PAPER.md): each weight is a
differential pair ``(G+ - G-) * const`` whose two formed conductances are drawn from a device
distribution, so that ``G+ - G-`` follows the measured law ``N(mu, sigma)`` in µS.  Everything
else is a non-ideality layered on top, each one a parameter that can be switched off
(``DeviceConfig.ideal()``, in :mod:`nodes.lsm.config` with the other settings, switches them
all off and gives the software LSM).

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

import numpy as np

from rram_lsm.stream.energy import MACRO_COLS, MACRO_ROWS

from .config import DeviceConfig, make_device

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
