"""Any ``tonic.datasets`` class as replay samples (replay ``format = "tonic"``, ``dataset = NAME``).

The class reads its own on-disk layout under ``path`` (tonic's ``save_to``: the folder holding
``<NAME>/...``), with its own sensor size and classes; samples come out in the project's wire
dtypes (DVS for x, y, p; cochlea for x, p; neural for x alone), time in integer µs.  Importing
tonic imports torch, so only this module (used by the replay source alone) imports it.

tonic downloads a dataset it does not find; here that is refused unless ``download = true``,
so a wrong path fails at once with the file tonic looked for, instead of fetching gigabytes.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Iterator

import numpy as np

from rram_lsm.stream.node import ConfigError
from rram_lsm.stream.packets import COCHLEA_DTYPE, DVS_DTYPE, NEURAL_DTYPE

from .readers import DatasetError


def dataset_class(name: str):
    """The ``tonic.datasets`` class called ``name``, or ConfigError listing the known ones."""
    import tonic.datasets  # lazy: imports torch

    known = sorted(n for n in dir(tonic.datasets) if isinstance(getattr(tonic.datasets, n), type))
    cls = getattr(tonic.datasets, name, None) if isinstance(name, str) else None
    if not isinstance(cls, type):
        raise ConfigError(f"parameter 'dataset' must name a tonic.datasets class ({', '.join(known)}), got {name!r}")
    return cls


def geometry_of(cls) -> tuple[int, ...] | None:
    """Sensor geometry from the class's ``sensor_size`` (W, H, P): (W, H), or (W,) for H == 1."""
    size = getattr(cls, "sensor_size", None)
    if not size:
        return None
    return (int(size[0]),) if len(size) < 2 or int(size[1]) == 1 else (int(size[0]), int(size[1]))


def _no_download(self) -> None:
    where = getattr(self, "location_on_system", "?")
    raise DatasetError(f"tonic's {type(self).__name__} found no dataset in {where} (it checks for "
                       f"{getattr(self, 'filename', 'its archive')} and the extracted "
                       f"{getattr(self, 'folder_name', '') or 'files'} there); put the dataset there, "
                       f"or set the replay's 'download = true' to let tonic fetch it")


def open_dataset(name: str, path: str, split: str = "train", download: bool = False,
                 args: dict[str, Any] | None = None):
    """An instance of tonic's ``name`` class on ``path`` for ``split`` (train/test, or the
    class's own split names), refusing to download unless asked."""
    if not isinstance(download, bool) or not isinstance(args, (dict, type(None))):
        raise ConfigError(f"parameters 'download' (true/false) and 'dataset_args' (a table) got "
                          f"{download!r} and {args!r}")
    cls = dataset_class(name)
    if not download:  # same class name, so tonic's folder (save_to/<NAME>) is unchanged
        cls = type(cls.__name__, (cls,), {"download": _no_download, "__module__": cls.__module__})
    params = inspect.signature(cls.__init__).parameters
    kwargs = dict(args or {})
    if "split" in params:
        kwargs.setdefault("split", split)
    elif "train" in params:
        if split not in ("train", "test"):
            raise ConfigError(f"tonic's {name} has train and test splits only, got split {split!r}")
        kwargs.setdefault("train", split == "train")
    root = "save_to" if "save_to" in params else "root"
    try:
        return cls(**{root: path}, **kwargs)
    except DatasetError:
        raise
    except FileNotFoundError as err:  # POKERDVS looks for a local archive instead of downloading
        raise DatasetError(f"tonic's {name} found no dataset under {path}: {err}") from None
    except TypeError as err:
        raise ConfigError(f"tonic's {name}: {err} (give its arguments in 'dataset_args')") from None


def to_wire(events: np.ndarray, what: str) -> np.ndarray:
    """tonic's structured events as the wire dtype their fields call for, sorted by time."""
    names = set(getattr(getattr(events, "dtype", None), "names", None) or ())
    if not {"t", "x"} <= names:
        raise DatasetError(f"{what}: samples are {type(events).__name__} with fields {sorted(names)}, "
                           f"not tonic event arrays with t and x; this dataset cannot be replayed")
    dtype = DVS_DTYPE if "y" in names else COCHLEA_DTYPE if "p" in names else NEURAL_DTYPE
    ev = np.empty(len(events), dtype)
    for f in dtype.names:
        ev[f] = events[f]
    return ev[np.argsort(ev["t"], kind="stable")] if len(ev) and (np.diff(ev["t"]) < 0).any() else ev


def _label(target) -> int | None:
    try:
        return int(np.asarray(target).item())
    except (TypeError, ValueError):
        return None  # unlabelled datasets, or targets that are not a class index


def tonic_samples(name: str, path: str, split: str = "train", download: bool = False,
                  args: dict[str, Any] | None = None, geometry_given: bool = False
                  ) -> tuple[Callable[[], Iterator], tuple[int, ...] | None]:
    """A sample factory (one pass over the dataset per call) and the sensor geometry."""
    ds = open_dataset(name, path, split, download, args)  # fails at configuration, not at the first pass
    if geometry_of(type(ds)) is None and not geometry_given:
        raise ConfigError(f"tonic's {name} declares no sensor_size (it varies by sample): give the "
                          f"replay's 'geometry' parameter, [width, height]")

    def passes() -> Iterator[tuple[np.ndarray, int | None]]:
        for i in range(len(ds)):
            events, target = ds[i]
            yield to_wire(events, f"tonic {name} sample {i}"), _label(target)

    return passes, geometry_of(type(ds))
