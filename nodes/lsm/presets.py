"""The paper's six LSM settings (PAPER.md hyper-parameter table) as named presets."""
from __future__ import annotations

from dataclasses import replace

from rram_lsm.stream.node import ConfigError

from .config import LsmConfig

# fixed_width bin widths match the paper's typical sample length: ~300 ms / 50 bins for DVS,
# ~0.9 s / 129 bins for N-TIDIGITS (7 ms), 10 ms for the BMI recordings.  N-TIDIGITS uses the
# authors' chunk_pad protocol (1 ms raster). The kept N-MNIST polarity is not published:
# polarity 1 (ON) is our choice, a parameter.
PRESETS: dict[str, LsmConfig] = {
    "nmnist": LsmConfig(n_inputs=256, n_neurons=200, n_bins=50, decay=0.9, vth=5.0, const=0.07,
                        binning="fixed_count", bin_width_us=6000, crop=(16, 16), polarity=1),
    "ntidigits": LsmConfig(n_inputs=64, n_neurons=200, n_bins=129, decay=0.97, vth=5.3, const=0.08,
                           binning="chunk_pad", bin_width_us=7000),
    "zs_image": LsmConfig(n_inputs=256, n_neurons=200, n_bins=50, decay=0.9, vth=5.0, const=0.3,
                          binning="fixed_count", bin_width_us=6000, crop=(16, 16), polarity=1),
    "zs_audio": LsmConfig(n_inputs=64, n_neurons=200, n_bins=129, decay=0.97, vth=5.3, const=0.1,
                          binning="chunk_pad", bin_width_us=7000),
    "bmi_neural": LsmConfig(n_inputs=192, n_neurons=2048, n_bins=201, decay=0.95, vth=0.1,
                            const=0.0005, binning="fixed_width", bin_width_us=10000),
    "bmi_image": LsmConfig(n_inputs=784, n_neurons=2048, n_bins=49, decay=0.95, vth=0.1,
                           const=0.0005, binning="fixed_count", bin_width_us=1000),
}


def get_preset(name: str, **overrides) -> LsmConfig:
    """The named preset with ``overrides`` applied (validated again); unknown names -> ConfigError."""
    if name not in PRESETS:
        raise ConfigError(f"unknown LSM preset {name!r}; expected one of {sorted(PRESETS)}")
    known = LsmConfig.field_names()
    for key in overrides:
        if key not in known:
            raise ConfigError(f"unknown LSM parameter {key!r} in overrides of preset {name!r}; known: {sorted(known)}")
    if "crop" in overrides and isinstance(overrides["crop"], list):
        overrides["crop"] = tuple(overrides["crop"])
    return replace(PRESETS[name], **overrides)
