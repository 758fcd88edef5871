"""Shared fixtures: a private cache dir, and helpers to run real graphs and read telemetry."""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pytest
import zmq

ROOT = Path(__file__).resolve().parents[1]
# Child processes import the small test nodes as kind ``graphnodes:Class`` (tests/graphnodes.py):
# a top-level name of our own, since a dependency's wheel may install a package named `tests`.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "tests"), os.environ.get("PYTHONPATH")]))


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Tests never touch the user's cache (numba's cache stays shared to save compile time)."""
    os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(tempfile.gettempdir()) / "rram-lsm-test-numba"))
    os.environ["RRAM_LSM_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield


@pytest.fixture
def sockdir():
    """A short folder for ipc:// sockets (their paths are limited to ~100 characters)."""
    d = tempfile.mkdtemp(prefix="rl-")
    yield Path(d)


def run_graph(text: str, tmp_path: Path, sockdir: Path, overrides=None, timeout_s: float = 120,
              during=None):
    """Run a graph file's text with the real launcher (real processes); return the launcher."""
    from rram_lsm.launch.graph import load_graph
    from rram_lsm.launch.supervisor import Launcher

    path = tmp_path / "graph.toml"
    path.write_text(text)
    graph = load_graph(path, overrides, sockdir)
    launcher = Launcher(graph, tmp_path / "run", sockdir, log_nodes=True)
    if during is not None:
        launcher.on_report = lambda r: during(launcher, r)
    code = launcher.run(timeout_s)
    launcher.exit_code = code
    return launcher


def final_reports(launcher) -> dict[str, dict]:
    """The last report of every node (the final one at end of stream)."""
    return launcher.latest


class TelemetryListener:
    """A SUB socket bound where nodes started by hand publish their telemetry."""

    def __init__(self, endpoint: str):
        self.sock = zmq.Context.instance().socket(zmq.SUB)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(endpoint)
        self.latest: dict[str, dict] = {}

    def wait_final(self, names, timeout_s: float = 60) -> dict[str, dict]:
        from rram_lsm.stream import codec
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(self.latest.get(n, {}).get("final") for n in names):
                break
            if self.sock.poll(100):
                pkt = codec.decode(self.sock.recv_multipart())
                self.latest[pkt.meta["node"]] = pkt.meta
        return self.latest

    def close(self):
        self.sock.close()


@pytest.fixture(scope="session")
def ray_cluster():
    """A real Ray cluster for the whole session (tests/raycluster.py): a head and two worker
    nodes (resources ``worker_a`` / ``worker_b``, addresses 127.0.0.2 / 127.0.0.3, one CPU and
    an 80 MB object store each); this process stays connected to it.  Skipped without Ray."""
    pytest.importorskip("ray")
    import raycluster

    rc = raycluster.start()
    yield rc
    raycluster.stop(rc)
