"""CrossModalClassifier: one classifier process for several query modalities, each with the
bank built from the OTHER modality (audio prototypes label visual digits and the reverse).

Kind ``crossmodal_classifier``.  The bank is chosen by the embedding's ``meta["modality"]``
(set by the projection node).  It also keeps running accuracy counts as gauges, split into
seen and unseen classes, with the chance level of the bank in use, so live telemetry shows
how well the zero-shot classes are recognised.
"""
from __future__ import annotations

from typing import Iterable

from rram_lsm.stream.node import ConfigError
from rram_lsm.stream.packets import Packet
from rram_lsm.stream.params import REQUIRED, Param

from .bank import PrototypeBank
from .node import THRESHOLD, TOPK, ClassifierNode, warm_up


class CrossModalClassifier(ClassifierNode):
    """Classifies each modality's embeddings against the bank built from the other one."""

    kind = "crossmodal_classifier"
    PARAMS = (
        Param("banks", dict, REQUIRED, "", "{query modality = bank file}", path="file"),
        THRESHOLD,
        TOPK,
        Param("seen", list, [], "", "the seen classes: accuracy gauges and calibrated stacking"),
        Param("unseen", list, [], "", "classes counted as unseen in the accuracy gauges"),
        Param("calibration", (float, dict), None, "cosine", "calibrated stacking constant, one for "
              "every bank or {query modality = constant}"),
    )

    def setup(self) -> None:
        banks = self.param("banks")
        if not banks:
            raise ConfigError(f"node {self.name!r}: parameter 'banks' ({{modality: bank file}}) is required")
        threshold = self.param("threshold")
        self.banks: dict[str, PrototypeBank] = {}
        for modality, path in banks.items():
            if not isinstance(path, str):
                raise ConfigError(f"node {self.name!r}: parameter 'banks.{modality}' must be a file path")
            try:
                self.banks[modality] = PrototypeBank.load(path, threshold=threshold)
            except (ValueError, KeyError, OSError) as exc:
                raise ConfigError(f"node {self.name!r}: parameter 'banks.{modality}': {exc}") from None
        self.topk = int(self.param("topk"))
        if self.topk <= 0:
            raise ConfigError(f"node {self.name!r}: parameter 'topk' must be > 0")
        self.seen = {int(c) for c in self.param("seen")}
        self.unseen = {int(c) for c in self.param("unseen")}
        if self.seen & self.unseen:
            raise ConfigError(f"node {self.name!r}: parameters 'seen' and 'unseen' overlap")
        self.bank = next(iter(self.banks.values()))
        # 'seen' also names the classes calibrated stacking lowers; 'calibration' is one
        # constant for every bank or {query modality: constant} (a bank left out keeps its own)
        calibration = self.param("calibration")
        per_bank = calibration if isinstance(calibration, dict) else {}
        unknown = sorted(set(per_bank) - set(self.banks))
        if unknown:
            raise ConfigError(f"node {self.name!r}: parameter 'calibration' names modalities "
                              f"{unknown} without a bank; banks: {sorted(self.banks)}")
        for modality, bank in self.banks.items():
            gamma = per_bank.get(modality) if isinstance(calibration, dict) else calibration
            if gamma is not None and (isinstance(gamma, bool)
                                      or not isinstance(gamma, (int, float))):
                raise ConfigError(f"node {self.name!r}: parameter 'calibration.{modality}' "
                                  f"must be a number, got {gamma!r}")
            self._calibrate(bank, gamma, f"banks.{modality}")
        for bank in self.banks.values():
            warm_up(bank)
        self.gauges.update({"inferences": 0, "seen_n": 0, "seen_correct": 0, "unseen_n": 0,
                            "unseen_correct": 0})

    def process(self, packet: Packet) -> Iterable[Packet]:
        modality = (packet.meta or {}).get("modality") if packet.kind == "embedding" else None
        if packet.is_control and packet.control == "bank":
            modality = (packet.meta or {}).get("bank")
            if modality not in self.banks:
                raise ValueError(f"bank control needs meta['bank'] naming one of {sorted(self.banks)}")
        if not packet.is_control:
            if modality not in self.banks:
                raise ValueError(f"embedding of modality {modality!r} has no bank; banks: {sorted(self.banks)}")
        if modality is not None:
            self.bank = self.banks[modality]
        out = list(super().process(packet))
        for p in out:
            self._count(p, modality)
        return out

    def _count(self, p: Packet, modality: str) -> None:
        """Running accuracy gauges (per pool and per modality), chance of the bank in use."""
        g = self.gauges
        g["inferences"] += 1
        g[f"inferences_{modality}"] = g.get(f"inferences_{modality}", 0) + 1
        g["chance"] = self.bank.chance
        label, pred = p.label, p.meta.get("pred")
        if label is None:
            return
        pool = "seen" if label in self.seen else "unseen" if label in self.unseen else None
        if pool is None:
            return
        g[f"{pool}_n"] += 1
        g[f"{pool}_correct"] += int(pred == label)
