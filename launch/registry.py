"""Node kinds by name -> the class that implements them (imported only when used)."""
from __future__ import annotations

import importlib
import re

NODE_KINDS: dict[str, str] = {
    "synthetic_dvs": "nodes.sources.synthetic:SyntheticDvsSource",
    "replay": "nodes.sources.replay:ReplaySource",
    "builtin_replay": "nodes.sources.builtin_source:BuiltinReplaySource",
    "segmenter": "nodes.sources.segmenter:SegmenterNode",
    "lsl": "nodes.sources.live:LslSource",
    "dvs_camera": "nodes.sources.live:DvsCameraSource",
    "microphone": "nodes.sources.microphone:MicrophoneSource",
    "passthrough": "nodes.passthrough:PassThroughNode",
    "null_sink": "nodes.sinks:SinkNode",
    "console_sink": "nodes.sinks:ConsoleSink",
    "jsonl_sink": "nodes.sinks:JsonlSink",
    "csv_sink": "nodes.sinks:CsvSink",
    "recorder": "nodes.recording:RecorderSink",
    "lsm": "nodes.lsm.node:LsmNode",
    "projection": "nodes.projection.node:ProjectionNode",
    "classifier": "nodes.classifier.node:ClassifierNode",
    "crossmodal_classifier": "nodes.classifier.crossmodal:CrossModalClassifier",
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
