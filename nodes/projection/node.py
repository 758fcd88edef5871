"""ProjectionNode: feature rows in, L2-normalised embeddings out (numpy; no torch)."""
from __future__ import annotations

from typing import Iterable

import numpy as np

from rram_lsm.stream.node import ConfigError, Node
from rram_lsm.stream.packets import Packet

from .heads import ProjectionHead


class ProjectionNode(Node):
    """Applies a trained projection head to every ``features`` packet.

    Params: ``weights`` (path to a heads ``.npz``/``.safetensors``), optional ``modality``
    (which head, when the file holds several), optional ``preset`` and ``n_features``
    (what the upstream LSM produces; a head made for something else is refused at setup).
    """

    kind = "projection"

    def setup(self) -> None:
        path = self.param("weights", kind=str)
        if not path:
            raise ConfigError(f"node {self.name!r}: parameter 'weights' (heads file) is required")
        try:
            self.head = ProjectionHead.load(
                path, modality=self.param("modality", kind=str),
                preset=self.param("preset", kind=str),
                n_features=self.param("n_features", kind=int))
        except ValueError as exc:
            raise ConfigError(f"node {self.name!r}: parameter 'weights': {exc}") from None

    def process(self, packet: Packet) -> Iterable[Packet]:
        if packet.is_control:
            return ()
        if packet.kind != "features":
            raise ValueError(f"projection node {self.name!r} takes 'features' packets, "
                             f"got {packet.kind!r}")
        if packet.body is None:
            raise ValueError("features packet without a body")
        x = np.asarray(packet.body)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != self.head.n_features:
            raise ValueError(f"features of shape {tuple(np.shape(packet.body))} do not match "
                             f"the head's n_features={self.head.n_features} "
                             f"(preset {self.head.config.preset!r})")
        emb = self.head.forward(x)
        rows = len(x)
        # Weights in on-chip SRAM, read once per MAC and priced inside it (launch/profiles,
        # [weights]); nothing crosses to main memory, so no bytes_moved.
        self.ops["macs"] += rows * self.head.macs_per_row
        return [packet.derive("embedding", body=emb,
                              meta={"modality": self.head.config.modality})]
