"""The fuzz targets of cpp/fuzz, each for --seconds (libFuzzer, ASan + UBSan): executions,
executions per second, coverage (edges and features) and corpus size, as libFuzzer
reports them, into a JSON result. The aim: 10 million executions without a crash.

Run: make bench-fuzz [FUZZ_SECONDS=...]   (after make fuzz-build)"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from result_header import result_header

AIM_EXECUTIONS = 10_000_000
STAT = re.compile(r"^stat::(\w+):\s+(\d+)", re.M)
DONE = re.compile(r"#(\d+)\s+DONE\s+cov: (\d+) ft: (\d+) corp: (\d+)/")


def run_target(build: Path, target: str, seconds: int) -> dict[str, Any]:
    corpus = build / "corpus" / target
    corpus.mkdir(parents=True, exist_ok=True)
    artifacts = build / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(build / f"dplb_fuzz_{target}"),
        f"-max_total_time={seconds}",
        "-print_final_stats=1",
        f"-artifact_prefix={artifacts}/{target}-",
        str(corpus),
        str(build / "seeds" / target),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    stats = {k: int(v) for k, v in STAT.findall(proc.stderr)}
    done = DONE.search(proc.stderr)
    result: dict[str, Any] = {
        "target": target,
        "seconds": seconds,
        "crashed": proc.returncode != 0,
        "executions": stats.get("number_of_executed_units", 0),
        "executions_per_second": stats.get("average_exec_per_sec", 0),
        "peak_rss_mb": stats.get("peak_rss_mb", 0),
    }
    if done:
        result.update(
            coverage_edges=int(done[2]), coverage_features=int(done[3]), corpus_inputs=int(done[4])
        )
    if proc.returncode != 0:
        result["output_tail"] = proc.stderr[-4000:]
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", type=Path, default=Path("build/fuzz"))
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("targets", nargs="+")
    args = ap.parse_args()
    data = result_header("fuzz")
    data["parameters"] = {
        "seconds_per_target": args.seconds,
        "sanitizers": "fuzzer,address,undefined",
        "compiler": "clang++-14",
        "workers_in_engine_target": 2,
    }
    data["targets"] = [run_target(args.build, t, args.seconds) for t in args.targets]
    total = sum(t["executions"] for t in data["targets"])
    crashed = any(t["crashed"] for t in data["targets"])
    data["total_executions"] = total
    data["aims"] = {
        "executions_without_crash": {
            "aim": AIM_EXECUTIONS,
            "measured": total,
            "met": total >= AIM_EXECUTIONS and not crashed,
        }
    }
    args.json.write_text(json.dumps(data, indent=2) + "\n")
    print(
        f"{'target':<16}{'executions':>14}{'exec/s':>10}{'edges':>8}{'features':>10}{'crashed':>9}"
    )
    for t in data["targets"]:
        print(
            f"{t['target']:<16}{t['executions']:>14,}{t['executions_per_second']:>10,}"
            f"{t.get('coverage_edges', 0):>8}{t.get('coverage_features', 0):>10}{t['crashed']!s:>9}"
        )
    print(
        f"total {total:,} executions (aim {AIM_EXECUTIONS:,} without a crash);",
        f"written to {args.json}",
    )
    return 1 if crashed else 0


if __name__ == "__main__":
    raise SystemExit(main())
