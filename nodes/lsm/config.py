"""The reservoir's configuration: the LSM hyper-parameters, the device settings, and the
constants the kernels read, as named tuples.

:class:`LsmConfig` (validated on construction, errors name the key) is what a preset or a graph
sets; :class:`DeviceConfig` is the RRAM device (``ideal`` switches every non-ideality off);
:data:`ReservoirParams` is both, resolved to the scalars the Numba kernels
(:mod:`nodes.lsm.kernels`, :mod:`nodes.lsm.kernels_rram`) read by name.
"""
from __future__ import annotations

import math
from collections import namedtuple
from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from rram_lsm.stream.energy import MACRO_COLS, MACRO_ROWS
from rram_lsm.stream.node import ConfigError

BINNING_MODES = ("fixed_count", "fixed_width", "chunk_pad")


@dataclass(frozen=True)
class LsmConfig:
    """Everything that defines one reservoir; validated on construction (errors name the key).

    ``mu_*``/``sigma_*`` are the differential-conductance law of formed cells in µS (PAPER.md);
    weights are that conductance times ``const``.  ``binning``/``bin_width_us`` say how events
    become frames (``bin_width_us`` is the live fixed_width bin, or the raster step of
    ``chunk_pad``); ``crop``/``polarity`` map DVS sensors onto ``n_inputs`` (e.g. 16x16, one
    polarity, for N-MNIST).
    """

    n_inputs: int
    n_neurons: int = 200
    n_bins: int = 50
    decay: float = 0.9
    vth: float = 5.0
    const: float = 0.07
    seed: int = 0
    mu_in: float = 0.002
    sigma_in: float = 6.6
    mu_rec: float = 0.006
    sigma_rec: float = 6.7
    binning: str = "fixed_count"
    bin_width_us: int | None = None
    crop: tuple[int, int] | None = None
    polarity: int | None = None

    def __post_init__(self) -> None:
        for key in ("n_inputs", "n_neurons", "n_bins"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
                raise ConfigError(f"LSM parameter {key!r} must be a positive integer, got {v!r}")
        if not isinstance(self.seed, (int, np.integer)) or isinstance(self.seed, bool) or self.seed < 0:
            raise ConfigError(f"LSM parameter 'seed' must be a non-negative integer, got {self.seed!r}")
        for key in ("decay", "vth", "const", "mu_in", "sigma_in", "mu_rec", "sigma_rec"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ConfigError(f"LSM parameter {key!r} must be a finite number, got {v!r}")
        if not 0.0 <= self.decay <= 1.0:
            raise ConfigError(f"LSM parameter 'decay' must lie in [0, 1], got {self.decay!r}")
        if self.vth <= 0:
            raise ConfigError(f"LSM parameter 'vth' must be > 0, got {self.vth!r}")
        if self.const <= 0:
            raise ConfigError(f"LSM parameter 'const' must be > 0, got {self.const!r}")
        for key in ("sigma_in", "sigma_rec"):
            if getattr(self, key) < 0:
                raise ConfigError(f"LSM parameter {key!r} must be >= 0, got {getattr(self, key)!r}")
        if self.binning not in BINNING_MODES:
            raise ConfigError(f"LSM parameter 'binning' must be one of {BINNING_MODES}, got {self.binning!r}")
        if self.bin_width_us is not None and (not isinstance(self.bin_width_us, (int, np.integer)) or self.bin_width_us <= 0):
            raise ConfigError(f"LSM parameter 'bin_width_us' must be a positive integer (µs), got {self.bin_width_us!r}")
        if self.binning == "fixed_width" and self.bin_width_us is None:
            raise ConfigError("LSM parameter 'bin_width_us' is required when binning is 'fixed_width'")
        if self.polarity not in (None, 0, 1):
            raise ConfigError(f"LSM parameter 'polarity' must be None, 0 or 1, got {self.polarity!r}")
        if self.crop is not None:
            if len(self.crop) != 2 or any(not isinstance(c, (int, np.integer)) or c <= 0 for c in self.crop):
                raise ConfigError(f"LSM parameter 'crop' must be (width, height) positive ints, got {self.crop!r}")
            object.__setattr__(self, "crop", (int(self.crop[0]), int(self.crop[1])))

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in fields(cls)}


def _positive_int(key: str, value) -> int:
    """``value`` as a positive int, or a ConfigError naming the LSM parameter ``key``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"LSM parameter {key!r} must be a positive integer, got {value!r}")
    return int(value)


def check_windows(windows) -> int:
    """``windows`` (rate windows per sample) as a positive int, or a ConfigError naming it."""
    return _positive_int("windows", windows)


def check_threads(threads) -> int:
    """``threads`` (cores one sample runs on) as a positive int, or a ConfigError naming it."""
    return _positive_int("threads", threads)




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


ReservoirParams = namedtuple("ReservoirParams", [
    "decay", "vth", "const", "n_inputs", "tile_rows", "n_row_tiles", "read_noise", "adc_bits",
    "adc_fs"])
ReservoirParams.__doc__ = """The scalars every reservoir kernel reads: the LIF's ``decay`` and
``vth``; ``const`` (µS to weight, the ``rram`` kernels' gain); ``n_inputs`` (the stacked
crossbar's first recurrent row); ``tile_rows``/``n_row_tiles`` (macro rows, row tiles of the
stacked matrix); the device's ``read_noise`` (relative std per read), ``adc_bits`` (0: no ADC)
and ``adc_fs`` (ADC full scale, µS).  The ideal kernels ignore the last four but const.

Python passes it into compiled code as a plain tuple (``tuple(params)``), which Numba types
in C, and each kernel called from Python names it again (``ReservoirParams(*params)``):
typing a namedtuple goes through Python, ~1 µs a call, a tenth of a 1 ms packet's work."""


def reservoir_params(config: LsmConfig, device: DeviceConfig, n_row_tiles: int) -> ReservoirParams:
    """The kernels' constants of ``config`` on ``device`` (floats and ints, so one compiled
    signature serves every preset)."""
    return ReservoirParams(
        decay=float(config.decay), vth=float(config.vth), const=float(config.const),
        n_inputs=int(config.n_inputs), tile_rows=int(device.macro_rows),
        n_row_tiles=int(n_row_tiles), read_noise=float(device.read_noise_scale),
        adc_bits=int(device.adc_bits), adc_fs=float(device.adc_full_scale_us))
