"""Config propagation in a cluster (issue 11): a real 3-member etcd on loopback and three
`dplb harness-api` nodes. Measures the time from a write on one node's API to the
version applied on every node (each node's `status/<node>` key, polled in etcd every
2 ms), p50 and p99 over N changes, for a small config and for 1,000 services x 100
reals; and the whole-config apply from etcd of a node that starts (read every blob,
validate, build the engine snapshot) for the large config (aim: under 1 s, as for the
file store).

Run: .venv/bin/python bench/cluster_bench.py [--changes 200] [--services 1000] [--reals 100]
Prints its figures and writes bench/results/cluster.json. Not a test: nothing asserts."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from cluster.etcd_cluster import EtcdCluster
from cluster.nodes import ClusterNode
from dplb.cluster.etcd_store import EtcdStore
from dplb.cluster.layout import local_part
from dplb.config import EtcdSection, parse_config
from dplb.dataplane import HarnessDataplane
from dplb.engine import Engine
from dplb.reconciler import Reconciler
from dplb.store import dump_yaml


def large_services(services: int, reals: int) -> list[dict[str, Any]]:
    return [
        {
            "vip": f"10.{1 + i // 250}.{i % 250}.1",
            "port": 80,
            "scheduler": "wlc",
            "reals": [
                {"address": f"10.{128 + j // 250}.{j % 250}.{1 + i % 250}", "port": 8080}
                for j in range(reals)
            ],
        }
        for i in range(services)
    ]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def applied_everywhere(store: EtcdStore, nodes: list[str], version: int) -> float:
    """Polls the nodes' statuses until each has applied `version`; returns when."""
    while True:
        statuses = {s.node: s for s in await store.statuses()}
        if all(n in statuses and (statuses[n].applied_version or 0) >= version for n in nodes):
            return time.perf_counter()
        await asyncio.sleep(0.002)


async def propagation(
    nodes: list[ClusterNode], cluster: str, etcd: EtcdCluster, changes: int, real: str
) -> dict[str, Any]:
    watcher = EtcdStore(EtcdSection(endpoints=etcd.endpoints), cluster=cluster, node="-", local={})
    names = [n.name for n in nodes]
    samples: list[float] = []
    writer = nodes[0]
    for i in range(changes):
        t0 = time.perf_counter()
        r = await asyncio.to_thread(writer.http.patch, real, json={"weight": 1 + i % 200})
        if r.status_code not in (200, 202):
            raise RuntimeError(f"write {i}: {r.status_code} {r.text}")
        samples.append(await applied_everywhere(watcher, names, r.json()["version"]) - t0)
    await watcher.close()
    return {
        "changes": changes,
        "p50_ms": round(percentile(samples, 50) * 1e3, 1),
        "p99_ms": round(percentile(samples, 99) * 1e3, 1),
        "max_ms": round(max(samples) * 1e3, 1),
        "mean_ms": round(statistics.fmean(samples) * 1e3, 1),
    }


def start_nodes(
    etcd: EtcdCluster, cluster: str, folder: Path, services: list[dict[str, Any]] | None
) -> list[ClusterNode]:
    nodes = []
    for name in ("lb1", "lb2", "lb3"):
        n = ClusterNode(name, cluster, etcd.endpoints, folder)
        if services is not None:
            count = len(services)
            reals = sum(len(s["reals"]) for s in services)
            n.config["dataplane"]["max_services"] = max(2 * count, 16)
            n.config["dataplane"]["max_reals"] = max(2 * reals, 16)
            n.config["dataplane"]["ports"][1]["address"] = ["10.128.0.1/9"]
            n.config["dataplane"]["ports"][1]["local_addresses"] = [["10.255.255.1"]]
            n.config["services"] = services
        n.config_path.write_text(dump_yaml(n.config))
        nodes.append(n)
    nodes[0].start()  # seeds the cluster
    for n in nodes[1:]:
        n.start()
    return nodes


def whole_apply(etcd: EtcdCluster, cluster: str, node: ClusterNode) -> dict[str, Any]:
    """A node that starts: a fresh store reads the whole config, the reconciler applies it."""

    async def go() -> dict[str, Any]:
        cfg = parse_config(node.config)
        section = EtcdSection(endpoints=etcd.endpoints)
        store = EtcdStore(section, cluster=cluster, node="fresh", local=local_part(node.config))
        reconciler = Reconciler(
            store, HarnessDataplane(Engine(cfg.model_copy(update={"services": []})))
        )
        t0 = time.perf_counter()
        desired = await store.read()
        t1 = time.perf_counter()
        assert desired is not None
        status = await reconciler.reconcile(desired)
        t2 = time.perf_counter()
        await store.close()
        return {
            "read_from_etcd_s": round(t1 - t0, 3),
            "validate_and_apply_s": round(t2 - t1, 3),
            "whole_s": round(t2 - t0, 3),
            "result": status.last_result,
        }

    return asyncio.run(go())


def run(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="dplb-cluster-bench-"))
    etcd = EtcdCluster(folder / "etcd").start()
    out: dict[str, Any] = {}
    nodes: list[ClusterNode] = []
    try:
        nodes = start_nodes(etcd, "small", folder, None)
        print(f"small config: {args.changes} changes ...", flush=True)
        real = "/services/10.0.100.10/80/tcp/reals/10.0.2.11/8080"
        out["small"] = asyncio.run(propagation(nodes, "small", etcd, args.changes, real))
        for n in nodes:
            n.stop(signal.SIGKILL)
        services = large_services(args.services, args.reals)
        print(f"{args.services} x {args.reals}: starting the nodes ...", flush=True)
        nodes = start_nodes(etcd, "large", folder, services)
        print(f"{args.services} x {args.reals}: {args.large_changes} changes ...", flush=True)
        real = "/services/10.1.0.1/80/tcp/reals/10.128.0.1/8080"
        out["large"] = asyncio.run(propagation(nodes, "large", etcd, args.large_changes, real))
        out["large"]["services"], out["large"]["reals_per_service"] = args.services, args.reals
        out["whole_apply_from_etcd"] = whole_apply(etcd, "large", nodes[0])
        out["whole_apply_from_etcd"]["aim_s"] = 1.0
    finally:
        for n in nodes:
            n.stop(signal.SIGKILL)
        etcd.stop()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--large-changes", type=int, default=200)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--reals", type=int, default=100)
    parser.add_argument("--json", default=str(Path(__file__).parent / "results" / "cluster.json"))
    args = parser.parse_args()
    results = {
        "what": "config propagation: a write on one node's API until applied on all three",
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "python": sys.version.split()[0],
            "load_average_at_start": os.getloadavg()[0],
        },
        "etcd": "3 members on loopback (Debian etcd-server), nodes: dplb harness-api",
        **run(args),
    }
    print(json.dumps(results, indent=2))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
