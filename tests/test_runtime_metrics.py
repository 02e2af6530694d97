"""The DPDK runtime's part of the metrics and the log, on DPDK's null devices (no NIC, no
namespaces): worker polls, the burst-processing histogram, NIC counters, DPDK latency
stats, and the logger thread started and stopped with the lcores. EAL starts once per
process, so the node runs in a child process that prints what it saw."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dplb._core as _core
import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.skipif(
    not getattr(_core, "with_dpdk", False) or os.geteuid() != 0,
    reason="needs the DPDK runtime and root (EAL)",
)

CHILD = r"""
import json, sys, time
import dplb._core as _core
from dplb.config import parse_config
from dplb.engine import logger_options, to_engine_config
from dplb.metrics import DataplaneCollector
from dplb.dataplane.node import NodeDataplane

tmp = sys.argv[1]
cfg = parse_config({
    "node": {"name": "null", "cluster": "obs"},
    "dataplane": {
        "workers": 2, "sessions_per_worker": 1024, "latency_stats": True,
        "log": {"file": tmp + "/node.jsonl"},
        "ports": [
            {"name": "port0", "device": "net_null0", "address": "10.0.1.1/24"},
            {"name": "port1", "device": "net_null1", "address": "10.0.2.1/24",
             "local_addresses": [["10.0.2.101"], ["10.0.2.102"]]},
        ],
    },
    "services": [{"vip": "10.0.100.10", "port": 80,
                  "reals": [{"address": "10.0.2.11", "port": 8080}]}],
})
opts = _core.RuntimeOptions()
ports = []
for p in cfg.dataplane.ports:
    po = _core.PortOptions()
    po.device = p.device
    po.kernel_interface = ""
    ports.append(po)
opts.ports = ports
opts.file_prefix = "dplb-metrics-test-" + str(__import__("os").getpid())
opts.log = logger_options(cfg)
opts.latency_stats = True
rt = _core.Runtime(to_engine_config(cfg), opts)
rt.start()
try:
    collector = DataplaneCollector(NodeDataplane(rt, cfg), cluster="obs", node="null")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and min(w["bursts"] for w in rt.workers()) == 0:
        time.sleep(0.05)
    time.sleep(0.5)
    first = collector.render()
    time.sleep(0.5)
    second = collector.render()
    assert rt.logger.event("start", json.dumps({"workers": 2}))
finally:
    rt.stop()
print(json.dumps({"first": first, "second": second}))
"""


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (
            s.name,
            tuple(sorted((k, v) for k, v in s.labels.items() if k not in ("cluster", "node"))),
        ): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def test_runtime_counters_histogram_and_logger_on_null_devices(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    first, second = samples(out["first"]), samples(out["second"])
    for core in ("0", "1"):
        busy = ("dplb_core_polls_total", (("core", core), ("state", "busy")))
        assert second[busy] > first[busy] > 0
        count = second[("dplb_core_burst_processing_seconds_count", (("core", core),))]
        inf = second[
            ("dplb_core_burst_processing_seconds_bucket", (("core", core), ("le", "+Inf")))
        ]
        assert count == inf > 0
        assert second[("dplb_core_burst_processing_seconds_sum", (("core", core),))] > 0
    # The null device hands out frames of zeros: received, and dropped or sent to control.
    rx = ("dplb_nic_receive_packets_total", (("nic", "port0"),))
    assert second[rx] > first[rx] > 0
    assert ("dplb_dpdk_latency_max_seconds", ()) in second
    assert second[("dplb_nic_up", (("nic", "port0"),))] == 1
    # The logger started with the lcores and wrote what was left when they stopped.
    lines = [json.loads(line) for line in (tmp_path / "node.jsonl").read_text().splitlines()]
    assert [line["event"] for line in lines if line["event"] == "start"] == ["start"]
    if shutil.which("promtool"):
        check = subprocess.run(
            ["promtool", "check", "metrics"], input=out["second"], capture_output=True, text=True
        )
        assert check.returncode == 0 and not (check.stdout + check.stderr).strip(), check.stdout
