"""ClassifierNode: embeddings in, predictions out, against a bank of the other modality."""
from __future__ import annotations

from typing import Iterable

import numpy as np

from rram_lsm.stream.node import ConfigError, Node
from rram_lsm.stream.packets import Packet

from .bank import PrototypeBank

CONTROL_OPS = ("add_class", "add_examples", "remove_class")


class ClassifierNode(Node):
    """Cosine top-k classification against a :class:`PrototypeBank`.

    Params: ``bank`` (path to a bank ``.npz``), ``topk`` (default 3), ``threshold``
    (reject below this cosine score; overrides the bank's), ``dim`` (embedding size for an
    empty bank when no file is given).  Control packets whose ``meta["op"]`` is
    ``add_class`` / ``add_examples`` (with ``label`` and ``embeddings``) or ``remove_class``
    (with ``label``) edit the bank at run time.
    """

    kind = "classifier"

    def setup(self) -> None:
        path = self.param("bank", kind=str)
        threshold = self.param("threshold", kind=(int, float))
        try:
            if path:
                self.bank = PrototypeBank.load(path, threshold=threshold)
            else:
                dim = self.param("dim", kind=int)
                if dim is None:
                    raise ConfigError(f"node {self.name!r}: give parameter 'bank' (a bank "
                                      f"file) or 'dim' (for an empty bank)")
                self.bank = PrototypeBank(dim, self.param("mode", "mean", str),
                                          self.param("k", kind=int), threshold)
        except ConfigError:
            raise
        except (ValueError, KeyError) as exc:
            raise ConfigError(f"node {self.name!r}: parameter 'bank': {exc}") from None
        self.topk = int(self.param("topk", 3, int))
        if self.topk <= 0:
            raise ConfigError(f"node {self.name!r}: parameter 'topk' must be > 0")

    def process(self, packet: Packet) -> Iterable[Packet]:
        if packet.is_control:
            self._control(packet)
            return ()
        if packet.kind != "embedding":
            raise ValueError(f"classifier node {self.name!r} takes 'embedding' packets, "
                             f"got {packet.kind!r}")
        if packet.body is None:
            raise ValueError("embedding packet without a body")
        emb = np.asarray(packet.body)
        if emb.ndim == 1:
            emb = emb[None, :]
        if emb.ndim != 2 or emb.shape[1] != self.bank.dim:
            raise ValueError(f"embedding of shape {tuple(np.shape(packet.body))} does not "
                             f"match the bank's dimension {self.bank.dim}")
        preds = self.bank.classify(emb, self.topk)
        # The bank is in on-chip SRAM, its read priced inside each MAC: no bytes_moved.
        self.ops["macs"] += len(emb) * self.bank.macs_per_query
        out = []
        for p in preds:
            out.append(packet.derive(
                "prediction", body=np.asarray([p.scores], dtype=np.float32),
                meta={"pred": p.label, "topk": p.topk, "scores": p.scores,
                      "label": packet.label, "chance": self.bank.chance}))
        return out

    def _control(self, packet: Packet) -> None:
        if packet.control != "bank":
            return
        op = packet.meta.get("op") if packet.meta else None
        if op is None:
            raise ValueError("classifier bank control needs meta['op']")
        if op not in CONTROL_OPS:
            raise ValueError(f"classifier control op {op!r} is not one of {CONTROL_OPS}")
        if "label" not in packet.meta:
            raise ValueError(f"classifier control op {op!r} needs a 'label'")
        label = int(packet.meta["label"])
        if op == "remove_class":
            try:
                self.bank.remove_class(label)
            except KeyError as exc:
                raise ValueError(str(exc)) from None
            return
        emb = packet.meta.get("embeddings")
        if emb is None and packet.body is not None:
            emb = packet.body
        if emb is None:
            raise ValueError(f"classifier control op {op!r} needs 'embeddings'")
        emb = np.asarray(emb, dtype=np.float32)
        if op == "add_class":
            self.bank.add_class(label, emb)
        else:
            self.bank.add_examples(label, emb)
