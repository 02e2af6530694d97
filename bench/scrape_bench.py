"""Scrape benchmark (DESIGN section 8): a node with 1,000 services of 10 reals on 2 workers
(the engine harness), some traffic on every service, and the time the metrics collector
takes to read the engine and write the text Prometheus gets: the first scrape (labels
built) and the steady ones, also through GET /metrics of the API app.
Aim: a scrape in under 50 ms.

Run: .venv/bin/python bench/scrape_bench.py [--services 1000] [--reals 10] [--workers 2]
Prints its figures and writes bench/results/scrape.json. Not a test: nothing asserts."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")

from fastapi.testclient import TestClient  # noqa: E402
from scapy.layers.inet import IP, TCP  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402

from dplb.api import create_app  # noqa: E402
from dplb.config import parse_config  # noqa: E402
from dplb.dataplane import HarnessDataplane  # noqa: E402
from dplb.engine import Engine  # noqa: E402
from dplb.metrics import DataplaneCollector  # noqa: E402
from dplb.store import FileStore  # noqa: E402
from result_header import result_header  # noqa: E402

CLIENT_MAC = "0a:00:00:00:01:fe"
AIM_MS = 50.0


def vip(i: int) -> str:
    return f"10.{1 + i // 250}.{i % 250}.1"


def node_config(services: int, reals: int, workers: int, store: Path) -> dict[str, Any]:
    return {
        "node": {"name": "bench", "cluster": "bench"},
        "dataplane": {
            "workers": workers,
            "sessions_per_worker": 65536,
            "max_services": services * 2,
            "max_reals": services * reals * 2,
            "ports": [
                {
                    "name": "port0",
                    "device": "net_null0",
                    "address": "10.0.1.1/24",
                    "gateway": "10.0.1.254",
                },
                {
                    "name": "port1",
                    "device": "net_null1",
                    "address": "10.128.0.1/9",
                    "local_addresses": [[f"10.255.255.{w + 1}"] for w in range(workers)],
                },
            ],
        },
        "store": {"file": str(store)},
        "services": [
            {
                "vip": vip(i),
                "port": 80,
                "scheduler": "rr",
                "reals": [
                    {"address": f"10.{128 + i // 250}.{i % 250}.{10 + j}", "port": 8080}
                    for j in range(reals)
                ],
            }
            for i in range(services)
        ],
    }


def timed(fn: Any, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def summary(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    return {
        "min_ms": round(ordered[0], 2),
        "median_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(ordered[max(0, int(len(ordered) * 0.95) - 1)], 2),
        "max_ms": round(ordered[-1], 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--reals", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--json", type=Path, default=Path("bench/results/scrape.json"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        cfg = parse_config(
            node_config(args.services, args.reals, args.workers, Path(tmp) / "desired.yaml")
        )
        engine = Engine(cfg)
        engine.set_neighbour("port0", "10.0.1.254", CLIENT_MAC)
        for i in range(args.services):
            for j in range(args.reals):
                mac = f"0a:00:{(i >> 8) & 0xFF:02x}:{i & 0xFF:02x}:00:{j:02x}"
                engine.set_neighbour("port1", f"10.{128 + i // 250}.{i % 250}.{10 + j}", mac)
        # A connection (SYN) to every service, so every service and some reals count.
        template = bytes(
            Ether(src=CLIENT_MAC, dst=engine.port_mac("port0"))
            / IP(src="198.51.100.7", dst="10.1.0.1")
            / TCP(sport=1, dport=80, flags="S")
        )
        for i in range(args.services):
            address = bytes(int(x) for x in vip(i).split("."))
            frame = template[:30] + address + template[34:]
            frame = frame[:34] + (1024 + i).to_bytes(2, "big") + frame[36:]
            engine.process(frame, "port0")
        dataplane = HarnessDataplane(engine)
        collector = DataplaneCollector(dataplane, cluster="bench", node="bench")

        started = time.perf_counter()
        text = collector.render()
        first_ms = (time.perf_counter() - started) * 1000
        samples = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
        steady = timed(collector.render, args.runs)

        app = create_app(cfg, dataplane, FileStore(Path(tmp) / "desired.yaml"))
        with TestClient(app) as client:
            assert client.get("/metrics").status_code == 200
            http = timed(lambda: client.get("/metrics").raise_for_status(), args.runs)

    result = {
        **result_header("scrape"),
        "parameters": {
            "services": args.services,
            "reals_per_service": args.reals,
            "workers": args.workers,
            "runs": args.runs,
        },
        "figures": {
            "samples": samples,
            "bytes": len(text),
            "first_scrape_ms": round(first_ms, 2),
            "collector": summary(steady),
            "http_get_metrics": summary(http),
        },
        "aims": {"scrape_ms_max": AIM_MS},
    }
    print(
        f"dplb scrape benchmark: {args.services} services x {args.reals} reals, "
        f"{args.workers} workers: {samples} samples, {len(text) / 1e6:.1f} MB"
    )
    print(f"{'first scrape (labels built)':<40}{first_ms:>10.1f} ms")
    for name, fig in (
        ("collector (render)", result["figures"]["collector"]),
        ("GET /metrics (API app)", result["figures"]["http_get_metrics"]),
    ):
        assert isinstance(fig, dict)
        print(f"{name + ', median':<40}{fig['median_ms']:>10.1f} ms   (p95 {fig['p95_ms']:.1f} ms)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
