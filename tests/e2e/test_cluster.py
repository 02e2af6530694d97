"""A cluster end to end: the real node (`dplb run`, DPDK) and a second node (`dplb
harness-api`) share one etcd (a real `etcd` in the node's namespace). A change made
through the second node's API is applied by the real node and moves its traffic; both
show in the cluster view and in `dplb ctl cluster status`; the node's metrics show the
store."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api_helpers import ADMIN_TOKEN
from cluster.etcd_cluster import ETCD
from conftest import node_config
from dplb.demo.lab import Lab, python_module, wait_until
from dplb.demo.topology import Topology, netns_exec
from dplb.store import dump_yaml

from .helpers import curl, run_prefix

pytestmark = pytest.mark.e2e

PREFIX = run_prefix("e2e12")
ETCD_CLIENT, ETCD_PEER = 12379, 12380
API_A, API_B = 18181, 18182
ENDPOINTS = [f"127.0.0.1:{ETCD_CLIENT}"]
TOKENS = [{"name": "ops", "token": ADMIN_TOKEN, "role": "admin"}]


def cluster_part(cfg: dict[str, Any], name: str, port: int, workdir: Path) -> dict[str, Any]:
    """A node config made a member of the test's cluster: its API, the shared etcd."""
    cfg["node"] = {"name": name, "cluster": "e2e"}
    cfg["api"] = {
        "listen": f"127.0.0.1:{port}",
        "tokens": TOKENS,
        "audit_log": str(workdir / f"{name}-audit.jsonl"),
    }
    cfg["store"] = {"etcd": {"endpoints": ENDPOINTS}}
    return cfg


def real_node_config(t: Topology, workdir: Path) -> dict[str, Any]:
    return cluster_part(t.node_config(workers=1), "lb1", API_A, workdir)


def second_node_config(workdir: Path) -> dict[str, Any]:
    cfg = cluster_part(node_config(1), "lb2", API_B, workdir)
    cfg["health"] = {"enabled": False}  # the harness's reals are only frames
    return cfg


def api(lab: Lab, port: int, method: str, path: str, body: Any = None) -> Any:
    args = ["curl", "-sS", "-m", "30", "-X", method, "-H", f"Authorization: Bearer {ADMIN_TOKEN}"]
    if body is not None:
        args += ["-H", "Content-Type: application/json", "--data", json.dumps(body)]
    out = netns_exec(lab.topology.node_ns, *args, f"http://127.0.0.1:{port}/api/v1{path}")
    return json.loads(out.stdout)


def wait_for_api(lab: Lab, port: int, what: str) -> None:
    def healthy() -> bool:
        url = f"http://127.0.0.1:{port}/api/v1/health"
        return netns_exec(lab.topology.node_ns, "curl", "-sf", url, check=False).returncode == 0

    wait_until(healthy, 60, what)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    workdir = tmp_path_factory.mktemp("cluster")
    lab = Lab(PREFIX, workdir, config=lambda t: real_node_config(t, workdir))
    try:
        lab.topology.create()
        lab.start_servers()
        url = f"http://127.0.0.1:{ETCD_CLIENT}"
        peer = f"http://127.0.0.1:{ETCD_PEER}"
        lab.spawn(
            lab.topology.node_ns,
            [
                ETCD, "--name", "e0", "--data-dir", str(workdir / "etcd"),
                "--listen-client-urls", url, "--advertise-client-urls", url,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"e0={peer}",
            ],
            "etcd",
        )  # fmt: skip
        lab.node.start()
        lab.node.wait_running()
        wait_for_api(lab, API_A, "the real node's API")
        second = workdir / "lb2.yaml"
        second.write_text(dump_yaml(second_node_config(workdir)))
        lab.spawn(
            lab.topology.node_ns,
            python_module("dplb.cli", "harness-api", "--config", str(second)),
            "lb2",
        )
        wait_for_api(lab, API_B, "the second node's API")
        yield lab
    finally:
        log = lab.node.output()
        code = lab.close()
        assert code in (0, None), f"the node did not stop cleanly:\n{log[-3000:]}"


def test_both_nodes_run_the_config_the_real_node_seeded(lab: Lab) -> None:
    view = wait_until(
        lambda: (v := api(lab, API_A, "GET", "/cluster"))["in_sync"] and len(v["nodes"]) == 2 and v,
        30,
        "both nodes in sync",
    )
    assert [(n["node"], n["state"]) for n in view["nodes"]] == [
        ("lb1", "in_sync"),
        ("lb2", "in_sync"),
    ]
    assert view["store"] == {**view["store"], "kind": "etcd", "up": True}
    answers = {curl(lab, f"http://{lab.topology.vip4}/").split()[0] for _ in range(6)}
    assert answers == {"rs1", "rs2", "rs3"}


def test_a_change_through_the_other_node_moves_the_real_nodes_traffic(lab: Lab) -> None:
    t = lab.topology
    real = f"/services/{t.vip4}/80/tcp/reals/{t.real4(0)}/8080"
    result = api(lab, API_B, "POST", f"{real}/quiesce?wait=applied")
    assert result["cluster"]["applied"] == ["lb1", "lb2"], result
    answers = [curl(lab, f"http://{t.vip4}/").split()[0] for _ in range(9)]
    assert "rs1" not in answers and set(answers) == {"rs2", "rs3"}, answers
    status = api(lab, API_A, "GET", "/node")
    assert status["config"]["applied_version"] == result["version"]
    ctl = netns_exec(
        t.node_ns, "env", f"DPLB_URL=http://127.0.0.1:{API_A}", f"DPLB_TOKEN={ADMIN_TOKEN}",
        sys.executable, "-m", "dplb.cli", "ctl", "cluster", "status", check=False,
    )  # fmt: skip
    assert ctl.returncode == 0, ctl.stdout + ctl.stderr
    assert "every live node runs it" in ctl.stdout
    metrics = netns_exec(t.node_ns, "curl", "-sS", f"http://127.0.0.1:{API_A}/metrics").stdout
    assert 'dplb_store_up{cluster="e2e",node="lb1",store="etcd"} 1' in metrics
    api(lab, API_B, "POST", f"{real}/enable?wait=applied")
