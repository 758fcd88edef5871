"""Hashes of LSM features on fixed seeded inputs, to show a refactor kept the same bits.

Every entry point that picks a kernel is covered, for both devices (``ideal``, ``rram``) and
both dtypes (float32, float64): ``LifReservoir.run`` on one core and with the neurons split
over two (``threads=2``), the batched ``encode_samples`` (mean rates and 4 windows), and the
``lsm`` node on DVS packets (float32: the fused per-packet path, the per-packet binner, and
continuous mode).  Inputs are synthetic, seeded: N-MNIST-sized DVS samples (34x34 sensor,
presets ``nmnist``/``zs_image``) and cochlea-sized address samples (preset ``zs_audio``,
64 channels, chunk_pad binning).  Run it before and after a change; the lines must match.

    PYTHONPATH=... python benchmarks/lsm_bits.py
"""
from __future__ import annotations

import hashlib

import numpy as np

from rram_lsm.nodes.lsm.binning import bin_events, event_addresses
from rram_lsm.nodes.lsm.encode import encode_samples
from rram_lsm.nodes.lsm.node import LsmNode
from rram_lsm.nodes.lsm.presets import get_preset
from rram_lsm.nodes.lsm.reservoir import LifReservoir
from rram_lsm.stream.packets import DVS_DTYPE, Packet, control

SENSOR = (34, 34)
DEVICES = ("ideal", "rram")


def dvs_sample(seed: int, n: int = 6000, duration_us: int = 300_000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, DVS_DTYPE)
    ev["t"] = np.sort(rng.integers(0, duration_us, n))
    ev["x"] = np.clip(rng.normal(17, 6, n), 0, 33).astype(np.uint16)
    ev["y"] = np.clip(rng.normal(17, 6, n), 0, 33).astype(np.uint16)
    ev["p"] = rng.integers(0, 2, n)
    return ev


def audio_sample(seed: int, n: int = 3000, duration_us: int = 900_000):
    rng = np.random.default_rng(100 + seed)
    return np.sort(rng.integers(0, duration_us, n)), rng.integers(0, 64, n)


def digest(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a)
    return hashlib.sha256(a.tobytes() + str((a.dtype, a.shape)).encode()).hexdigest()[:16]


def reservoir_lines() -> list[tuple[str, str]]:
    out = []
    dvs = [dvs_sample(s) for s in range(6)]
    for preset in ("nmnist", "zs_image", "zs_audio"):
        cfg = get_preset(preset)
        if preset == "zs_audio":
            samples = [audio_sample(s) for s in range(6)]
        else:
            samples = [event_addresses(ev, SENSOR, cfg.polarity, cfg.crop)[:2] for ev in dvs]
        width = 1000 if cfg.binning == "chunk_pad" else None
        for device in DEVICES:
            for dtype in (np.float32, np.float64):
                tag = f"{preset} {device} {np.dtype(dtype).name}"
                for threads in (1, 2):
                    r = LifReservoir(cfg, device, dtype=dtype, threads=threads)
                    runs = [r.run(*bin_events(t, a, cfg.n_inputs, mode=cfg.binning, n_bins=cfg.n_bins,
                                              width_us=width), n_windows=3) for t, a in samples]
                    out.append((f"{tag} run threads={threads}",
                                digest(np.stack([np.concatenate([x.features, x.window_rates.ravel(),
                                                                 x.final_mem.astype(np.float64)])
                                                 for x in runs]))))
                r = LifReservoir(cfg, device, dtype=dtype)
                out.append((f"{tag} encode_samples", digest(encode_samples(samples, r, chunk=4))))
                out.append((f"{tag} encode_samples windows=4",
                            digest(encode_samples(samples, r, chunk=4, windows=4))))
    return out


def node_lines() -> list[tuple[str, str]]:
    out = []
    for device in DEVICES:
        for label, params in (
                ("fused threads=1", {"binning": "fixed_width", "bin_width_us": 1000}),
                ("fused threads=2", {"binning": "fixed_width", "bin_width_us": 1000, "threads": 2}),
                ("binner windows=3", {"binning": "fixed_width", "bin_width_us": 1000, "windows": 3}),
                ("fixed_count", {}),
                ("continuous", {"binning": "fixed_width", "mode": "continuous", "window_us": 60_000,
                                "hop_us": 30_000})):
            node = LsmNode("lsm", {"preset": "zs_image", "device": device, **params})
            node.setup()
            feats = []
            for s in range(4):
                node.process(control("start", sample=s))
                for part in np.array_split(dvs_sample(20 + s), 30):
                    feats += [p.body for p in node.process(Packet(kind="events", body=part,
                                                                  geometry=SENSOR, sample=s))]
                feats += [p.body for p in node.process(control("end_of_sample", sample=s))]
            out.append((f"node zs_image {device} {label}", digest(np.concatenate(feats))))
    return out


def main() -> None:
    lines = reservoir_lines() + node_lines()
    for name, h in lines:
        print(f"{h}  {name}")
    print(f"{hashlib.sha256(''.join(h for _, h in lines).encode()).hexdigest()[:16]}  ALL ({len(lines)} arrays)")


if __name__ == "__main__":
    main()
