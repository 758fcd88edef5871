"""`rram-lsm live`: the demo's graph on live inputs (DVS camera, DV network stream, a webcam or
video emulated as a DVS, microphone, LSL).

Each live input is a continuous stream; a segmenter (``nodes.sources.segmenter``) cuts it
into samples (activity onset/offset), which then go through the same LSM, projection heads
and zero-shot classifier the demo trains on the built-in data (``launch/graphs/live.toml``,
its [args] filled in here).  A modality can stay on the built-in replay (``--visual replay``)
when its sensor is absent; its segmenter is then a pass-through.
"""
from __future__ import annotations

import sys
from pathlib import Path

from ..metrics import add_metrics_options
from ..web import add_web_args

# live input -> (node kind, python module it needs, pip package, what the segmenter expects)
INPUTS = {
    "dvs": ("dvs_camera", "dv_processing", "dv-processing"),
    "dv-network": ("dv_network", "dv_processing", "dv-processing"),
    "webcam": ("webcam", "cv2", "opencv-python-headless"),
    "video": ("video", "cv2", "opencv-python-headless"),
    "microphone": ("microphone", "sounddevice", "sounddevice"),
    "lsl": ("lsl", "pylsl", "pylsl"),
}
VISUAL = ("dvs", "dv-network", "webcam", "video")
CHOICES = {"visual": (*VISUAL, "replay"), "audio": ("microphone", "lsl", "replay"),
           "neural": ("lsl", "replay")}
# DVS sensors are mapped onto the built-in visual model's sensor (N-MNIST's 34x34, cropped to 16x16).
VISUAL_SIZE = [34, 34]
# Segmenter settings per modality (event rates differ by sensor).
SEGMENTER = {"visual": {"bin_us": 10_000, "on_rate_hz": 20_000.0, "off_rate_hz": 5_000.0,
                        "max_us": 1_000_000},
             "audio": {"bin_us": 10_000, "on_rate_hz": 2_000.0, "off_rate_hz": 500.0,
                       "max_us": 2_000_000},
             "neural": {"bin_us": 10_000, "on_rate_hz": 2_000.0, "off_rate_hz": 500.0,
                        "max_us": 2_000_000}}


def register(sub) -> None:
    p = sub.add_parser(
        "live", help="the demo's pipeline on live inputs (DVS camera, webcam, microphone, LSL)",
        description="Trains (or reuses) the demo's model on the built-in data, then runs the "
                    "same graph with live sources and a segmenter per modality; Ctrl-C stops "
                    "it and writes the report.")
    p.add_argument("--pair", choices=("audio-visual", "neural-visual"), default="audio-visual")
    p.add_argument("--visual", choices=CHOICES["visual"], default="dvs")
    p.add_argument("--audio", choices=CHOICES["audio"], default="microphone")
    p.add_argument("--neural", choices=CHOICES["neural"], default="lsl")
    p.add_argument("--camera", default="", help="DVS camera name (default: the first found)")
    p.add_argument("--dv-address", default=None, metavar="ADDR",
                   help="with --visual dv-network: the DV stream, tcp://HOST:PORT or unix:///PATH")
    p.add_argument("--webcam", type=int, default=0, metavar="INDEX",
                   help="with --visual webcam: OpenCV camera index (default 0)")
    p.add_argument("--video", default=None, metavar="FILE",
                   help="with --visual video: a video file played in real time, looped, as a DVS")
    p.add_argument("--mic-device", default=None, help="microphone name or index (default: system's)")
    p.add_argument("--lsl-name", default=None, help="LSL stream name (default: type 'spikes')")
    p.add_argument("--size", choices=("full", "tiny"), default="full")
    p.add_argument("--device", choices=("rram", "ideal"), default="rram")
    p.add_argument("--timeout", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--out", type=Path, default=None, help="run folder (default runs/live-PAIR-TIME)")
    p.add_argument("--no-dashboard", action="store_true")
    add_metrics_options(p)
    add_web_args(p)
    p.set_defaults(func=run)


def check_input(choice: str) -> None:
    """Fail early, naming the missing package, before anything is trained or started."""
    if choice == "replay":
        return
    import importlib
    _, module, package = INPUTS[choice]
    try:
        importlib.import_module(module)
    except ImportError:
        raise ValueError(f"live input {choice!r} needs the package {package!r}: "
                         f"pip install {package}  (or use --{'visual' if choice in VISUAL else 'audio'}"
                         f" replay to keep that modality on the built-in data)") from None


def check_webcam(index: int) -> None:
    """Fail before training when no webcam answers at ``index``."""
    from rram_lsm.nodes.sources.camera import cv2_module, open_webcam
    from rram_lsm.nodes.sources.live import LiveSourceError

    try:
        open_webcam(cv2_module(), index).release()
    except LiveSourceError as err:
        raise ValueError(f"--visual webcam: {err}") from None


def live_args(args, modality: str, replay: dict) -> dict:
    """The [args] of ``launch/graphs/live.toml`` for one modality (``query`` or ``visual``
    prefix): its live source and segmenter, or the built-in ``replay`` and a pass-through."""
    side = "visual" if modality == "visual" else "query"
    choice = getattr(args, modality)
    if choice == "replay":
        return {f"{side}_kind": "builtin_replay", f"{side}_source": replay,
                f"{side}_segmenter": "passthrough", f"{side}_segment": {},
                f"{side}_policy": "block"}
    params = {"dvs": {"camera": args.camera, "resize": VISUAL_SIZE},
              "dv-network": {"address": args.dv_address, "resize": VISUAL_SIZE},
              "webcam": {"device": args.webcam, "size": VISUAL_SIZE},
              "video": {"path": args.video, "size": VISUAL_SIZE, "speed": 1.0, "loop": 0},
              "microphone": {"device": args.mic_device},
              "lsl": {"name": args.lsl_name} if args.lsl_name else {"type": "spikes"}}[choice]
    return {f"{side}_kind": INPUTS[choice][0],
            f"{side}_source": {k: v for k, v in params.items() if v is not None},
            f"{side}_segmenter": "segmenter", f"{side}_segment": dict(SEGMENTER[modality]),
            f"{side}_policy": "drop"}


def run(args) -> int:
    import dataclasses
    import time

    from rram_lsm.experiments.demo_model import ModelConfig, demo_experiment

    from ..demo import (GRAPHS, DemoConfig, Stages, graph_args, prepare, replay_source, run_info,
                        stream, write_graph)
    from ..report import write_report

    modalities = ModelConfig(pair=args.pair).modalities
    for m in modalities:
        choice = getattr(args, m)
        if choice not in CHOICES[m]:
            raise ValueError(f"--{m} {choice!r} is not one of {CHOICES[m]}")
        check_input(choice)
    if args.visual == "dv-network" and not args.dv_address:
        raise ValueError("--visual dv-network needs --dv-address tcp://HOST:PORT or unix:///PATH "
                         "(the DV software's network output or a dv.io.NetworkWriter)")
    if args.visual == "video" and not (args.video and Path(args.video).is_file()):
        raise ValueError(f"--visual video needs --video FILE, an existing video file (got {args.video!r})")
    if args.visual == "webcam":
        check_webcam(args.webcam)
    log = lambda s: print(s, flush=True)  # noqa: E731
    experiment = dataclasses.replace(demo_experiment(), size=args.size)
    cfg = DemoConfig(model=ModelConfig(pair=args.pair, device=args.device, experiment=experiment),
                     speed=1.0, dashboard=not args.no_dashboard, metrics_port=args.metrics_port,
                     metrics_host=args.metrics_host, allow_remote=args.allow_remote, out=args.out,
                     web=args.web, web_host=args.web_host)
    cfg.check()
    run_dir = Path(args.out or Path("runs") / f"live-{args.pair}-{time.strftime('%Y%m%d-%H%M%S')}")
    run_dir.mkdir(parents=True, exist_ok=True)
    stages = Stages(log)
    prep = prepare(cfg, run_dir, stages, log)
    graph = graph_args(cfg, prep, run_dir, f"live-{args.pair}")
    for m in modalities:
        graph.update(live_args(args, m, replay_source(cfg, m, 1.0)))
    graph_path = write_graph(GRAPHS / "live.toml", graph, run_dir / "graph.toml")
    log(f"[live] graph {graph_path}; Ctrl-C to stop")
    info = {"config": {**cfg.as_dict(), "samples": "live"},
            "stage_seconds": stages.times, "pacing": "live inputs (segmented)",
            **run_info(prep),
            "sources": {f"seg_{m}": m for m in modalities} | {f"src_{m}": m for m in modalities}}
    with stages.stage("stream", "live graph"):
        code, _ = stream(cfg, GRAPHS / "live.toml", graph, run_dir, log, args.timeout)
    path = write_report(run_dir, info, prep)
    log(f"report: {path.resolve()}")
    sys.stdout.flush()
    return 0 if code in (0, 130) else code  # live inputs end with Ctrl-C: that is success
