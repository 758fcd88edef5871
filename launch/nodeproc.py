"""Start one node in this process from a NodeSpec (what `rram-lsm node` runs)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from rram_lsm.stream.codec import Limits
from rram_lsm.stream.runtime import NodeRuntime, NodeSpec
from rram_lsm.stream.transport import EdgeConfig

from .registry import node_class


def spec_to_dict(spec: NodeSpec) -> dict:
    d = dataclasses.asdict(spec)
    return d


def spec_from_dict(d: dict) -> NodeSpec:
    d = dict(d)
    d["outputs"] = [EdgeConfig(**e) for e in d.get("outputs", [])]
    if "limits" in d:
        d["limits"] = Limits(**d["limits"])
    known = {f.name for f in dataclasses.fields(NodeSpec)}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"node spec: unknown key(s) {sorted(unknown)}")
    return NodeSpec(**d)


def write_spec(spec: NodeSpec, path: Path) -> None:
    path.write_text(json.dumps(spec_to_dict(spec), indent=1))


def read_spec(path: Path) -> NodeSpec:
    return spec_from_dict(json.loads(Path(path).read_text()))


def run_spec(spec: NodeSpec) -> int:
    """Build the node and run it under the runtime until end of stream or a signal."""
    node = node_class(spec.kind)(spec.name, spec.params)
    runtime = NodeRuntime(node, spec)
    runtime.install_signal_handlers()
    return runtime.run()
