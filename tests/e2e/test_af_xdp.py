"""Two workers on `net_af_xdp` with the default memory (`dataplane.memory.hugepages:
false`): the PMD hands its UMEM to the kernel, so every packet buffer of the pool must
lie in it. Bulk downloads push well over the ~18,000 handed-over packets after which a
pool the PMD registered only in part stopped the port for good; the node must go on
answering ARP and completing connections, and say it is alive. A worker stopped from
outside (ptrace) makes `/api/v1/health` answer 503 `failed`, and ok once it runs on."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dplb.demo.lab import Lab, totals, wait_until
from dplb.demo.topology import Topology, netns_exec

from .helpers import (
    client_tool,
    curl,
    delta,
    load,
    port_mac,
    run_prefix,
    running_lab,
    stalled_thread,
)

pytestmark = pytest.mark.e2e

PREFIX = run_prefix("e2e9")
BLOB_SIZE = 16 * 1024 * 1024
HANDED_OVER = 60_000  # well past the ~18,000 after which the port stopped
API_PORT = 18190


def config(t: Topology, workdir: Path) -> dict[str, Any]:
    cfg = t.node_config(workers=2, pmd="net_af_xdp")
    cfg["api"] = {
        "listen": f"127.0.0.1:{API_PORT}",
        "tokens": [{"name": "e2e", "token": "e2e-viewer-token-0123456789", "role": "viewer"}],
    }
    cfg["store"] = {"file": str(workdir / "store" / "desired.yaml")}
    return cfg


def health(lab: Lab) -> tuple[int, dict[str, Any]]:
    """GET /api/v1/health in the node's namespace: (HTTP status, body)."""
    out = netns_exec(
        lab.topology.node_ns,
        "curl", "-sS", "-m", "10", "-w", "\\n%{http_code}",
        f"http://127.0.0.1:{API_PORT}/api/v1/health",
        check=False,
    ).stdout  # fmt: skip
    body, _, code = out.rpartition("\n")
    return (int(code), json.loads(body)) if body else (0, {})


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("afxdp-files")
    (root / "blob").write_bytes(os.urandom(BLOB_SIZE))
    return root


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, files: Path) -> Iterator[Lab]:
    workdir = tmp_path_factory.mktemp("afxdp-node")
    with running_lab(PREFIX, tmp_path_factory, lambda t: config(t, workdir), files=files) as lab:
        wait_until(lambda: health(lab)[0] != 0, 30, "the node's API to answer")
        yield lab


def test_af_xdp_without_hugepages_keeps_receiving_after_many_hand_overs(lab: Lab) -> None:
    t = lab.topology
    before = lab.node.fresh_status()
    assert lab.config["dataplane"]["memory"]["hugepages"] is False
    received = lab.workdir / "received-blob"
    for _ in range(40):
        # Each download is a new flow: rr over the reals, and its owner worker by the
        # flow's hash; the one queue of the veth lands every frame on worker 0.
        curl(lab, f"http://{t.vip4}/files/blob", "-o", str(received))
        assert received.stat().st_size == BLOB_SIZE
        moved = delta(totals(lab.node.fresh_status()), totals(before))
        if moved.get("handed_over", 0) > HANDED_OVER:
            break
    assert moved.get("handed_over", 0) > HANDED_OVER, moved

    # The node still answers ARP for its addresses and completes connections.
    answer = client_tool(lab, "arp", "eth0", t.vip4)
    assert answer["mac"] == port_mac(lab, "port0"), answer
    result = load(lab, f"{t.vip4}:80", requests=200, concurrency=4)
    assert (result["ok"], result["errors"]) == (200, 0), result
    assert health(lab) == (200, {"status": "ok", "reasons": []})


def test_a_stuck_worker_fails_health_until_it_polls_again(lab: Lab) -> None:
    assert health(lab) == (200, {"status": "ok", "reasons": []})
    lcore = lab.node.status()["workers"][1]["lcore"]
    with stalled_thread(lab.node.pid, f"rte-worker-{lcore}", seconds=60):
        _, body = wait_until(
            lambda: (r := health(lab))[0] == 503 and r, 30, "health to say the worker is stuck"
        )
        assert body["status"] == "failed"
        assert "worker 1" in [r.split(":")[0] for r in body["reasons"]], body
    wait_until(lambda: health(lab)[0] == 200, 30, "health to be ok again")
    assert health(lab) == (200, {"status": "ok", "reasons": []})
    result = load(lab, f"{lab.topology.vip4}:80", requests=50, concurrency=2)
    assert (result["ok"], result["errors"]) == (50, 0), result
