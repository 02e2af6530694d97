"""Health checker benchmark (DESIGN section 7): the checker of a node with 10,000 reals
(the engine harness behind it) running TCP checks for a while against listeners on
loopback (each real's `health_check.address: 127.0.0.1`, in another process so that
their cost is not counted), and what the checker costs: checks per second, the node
process's CPU time per second, the checker's own busy time, late checks, and how evenly
the checks start over each interval (the busiest tenth of an interval against the mean).

Run: .venv/bin/python bench/health_bench.py [--reals 10000] [--interval 5] [--seconds 15]
Prints its figures and writes bench/results/health.json. Not a test: nothing asserts."""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import dplb.health.checker as checker_module
from dplb.config import parse_config
from dplb.dataplane import HarnessDataplane
from dplb.engine import Engine
from dplb.health import HealthChecker
from result_header import result_header

REALS_PER_SERVICE = 100
LISTENERS = 4

# Listeners on loopback that accept and close, one port per line on stdout.
_LISTENER = r"""
import selectors, socket, sys
sel = selectors.DefaultSelector()
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(4096)
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
    print(s.getsockname()[1], flush=True)
while True:
    for key, _ in sel.select():
        try:
            conn, _ = key.fileobj.accept()
            conn.close()
        except OSError:
            pass
"""


def node_config(reals: int, interval: float, ports: list[int]) -> dict[str, Any]:
    services = []
    for i in range((reals + REALS_PER_SERVICE - 1) // REALS_PER_SERVICE):
        count = min(REALS_PER_SERVICE, reals - i * REALS_PER_SERVICE)
        services.append(
            {
                "vip": f"10.{1 + i // 250}.{i % 250}.1",
                "port": 80,
                "scheduler": "rr",
                "health_check": {"type": "tcp", "interval": interval, "timeout": 1.0},
                "reals": [
                    {
                        "address": f"10.{128 + i // 250}.{i % 250}.{10 + j}",
                        "port": 8080,
                        "health_check": {
                            "address": "127.0.0.1",
                            "port": ports[(i * REALS_PER_SERVICE + j) % len(ports)],
                        },
                    }
                    for j in range(count)
                ],
            }
        )
    return {
        "node": {"name": "bench", "cluster": "bench"},
        "dataplane": {
            "workers": 1,
            "sessions_per_worker": 1024,
            "max_services": len(services) * 2,
            "max_reals": reals * 2,
            "ports": [
                {"name": "port0", "device": "net_null0", "address": "10.0.1.1/24"},
                {
                    "name": "port1",
                    "device": "net_null1",
                    "address": "10.128.0.1/9",
                    "local_addresses": [["10.255.255.1"]],
                },
            ],
        },
        "services": services,
    }


async def run(args: argparse.Namespace, ports: list[int]) -> dict[str, Any]:
    cfg = parse_config(node_config(args.reals, args.interval, ports))
    dataplane = HarnessDataplane(Engine(cfg))
    starts: list[float] = []
    real_check = checker_module.run_check

    async def counted(*a: Any) -> Any:
        starts.append(time.monotonic())
        return await real_check(*a)

    checker_module.run_check = counted  # type: ignore[assignment]
    checker = HealthChecker(dataplane, cfg.health)
    cpu0, wall0 = time.process_time(), time.monotonic()
    checker.start()
    try:
        await asyncio.sleep(args.seconds)
    finally:
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        await checker.stop()
        checker_module.run_check = real_check
    stats = checker.stats
    # Spread over the intervals after the first one: checks started per tenth.
    slice_s = args.interval / 10
    buckets: dict[int, int] = {}
    for t in starts:
        if t - wall0 >= args.interval:
            buckets[int((t - wall0) / slice_s)] = buckets.get(int((t - wall0) / slice_s), 0) + 1
    full = list(buckets.values())[:-1] or [0]
    mean = sum(full) / len(full) if full else 0.0
    down = sum(1 for h in checker.state.reals.values() if not h.up)
    return {
        "checks": stats.checks["pass"] + stats.checks["fail"],
        "failed": stats.checks["fail"],
        "checks_per_second": round((stats.checks["pass"] + stats.checks["fail"]) / wall, 1),
        "cpu_seconds_per_second": round(cpu / wall, 3),
        "busy_seconds_per_second": round(stats.busy_seconds / wall, 4),
        "check_seconds_mean_ms": round(
            1000 * stats.check_seconds / max(1, stats.checks["pass"] + stats.checks["fail"]), 3
        ),
        "late": stats.late,
        "reals_down_at_end": down,
        "busiest_tenth_vs_mean": round(max(full) / mean, 2) if mean else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reals", type=int, default=10000)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--json", type=Path, default=Path("bench/results/health.json"))
    args = parser.parse_args()

    listener = subprocess.Popen(
        [sys.executable, "-c", _LISTENER, str(LISTENERS)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert listener.stdout is not None
        ports = [int(listener.stdout.readline()) for _ in range(LISTENERS)]
        figures = asyncio.run(run(args, ports))
    finally:
        listener.kill()
        listener.wait()

    result = {
        **result_header("health"),
        "parameters": {
            "reals": args.reals,
            "interval_s": args.interval,
            "seconds": args.seconds,
            "check": "tcp, loopback",
        },
        "figures": figures,
    }
    print(
        f"dplb health checker: {args.reals} reals, tcp every {args.interval}s, "
        f"{args.seconds}s on loopback"
    )
    for key, value in figures.items():
        print(f"  {key:<28}{value}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
