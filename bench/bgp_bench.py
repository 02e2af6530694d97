"""BGP failover benchmark (issue 12), in the two-node lab of dplb.demo.bgp_lab (a router
running BIRD with kernel ECMP in front of two dplb nodes, each with its BIRD):

- withdraw: from the moment the last real of lb1's service is quiesced (the API answered
  that it applied: what a failed health check will do) to lb1's next hop gone from the
  router's kernel route for the VIP;
- kill: from `kill -9` of lb1's `dplb run` to its next hop gone (BFD, 3 x 100 ms).

p50/p99 over --runs runs of each. The router's kernel is polled (`ip -j route`) every
few milliseconds (each poll runs `ip`): that period is part of each figure. Needs root.

Run: .venv/bin/python bench/bgp_bench.py [--runs 20]
Prints its figures and writes bench/results/bgp.json. Not a test: nothing asserts."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from dplb import __version__
from dplb.demo.bgp_lab import VIP, VIP_PORT, BgpLab
from dplb.demo.lab import wait_until

BOTH = ["10.10.1.1", "10.10.1.2"]
ONLY_LB2 = ["10.10.1.2"]


def until_nexthops(lab: BgpLab, wanted: list[str], timeout: float) -> float:
    """Polls the router's kernel until the VIP's next hops are `wanted`; the time then."""
    deadline = time.monotonic() + timeout
    while lab.nexthops() != wanted:
        if time.monotonic() > deadline:
            raise TimeoutError(f"next hops {lab.nexthops()}, waited for {wanted}")
        time.sleep(0.002)
    return time.monotonic()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def summary(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        "runs": len(ms),
        "p50_ms": round(statistics.median(ms), 1),
        "p99_ms": round(percentile(ms, 99), 1),
        "min_ms": round(min(ms), 1),
        "max_ms": round(max(ms), 1),
    }


def withdraw_once(lab: BgpLab) -> float:
    lb1 = lab.nodes[0]
    service = f"/services/{VIP}/{VIP_PORT}/tcp/reals"
    reals = [f"10.10.2.{11 + i}" for i in range(lab.topo.reals)]
    for real in reals[:-1]:
        lb1.api("POST", f"{service}/{real}/8080/quiesce")
    lb1.api("POST", f"{service}/{reals[-1]}/8080/quiesce")
    started = time.monotonic()
    took = until_nexthops(lab, ONLY_LB2, 30) - started
    for real in reals:
        lb1.api("POST", f"{service}/{real}/8080/enable")
    until_nexthops(lab, BOTH, 30)
    return took


def kill_once(lab: BgpLab) -> float:
    lb1 = lab.nodes[0]
    assert lb1.proc.proc is not None
    started = time.monotonic()
    lb1.proc.proc.kill()
    took = until_nexthops(lab, ONLY_LB2, 30) - started
    lb1.proc.proc.wait()
    lb1.bird.stop()  # a fresh BIRD connects at once (one that lost its session waits)
    lb1.start()
    until_nexthops(lab, BOTH, 90)
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json", type=Path, default=Path("bench/results/bgp.json"))
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bgp_bench: needs root (network namespaces)", file=sys.stderr)
        return 1
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="dplb-bgp-bench-") as tmp:
        lab = BgpLab(f"bgpb{os.getpid()}", Path(tmp), quick_reconnect=True)
        try:
            lab.start()
            wait_until(lambda: lab.nexthops() == BOTH or None, 90, "both next hops")
            for name, once in (("withdraw", withdraw_once), ("kill", kill_once)):
                runs = [once(lab) for _ in range(args.runs)]
                figures[name] = summary(runs)
                print(f"{name:9} {json.dumps(figures[name])}", flush=True)
        finally:
            lab.close()
    report = {
        "name": "bgp",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "load_average": os.getloadavg(),
        "dplb": __version__,
        "parameters": {"runs": args.runs, "bfd": "100 ms x 3", "poll_interval_s": 0.5},
        "figures": figures,
        "aims": {"kill_p99_ms": 1000},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
