"""A node whose etcd goes away (real etcd, the node's API and reconciler in-process over
the engine harness): it keeps forwarding with the config it applied, serves reads,
answers writes with 503 naming the store, shows it in /metrics, and catches up by itself
when etcd is back; a watch that comes back after a compaction re-reads the config and,
when nothing changed, leaves the engine alone."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from scapy.layers.l2 import Ether

from api_helpers import ADMIN, API, harness_dataplane, wait_for
from conftest import TcpFlow
from dplb.api import create_app
from dplb.api.audit import AuditLog
from dplb.cluster.etcd_store import EtcdStore
from dplb.cluster.layout import local_part
from dplb.config import parse_config

from .etcd_cluster import EtcdCluster
from .nodes import cluster_config

REAL = f"{API}/services/10.0.100.10/80/tcp/reals/10.0.2.11/8080"


class InProcessNode:
    def __init__(self, etcd: EtcdCluster, cluster: str, folder: Path) -> None:
        raw = cluster_config("lb1", cluster, etcd.endpoints, folder, 0, timeout=1.0)
        self.config = parse_config(raw)
        self.dataplane = harness_dataplane(self.config)
        assert self.config.store.etcd is not None
        self.store = EtcdStore(
            self.config.store.etcd,
            cluster=cluster,
            node="lb1",
            local=local_part(raw),
        )
        self.app = create_app(
            self.config, self.dataplane, self.store, audit_log=AuditLog(folder / "audit.jsonl")
        )

    def syn_reaches_a_real(self, client_port: int) -> bool:
        out = self.dataplane.process(
            bytes(TcpFlow(self.dataplane.engine, client_port).from_client("S", seq=1))
        )
        return len(out) == 1 and Ether(out[0][1])["IP"].dst in ("10.0.2.11", "10.0.2.12")


def metric(client: TestClient, name: str) -> float | None:
    text = client.get("/metrics").text
    m = re.search(rf"^{name}{{[^}}]*}} (\S+)$", text, re.M)
    return float(m[1]) if m else None


@pytest.fixture
def node(
    etcd: EtcdCluster, cluster_name: str, tmp_path: Path
) -> Iterator[tuple[InProcessNode, TestClient]]:
    n = InProcessNode(etcd, cluster_name, tmp_path)
    with TestClient(n.app, raise_server_exceptions=False) as client:
        yield n, client


def test_without_quorum_the_node_forwards_reads_refuses_writes_and_catches_up(
    node: tuple[InProcessNode, TestClient], etcd: EtcdCluster
) -> None:
    n, client = node
    assert client.patch(REAL, headers=ADMIN, json={"weight": 50}).status_code == 200
    assert metric(client, "dplb_store_up") == 1
    keep = etcd.leader()
    try:
        for i in range(3):
            if i != keep:
                etcd.kill(i)
        # traffic goes on with the config applied last
        assert all(n.syn_reaches_a_real(40000 + i) for i in range(20))
        r = client.patch(REAL, headers=ADMIN, json={"weight": 60})
        assert r.status_code == 503
        assert r.json()["errors"][0]["path"] == "(store)"
        assert "etcd is unavailable" in r.json()["errors"][0]["reason"]
        reals = client.get(f"{API}/services/10.0.100.10/80/tcp/reals", headers=ADMIN)
        assert reals.status_code == 200 and reals.json()[0]["weight"] == 50
        wait_for(lambda: metric(client, "dplb_store_up") == 0, timeout=30, what="store_up 0")
        assert (metric(client, "dplb_store_last_contact_age_seconds") or 0) > 0
        view = client.get(f"{API}/cluster", headers=ADMIN).json()
        assert view["store"]["up"] is False and view["store"]["error"]
    finally:
        for i in range(3):
            if i not in etcd.procs:
                etcd.start_member(i, state="existing")
        etcd.wait_healthy()
    wait_for(
        lambda: metric(client, "dplb_store_up") == 1,
        timeout=30,
        what=f"store_up 1 ({n.store.health()})",
    )
    r = wait_for(
        lambda: (
            (r := client.patch(REAL, headers=ADMIN, json={"weight": 70})).status_code == 200 and r
        ),
        timeout=30,
        what="a write once etcd is back",
    )
    version = r.json()["version"]
    assert n.dataplane.running_config().services[0].reals[0].weight == 70
    view = client.get(f"{API}/cluster", headers=ADMIN).json()
    assert view["nodes"][0]["applied_version"] == version and view["in_sync"] is True


def test_an_unchanged_relist_after_a_compaction_leaves_the_engine_alone(
    node: tuple[InProcessNode, TestClient], etcd: EtcdCluster
) -> None:
    n, client = node
    assert client.patch(REAL, headers=ADMIN, json={"weight": 40}).status_code == 200
    generation = metric(client, "dplb_config_snapshot_generation")
    relists = n.store.relists
    watched = etcd.endpoints.index(n.store.watch_client.endpoint)
    etcd.pause(watched)  # the watch hangs ...
    try:
        for i in range(5):  # ... through revisions that are not config changes ...
            etcd.etcdctl("put", f"/unrelated/{i}", "x")
        etcd.compact()  # ... compacted away; when it breaks, it must read the config again
        etcd.kill(watched)
        wait_for(lambda: n.store.relists > relists, timeout=30, what="a re-list")
        status = wait_for(
            lambda: (
                (s := client.get(f"{API}/config/status", headers=ADMIN).json())["last_result"]
                == "unchanged"
                and s
            ),
            timeout=10,
            what="the re-listed version handled",
        )
        assert metric(client, "dplb_config_snapshot_generation") == generation
        assert status["applied_version"] == status["last_version"]
    finally:
        etcd.start_member(watched, state="existing")
        etcd.wait_healthy()
