"""The node contract: a node file holds only its own science.

The runtime (``stream.runtime``) owns sockets, polling, signals, telemetry and end-of-stream
handling.  It calls ``process`` for every packet that arrives, data and control alike, sends
what it returns, and then forwards each control packet itself, in order, after the outputs
the node produced for it (so an ``end_of_sample`` follows the feature computed at its end).
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Iterator

from .packets import Packet

# DESIGN.md's operation-count vocabulary, shared by every node and every energy profile.
# ``macs`` are real digital multiply-accumulates (projection, classifier); ``dense_macs`` is
# the reservoir's dense-equivalent work, reported beside its ``synaptic_ops`` so a clocked
# dense accelerator can be priced without double-counting the heads.
OP_COUNTS = (
    "dac_row_activations", "cell_reads", "adc_conversions", "synaptic_ops",
    "neuron_updates", "spikes", "macs", "dense_macs", "bytes_moved",
)


class ConfigError(ValueError):
    """A bad configuration value; the message names the key."""


class Node:
    """Base class for every node kind.

    ``params`` is plain data (from a graph file or the command line), so nodes can be
    started anywhere.  ``ops`` accumulates operation counts for telemetry and energy.
    """

    kind = "node"

    def __init__(self, name: str, params: dict[str, Any] | None = None):
        self.name = name
        self.params = dict(params or {})
        self.ops: Counter[str] = Counter()
        # Per-sample results a node wants in telemetry (e.g. reservoir health).
        self.gauges: dict[str, float] = {}
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
        """Read a parameter, checking its type; the error names the key."""
        value = self.params.get(key, default)
        if kind is not None and value is not None and not isinstance(value, kind):
            raise ConfigError(f"node {self.name!r}: parameter {key!r} must be {kind}, got {value!r}")
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
