"""Declared node parameters: checked when a graph loads (before any process), listed by
`rram-lsm kinds`, and the only defaults the nodes' code reads."""
from __future__ import annotations

import ast
import inspect
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from rram_lsm.launch.graph import GraphError, load_graph
from rram_lsm.launch.registry import NODE_KINDS, node_class
from rram_lsm.stream.node import ConfigError, Node, SourceNode
from rram_lsm.stream.params import Param, declared, inherited

SMOKE = ROOT / "launch/graphs/smoke.toml"


def cli(*args, cwd=None):
    # tests/ on the path by its own name: a package installed as ``tests`` may shadow it
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "tests"), os.environ["PYTHONPATH"]]))
    return subprocess.run([sys.executable, "-m", "rram_lsm", *map(str, args)],
                          capture_output=True, text=True, timeout=120, cwd=cwd, env=env)


def misspelt_smoke(tmp_path):
    text = SMOKE.read_text()
    assert 'rate_hz = "${rate_hz}"' in text
    path = tmp_path / "smoke.toml"
    path.write_text(text.replace('rate_hz = "${rate_hz}"', 'rate_hzz = "${rate_hz}"'))
    return path


@pytest.mark.parametrize("command", ["check", "run"])
def test_misspelt_smoke_parameter_is_refused_naming_key_and_nearest(tmp_path, command):
    path = misspelt_smoke(tmp_path)
    extra = ["--run-dir", tmp_path / "run", "--no-dashboard"] if command == "run" else []
    proc = cli(command, path, *extra, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr
    assert str(path) in err and "nodes.source" in err and "'rate_hzz'" in err
    assert "did you mean 'rate_hz'?" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # refused before the launcher started anything


def test_check_valid_graph_exits_0_with_a_summary(tmp_path):
    proc = cli("check", SMOKE, f"out:='{tmp_path / 'o.jsonl'}'")
    assert proc.returncode == 0, proc.stderr
    assert "graph 'smoke' is valid: 3 nodes, 2 edges" in proc.stdout
    assert "source (synthetic_dvs)" in proc.stdout


def test_kinds_lists_every_kind_and_one_kinds_parameters():
    proc = cli("kinds")
    assert proc.returncode == 0, proc.stderr
    listed = {line.split()[0] for line in proc.stdout.splitlines() if line and not line.startswith("`")}
    assert listed == set(NODE_KINDS)
    proc = cli("kinds", "lsm")
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line for line in proc.stdout.splitlines()[2:]}
    assert set(rows) == set(declared(node_class("lsm")))
    assert "'nmnist'" in rows["preset"] and "zs_audio" in rows["preset"]
    assert " us " in rows["bin_width_us"] and "float" in rows["saturated_rate"] and "0.9" in rows["saturated_rate"]
    proc = cli("kinds", "jsonl_sink")
    assert "required" in proc.stdout and "(written)" in proc.stdout
    proc = cli("kinds", "graphnodes:CountingSource")
    assert proc.returncode == 0 and "not checked" in proc.stdout
    assert cli("kinds", "no_such_kind").returncode == 2


def test_node_help_points_at_kinds():
    out = cli("node", "--help").stdout
    assert "rram-lsm kinds" in out and "--kinds" not in out


def graph(tmp_path, source_params: str, sink_params: str = "", source_host: str = "", kind="replay"):
    path = tmp_path / "g.toml"
    path.write_text(f"""
[nodes.src]
kind = "{kind}"
params = {{ {source_params} }}
{source_host}
[nodes.sink]
kind = "jsonl_sink"
params = {{ path = "{tmp_path / 'out.jsonl'}" {sink_params} }}
[[edges]]
from = "src"
to = "sink"
""")
    return path


def test_missing_dataset_path_is_refused_for_local_nodes_only(tmp_path, sockdir):
    missing = tmp_path / "no" / "nmnist"
    path = graph(tmp_path, f'format = "nmnist", path = "{missing}"', source_host='host = "a"')
    with pytest.raises(GraphError, match=r"nodes.src.params: parameter 'path': .*no such file or folder"):
        load_graph(path, None, sockdir)
    proc = cli("check", path, "--host", "a")
    assert proc.returncode == 2 and str(missing) in proc.stderr
    # the source runs on host a: a launcher for the other host does not look for its files
    assert cli("check", path, "--host", "b").returncode == 0
    load_graph(path, None, sockdir, host="b")
    missing.mkdir(parents=True)
    load_graph(path, None, sockdir)


def test_unwritable_sink_folder_is_refused(tmp_path, sockdir):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    path = tmp_path / "g.toml"
    path.write_text(graph(tmp_path, "samples = 1", kind="synthetic_dvs").read_text()
                    .replace(str(tmp_path / "out.jsonl"), str(blocker / "sub" / "out.jsonl")))
    with pytest.raises(GraphError, match=rf"nodes.sink.params: parameter 'path': .*{blocker} is not a folder"):
        load_graph(path, None, sockdir)
    proc = cli("run", path, "--run-dir", tmp_path / "run", "--no-dashboard")
    assert proc.returncode == 2 and "is not a folder" in proc.stderr and not (tmp_path / "run").exists()


@pytest.mark.parametrize("params,needle", [
    ('pattern = "zigzag"', "parameter 'pattern' must be one of 'bar', 'random'; got 'zigzag'"),
    ('rate_hz = "fast"', "parameter 'rate_hz' must be float, got 'fast'"),
    ("samples = true", "parameter 'samples' must be int, got True"),
    ("speed = 1.0, colour = 3", "unknown parameter 'colour'"),
])
def test_wrong_type_or_choice_is_refused_at_load(tmp_path, sockdir, params, needle):
    with pytest.raises(GraphError) as info:
        load_graph(graph(tmp_path, params, kind="synthetic_dvs"), None, sockdir)
    assert needle in str(info.value) and "g.toml: nodes.src.params" in str(info.value)


def test_required_parameter_missing_is_refused(tmp_path, sockdir):
    with pytest.raises(GraphError, match="nodes.src.params: required parameter.*'path' \\(dataset folder or file\\)"):
        load_graph(graph(tmp_path, "format = 'nmnist'"), None, sockdir)
    path = graph(tmp_path, "modality = 'visual'", kind="builtin_replay")
    load_graph(path, None, sockdir)
    path.write_text(path.read_text().replace(f'path = "{tmp_path / "out.jsonl"}"', ""))
    with pytest.raises(GraphError, match="nodes.sink.params: required parameter.*path"):
        load_graph(path, None, sockdir)


class Declared(Node):
    """A user's own node kind that declares its parameters."""

    PARAMS = (Param("gain", float, 1.0, "", "a gain"),)


def test_custom_kinds_with_params_are_checked_and_without_pass(tmp_path, sockdir):
    path = graph(tmp_path, "samples = 1, whatever = 3", kind="graphnodes:CountingSource")
    load_graph(path, None, sockdir)  # no PARAMS of its own: not checked
    text = path.read_text() + '[nodes.mid]\nkind = "test_params:Declared"\nparams = { gian = 2 }\n'
    path.write_text(text.replace('to = "sink"', 'to = "mid"\n[[edges]]\nfrom = "mid"\nto = "sink"'))
    with pytest.raises(GraphError, match="unknown parameter 'gian'; did you mean 'gain'"):
        load_graph(path, None, sockdir)
    with pytest.raises(ConfigError, match="did you mean 'gain'"):  # and when started by hand
        Declared("mid", {"gian": 2})
    assert Declared("mid", {}).param("gain") == 1.0


def test_check_and_every_kind_load_without_torch_or_tonic():
    code = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'tonic'):
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
from rram_lsm.launch.cli import main
assert main(['check', {str(SMOKE)!r}]) == 0
from rram_lsm.launch.registry import NODE_KINDS, node_class
for kind in NODE_KINDS:
    node_class(kind)
assert 'torch' not in sys.modules and 'tonic' not in sys.modules
print('ok')
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr


def _reads(klass) -> tuple[set[str], list[str]]:
    """Keys a class's code (and its module's private helpers) reads with param("key"), and the
    calls that pass a default of their own."""
    keys, with_default = set(), []
    module = sys.modules[klass.__module__]
    helpers = [f for n, f in vars(module).items() if n.startswith("_") and inspect.isfunction(f)
               and f.__module__ == module.__name__]
    code = "\n".join(inspect.getsource(x) for x in [klass, *helpers])
    for call in ast.walk(ast.parse(inspect.cleandoc("\n" + code) if code.startswith(" ") else code)):
        if isinstance(call, ast.Call) and getattr(call.func, "attr", getattr(call.func, "id", None)) == "param" \
                and call.args and isinstance(call.args[0], ast.Constant):
            keys.add(call.args[0].value)
            if len(call.args) > 1 or call.keywords:
                with_default.append(f"{module.__name__}: param({call.args[0].value!r}, ...)")
    return keys, with_default


@pytest.mark.parametrize("kind", sorted(NODE_KINDS))
def test_each_kind_declares_exactly_what_its_code_reads(kind):
    cls = node_class(kind)
    decl = declared(cls)
    assert decl is not None, f"{kind} declares no PARAMS"
    assert all(p.doc for p in decl.values()), f"{kind}: a parameter without its meaning"
    reads = {k: _reads(k) for k in cls.__mro__ if issubclass(k, Node) and k not in (Node, SourceNode)}
    assert not [d for _, with_default in reads.values() for d in with_default], "defaults outside PARAMS"
    if kind == "segmenter":  # it hands every declared parameter to SegmenterParams
        from dataclasses import fields

        from rram_lsm.nodes.sources.segmenter import SegmenterParams
        assert {f.name: f.default for f in fields(SegmenterParams)} == {k: p.default for k, p in decl.items()}
        return
    # its own module reads only declared keys; every declared key is read (here or in a base)
    assert reads[cls][0] <= set(decl) == set(inherited(cls))
    assert set(decl) <= set().union(*(keys for keys, _ in reads.values()))


def test_declared_defaults_are_what_the_nodes_use():
    from rram_lsm.nodes.lsm.node import LsmNode
    from rram_lsm.nodes.sinks import ConsoleSink
    from rram_lsm.nodes.sources.synthetic import SyntheticDvsSource

    src = SyntheticDvsSource("s", {})
    assert (src.pattern, src.rate_hz, src.sample_us, src.n_samples, src.n_classes, src.seed) == \
        ("bar", 20_000.0, 300_000, 10, 4, 0)
    assert (src.speed, src.loop, src.max_events, src.span_us, src.gap_us, src.geometry) == \
        (None, 1, 4096, None, 0, (16, 16))
    assert SyntheticDvsSource("s", {"samples": 3}).n_samples == 3
    assert SyntheticDvsSource("s", {"samples": 3, "n_samples": 5}).n_samples == 5
    sink = ConsoleSink("c", {})
    sink.setup()
    assert (sink.remember, sink.every) == (4096, 1)
    from rram_lsm.nodes.lsm.presets import PRESETS

    lsm = LsmNode("l", {})
    assert (lsm.config == PRESETS["nmnist"], lsm.mode, lsm.windows, lsm.saturated_rate, lsm.default_geometry) == \
        (True, "trial", 1, 0.9, None)
    assert lsm.reservoir.device.name == "ideal"
    cont = LsmNode("l", {"mode": "continuous", "binning": "fixed_width"})
    assert (cont.window_bins, cont.hop_bins) == (50, 10)
