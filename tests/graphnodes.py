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


class CochleaSweep(SourceNode):
    """A paced cochlea stream for live displays: every ``packet_ms`` a packet of events whose
    channel sweeps up the ``channels`` and wraps, one sample per ``sample_ms``, ``seconds``
    long (continuous until then)."""

    kind = "cochlea_sweep"

    def packets(self):
        from rram_lsm.stream.packets import COCHLEA_DTYPE

        channels, per = int(self.params.get("channels", 64)), int(self.params.get("events", 200))
        step_us = int(float(self.params.get("packet_ms", 20)) * 1000)
        sample_us = int(float(self.params.get("sample_ms", 500)) * 1000)
        end_us = int(float(self.params.get("seconds", 10)) * 1e6)
        rng, epoch, t, s = np.random.default_rng(0), new_epoch(), 0, -1
        started = time.monotonic()
        while t < end_us:
            if t // sample_us != s:
                if s >= 0:
                    yield control("end_of_sample", sample=s, origin=Origin(self.name, epoch, s))
                s = t // sample_us
                yield control("start", sample=s, origin=Origin(self.name, epoch, s))
            ev = np.zeros(per, COCHLEA_DTYPE)
            ev["t"] = np.sort(rng.integers(t, t + step_us, per))
            centre = (ev["t"] // 4000) % channels  # a sweep: one channel per 4 ms
            ev["x"] = np.clip(centre + rng.integers(-2, 3, per), 0, channels - 1)
            yield Packet(kind="events", body=ev, geometry=(channels,), sample=s,
                         origin=Origin(self.name, epoch, s), origin_ns=time.time_ns(),
                         t0=t, t1=t + step_us)
            t += step_us
            time.sleep(max(0.0, started + t / 1e6 - time.monotonic()))
        yield control("end_of_sample", sample=s, origin=Origin(self.name, epoch, s))


class EmbeddingSource(SourceNode):
    """Noisy copies of a bank's prototypes as ``embedding`` packets of ``modality``, one every
    ``every_ms``, labels cycling through the bank's classes: drives a real classifier."""

    kind = "embedding_source"

    def packets(self):
        from rram_lsm.nodes.classifier.bank import PrototypeBank

        bank = PrototypeBank.load(self.params["bank"])
        classes = bank.classes
        rng, epoch = np.random.default_rng(int(self.params.get("seed", 0))), new_epoch()
        noise, every = float(self.params.get("noise", 0.3)), float(self.params.get("every_ms", 200))
        for s in range(int(self.params.get("samples", 50))):
            label = classes[s % len(classes)]
            emb = bank.prototype(label) + noise * rng.standard_normal(bank.dim)
            origin = Origin(self.name, epoch, s)
            yield control("start", sample=s, label=label, origin=origin)
            yield Packet(kind="embedding", body=emb.astype(np.float32)[None, :], sample=s,
                         label=label, origin=origin, origin_ns=time.time_ns(),
                         meta={"modality": self.params.get("modality", "audio")})
            yield control("end_of_sample", sample=s, label=label, origin=origin)
            time.sleep(every / 1e3)
