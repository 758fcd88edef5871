"""The Python graph API: build in code, run real processes, read results and telemetry, stop."""
from __future__ import annotations

import os
import runpy
from pathlib import Path

import pytest

from conftest import ROOT
from rram_lsm.launch.api import Graph
from rram_lsm.launch.graph import GraphError

EXAMPLE = ROOT / "docs/api_example.py"


def children() -> set[int]:
    """Live child processes of this one (zombies not counted)."""
    me, out = str(os.getpid()), set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me and fields[0] != "Z":
            out.add(int(stat.parent.name))
    return out


def test_readme_example_runs_as_written(tmp_path, monkeypatch, capsys):
    """The exact text the README shows (docs/api_example.py), run as a script would run it."""
    assert EXAMPLE.read_text().strip() in (ROOT / "README.md").read_text()
    before = children()
    monkeypatch.chdir(tmp_path)
    scope = runpy.run_path(str(EXAMPLE), run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    run = scope["run"]
    assert run.returncode == 0 and not run.running
    assert children() <= before  # leaving the `with` left no process
    rows = [line.split(" ", 2) for line in lines[:-1]]
    assert [int(r[0]) for r in rows] == list(range(5))  # one feature per sample, in order
    assert [int(r[1]) for r in rows] == [s % 4 for s in range(5)]  # synthetic labels cycle over 4
    from rram_lsm.nodes.lsm.presets import PRESETS
    assert {r[2] for r in rows} == {f"(1, {PRESETS['nmnist'].n_neurons})"}
    assert int(lines[-1]) == run.telemetry()["lsm"]["msgs_in"] > 5 * 2  # start + events + end per sample
    assert (tmp_path / "runs").is_dir()  # the run folder, as `rram-lsm run` makes one


def endless(name="endless") -> Graph:
    g = Graph(name)
    g.node("source", "synthetic_dvs", samples=0, speed=1.0, sample_ms=50, rate_hz=2000)
    g.node("count", "passthrough")
    g.node("sink", "null_sink")
    return g.edge("source", "count").edge("count", "sink")


def test_stop_while_it_runs_leaves_no_process(tmp_path):
    before = children()
    run = endless().start(run_dir=tmp_path / "run")
    got = []
    for item in run.results(timeout=120):
        got.append(item)
        if len({r.sample for r in got}) >= 3:
            break
    assert run.running and len(children() - before) == 4  # three nodes and the tap
    assert {r.kind for r in got} == {"events"} and got[0].stream == "count"
    assert got[0].data.dtype.names == ("t", "x", "y", "p") and got[0].latency_ms is not None
    reports = next(run.reports(timeout=30))
    assert "node" in reports
    run.stop()
    assert not run.running and children() <= before
    assert run.returncode == 0
    assert run.telemetry()["sink"]["final"]
    samples = [r.sample for r in run.results(timeout=5)]  # what arrived before the stop, then the end
    assert samples == sorted(samples)
    run.stop()  # twice is harmless


def test_validation_is_the_graph_files_before_any_process(tmp_path):
    g = Graph("bad")
    g.node("source", "synthetic_dvs", rate_hzz=5)
    g.node("sink", "null_sink")
    g.edge("source", "sink")
    before = children()
    with pytest.raises(GraphError, match="graph 'bad': nodes.source.params: unknown parameter "
                                         "'rate_hzz'; did you mean 'rate_hz'"):
        g.start(run_dir=tmp_path / "run")
    assert children() == before and not (tmp_path / "run").exists()
    with pytest.raises(GraphError, match="edges\\[0\\].to: no node named 'ghost'"):
        Graph("g").node("a", "synthetic_dvs").edge("a", "ghost").check()
    with pytest.raises(GraphError, match="exists already"):
        Graph("g").node("a", "synthetic_dvs").node("a", "null_sink")
    with pytest.raises(GraphError, match="tap: no node named 'nope'"):
        Graph("g").node("a", "synthetic_dvs").node("b", "null_sink").edge("a", "b").start(tap=["nope"])


def test_tap_a_chosen_node_and_wait_for_the_end(tmp_path):
    g = Graph("two")
    g.node("source", "synthetic_dvs", samples=3, sample_ms=20, rate_hz=5000)
    g.node("count", "passthrough")
    g.node("sink", "null_sink")
    g.edge("source", "count").edge("count", "sink")
    with g.start(run_dir=tmp_path / "run", tap=["source"]) as run:
        assert run.wait(120) == 0
        items = list(run.results(timeout=10))
    assert {r.stream for r in items} == {"source"} and sorted({r.sample for r in items}) == [0, 1, 2]
    assert sum(len(r.data) for r in items) == run.telemetry()["source"]["events_out"]


def test_a_graph_ending_without_a_sink_gives_its_last_nodes_output(tmp_path):
    g = Graph("open_end")
    g.node("source", "synthetic_dvs", samples=2, sample_ms=20, rate_hz=5000)
    g.node("count", "passthrough")
    g.edge("source", "count")
    with g.start(run_dir=tmp_path / "run") as run:
        items = list(run.results(timeout=120))
    assert {r.stream for r in items} == {"count"} and sorted({r.sample for r in items}) == [0, 1]
    assert run.returncode == 0
