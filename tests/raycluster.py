"""One real multi-node Ray cluster on this machine, shared by every test of a session.

``ray.cluster_utils.Cluster`` starts a head (no CPUs: it only schedules) and two worker nodes
as separate raylets, each with its own small object store, its own loopback address and a
custom resource of its own, so a test can ask for "the machine called worker_a" the way a
real cluster's nodes are told apart.  The conftest fixture ``ray_cluster`` yields a
:class:`RayCluster`; this process is connected to it (``ray.is_initialized()``), so
``experiments.cluster.connect`` keeps that connection whatever address it is given.
"""
from __future__ import annotations

from dataclasses import dataclass, field

OBJECT_STORE = 80 * 2**20     # bytes per node: small (Ray spills past it), as the issue asks
WORKERS = {"worker_a": "127.0.0.2", "worker_b": "127.0.0.3"}   # custom resource -> node address
CPUS_PER_WORKER = 1


@dataclass
class RayCluster:
    """The running cluster: its address, and per worker resource name its node's id and IP."""

    address: str
    node_ids: dict[str, str]          # "worker_a" -> Ray node id (hex)
    node_ips: dict[str, str]          # "worker_a" -> "127.0.0.2"
    cluster: object = field(repr=False)

    def resources(self, worker: str, amount: float = 0.01) -> dict:
        """The ``resources=`` that pins a task or actor to ``worker``'s node."""
        return {worker: amount}


def start() -> RayCluster:
    """Start the head and the two workers and connect this process to them."""
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "object_store_memory": OBJECT_STORE, "include_dashboard": False,
        "resources": {"head": 1}})
    for name, ip in WORKERS.items():
        cluster.add_node(num_cpus=CPUS_PER_WORKER, object_store_memory=OBJECT_STORE,
                         resources={name: 1}, node_ip_address=ip)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    ids, ips = {}, {}
    for node in ray.nodes():
        for name in WORKERS:
            if node["Alive"] and name in node["Resources"]:
                ids[name], ips[name] = node["NodeID"], node["NodeManagerAddress"]
    return RayCluster(cluster.address, ids, ips, cluster)


def stop(rc: RayCluster) -> None:
    import ray

    ray.shutdown()
    rc.cluster.shutdown()
