"""`rram-lsm data build/inspect/show/clear` through the real command line, in a private cache."""
from __future__ import annotations

import json

import pytest

from rram_lsm.launch.cli import main


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RRAM_LSM_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_data_command_lifecycle(cache, tmp_path, capsys):
    # Not built yet: a plain error that says how to build it.
    assert main(["data", "inspect", "--size", "tiny"]) == 2
    assert "rram-lsm data build --size tiny" in capsys.readouterr().err

    assert main(["data", "build", "--size", "tiny", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("built in") and str(cache) in out
    files = list((cache / "datasets").glob("builtin-tiny-seed0-*.npz"))
    assert len(files) == 1
    assert main(["data", "build", "--size", "tiny", "--quiet"]) == 0
    assert capsys.readouterr().out.startswith("cached")

    assert main(["data", "inspect", "--size", "tiny", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["size"] == "tiny" and info["seed"] == 0
    mods = info["modalities"]
    assert (mods["visual"]["samples"], mods["audio"]["samples"], mods["neural"]["samples"]) == (80, 60, 40)
    assert mods["audio"]["distinct_ids"] == 6 and mods["audio"]["geometry"] == [64]
    assert mods["visual"]["per_class"]["train"] == [4] * 10
    assert all(m["rate_hz_mean"] > 0 and m["events_min"] > 0 for m in mods.values())

    assert main(["data", "inspect", "--size", "tiny"]) == 0
    text = capsys.readouterr().out
    assert "visual (dvs" in text and "audio (cochlea" in text and "6 distinct speakers" in text

    png = tmp_path / "show.png"
    assert main(["data", "show", "--size", "tiny", "--samples", "3", "--out", str(png)]) == 0
    assert capsys.readouterr().out.strip() == str(png)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert main(["data", "show", "--size", "tiny", "--samples", "0"]) == 2
    assert "--samples" in capsys.readouterr().err

    assert main(["data", "clear"]) == 0
    assert "1 built-in dataset file(s) removed" in capsys.readouterr().out
    assert not list((cache / "datasets").glob("builtin-*.npz"))


def test_data_without_action_prints_help(cache, capsys):
    assert main(["data"]) == 2
    assert "build" in capsys.readouterr().out


def test_bench_passes_its_options_to_the_benchmark():
    """`rram-lsm bench transport --quick` (as the README writes it): the options are the
    script's, not a parse error of ours."""
    from rram_lsm.launch.cli import build_parser
    args = build_parser().parse_args(["bench", "transport", "--quick", "--out", "x.csv"])
    assert args.name == "transport" and args.rest == ["--quick", "--out", "x.csv"]
    assert build_parser().parse_args(["bench", "--list"]).list
