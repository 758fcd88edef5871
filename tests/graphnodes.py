"""Small nodes used by the transport tests (started in real child processes by kind
``graphnodes:Class``, with tests/ on PYTHONPATH)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from rram_lsm.nodes.passthrough import PassThroughNode
from rram_lsm.stream.node import SourceNode
from rram_lsm.stream.packets import DVS_DTYPE, Origin, Packet, control, new_epoch


class CountingSource(SourceNode):
    """Emits ``samples`` samples of ``messages`` DVS packets of ``events`` events each,
    each event's ``t`` a running counter so receivers can check order and completeness."""

    kind = "counting_source"
    epoch: int | None = None  # set by the runtime across a restart, with resume_from
    resume_from = 0

    def packets(self):
        samples = int(self.params.get("samples", 3))
        messages = int(self.params.get("messages", 10))
        events = int(self.params.get("events", 64))
        delay = float(self.params.get("delay_ms", 0)) / 1e3
        # like a real source, a process draws its own epoch unless the runtime hands it the
        # data's (or a test fixes one)
        epoch = self.epoch if self.epoch is not None else int(self.params.get("epoch", new_epoch()))
        t = 0
        for s in range(samples):
            if s < self.resume_from:
                t += messages * events
                continue
            origin = Origin(self.name, epoch, s)
            yield control("start", sample=s, label=s % 10, origin=origin)
            for m in range(messages):
                ev = np.zeros(events, DVS_DTYPE)
                ev["t"] = np.arange(t, t + events)
                ev["x"] = np.arange(events) % 34
                ev["y"] = (np.arange(events) // 34) % 34
                t += events
                yield Packet(kind="events", body=ev, geometry=(34, 34), sample=s, label=s % 10,
                             origin=origin, origin_ns=time.time_ns(), t0=int(ev["t"][0]),
                             t1=int(ev["t"][-1]))
                if delay:
                    time.sleep(delay)
            yield control("end_of_sample", sample=s, label=s % 10, origin=origin)


class HangsOnce(PassThroughNode):
    """Forwards packets, but the first process to see message ``at`` hangs forever (a marker
    file makes the restarted one behave): the launcher must notice and kill it."""

    kind = "hangs_once"

    def process(self, packet):
        self.seen = getattr(self, "seen", 0) + 1
        marker = Path(self.params["marker"])
        if self.seen == int(self.params.get("at", 5)) and not marker.exists():
            marker.write_text("hung")
            while True:
                time.sleep(1)
        return super().process(packet)


class ScriptedDvsSource(SourceNode):
    """Synthetic bar samples; after sample ``bank_after`` a `bank` control adds a class to the
    classifier downstream; ends with one sample of uniform noise (label 99)."""

    kind = "scripted_dvs"

    def packets(self):
        import json

        from rram_lsm.nodes.sources.synthetic import SyntheticDvsSource, synthetic_sample

        params = {k: v for k, v in self.params.items() if k not in ("bank_after", "bank_file")}
        inner = SyntheticDvsSource(self.name, params)
        edit = json.loads(Path(self.params["bank_file"]).read_text())
        last = None
        for pkt in inner.packets():
            yield pkt
            last = pkt
            if pkt.is_control and pkt.control == "end_of_sample" and pkt.sample == self.params["bank_after"]:
                yield control("bank", meta=edit)
        noise = synthetic_sample(np.random.default_rng(123), "random", 0, (16, 16), 40000, 100_000)
        origin = Origin(last.origin.stream, last.origin.epoch, 999)
        yield control("start", origin=origin, sample=999, label=99)
        yield Packet(kind="events", body=noise, geometry=(16, 16), origin=origin, sample=999, label=99,
                     origin_ns=time.time_ns())
        yield control("end_of_sample", origin=origin, sample=999, label=99)


class SlowSetup(PassThroughNode):
    """Forwards packets after a setup that takes ``setup_s`` seconds (like loading a model)."""

    kind = "slow_setup"

    def setup(self) -> None:
        super().setup()
        time.sleep(float(self.params.get("setup_s", 2.0)))


def feature_rows(n_samples: int, n_features: int, seed: int) -> np.ndarray:
    """The rows ``FeatureSource`` emits, one per sample (so a test can recompute results)."""
    return np.random.default_rng(seed).uniform(size=(n_samples, n_features)).astype(np.float32)


class FeatureSource(SourceNode):
    """One ``features`` row per sample (``feature_rows``), label ``sample % classes``, in place
    of a source and an lsm; its data entered the graph ``age_ms`` before it is sent (a sensor's
    buffering), so a sink's latency and time mapping are checked against a known offset."""

    kind = "feature_source"

    def packets(self):
        n, dim = int(self.params.get("samples", 6)), int(self.params.get("n_features", 20))
        classes, gap = int(self.params.get("classes", 3)), float(self.params.get("gap_ms", 20)) / 1e3
        age_ns = int(float(self.params.get("age_ms", 0)) * 1e6)
        epoch = new_epoch()
        for s, row in enumerate(feature_rows(n, dim, int(self.params.get("seed", 0)))):
            origin = Origin(self.name, epoch, s)
            yield control("start", sample=s, label=s % classes, origin=origin)
            yield Packet(kind="features", body=row[None, :], sample=s, label=s % classes,
                         origin=origin, origin_ns=time.time_ns() - age_ns, t0=s * 1000,
                         t1=s * 1000 + 999)
            yield control("end_of_sample", sample=s, label=s % classes, origin=origin)
            time.sleep(gap)
