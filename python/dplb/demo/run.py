"""`dplb demo` (`make demo`): the real node in the namespace topology of DESIGN section
10, with traffic. Builds a client namespace, the node's namespace (two ports on veth
ends, DPDK's af_packet PMD) and three real servers answering HTTP with their name and
the client address they saw; starts `dplb run` there; drives HTTP over IPv4 and IPv6
from the client; shows one live line of requests per second, sessions per worker and
the split across the real servers. Ctrl-C (or `--duration`) stops traffic and node and
removes the namespaces; a run after a crash first removes what the crashed one left.

The live numbers come from two places: the load generator's own counts (requests,
errors) and the node's status file (`dplb run --status-file`, rewritten each second:
sessions, connections per real, drops)."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from dplb.demo.lab import (
    Lab,
    LabError,
    NamespaceProcess,
    is_root,
    python_module,
    remove_stale,
    totals,
)
from dplb.demo.topology import Topology

PREFIX = "dplb-demo"


def demo_config(topology: Topology, workers: int) -> dict[str, Any]:
    """rr over the three reals, on an IPv4 and an IPv6 VIP. The session table holds a
    closed connection for its TIME_WAIT (60 s), so it is sized for a minute of the
    demo's rate."""
    services = [
        {
            "vip": vip,
            "port": 80,
            "protocol": "tcp",
            "scheduler": "rr",
            "reals": [{"address": real(i), "port": 8080} for i in range(topology.reals)],
        }
        for vip, real in ((topology.vip4, topology.real4), (topology.vip6, topology.real6))
    ]
    return topology.node_config(workers, services, sessions_per_worker=262144)


def url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def last_json_line(proc: NamespaceProcess) -> dict[str, Any] | None:
    for line in reversed(proc.output().splitlines()):
        if line.startswith("{"):
            try:
                data: dict[str, Any] = json.loads(line)
                return data
            except ValueError:
                continue  # a line being written
    return None


class LiveLine:
    """One line redrawn in place on a terminal; one line per update elsewhere (logs)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self.width = 0

    def show(self, text: str) -> None:
        if self.tty:
            self.out.write("\r" + text.ljust(self.width))
            self.width = len(text)
        else:
            self.out.write(text + "\n")
        self.out.flush()

    def end(self) -> None:
        if self.tty and self.width:
            self.out.write("\n")
            self.out.flush()
        self.width = 0


def real_names(topology: Topology) -> dict[str, str]:
    names = {}
    for i in range(topology.reals):
        names[topology.real4(i)] = names[topology.real6(i)] = f"rs{i + 1}"
    return names


def connections_by_real(status: dict[str, Any], names: dict[str, str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in status["reals"]:
        name = names.get(r["real"], r["real"])
        out[name] = out.get(name, 0) + r["connections"]
    return out


def split_text(now: dict[str, int], before: dict[str, int]) -> str:
    delta = {name: now[name] - before.get(name, 0) for name in sorted(now)}
    total = sum(delta.values())
    if total <= 0:
        return " ".join(f"{name} -" for name in delta)
    return " ".join(f"{name} {100 * n / total:3.0f}%" for name, n in delta.items())


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP stop the demo the way Ctrl-C does."""

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def preflight() -> str | None:
    if not is_root():
        return "dplb demo needs root: it creates network namespaces and runs DPDK"
    import dplb._core as core

    if not getattr(core, "with_dpdk", False):
        return "this build of dplb has no DPDK runtime (run `make demo`: it installs libdpdk-dev)"
    for tool in ("ip", "nft", "ethtool", "curl"):
        if shutil.which(tool) is None:
            return f"dplb demo needs `{tool}` (scripts/install-deps.sh installs it)"
    return None


def show_topology(lab: Lab, out: TextIO) -> None:
    t = lab.topology
    status = lab.node.status()
    ports = {p["name"]: p for p in status["ports"]}
    workers = lab.config["dataplane"]["workers"]
    print(
        f"  client   {t.client_ns:<18} {t.client4}, {t.client6}\n"
        f"  dplb     {t.node_ns:<18} {workers} workers, software steering\n"
        f"           port0 {ports['port0']['mac'].lower()} {t.port0_4}, {t.port0_6}"
        f"  VIPs {t.vip4}:80, [{t.vip6}]:80 (rr)\n"
        f"           port1 {ports['port1']['mac'].lower()} {t.port1_4}, {t.port1_6}"
        f"  local addresses {', '.join(t.local4(w) for w in range(workers))}, ...\n"
        + "".join(
            f"  real     {t.real_ns(i):<18} {t.real4(i)}, {t.real6(i)} (HTTP :8080)\n"
            for i in range(t.reals)
        ),
        file=out,
    )


def first_requests(lab: Lab, out: TextIO) -> None:
    """One request per VIP, shown whole: the real server names itself and the address it
    saw (one of dplb's local addresses: full-NAT)."""
    for vip in (lab.topology.vip4, lab.topology.vip6):
        url = f"http://{url_host(vip)}/"
        result = lab.client("curl", "-sS", "-m", "10", url, check=False)
        answer = result.stdout.strip() or result.stderr.strip()
        print(f"  client$ curl {url}\n  {answer}", file=out)
    print(file=out)


def run_demo(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    problem = preflight()
    if problem:
        print(f"dplb: {problem}", file=sys.stderr)
        return 1
    prefix = args.prefix
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,11}", prefix):
        print(
            "dplb: --prefix: 1 to 12 of a-z, 0-9 and '-' (interface names are short)",
            file=sys.stderr,
        )
        return 2
    # One place, like the one prefix: a run after a crash clears what the crashed one left.
    remove_stale(prefix)
    workdir = Path(tempfile.gettempdir()) / prefix
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(mode=0o700)
    lab = Lab(prefix, workdir, config=lambda t: demo_config(t, args.workers))
    names = real_names(lab.topology)
    keep_workdir = False
    summary: dict[str, Any] = {}
    with stop_on_signals():
        try:
            print(
                f"dplb demo: building the topology (namespaces {prefix}-*) and starting "
                "the node...",
                file=out,
            )
            out.flush()
            lab.start()
            show_topology(lab, out)
            first_requests(lab, out)
            summary = traffic(lab, args, names, out)
        except KeyboardInterrupt:
            pass
        except (LabError, TimeoutError, RuntimeError) as exc:
            print(f"\ndplb demo: {exc}", file=sys.stderr)
            keep_workdir = True
        finally:
            # A second Ctrl-C must not leave half the lab behind.
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, signal.SIG_IGN)
            print("dplb demo: stopping traffic and node, removing the namespaces", file=out)
            out.flush()
            started = lab.node.proc is not None
            code = lab.close()
            signal.signal(signal.SIGINT, signal.default_int_handler)
            if (started and code != 0) or keep_workdir:
                if started and code != 0:
                    why = "had to be killed" if code is None else f"exited {code}"
                    print(f"dplb demo: the node {why}", file=sys.stderr)
                print(f"dplb demo: logs in {workdir}", file=sys.stderr)
                keep_workdir = True
            else:
                shutil.rmtree(workdir, ignore_errors=True)
    if keep_workdir:
        return 1
    if summary:
        print_summary(summary, names, out)
        if summary["load"]["errors"] or not summary["load"]["ok"]:
            return 1
    return 0


def traffic(
    lab: Lab, args: argparse.Namespace, names: dict[str, str], out: TextIO
) -> dict[str, Any]:
    t = lab.topology
    load = lab.spawn(
        t.client_ns,
        python_module(
            "dplb.demo.load",
            "--target",
            f"{t.vip4}:80",
            "--target",
            f"[{t.vip6}]:80",
            "--concurrency",
            str(args.concurrency),
            "--interval",
            "0.5",
        ),
        "load",
    )
    print(
        f"traffic: {args.concurrency} clients, one connection per request, IPv4 and IPv6 "
        + ("(Ctrl-C stops)" if not args.duration else f"for {args.duration:g} s"),
        file=out,
    )
    live = LiveLine(out)
    deadline = time.monotonic() + args.duration if args.duration else None
    before_load = {"ok": 0, "errors": 0, "time": time.time()}
    before_conn = connections_by_real(lab.node.status(), names)
    status_time = 0.0
    # Ctrl-C (or SIGTERM, SIGHUP) ends the traffic; the summary follows, then cleanup.
    stop = threading.Event()
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in signals}
    try:
        split = ""
        while not stop.wait(1.0):
            if not lab.node.running():
                raise LabError("the node stopped:\n" + lab.node.output()[-2000:])
            snap = last_json_line(load) or before_load
            elapsed = max(1e-3, snap["time"] - before_load["time"])
            rate = (snap["ok"] - before_load["ok"]) / elapsed
            status = lab.node.status()
            if status["time"] != status_time:  # the node rewrites it each second
                conns = connections_by_real(status, names)
                split = split_text(conns, before_conn)
                before_conn, status_time = conns, status["time"]
            sessions = [w["sessions"] for w in status["workers"]]
            drops = sum(totals(status)["drops"].values())
            live.show(
                f"{rate:7.0f} req/s | sessions {sum(sessions)} "
                f"({', '.join(f'w{i} {n}' for i, n in enumerate(sessions))}) | "
                f"{split} | errors {snap['errors']} | drops {drops}"
            )
            before_load = snap
            if deadline is not None and time.monotonic() >= deadline:
                break
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        live.end()
        load.stop(timeout=15)
    final = last_json_line(load) or before_load
    return {"load": final, "status": lab.node.fresh_status()}


def print_summary(summary: dict[str, Any], names: dict[str, str], out: TextIO) -> None:
    load, status = summary["load"], summary["status"]
    print(
        f"\n{load['ok']} requests answered, {load['errors']} failed"
        + (f" ({load['error_kinds']})" if load["errors"] else ""),
        file=out,
    )
    print(
        "  answered by: " + ", ".join(f"{n} {c}" for n, c in load.get("by_real", {}).items()),
        file=out,
    )
    for w in status["workers"]:
        print(
            f"  worker {w['id']}: {w['sessions_created']} sessions created, "
            f"handed over {w['handed_over']}, handed in {w['handed_in']}",
            file=out,
        )
    drops = {k: v for k, v in totals(status)["drops"].items() if v}
    print(f"  drops: {drops or 'none'}", file=out)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--prefix",
        default=PREFIX,
        help=f"names of the namespaces: PREFIX-client, PREFIX-lb, ... (default {PREFIX})",
    )
    parser.add_argument(
        "--duration", type=float, default=0, help="seconds of traffic, then stop (default: Ctrl-C)"
    )
    parser.add_argument("--workers", type=int, default=2, help="node workers (default 2)")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads (default 8)")
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="two nodes sharing one config in etcd, behind a BGP router (BIRD, ECMP)",
    )
    parser.add_argument(
        "--sync",
        action="store_true",
        help="with --cluster: session sync, 200 long-lived connections, and lb1 killed",
    )
    parser.add_argument(
        "--kill-after",
        type=float,
        default=10.0,
        help="with --sync: seconds of traffic before lb1 is killed (default 10)",
    )
    parser.add_argument(
        "--harness",
        action="store_true",
        help="no namespaces, no DPDK: one connection and 1,000 clients through the engine harness",
    )


def main(args: argparse.Namespace) -> int:
    if args.harness:
        from dplb.harness_demo import main as harness_main

        return harness_main()
    if args.cluster or args.sync:
        problem = preflight()
        if problem:
            print(f"dplb: {problem}", file=sys.stderr)
            return 1
        from dplb.demo.cluster_demo import run_cluster_demo

        return run_cluster_demo(args)
    return run_demo(args)
