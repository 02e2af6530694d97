"""End to end with a real Prometheus server (Debian package `prometheus`): it scrapes the
API of a node (the engine harness behind uvicorn) every second while traffic flows,
loads dplb's alert rules, and its queries return per-core and per-service series whose
values move."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from api_helpers import Node, free_port, running_server, wait_for
from conftest import TcpFlow

# Skipped where prometheus is missing, but not in CI (CI=true): there it must be installed.
pytestmark = pytest.mark.skipif(
    shutil.which("prometheus") is None and not os.environ.get("CI"),
    reason="prometheus (Debian package prometheus) missing",
)
ALERTS = Path(__file__).resolve().parent.parent / "ops" / "prometheus" / "alerts.yml"


@contextmanager
def traffic(node: Node, seconds: float = 120.0) -> Iterator[threading.Event]:
    """Opens connections through the node until stopped (or `seconds` pass), one every
    few milliseconds, each with its handshake and a request."""
    stop = threading.Event()

    def run() -> None:
        port = 20000
        deadline = time.monotonic() + seconds
        while not stop.is_set() and time.monotonic() < deadline and port < 60000:
            flow = TcpFlow(node.engine, port)
            with node.dataplane.lock:
                flow.handshake()
                flow.to_real(flow.from_client("PA", seq=1001, ack=5001, payload=b"GET /\r\n"))
            port += 1
            stop.wait(0.005)

    thread = threading.Thread(target=run, name="traffic", daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(timeout=10)


@contextmanager
def prometheus(tmp_path: Path, target: str) -> Iterator[str]:
    """A Prometheus server on its own free port scraping `target` every second, with
    dplb's alert rules; killed on the way out, whatever happens."""
    port = free_port()
    shutil.copy(ALERTS, tmp_path / "alerts.yml")
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "rule_files: [alerts.yml]\n"
        "scrape_configs:\n"
        "  - job_name: dplb\n"
        f"    static_configs: [{{targets: ['{target}']}}]\n"
    )
    log = (tmp_path / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()[-3000:]
            try:
                return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, timeout=30, what="prometheus to be ready")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def query(url: str, expr: str) -> dict[tuple[tuple[str, str], ...], float]:
    r = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=5)
    r.raise_for_status()
    body: dict[str, Any] = r.json()
    assert body["status"] == "success", body
    return {
        tuple(sorted(item["metric"].items())): float(item["value"][1])
        for item in body["data"]["result"]
    }


def moving(url: str, expr: str, want: int) -> bool:
    """True when `expr` (an increase over a window) is above zero for `want` series."""
    return sum(1 for v in query(url, expr).values() if v > 0) >= want


def test_prometheus_scrapes_a_node_and_sees_its_series_move(tmp_path: Path) -> None:
    node = Node(tmp_path / "node", workers=2)
    with (
        running_server(node) as api,
        traffic(node),
        prometheus(tmp_path, api[len("http://") :]) as url,
    ):
        wait_for(
            lambda: (
                query(url, 'up{job="dplb"}')
                and all(v == 1 for v in query(url, 'up{job="dplb"}').values())
            ),
            timeout=30,
            what="a successful scrape",
        )
        # Per core: both workers receive packets, and the counters grow between scrapes.
        wait_for(
            lambda: moving(
                url,
                'increase(dplb_core_receive_packets_total{cluster="test", node="harness"}[5s])',
                2,
            ),
            timeout=30,
            what="per-core receive counters that move on both cores",
        )
        wait_for(
            lambda: moving(url, "increase(dplb_core_sessions_created_total[5s])", 2),
            timeout=30,
            what="sessions created on both cores",
        )
        # Per service and per real.
        service = 'vip="10.0.100.10", port="80", protocol="tcp"'
        wait_for(
            lambda: moving(url, f"increase(dplb_service_connections_total{{{service}}}[5s])", 1),
            timeout=30,
            what="the service's connections to move",
        )
        wait_for(
            lambda: moving(url, 'increase(dplb_real_connections_total{vip="10.0.100.10"}[5s])', 2),
            timeout=30,
            what="both reals of the service to get connections",
        )
        services = query(url, "dplb_service_connections_total")
        assert {dict(k)["port"] for k in services} == {"80", "53"}
        # The alert rules loaded into a real server and none fires on a healthy node.
        rules = httpx.get(f"{url}/api/v1/rules", timeout=5).json()["data"]["groups"]
        assert sum(len(g["rules"]) for g in rules) == 8
        firing = httpx.get(f"{url}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
        assert [a for a in firing if a["state"] == "firing"] == []
