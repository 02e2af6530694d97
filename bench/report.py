"""After a benchmark: the plots (bench/results/<name>.png) and, on every aim a result file
says was missed, what the profile showed (bench/profiles.json, written by whoever
profiled the miss; a miss without one says so). Prints the headline of each result.

Run: .venv/bin/python bench/report.py [engine] [runtime] [e2e]   (default: all present)
Needs matplotlib (make bench-deps installs it; it is not a runtime dependency)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

RESULTS = Path(__file__).resolve().parent / "results"
PROFILES = Path(__file__).resolve().parent / "profiles.json"
NO_PROFILE = "missed; no profile recorded yet in bench/profiles.json"


def annotate(name: str, data: dict[str, Any]) -> None:
    """Puts the profile's explanation on each missed aim (matched by the aim's start)."""
    notes: dict[str, str] = {}
    if PROFILES.exists():
        notes = json.loads(PROFILES.read_text()).get(name, {})
    for aim in data.get("aims", []):
        if aim.get("met", True):
            aim.pop("profile", None)
            continue
        text = next((v for k, v in notes.items() if aim["aim"].startswith(k)), NO_PROFILE)
        aim["profile"] = text


def subtitle(data: dict[str, Any]) -> str:
    load = data.get("load_average_start", [0.0])[0]
    machine = data.get("machine", {})
    return (
        f"{data.get('date', '')[:10]}, {machine.get('cores', '?')}-core VM, "
        f"load average {load:.2f} at start"
    )


def plot_engine(data: dict[str, Any], out: Path) -> None:
    sizes = data["sizes"]
    n = [int(s["sessions"]) for s in sizes]
    ns = [s["established_ns_per_packet"] for s in sizes]
    new = [s["new_sessions_per_second"] / 1e6 for s in sizes]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    a.plot(n, ns, "o-", label="dplb engine, 1 worker")
    for x, y in zip(n, ns, strict=True):
        a.annotate(
            f"{y:.0f} ns\n{1e3 / y:.1f} Mpps",
            (x, y),
            textcoords="offset points",
            xytext=(0, 8),
            ha="center",
            fontsize=8,
        )
    a.axhline(60, color="tab:red", ls="--", lw=1, label="aim at 1M: 60 ns")
    if ns:
        a.axhline(2 * ns[0], color="tab:orange", ls=":", lw=1, label="aim: 2x the cost at 1k")
    a.set_xscale("log")
    a.set_xlabel("sessions in the table")
    a.set_ylabel("ns per packet (established, 64 B, bursts of 32)")
    a.set_ylim(0, max([*ns, 60]) * 1.35)
    a.legend(fontsize=8, loc="upper left")
    a.set_title("Established flows")
    labels = [f"{x:,}" for x in n]
    b.bar(labels, new, color="tab:green")
    b.axhline(3, color="tab:red", ls="--", lw=1, label="aim: 3 M/s")
    for i, v in enumerate(new):
        b.annotate(
            f"{v:.2f}", (i, v), textcoords="offset points", xytext=(0, 3), ha="center", fontsize=8
        )
    b.set_xlabel("sessions in the table once full")
    b.set_ylabel("million new sessions per second")
    b.legend(fontsize=8)
    b.set_title("New sessions (SYN in, schedule, local port, insert)")
    fig.suptitle(f"dplb engine benchmark ({subtitle(data)})", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_runtime(data: dict[str, Any], out: Path) -> None:
    labels, values, colors = [], [], []
    for run in data["dplb"]:
        labels.append(f"dplb, {int(run['sessions']):,} sessions")
        values.append(run["mpps_per_worker"])
        colors.append("tab:blue")
    ring = data.get("testpmd_macswap_net_ring", {})
    null = data.get("testpmd_macswap_net_null", {})
    if ring.get("ok"):
        labels.append("testpmd macswap, net_ring")
        values.append(ring["mpps"])
        colors.append("tab:gray")
    if null.get("ok"):
        labels.append("testpmd macswap, net_null copy=1")
        values.append(null["mpps"])
        colors.append("silver")
    fig, ax = plt.subplots(figsize=(9, 3.6))
    y = list(range(len(labels)))[::-1]
    ax.barh(y, values, color=colors)
    ax.set_yticks(y, labels)
    for yi, v in zip(y, values, strict=True):
        ax.annotate(
            f"{v:.1f} Mpps", (v, yi), textcoords="offset points", xytext=(4, -3), fontsize=8
        )
    if ring.get("ok"):
        ax.axvline(
            0.4 * ring["mpps"],
            color="tab:red",
            ls="--",
            lw=1,
            label="aim: 40% of testpmd on net_ring",
        )
        ax.legend(fontsize=8, loc="lower right")
    ax.set_xlabel("Mpps, one forwarding lcore, 2 ports, 64-byte frames")
    ax.set_xlim(0, max(values) * 1.2 if values else 1)
    ax.set_title(f"dplb runtime vs dpdk-testpmd ({subtitle(data)})", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_e2e(data: dict[str, Any], out: Path) -> None:
    table = data["figures"]
    peers = list(table)
    colors = {"dplb": "tab:blue", "kernel": "tab:gray", "haproxy": "tab:orange"}
    panels = [
        ("requests_per_second", "requests/s, keep-alive", 1.0),
        ("connections_per_second", "new connections/s", 1.0),
        ("throughput_gbit_per_second", "Gbit/s, iperf3 (1 stream)", 1.0),
        ("p99_ms_short_connections", "p99 ms, short connections", 1.0),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(13, 3.6))
    for ax, (key, title, _) in zip(axes, panels, strict=True):
        values = [table[p][key] or 0.0 for p in peers]
        ax.bar(peers, values, color=[colors.get(p, "tab:green") for p in peers])
        for i, v in enumerate(values):
            text = f"{v:,.0f}" if v >= 100 else f"{v:.2f}"
            ax.annotate(
                text, (i, v), textcoords="offset points", xytext=(0, 3), ha="center", fontsize=8
            )
        ax.set_title(title, fontsize=9)
        ax.set_ylim(0, max(values) * 1.2 if values else 1)
    fig.suptitle(f"End to end through each load balancer ({subtitle(data)})", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


PLOTS = {"engine": plot_engine, "runtime": plot_runtime, "e2e": plot_e2e}


def headline(name: str, data: dict[str, Any]) -> None:
    print(f"{name}: {RESULTS / (name + '.json')} ({subtitle(data)})")
    for aim in data.get("aims", []):
        verdict = "met" if aim["met"] else f"MISSED by {aim['missed_by_fraction']:.0%}"
        print(f"  {aim['aim']}: {aim['value']:.4g} ({verdict})")


def main() -> int:
    parser = argparse.ArgumentParser(description="plots and profile notes for bench results")
    parser.add_argument("names", nargs="*", metavar="NAME", help=", ".join(PLOTS))
    args = parser.parse_args()
    unknown = [n for n in args.names if n not in PLOTS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)} (one of {', '.join(PLOTS)})")
    names = args.names or [n for n in PLOTS if (RESULTS / f"{n}.json").exists()]
    for name in names:
        path = RESULTS / f"{name}.json"
        if not path.exists():
            print(f"report: no {path}", file=sys.stderr)
            continue
        data = json.loads(path.read_text())
        annotate(name, data)
        path.write_text(json.dumps(data, indent=1) + "\n")
        PLOTS[name](data, RESULTS / f"{name}.png")
        headline(name, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
