"""Applying a large config (DESIGN section 6): 1,000 services with 100 reals each, on the
engine harness. Measures each step of the way a change takes (validate, diff, build and
swap the engine snapshot), the whole reconciler apply, an incremental change to such a
config, and whether forwarding pauses meanwhile: a second thread keeps sending packets of
an established flow through the engine and records how long each call takes.

Run: .venv/bin/python bench/apply_bench.py [--services 1000] [--reals 100]
Prints its figures and writes bench/results/apply.json. Not a test: nothing asserts."""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from dplb.config import parse_config
from dplb.config_diff import diff_configs
from dplb.dataplane import HarnessDataplane
from dplb.engine import Engine, _service_to_core
from dplb.reconciler import Reconciler
from dplb.store import FileStore

CLIENT_MAC, REAL_MAC = "0a:00:00:00:01:fe", "0a:00:00:00:02:11"
PROBE_VIP = "10.1.0.1"  # the first service: the probe flow's


def node_config(services: int, reals: int, scheduler: str) -> dict[str, Any]:
    return {
        "node": {"name": "bench"},
        "dataplane": {
            "workers": 1,
            "sessions_per_worker": 4096,
            "max_services": max(services * 2, 16),
            "max_reals": max(services * reals * 2, 16),
            "ports": [
                {"name": "port0", "device": "net_null0", "address": "10.0.1.1/24",
                 "gateway": "10.0.1.254"},
                {"name": "port1", "device": "net_null1", "address": "10.128.0.1/9",
                 "local_addresses": [["10.255.255.1"]]},
            ],
        },
        "services": [
            {
                "vip": f"10.{1 + i // 250}.{i % 250}.1",
                "port": 80,
                "scheduler": scheduler,
                "reals": [
                    {"address": f"10.{128 + j // 250}.{j % 250}.{1 + i % 250}", "port": 8080}
                    for j in range(reals)
                ],
            }
            for i in range(services)
        ],
    }  # fmt: skip


class Prober:
    """Sends packets of an established flow, one at a time, timing each process() call:
    the time a packet waits while a config is applied."""

    def __init__(self, engine: Engine, lock: threading.Lock) -> None:
        self.engine = engine
        self.lock = lock
        syn = (
            Ether(src=CLIENT_MAC)
            / IP(src="198.51.100.7", dst=PROBE_VIP)
            / TCP(sport=40000, dport=80, flags="S", seq=1)
        )
        out = engine.process(bytes(syn), 0)
        assert len(out) == 1, "the probe flow's SYN did not go through"
        self.frame = bytes(
            Ether(src=CLIENT_MAC) / IP(src="198.51.100.7", dst=PROBE_VIP)
            / TCP(sport=40000, dport=80, flags="A", seq=2, ack=1) / b"x"
        )  # fmt: skip
        self.samples: list[tuple[float, float]] = []  # (start, seconds)
        self.lost = 0
        self.stop = threading.Event()

    def run(self) -> None:
        # A steady trickle (a few thousand packets a second), not a busy loop: a busy
        # loop would hold the GIL and slow the apply it is meant to watch.
        while not self.stop.is_set():
            start = time.perf_counter()
            out = self.engine.process(self.frame, 0)
            self.samples.append((start, time.perf_counter() - start))
            self.lost += len(out) != 1
            time.sleep(0.0002)

    def during(self, t0: float, t1: float) -> list[float]:
        return [d for s, d in self.samples if t0 <= s <= t1 or t0 <= s + d <= t1]


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t


def pause_figures(prober: Prober, t0: float, t1: float) -> dict[str, Any]:
    calls = prober.during(t0, t1)
    return {
        "packets_forwarded_during_apply": len(calls),
        "longest_process_call_ms": round(max(calls) * 1e3, 3) if calls else None,
    }


def bench(services: int, reals: int, scheduler: str) -> dict[str, Any]:
    empty = node_config(services, reals, scheduler)
    probe_only = copy.deepcopy(empty)
    probe_only["services"] = probe_only["services"][:1]
    big = empty
    engine = Engine(parse_config(probe_only))
    engine.set_neighbour("port0", "10.0.1.254", CLIENT_MAC)
    for svc in big["services"][:1]:
        for r in svc["reals"]:
            engine.set_neighbour("port1", r["address"], REAL_MAC)
    dataplane = HarnessDataplane(engine)
    prober = Prober(engine, dataplane.lock)

    out: dict[str, Any] = {"scheduler": scheduler}
    cfg, out["validate_s"] = timed(lambda: parse_config(big))
    _, out["diff_s"] = timed(lambda: diff_configs(engine.config, cfg))
    converted, out["convert_s"] = timed(
        lambda: [_service_to_core(s, cfg.dataplane.timeouts) for s in cfg.services]
    )

    thread = threading.Thread(target=prober.run, daemon=True)
    thread.start()
    time.sleep(0.2)  # a baseline of probe calls before the apply
    baseline = [d for _, d in prober.samples]
    t0 = time.perf_counter()
    engine._core.apply_services(converted)  # the C++ snapshot build and swap, GIL released
    t1 = time.perf_counter()
    out["engine_snapshot_s"] = t1 - t0
    out["engine_snapshot"] = pause_figures(prober, t0, t1)
    engine._core.apply_services([_service_to_core(s, cfg.dataplane.timeouts)
                                 for s in parse_config(probe_only).services])  # fmt: skip
    engine.config = parse_config(probe_only)

    # The whole way: store -> reconciler (validate, diff, convert, snapshot) -> engine.
    with tempfile.TemporaryDirectory() as tmp:
        store = FileStore(Path(tmp) / "desired.yaml")
        reconciler = Reconciler(store, dataplane)

        async def reconcile(data: dict[str, Any]) -> tuple[Any, float, float, float]:
            _, write_s = await atimed(store.write(data, author="bench"))
            desired, read_s = await atimed(store.read())
            t0 = time.perf_counter()
            status = await reconciler.reconcile(desired)
            return status, write_s, read_s, t0

        async def atimed(coro: Any) -> tuple[Any, float]:
            t = time.perf_counter()
            value = await coro
            return value, time.perf_counter() - t

        status, out["store_write_s"], out["store_read_s"], t0 = asyncio.run(reconcile(big))
        t1 = time.perf_counter()
        assert status.last_result == "applied", status.errors
        out["reconcile_full_s"] = t1 - t0
        out["reconcile_full"] = pause_figures(prober, t0, t1)

        one_weight = copy.deepcopy(big)
        one_weight["services"][500 % services]["reals"][0]["weight"] = 1
        status, _, _, t0 = asyncio.run(reconcile(one_weight))
        t1 = time.perf_counter()
        assert status.last_result == "applied", status.errors
        out["reconcile_one_weight_s"] = t1 - t0
        out["reconcile_one_weight"] = pause_figures(prober, t0, t1)

    prober.stop.set()
    thread.join()
    out["probe_packets_lost"] = prober.lost
    out["baseline_process_call_us"] = {
        "median": round(statistics.median(baseline) * 1e6, 1),
        "max": round(max(baseline) * 1e6, 1),
    }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--reals", type=int, default=100)
    parser.add_argument("--json", default=str(Path(__file__).parent / "results" / "apply.json"))
    args = parser.parse_args()
    results = {
        "what": f"apply {args.services} services x {args.reals} reals on the engine harness",
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "python": sys.version.split()[0],
            "switch_interval_ms": sys.getswitchinterval() * 1e3,
            "load_average_at_start": os.getloadavg()[0],
        },
        "runs": [bench(args.services, args.reals, s) for s in ("wlc", "maglev")],
    }
    for run in results["runs"]:
        print(f"scheduler {run['scheduler']}:")
        for key, value in run.items():
            if key != "scheduler":
                shown = f"{value:.3f}" if isinstance(value, float) else value
                print(f"  {key:<26} {shown}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
