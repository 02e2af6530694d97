"""The node's control plane end to end: `dplb run` with a store serves the management
API over the DPDK node. A service added with `dplb ctl` carries traffic; a refused change
leaves the running config serving; a real Prometheus server (Debian `prometheus`)
scrapes the node's /metrics while traffic flows and sees per-core and per-service series
move; the node's log file has its events and the connection log."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dplb.demo.lab import Lab, wait_until
from dplb.demo.topology import Topology, netns_exec

from .helpers import API_TOKEN, curl, load, run_prefix, running_lab, with_api

pytestmark = pytest.mark.e2e

PREFIX = run_prefix("e2e7")
API_PORT = 18180
PROMETHEUS_PORT = 19190
TOKEN = API_TOKEN


def config(t: Topology, workdir: Path) -> dict[str, Any]:
    cfg = t.node_config(workers=2)
    cfg["services"][0]["connection_log"] = True
    cfg["dataplane"]["log"] = {"file": str(workdir / "dplb.log")}
    return with_api(cfg, workdir, API_PORT)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("nodeapi")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, workdir: Path) -> Iterator[Lab]:
    with running_lab(PREFIX, tmp_path_factory, lambda t: config(t, workdir)) as lab:

        def api_up() -> bool:
            return api(lab, "GET", "/api/v1/health", check=False).returncode == 0

        wait_until(api_up, 30, "the node's API to answer")
        yield lab


def api(lab: Lab, method: str, path: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """curl in the node's namespace (the API listens on its loopback)."""
    return netns_exec(
        lab.topology.node_ns,
        "curl", "-sS", "--fail", "-m", "10", "-X", method,
        "-H", f"Authorization: Bearer {TOKEN}",
        f"http://127.0.0.1:{API_PORT}{path}",
        check=check,
    )  # fmt: skip


def ctl(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    env_args = ["env", f"DPLB_URL=http://127.0.0.1:{API_PORT}", f"DPLB_TOKEN={TOKEN}"]
    return netns_exec(
        lab.topology.node_ns, *env_args, sys.executable, "-m", "dplb.cli", "ctl", *args, check=False
    )


def test_a_service_added_with_ctl_carries_traffic_to_its_reals(lab: Lab) -> None:
    t = lab.topology
    added = ctl(
        lab, "services", "add", f"{t.vip4}:81/tcp", "--scheduler", "rr",
        "--real", f"{t.real4(0)}:8080", "--real", f"{t.real4(1)}:8080",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    answers = [curl(lab, f"http://{t.vip4}:81/").split()[0] for _ in range(6)]
    assert sorted(set(answers)) == ["rs1", "rs2"], answers
    stats = json.loads(api(lab, "GET", "/api/v1/stats/reals").stdout)
    on_81 = {r["address"]: r["connections"] for r in stats if r["port"] == 81}
    # Each worker keeps its own round-robin position, so with two workers the split of six
    # connections is 3/3 or 4/2: every connection is counted, on the service's two reals.
    assert set(on_81) == {t.real4(0), t.real4(1)}
    assert sum(on_81.values()) == 6
    assert min(on_81.values()) >= 2


def test_a_refused_change_names_the_field_and_the_node_keeps_serving(lab: Lab) -> None:
    t = lab.topology
    refused = ctl(lab, "services", "add", f"{t.vip4}:82/tcp", "--real", f"{t.real4(0)}:70000")
    assert refused.returncode == 1
    assert "port" in refused.stderr + refused.stdout
    assert curl(lab, f"http://{t.vip4}/").startswith("rs")
    status = json.loads(api(lab, "GET", "/api/v1/node").stdout)
    assert status["dataplane"]["kind"] == "dpdk"
    assert [p["link_up"] for p in status["dataplane"]["ports"]] == [True, True]


@pytest.mark.skipif(
    shutil.which("prometheus") is None and not os.environ.get("CI"),
    reason="prometheus (Debian package prometheus) missing",
)
def test_prometheus_scrapes_the_node_and_its_series_move(lab: Lab, workdir: Path) -> None:
    (workdir / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: dplb\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{API_PORT}']}}]\n"
    )
    prometheus = lab.spawn(
        lab.topology.node_ns,
        [
            "prometheus",
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}",
        ],
        "prometheus",
    )

    def query(expr: str) -> list[dict[str, Any]]:
        out = netns_exec(
            lab.topology.node_ns, "curl", "-sS", "-m", "5", "--get",
            "--data-urlencode", f"query={expr}",
            f"http://127.0.0.1:{PROMETHEUS_PORT}/api/v1/query",
            check=False,
        )  # fmt: skip
        if out.returncode != 0:
            return []
        body: dict[str, Any] = json.loads(out.stdout)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def moving(expr: str, want: int) -> bool:
        assert prometheus.running(), prometheus.output()[-2000:]
        load(lab, f"{lab.topology.vip4}:80", requests=40, concurrency=2)
        return sum(1 for s in query(expr) if float(s["value"][1]) > 0) >= want

    wait_until(
        lambda: moving("increase(dplb_core_receive_packets_total[10s])", 2),
        60,
        "both cores' receive counters to move in Prometheus",
    )
    wait_until(
        lambda: moving('increase(dplb_service_connections_total{port="80"}[10s])', 1),
        60,
        "the service's connection counter to move in Prometheus",
    )
    series = query("dplb_core_receive_packets_total")
    assert {s["metric"]["core"] for s in series} == {"0", "1"}
    assert {s["metric"]["node"] for s in series} == {lab.config["node"]["name"]}


def test_the_node_log_has_its_events_and_the_connection_log(lab: Lab, workdir: Path) -> None:
    curl(lab, f"http://{lab.topology.vip4}/")
    log = workdir / "dplb.log"

    def lines() -> list[dict[str, Any]]:
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]

    wait_until(
        lambda: any(e["event"] == "session_open" for e in lines()), 20, "a session_open line"
    )
    events = {e["event"] for e in lines()}
    assert {"start", "config_applied", "session_open"} <= events, events
    opened = next(e for e in lines() if e["event"] == "session_open")
    assert opened["client"] == lab.topology.client4
    assert opened["vip"] == lab.topology.vip4
    assert opened["time"].endswith("Z")
