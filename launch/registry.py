"""Node kinds by name -> the class that implements them (imported only when used)."""
from __future__ import annotations

import importlib
import re

NODE_KINDS: dict[str, str] = {
    "synthetic_dvs": "rram_lsm.nodes.sources.synthetic:SyntheticDvsSource",
    "replay": "rram_lsm.nodes.sources.replay:DatasetReplaySource",
    "builtin_replay": "rram_lsm.nodes.sources.builtin_source:BuiltinReplaySource",
    "segmenter": "rram_lsm.nodes.sources.segmenter:SegmenterNode",
    "lsl": "rram_lsm.nodes.sources.live:LslSource",
    "dvs_camera": "rram_lsm.nodes.sources.dv:DvsCameraSource",
    "dv_network": "rram_lsm.nodes.sources.dv:DvNetworkSource",
    "video": "rram_lsm.nodes.sources.camera:VideoSource",
    "webcam": "rram_lsm.nodes.sources.camera:WebcamSource",
    "microphone": "rram_lsm.nodes.sources.microphone:MicrophoneSource",
    "passthrough": "rram_lsm.nodes.passthrough:PassThroughNode",
    "null_sink": "rram_lsm.nodes.sinks:SinkNode",
    "console_sink": "rram_lsm.nodes.sinks:ConsoleSink",
    "jsonl_sink": "rram_lsm.nodes.sinks:JsonlSink",
    "csv_sink": "rram_lsm.nodes.sinks:CsvSink",
    "lsl_outlet": "rram_lsm.nodes.lsl_outlet:LslOutlet",
    "recorder": "rram_lsm.nodes.recording:RecorderSink",
    "tap": "rram_lsm.nodes.tap:TapSink",
    "lsm": "rram_lsm.nodes.lsm.node:LsmNode",
    "projection": "rram_lsm.nodes.projection.node:ProjectionNode",
    "classifier": "rram_lsm.nodes.classifier.node:ClassifierNode",
    "crossmodal_classifier": "rram_lsm.nodes.classifier.crossmodal:CrossModalClassifier",
}


_CUSTOM = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


def is_known(kind: str) -> bool:
    """A registered kind, or an explicit ``module:Class`` (a user's own node)."""
    return kind in NODE_KINDS or bool(_CUSTOM.fullmatch(kind))


def node_class(kind: str):
    """The class for a node kind (or an explicit ``package.module:Class``); clear errors."""
    if ":" in kind and kind not in NODE_KINDS:
        module, _, cls = kind.partition(":")
        try:
            return getattr(importlib.import_module(module), cls)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"node kind {kind!r}: cannot load it ({exc})") from None
    if kind not in NODE_KINDS:
        raise ValueError(f"unknown node kind {kind!r}; known kinds: {', '.join(sorted(NODE_KINDS))}")
    module, _, cls = NODE_KINDS[kind].partition(":")
    return getattr(importlib.import_module(module), cls)


def describe(cls) -> str:
    """A kind's one-line description: the first line of its class docstring."""
    doc = (cls.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else "(no description)"


def params_table(cls) -> str:
    """A kind's declared parameters as aligned text: name, type, default, unit, meaning."""
    from rram_lsm.stream.params import declared

    decl = declared(cls)
    if decl is None:
        return "  (declares no PARAMS: its parameters are not checked)"
    if not decl:
        return "  (no parameters)"
    rows = [("name", "type", "default", "unit", "meaning")]
    for p in decl.values():
        doc = p.doc
        if p.choices:
            doc += f" [{' | '.join(map(str, p.choices))}]"
        if p.path:
            doc += {"out": " (written)", "file": " (a file)", "dir": " (a folder)",
                    "exists": " (a file or folder)"}[p.path]
        rows.append((p.name, p.type_name(), "required" if p.required else repr(p.default), p.unit, doc))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  " + "  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4]
                     for r in rows)
