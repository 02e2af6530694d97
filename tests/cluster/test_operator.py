"""The operator on every node of a cluster (real etcd, real `dplb harness-api` processes):
a change through one node's API runs on all of them and each says so; what etcd holds
but a node cannot run is refused there with the field; a dead node leaves the members."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from api_helpers import ADMIN_TOKEN

from .etcd_cluster import EtcdCluster
from .nodes import DPLB, ClusterNode, wait_until

NEW_SERVICE = {
    "vip": "10.0.100.20",
    "port": 443,
    "protocol": "tcp",
    "scheduler": "rr",
    "reals": [{"address": "10.0.2.11", "port": 8443}],
}


@pytest.fixture
def two_nodes(etcd: EtcdCluster, cluster_name: str, tmp_path: Path) -> Iterator[list[ClusterNode]]:
    nodes = [ClusterNode(n, cluster_name, etcd.endpoints, tmp_path) for n in ("lb1", "lb2")]
    try:
        for n in nodes:
            n.start()
        yield nodes
    finally:
        for n in nodes:
            n.stop(signal.SIGKILL)


def test_a_change_through_one_node_runs_on_every_node(two_nodes: list[ClusterNode]) -> None:
    a, b = two_nodes
    r = a.http.post("/services?wait=applied", json=NEW_SERVICE)
    assert r.status_code == 201, r.text
    body = r.json()
    version = body["version"]
    assert body["cluster"]["applied"] == ["lb1", "lb2"]
    assert body["cluster"]["complete"] is True
    assert b.applied() == version
    assert any(s["vip"] == "10.0.100.20" for s in b.get("/services"))
    view = b.get("/cluster")
    assert view["desired_version"] == version and view["in_sync"] is True
    assert [(n["node"], n["state"], n["applied_version"]) for n in view["nodes"]] == [
        ("lb1", "in_sync", version),
        ("lb2", "in_sync", version),
    ]
    assert view["store"]["up"] is True and view["store"]["kind"] == "etcd"


def test_a_bad_config_written_into_etcd_is_refused_by_every_node_with_its_field(
    two_nodes: list[ClusterNode], etcd: EtcdCluster, cluster_name: str
) -> None:
    a, b = two_nodes
    good = a.applied()
    head_key = f"/dplb/v1/{cluster_name}/config/head"
    head = json.loads(etcd.etcdctl("get", head_key, "--print-value-only"))
    head["services"].append({"vip": "10.0.100.30", "port": 70000, "reals": []})
    head["author"] = "etcdctl"
    etcd.etcdctl("put", head_key, json.dumps(head))
    for node in (a, b):
        status = wait_until(
            lambda n=node: (s := n.get("/config/status"))["last_result"] == "refused" and s,
            what=f"{node.name} to refuse",
        )
        assert [e["path"] for e in status["errors"]] == ["services[3].port"]
        assert status["applied_version"] == good  # the last good config keeps running
    view = a.get("/cluster")
    assert {n["node"]: n["state"] for n in view["nodes"]} == {"lb1": "refused", "lb2": "refused"}
    assert view["nodes"][1]["errors"][0]["path"] == "services[3].port"
    r = b.http.get("/services")  # the desired config cannot be edited until it is fixed
    assert r.status_code == 409
    assert "services[3].port" in [e["path"] for e in r.json()["errors"]]


def test_conflicting_writes_through_two_nodes_one_wins_the_other_gets_409(
    two_nodes: list[ClusterNode],
) -> None:
    a, b = two_nodes
    base = a.get("/config/status")["applied_version"]
    config = a.get("/config")["config"]
    results: dict[str, object] = {}

    def put(node: ClusterNode, weight: int) -> None:
        body = json.loads(json.dumps(config))
        body["services"][0]["reals"][0]["weight"] = weight
        results[node.name] = node.http.put(f"/config?expected_version={base}", json=body)

    threads = [threading.Thread(target=put, args=(n, w)) for n, w in ((a, 11), (b, 22))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.status_code for r in results.values())  # type: ignore[attr-defined]
    assert codes == [200, 409]
    loser = next(r for r in results.values() if r.status_code == 409)  # type: ignore[attr-defined]
    winner = next(r for r in results.values() if r.status_code == 200)  # type: ignore[attr-defined]
    assert loser.json()["version"] == winner.json()["version"]


def test_a_node_on_another_dataplane_refuses_what_it_cannot_run_and_the_cluster_says_so(
    etcd: EtcdCluster, cluster_name: str, tmp_path: Path
) -> None:
    a = ClusterNode("lb1", cluster_name, etcd.endpoints, tmp_path)
    b = ClusterNode("lb2", cluster_name, etcd.endpoints, tmp_path)
    b.config["dataplane"]["max_services"] = 3  # it runs three; a fourth does not fit
    b.config_path.write_text(json.dumps(b.config))
    try:
        a.start()
        b.start()
        r = a.http.post("/services?wait=applied", json=NEW_SERVICE)
        assert r.status_code == 201, r.text
        cluster = r.json()["cluster"]
        assert cluster["applied"] == ["lb1"]
        assert [e["path"] for e in cluster["refused"]["lb2"]] == ["services"]
        view = a.get("/cluster")
        assert {n["node"]: n["state"] for n in view["nodes"]} == {
            "lb1": "in_sync",
            "lb2": "refused",
        }
        assert view["in_sync"] is False
    finally:
        a.stop(signal.SIGKILL)
        b.stop(signal.SIGKILL)


def test_a_killed_node_leaves_the_members_when_its_lease_expires(
    two_nodes: list[ClusterNode],
) -> None:
    a, b = two_nodes
    assert [n["live"] for n in a.get("/cluster")["nodes"]] == [True, True]
    b.stop(signal.SIGKILL)
    # lease_ttl is 5 s: gone within 3 TTLs (a bound on the wait, not a measurement)
    view = wait_until(
        lambda: (v := a.get("/cluster"))["nodes"][1]["live"] is False and v,
        timeout=15,
        what="lb2 to leave the members",
    )
    assert view["nodes"][1]["state"] == "gone"
    assert view["nodes"][1]["applied_version"] is not None  # its last status stays visible
    assert view["in_sync"] is True  # the live nodes run the desired version


def test_a_hundred_writes_through_a_leader_kill_end_on_the_last_version_everywhere(
    two_nodes: list[ClusterNode], etcd: EtcdCluster
) -> None:
    a, b = two_nodes
    last = 0
    try:
        for i in range(100):
            if i == 40:
                etcd.kill(etcd.leader())
            r = wait_until(
                lambda i=i: (
                    (
                        r := a.http.patch(
                            "/services/10.0.100.10/80/tcp/reals/10.0.2.11/8080",
                            json={"weight": i + 1},
                        )
                    ).status_code
                    != 503
                    and r
                ),
                what="a write after the election",
            )
            assert r.status_code == 200, r.text
            last = r.json()["version"]
        for node in (a, b):
            wait_until(lambda n=node: n.applied() == last, what=f"{node.name} on the last version")
        reals = b.get("/services/10.0.100.10/80/tcp/reals")
        assert reals[0]["weight"] == 100
    finally:
        for i in range(3):
            if i not in etcd.procs:
                etcd.start_member(i, state="existing")
        etcd.wait_healthy()


def test_a_node_stopped_through_a_compaction_converges_when_it_starts(
    two_nodes: list[ClusterNode], etcd: EtcdCluster
) -> None:
    a, b = two_nodes
    b.stop()
    for w in (5, 6, 7):
        r = a.http.patch("/services/10.0.100.10/80/tcp/reals/10.0.2.11/8080", json={"weight": w})
        assert r.status_code == 200, r.text
    last = r.json()["version"]
    etcd.compact()
    b.start()
    wait_until(lambda: b.applied() == last, what="lb2 to catch up")
    assert b.get("/services/10.0.100.10/80/tcp/reals")[0]["weight"] == 7


def ctl(node: ClusterNode, *args: str) -> tuple[int, str]:
    result = subprocess.run(
        [*DPLB, "ctl", "--url", node.url.removesuffix("/api/v1"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "DPLB_TOKEN": ADMIN_TOKEN},
        timeout=60,
    )
    return result.returncode, result.stdout + result.stderr


def test_ctl_cluster_status_says_who_runs_what_and_fails_while_a_node_refused(
    etcd: EtcdCluster, cluster_name: str, tmp_path: Path
) -> None:
    a = ClusterNode("lb1", cluster_name, etcd.endpoints, tmp_path)
    b = ClusterNode("lb2", cluster_name, etcd.endpoints, tmp_path)
    b.config["dataplane"]["max_services"] = 3
    b.config_path.write_text(json.dumps(b.config))
    try:
        a.start()
        b.start()
        code, out = ctl(a, "cluster", "status")
        assert code == 0, out
        assert "every live node runs it" in out
        assert [line.split()[:2] for line in out.splitlines() if line.startswith("lb")] == [
            ["lb1", "in_sync"],
            ["lb2", "in_sync"],
        ]
        assert a.http.post("/services?wait=applied", json=NEW_SERVICE).status_code == 201
        code, out = ctl(b, "cluster", "status")
        assert code == 6, out
        assert "lb2 refused version" in out
        assert "services: 4 services, more than max_services (3)" in out
        code, out = ctl(b, "--json", "cluster", "status")
        assert code == 6 and json.loads(out)["in_sync"] is False
    finally:
        a.stop(signal.SIGKILL)
        b.stop(signal.SIGKILL)
