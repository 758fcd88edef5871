"""The node contract: a node file holds only its own science.

The runtime (``stream.runtime``) owns sockets, polling, signals, telemetry and end-of-stream
handling.  It calls ``process`` for every packet that arrives, data and control alike, sends
what it returns, and then forwards each control packet itself, in order, after the outputs
the node produced for it (so an ``end_of_sample`` follows the feature computed at its end).
"""
from __future__ import annotations

import copy
from collections import Counter
from typing import Any, ClassVar, Iterable, Iterator

from .packets import Packet
from .params import ConfigError, Param, check_params, inherited

# DESIGN.md's operation-count vocabulary, shared by every node and every energy profile.
# ``macs`` are real digital multiply-accumulates (projection, classifier); ``dense_macs`` is
# the reservoir's dense-equivalent work, reported beside its ``synaptic_ops`` so a clocked
# dense accelerator can be priced without double-counting the heads.
OP_COUNTS = (
    "dac_row_activations", "cell_reads", "adc_conversions", "synaptic_ops",
    "neuron_updates", "spikes", "macs", "dense_macs", "bytes_moved",
)


class Node:
    """Base class for every node kind.

    ``params`` is plain data (from a graph file or the command line), so nodes can be
    started anywhere; a kind declares what it accepts in ``PARAMS`` (stream.params), and a
    class declaring them refuses unknown or mistyped ones here too.  ``ops`` accumulates
    operation counts for telemetry and energy.
    """

    kind = "node"
    PARAMS: ClassVar[tuple[Param, ...] | None] = None  # None: not declared, not checked

    def __init__(self, name: str, params: dict[str, Any] | None = None):
        self.name = name
        self.params = dict(params or {})
        check_params(type(self), self.params, f"node {name!r}")
        self.ops: Counter[str] = Counter()
        # Per-sample results a node wants in telemetry (e.g. reservoir health).
        self.gauges: dict[str, float] = {}
        # Small JSON-able values for live displays (e.g. a classifier's last predictions),
        # published as the telemetry's ``view``; sources' event frames are added by the runtime.
        self.view: dict[str, Any] = {}
        # Set by the runtime on sinks of a recovering graph: call with a sample's origin
        # once its result is committed, so the source can forget the sample.
        self.on_ack = None

    def setup(self) -> None:
        """Load models, compile kernels; runs once before the first packet."""

    def process(self, packet: Packet) -> Iterable[Packet]:
        """Consume one packet and return the packets it produces."""
        return ()

    def flush(self) -> Iterable[Packet]:
        """Emit what is still buffered at end of stream."""
        return ()

    def close(self) -> None:
        """Release resources."""

    def param(self, key: str, default: Any = None, kind: type | tuple | None = None) -> Any:
        """A parameter's value, or its declared default (checked against its declaration).

        ``default`` and ``kind`` serve node classes that declare no PARAMS."""
        decl = inherited(type(self)).get(key)
        if decl is None:
            value = self.params.get(key, default)
            if kind is not None and value is not None and not isinstance(value, kind):
                raise ConfigError(f"node {self.name!r}: parameter {key!r} must be {kind}, got {value!r}")
            return value
        if key not in self.params:
            if decl.required:
                raise ConfigError(f"node {self.name!r}: parameter {key!r} is required ({decl.doc})")
            return copy.copy(decl.default)  # a node may change a default list in place
        value = self.params[key]
        decl.check(value, f"node {self.name!r}")
        return value


class SourceNode(Node):
    """A node without inputs: the runtime sends what ``packets()`` yields, then end_of_stream.

    Pacing (release at timestamps / speed factor) is the source's own job: the generator
    simply yields each packet when it is due.
    """

    kind = "source"
    # Small values the runtime puts in the final end_of_stream's meta (e.g. a reason).
    end_meta: dict[str, Any] = {}

    def packets(self) -> Iterator[Packet]:
        return iter(())
