"""Health checks end to end: `dplb run` with a store checks the three real servers over
HTTP from the kernel side of its real-side port (the exception path), a real server that
stops listening is marked down, gets no new connections while the others take them all,
and comes back once it listens again; the API, `dplb ctl` and /metrics say so."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dplb.demo.lab import Lab, wait_until
from dplb.demo.topology import Topology, netns_exec

from .helpers import API_TOKEN, delta, load, node_tail, run_prefix, running_lab, with_api

pytestmark = pytest.mark.e2e

PREFIX = run_prefix("e2e0")  # e2e1-e2e9: the other modules (e2e8: BGP)
API_PORT = 18280
TOKEN = API_TOKEN


def config(t: Topology, workdir: Path) -> dict[str, Any]:
    cfg = t.node_config(workers=1)
    cfg["dataplane"]["log"] = {"file": str(workdir / "dplb.log")}
    cfg["services"][0]["health_check"] = {
        "type": "http",
        "path": "/",
        "interval": 0.3,
        "timeout": 1.0,
        "rise": 2,
        "fall": 2,
    }
    return with_api(cfg, workdir, API_PORT)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("health")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, workdir: Path) -> Iterator[Lab]:
    with running_lab(PREFIX, tmp_path_factory, lambda t: config(t, workdir)) as lab:
        wait_until(lambda: api_get(lab, "/api/v1/health", check=False), 30, "the node's API")
        yield lab


def api_get(lab: Lab, path: str, check: bool = True) -> Any:
    """GET on the node's API (it listens on the node namespace's loopback)."""
    result = netns_exec(
        lab.topology.node_ns,
        "curl", "-sS", "--fail", "-m", "10", "-H", f"Authorization: Bearer {TOKEN}",
        f"http://127.0.0.1:{API_PORT}{path}",
        check=check,
    )  # fmt: skip
    if result.returncode != 0:
        return None
    if path == "/metrics":
        return result.stdout
    return json.loads(result.stdout)


def reals_health(lab: Lab) -> dict[str, dict[str, Any]]:
    t = lab.topology
    reals = api_get(lab, f"/api/v1/services/{t.vip4}/80/tcp/reals")
    return {r["address"]: r["health"] for r in reals}


def real_connections(lab: Lab) -> dict[str, int]:
    return {
        r["real"]: r["connections"]
        for r in lab.node.fresh_status()["reals"]
        if r["vip"] == lab.topology.vip4 and r["port"] == 80
    }


def events(workdir: Path, name: str) -> list[dict[str, Any]]:
    log = workdir / "dplb.log"
    if not log.exists():
        return []
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [e for e in lines if e["event"] == name]


def test_a_real_that_stops_listening_is_down_gets_nothing_and_comes_back(
    lab: Lab, workdir: Path
) -> None:
    t = lab.topology
    rs2 = t.real4(1)

    def all_pass() -> bool:
        health = reals_health(lab)
        return all(h["status"] == "up" and h["last_result"] == "pass" for h in health.values())

    wait_until(all_pass, 30, "every real to pass its HTTP check\n" + node_tail(lab))
    control_before = lab.node.fresh_status()["control"]
    result = load(lab, f"{t.vip4}:80", requests=30)
    assert (result["errors"], sorted(result["by_real"])) == (0, ["rs1", "rs2", "rs3"]), result

    lab.servers[1].stop(timeout=5)  # rs2 stops listening
    wait_until(lambda: reals_health(lab)[rs2]["status"] == "down", 30, f"{rs2} marked down")
    down = reals_health(lab)[rs2]
    assert down["last_result"] in {"refused", "reset"}, down
    assert down["down_reason"] == "active"
    # The checks went through the exception path of the real-side port: the control
    # lcore carried the kernel's frames out (the checks have no other way to the reals).
    moved = delta(lab.node.fresh_status()["control"], control_before)
    assert moved.get("from_kernel", 0) > 0, moved
    metrics = api_get(lab, "/metrics")
    assert any(
        line.startswith("dplb_real_up{") and f'real="{rs2}:8080"' in line and line.endswith(" 0")
        for line in metrics.splitlines()
    ), "dplb_real_up of rs2 is not 0"

    # No new connection reaches rs2; the other two take them all.
    before = real_connections(lab)
    result = load(lab, f"{t.vip4}:80", requests=40)
    assert result["errors"] == 0, result
    assert sorted(result["by_real"]) == ["rs1", "rs3"], result
    assert delta(real_connections(lab), before).get(rs2, 0) == 0

    out = netns_exec(
        t.node_ns,
        "env", f"DPLB_URL=http://127.0.0.1:{API_PORT}", f"DPLB_TOKEN={TOKEN}",
        sys.executable, "-m", "dplb.cli", "ctl", "health",
        check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert [f"{t.vip4}:80/tcp", f"{rs2}:8080", down["last_result"], "active"] in [
        line.split() for line in out.stdout.splitlines()
    ], out.stdout

    # The node's log has the change as an event.
    wait_until(lambda: events(workdir, "real_down"), 10, "a real_down event in the log")
    logged = events(workdir, "real_down")[-1]
    assert (logged["real"], logged["real_port"], logged["vip"], logged["source"]) == (
        rs2,
        8080,
        t.vip4,
        "active",
    )

    lab.servers[1].start()  # listens again
    lab.servers[1].wait_for_output(r"^ready$", 30)
    wait_until(lambda: reals_health(lab)[rs2]["status"] == "up", 30, f"{rs2} back up")
    result = load(lab, f"{t.vip4}:80", requests=30)
    assert result["errors"] == 0, result
    assert sorted(result["by_real"]) == ["rs1", "rs2", "rs3"], result
    wait_until(lambda: events(workdir, "real_up"), 10, "a real_up event in the log")


def test_the_checker_reports_its_cost(lab: Lab) -> None:
    checks = api_get(lab, "/api/v1/health-checks")
    checker = checks["checker"]
    assert checker["enabled"] and checker["reals_checked"] == 3
    assert checker["checks"]["pass"] > 0
    metrics = api_get(lab, "/metrics")
    for name in (
        "dplb_health_checks_total",
        "dplb_health_check_seconds_total",
        "dplb_health_checker_busy_seconds_total",
    ):
        assert f"\n{name}{{" in metrics, name
