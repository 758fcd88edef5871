"""The test graph most transport, launcher and recovery tests run, written once.

``chain`` is source -> middle -> sink: a ``CountingSource`` (tests/graphnodes.py, whose event
times are a running counter so a sink can check order and completeness), a middle node
(``passthrough`` unless told) and a ``jsonl_sink`` (``null_sink`` without ``out``).
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path


def chain(out: str | Path | None = None, *, name: str = "chain", samples: int | str = 3,
          messages: int = 10, events: int = 64, delay_ms: float = 0, mid: str = "passthrough",
          mid_params: str = "", graph: str = "", edges: tuple[str, str] = ("", ""),
          nodes: dict[str, str] | None = None) -> str:
    """TOML text of the chain.  ``graph``: extra lines of ``[graph]``; ``mid_params``: the
    middle node's inline-table body; ``edges``: extra lines of each of the two edges;
    ``nodes``: extra lines of a node's table by name (``{"sink": 'resources = {b = 1}'}``)."""
    extra = {n: f"\n{text.strip()}" for n, text in (nodes or {}).items()}
    sink = (f'kind = "jsonl_sink"\nparams = {{ path = {json.dumps(str(out))} }}' if out is not None
            else 'kind = "null_sink"')
    mid_line = f"\nparams = {{ {mid_params} }}" if mid_params else ""
    first, second = (f"\n{e.strip()}" if e.strip() else "" for e in edges)
    return f"""[graph]
name = "{name}"
{graph.strip()}
[nodes.src]
kind = "graphnodes:CountingSource"{extra.get("src", "")}
params = {{ samples = {samples}, messages = {messages}, events = {events}, delay_ms = {delay_ms} }}
[nodes.mid]
kind = "{mid}"{extra.get("mid", "")}{mid_line}
[nodes.sink]
{sink}{extra.get("sink", "")}
[[edges]]
from = "src"
to = "mid"{first}
[[edges]]
from = "mid"
to = "sink"{second}
"""


def events_per_sample(out: str | Path) -> Counter:
    """Events a ``jsonl_sink`` wrote per sample id (exactly-once checks compare it whole)."""
    events: Counter = Counter()
    for line in open(out):
        r = json.loads(line)
        if r["kind"] == "events":
            events[r["sample"]] += r["n"]
    return events
