"""Waits (a bounded time) until the machine is quiet before a benchmark: the 1-minute load
average below a threshold. The test machine is shared with other builds; each result
file records the load it ran under either way.

Run: python bench/wait_quiet.py [--below 0.7] [--at-most 120]"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def load1() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def main() -> int:
    parser = argparse.ArgumentParser(description="wait for a quiet machine")
    parser.add_argument("--below", type=float, default=0.7)
    parser.add_argument("--at-most", type=float, default=120.0, help="seconds")
    args = parser.parse_args()
    deadline = time.monotonic() + args.at_most
    load = load1()
    if load >= args.below:
        print(
            f"bench: load average {load:.2f}; waiting up to {args.at_most:.0f} s for < {args.below}"
        )
    while load >= args.below and time.monotonic() < deadline:
        time.sleep(5)
        load = load1()
    quiet = "quiet" if load < args.below else "still busy: figures will be noisier"
    print(f"bench: load average {load:.2f} ({quiet})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
