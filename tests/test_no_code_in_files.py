"""No file the project loads can execute code: pickled arrays are refused by every loader,
and no package code unpickles anything."""
from __future__ import annotations

import pathlib
import re

import numpy as np
import pytest

from rram_lsm.nodes.classifier.bank import PrototypeBank
from rram_lsm.nodes.projection.heads import ProjectionHead, load_heads
from rram_lsm.nodes.sources.builtin import read_builtin

ROOT = pathlib.Path(__file__).resolve().parents[1]


class Boom:
    """Unpickling this would run code."""

    def __reduce__(self):
        return (exec, ("raise SystemExit('code ran')",))


@pytest.fixture
def evil_npz(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, weights=np.array([Boom()], dtype=object), config=np.array([Boom()], dtype=object))
    return path


@pytest.mark.parametrize("loader", [ProjectionHead.load, load_heads, PrototypeBank.load, read_builtin],
                         ids=["ProjectionHead.load", "load_heads", "PrototypeBank.load", "read_builtin"])
def test_pickled_arrays_are_refused(loader, evil_npz):
    with pytest.raises(ValueError):
        loader(evil_npz)


def test_package_code_never_unpickles():
    pattern = re.compile(r"^\s*import pickle|pickle\.loads?\(|allow_pickle\s*=\s*True|torch\.load\(|"
                         r"cloudpickle|dill\.", re.M)
    offenders = [str(p.relative_to(ROOT)) for d in ("stream", "nodes", "launch")
                 for p in (ROOT / d).rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []
