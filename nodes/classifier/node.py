"""ClassifierNode: embeddings in, predictions out, against a bank of the other modality."""
from __future__ import annotations

from typing import Iterable

import numpy as np

from rram_lsm.stream.node import ConfigError, Node
from rram_lsm.stream.packets import Packet
from rram_lsm.stream.params import Param

from .bank import MODES, PrototypeBank

CONTROL_OPS = ("add_class", "add_examples", "remove_class")
THRESHOLD = Param("threshold", float, None, "cosine", "reject below this score (overrides the bank's)")
TOPK = Param("topk", int, 3, "classes", "classes reported per prediction")
RECENT = 8  # predictions kept for live displays


def warm_up(bank: PrototypeBank) -> None:
    """Build the bank's scoring matrix and run one query now, so the first sample does not."""
    if bank.classes:
        bank.classify(np.ones((1, bank.dim), np.float32), 1)


class ClassifierNode(Node):
    """Cosine top-k classification of embeddings against a bank of prototypes.

    Control packets whose ``meta["op"]`` is ``add_class`` / ``add_examples`` (with ``label``
    and ``embeddings``) or ``remove_class`` (with ``label``) edit the bank at run time.
    """

    kind = "classifier"
    PARAMS = (
        Param("bank", str, None, "", "the bank file (.npz); or give 'dim' for an empty bank", path="file"),
        Param("dim", int, None, "", "embedding size of an empty bank"),
        Param("mode", str, "mean", "", "empty bank: one prototype per class or exemplars", choices=MODES),
        Param("k", int, None, "", "empty bank, exemplars: references kept per class"),
        THRESHOLD,
        TOPK,
        Param("seen", list, None, "", "the classes the heads were trained on (generalised zero-shot)"),
        Param("calibration", float, None, "cosine", "calibrated stacking: subtracted from seen-class "
              "scores (overrides the bank's; 0 = plain cosine)"),
    )

    def setup(self) -> None:
        path = self.param("bank")
        threshold = self.param("threshold")
        try:
            if path:
                self.bank = PrototypeBank.load(path, threshold=threshold)
            else:
                dim = self.param("dim")
                if dim is None:
                    raise ConfigError(f"node {self.name!r}: give parameter 'bank' (a bank "
                                      f"file) or 'dim' (for an empty bank)")
                self.bank = PrototypeBank(dim, self.param("mode"), self.param("k"), threshold)
        except ConfigError:
            raise
        except (ValueError, KeyError) as exc:
            raise ConfigError(f"node {self.name!r}: parameter 'bank': {exc}") from None
        self.topk = int(self.param("topk"))
        if self.topk <= 0:
            raise ConfigError(f"node {self.name!r}: parameter 'topk' must be > 0")
        self._calibrate(self.bank, self.param("calibration"), path or "bank")
        warm_up(self.bank)

    def _calibrate(self, bank: PrototypeBank, calibration: float | None, where: str) -> None:
        """Apply the generalised zero-shot params to ``bank`` (the file ``where``).

        ``seen``: the classes the heads were trained on (if the bank file stores them, they
        must agree); ``calibration``: the calibrated-stacking constant subtracted from the
        seen-class scores (overrides the bank's; 0 = plain cosine ranking; see ``gzsl``).
        """
        seen = self.param("seen")
        stored = bank.seen
        if seen and stored is not None and sorted({int(c) for c in seen}) != list(stored):
            raise ConfigError(f"node {self.name!r}: parameter 'seen' {sorted(seen)} differs "
                              f"from the seen classes {list(stored)} stored in {where!r}")
        try:
            bank.set_calibration(bank.calibration if calibration is None else calibration,
                                 seen or None)
        except ValueError as exc:
            raise ConfigError(f"node {self.name!r}: parameter 'calibration' ({where}): "
                              f"{exc}") from None

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
            self._remember(packet, p)
        return out

    def _remember(self, packet: Packet, p) -> None:
        """The last RECENT predictions, for live displays (telemetry ``view``)."""
        last = {"sample": packet.sample, "label": packet.label, "pred": p.label,
                "score": round(float(p.scores[0]), 4) if p.scores else None,
                "topk": [int(c) for c in p.topk], "modality": (packet.meta or {}).get("modality"),
                "source": packet.origin.stream if packet.origin else None}
        # a new list each time: a report already taken keeps the one it was given
        self.view["predictions"] = [*self.view.get("predictions", ())[1 - RECENT:], last]

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
