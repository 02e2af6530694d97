"""ops/: the Prometheus alert rules (promtool check and unit tests) and the Grafana
dashboards, checked against the metrics a node really exposes, including those only the
DPDK runtime has (polls, burst histogram, NIC counters, latency), here from a dataplane
that reports them as the runtime does."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from api_helpers import harness_dataplane
from conftest import node_config
from dplb.config import NodeConfig, parse_config
from dplb.dataplane import HarnessDataplane, Telemetry
from dplb.dataplane.models import Liveness
from dplb.metrics import DataplaneCollector
from dplb.store import ApplyStatus, StoreHealth

OPS = Path(__file__).resolve().parent.parent / "ops"
ALERTS = OPS / "prometheus" / "alerts.yml"
ALERT_TESTS = OPS / "prometheus" / "alerts_test.yml"
DASHBOARDS = sorted((OPS / "grafana").glob("*.json"))
# Skipped where promtool is missing, but not in CI (CI=true): there it must be installed.
needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None and not os.environ.get("CI"),
    reason="promtool (Debian package prometheus) missing",
)


class RuntimeLikeDataplane:
    """The harness dataplane, with what the DPDK runtime adds to its telemetry."""

    kind = "dpdk"

    def __init__(self, harness: HarnessDataplane) -> None:
        self.harness = harness

    def running_config(self) -> NodeConfig:
        return self.harness.running_config()

    def telemetry(self) -> Telemetry:
        t = self.harness.telemetry()
        cores = []
        for i, c in enumerate(t.cores):
            buckets = [0] * 28
            buckets[10] = 3 + i  # under 1024 ns
            buckets[12] = 1  # under 4096 ns
            buckets[27] = 1  # 67 ms or more
            cores.append(
                {
                    **c,
                    "busy_polls": 90,
                    "idle_polls": 10,
                    "tx_dropped": 2,
                    "handover_dropped": 1,
                    "bursts": sum(buckets),
                    "burst_ns_sum": 5000,
                    "burst_ns_buckets": buckets,
                }
            )
        ports = [
            {
                "name": p["name"],
                "rx_packets": 10,
                "tx_packets": 9,
                "rx_bytes": 1000,
                "tx_bytes": 900,
                "rx_missed": 1,
                "rx_errors": 0,
                "tx_errors": 0,
                "rx_nombuf": 0,
                "link_up": True,
                "speed_mbps": 10000,
            }
            for p in t.ports
        ]
        control = {
            "arp_replies": 1,
            "nd_replies": 2,
            "to_kernel": 3,
            "from_kernel": 4,
            "resolutions_sent": 5,
            "held": 6,
            "held_expired": 7,
            "dropped": 8,
            "loops": 9,
            "last_loop_age_ns": 20_000,
        }
        latency = {
            "enabled": True,
            "min_ns": 500.0,
            "avg_ns": 800.0,
            "max_ns": 9000.0,
            "jitter_ns": 40.0,
        }
        logger = {
            "lines_written": 1,
            "bytes_written": 100,
            "rotations": 0,
            "write_errors": 0,
            "lines_lost": 0,
            "events_dropped": 0,
            "worker_dropped": 0,
            "paused": False,
        }
        return Telemetry(
            kind=self.kind,
            started_at=t.started_at,
            cores=cores,
            counters=t.counters,
            ports=ports,
            control=control,
            latency=latency,
            logger=logger,
            dpdk_version="DPDK 22.11.11",
            liveness=Liveness(),
            local_addresses=t.local_addresses,
        )


@pytest.fixture(scope="module")
def runtime_scrape() -> str:
    dataplane = RuntimeLikeDataplane(harness_dataplane(parse_config(node_config(workers=2))))
    status = ApplyStatus(
        node="lb1",
        applied_version=3,
        last_version=3,
        last_result="applied",
        last_at=datetime.now(UTC),
    )
    collector = DataplaneCollector(
        dataplane,  # type: ignore[arg-type]
        cluster="test",
        node="lb1",
        apply_status=lambda: status,
        store_health=lambda: StoreHealth(kind="etcd", up=True, last_contact=datetime.now(UTC)),
    )
    return collector.render()


@pytest.fixture(scope="module")
def exposed(runtime_scrape: str) -> set[str]:
    """Every sample name a node exposes (with `bgp.enabled` and one BGP session)."""
    from dplb.bgp.controller import BgpSession, BgpStatus
    from dplb.bgp.metrics import bgp_metrics_text

    session = BgpSession(
        name="router1", neighbor_address="10.0.1.254", neighbor_as=65000, state="up",
        info="Established", since="00:00:00", established=True, routes_exported=2,
        routes_imported=0,
    )  # fmt: skip
    bgp = bgp_metrics_text(BgpStatus(enabled=True, sessions=[session]), 'cluster="c",node="n"')
    names = set()
    for family in text_string_to_metric_families(runtime_scrape + bgp):
        names.update(s.name for s in family.samples)
    return names


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\bdplb_[a-z0-9_]+", expr))


def test_runtime_families_render_as_the_runtime_reports_them(runtime_scrape: str) -> None:
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(runtime_scrape)
        for s in f.samples
    }

    def get(name: str, **labels: str) -> float:
        key = (name, tuple(sorted({"cluster": "test", "node": "lb1", **labels}.items())))
        return samples[key]

    assert get("dplb_core_polls_total", core="0", state="busy") == 90
    assert get("dplb_core_drops_total", core="1", reason="tx_queue_full") == 2
    assert get("dplb_core_drops_total", core="1", reason="handover_full") == 1
    # Cumulative buckets from 128 ns; the 67 ms burst only in +Inf.
    assert get("dplb_core_burst_processing_seconds_bucket", core="1", le="5.12e-07") == 0
    assert get("dplb_core_burst_processing_seconds_bucket", core="1", le="1.024e-06") == 4
    assert get("dplb_core_burst_processing_seconds_bucket", core="1", le="4.096e-06") == 5
    assert get("dplb_core_burst_processing_seconds_bucket", core="1", le="0.016777216") == 5
    assert get("dplb_core_burst_processing_seconds_bucket", core="1", le="+Inf") == 6
    assert get("dplb_core_burst_processing_seconds_count", core="1") == 6
    assert get("dplb_core_burst_processing_seconds_sum", core="1") == 5e-06
    assert get("dplb_nic_receive_missed_total", nic="port1") == 1
    assert get("dplb_nic_speed_bytes", nic="port0") == 1_250_000_000
    assert get("dplb_dpdk_latency_max_seconds") == 9e-06
    assert get("dplb_control_held_expired_total") == 7


@needs_promtool
def test_promtool_accepts_a_runtime_scrape(runtime_scrape: str) -> None:
    r = subprocess.run(
        ["promtool", "check", "metrics"], input=runtime_scrape, capture_output=True, text=True
    )
    assert r.returncode == 0 and not (r.stdout + r.stderr).strip(), r.stdout + r.stderr


@needs_promtool
def test_promtool_checks_the_alert_rules() -> None:
    r = subprocess.run(["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    rules = ALERTS.read_text().count("- alert: ")
    assert f"SUCCESS: {rules} rules found" in r.stdout


@needs_promtool
def test_promtool_unit_tests_of_the_alerts_pass() -> None:
    r = subprocess.run(
        ["promtool", "test", "rules", str(ALERT_TESTS)], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_alert_has_a_unit_test_that_fires_it_and_a_runbook() -> None:
    rules = yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]
    tests = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    fired = {
        case["alertname"]
        for test in tests
        for case in test["alert_rule_test"]
        if case.get("exp_alerts")
    }
    names = {r["alert"] for r in rules}
    assert names == {
        "DplbNodeDown",
        "DplbDataplaneNotAlive",
        "DplbWorkerSaturated",
        "DplbDropsRising",
        "DplbLocalPortsRunningOut",
        "DplbRealDown",
        "DplbSessionTableFull",
        "DplbConfigRefused",
        "DplbLoggerDropping",
        "DplbStoreUnavailable",
        "DplbBirdDown",
        "DplbBgpSessionDown",
    }
    assert fired == names
    for rule in rules:
        assert {"summary", "description", "runbook"} <= rule["annotations"].keys(), rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical")


def test_alerts_use_only_metrics_a_node_exposes(exposed: set[str]) -> None:
    rules = yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]
    for rule in rules:
        unknown = metric_names(rule["expr"]) - exposed
        assert not unknown, f"{rule['alert']}: {unknown}"


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in board["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboards_query_only_metrics_a_node_exposes(path: Path, exposed: set[str]) -> None:
    board = json.loads(path.read_text())
    assert board["uid"].startswith("dplb-") and board["title"].startswith("dplb ")
    exprs = [t["expr"] for p in panels(board) for t in p.get("targets", [])]
    exprs += [v["definition"] for v in board["templating"]["list"] if v["type"] == "query"]
    assert exprs
    for expr in exprs:
        unknown = metric_names(expr) - exposed
        assert not unknown, f"{path.name}: {expr}: {unknown}"
    ids = [p["id"] for p in panels(board)]
    assert len(ids) == len(set(ids)), "panel ids repeat"


def test_there_are_dashboards_for_the_cluster_a_node_a_service_and_the_cores() -> None:
    titles = {json.loads(p.read_text())["title"] for p in DASHBOARDS}
    assert titles == {"dplb cluster", "dplb node", "dplb service", "dplb cores"}
