"""ProjectionNode: feature rows in, L2-normalised embeddings out (numpy; no torch)."""
from __future__ import annotations

from typing import Iterable

import numpy as np

from rram_lsm.stream.node import ConfigError, Node
from rram_lsm.stream.packets import Packet
from rram_lsm.stream.params import REQUIRED, Param

from .heads import ProjectionHead, select_head


class ProjectionNode(Node):
    """Applies a trained projection head to every ``features`` packet (embeddings out).

    A head made for another preset or feature size than the upstream LSM's is refused at setup.
    """

    kind = "projection"
    PARAMS = (
        Param("weights", str, REQUIRED, "", "the heads file (.npz, .safetensors, or .nir from rram-lsm export)", path="file"),
        Param("modality", str, None, "", "which head, when the file holds several"),
        Param("preset", str, None, "", "the upstream LSM's preset (checked against the head's)"),
        Param("n_features", int, None, "features", "the upstream LSM's feature size (checked)"),
    )

    def setup(self) -> None:
        path = self.param("weights")
        try:
            if str(path).endswith(".nir"):   # heads of an `rram-lsm export --nir` file
                from .nir_io import load_heads_nir
                self.head = select_head(load_heads_nir(path), path, self.param("modality"),
                                        self.param("preset"), self.param("n_features"))
            else:
                self.head = ProjectionHead.load(
                    path, modality=self.param("modality"),
                    preset=self.param("preset"),
                    n_features=self.param("n_features"))
        except ValueError as exc:
            raise ConfigError(f"node {self.name!r}: parameter 'weights': {exc}") from None
        # load (or compile) the forward now: the first sample must not pay for it
        self.head.forward(np.zeros((1, self.head.n_features), np.float32))

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
