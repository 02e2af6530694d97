"""`dplb demo --cluster`: two dplb nodes sharing one config in etcd, behind a router that
learns the VIP from both by BGP (BIRD on each node and on the router, kernel ECMP).
Shows the router's two next hops and the cluster view, makes a change through the second
node's API and shows both nodes apply it, then drives HTTP through the VIP with a live
line of requests per second, connections per node and the split across the reals.
Ctrl-C (or `--duration`) stops it all and removes the namespaces.

With `--sync` the nodes sync their sessions (dplb.demo.bgp_lab, `sync=True`); 200
long-lived keep-alive connections (dplb.demo.longlived) run beside the short ones, and
`--kill-after S` seconds into the traffic (default 10), once they are all open, lb1 is
killed (`kill -9` of dplb and its BIRD): the live line shows the long-lived connections
going on through lb2."""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from dplb.demo.bgp_lab import CLIENT, KEEP_ALIVE_PORT, TOKEN, VIP, VIP_PORT, BgpLab, BgpNode
from dplb.demo.lab import LabError, NamespaceProcess, python_module, remove_stale
from dplb.demo.topology import netns_exec


def preflight() -> str | None:
    for tool in ("bird", "birdc", "etcd", "etcdctl"):
        if shutil.which(tool) is None:
            return f"dplb demo --cluster needs `{tool}` (scripts/install-deps.sh installs it)"
    return None


def ctl(node: BgpNode, *args: str) -> str:
    result = netns_exec(
        node.ns, "env", f"DPLB_URL={node.api_url.removesuffix('/api/v1')}", f"DPLB_TOKEN={TOKEN}",
        sys.executable, "-m", "dplb.cli", "ctl", *args, check=False,
    )  # fmt: skip
    return result.stdout + result.stderr


def indent(text: str) -> str:
    return "".join(f"    {line}\n" for line in text.rstrip("\n").splitlines())


def show_cluster(lab: BgpLab, out: TextIO) -> None:
    lb1, lb2 = lab.nodes
    print(
        f"  client   {lab.topo.ns('client'):<18} {CLIENT}\n"
        f"  router   {lab.topo.ns('rtr'):<18} BIRD, ECMP: VIP {VIP} via "
        f"{', '.join(lab.nexthops()) or '(none yet)'}\n"
        f"  etcd     {lab.topo.ns('mgmt'):<18} one config for both nodes\n"
        + "".join(
            f"  dplb     {n.ns:<18} {n.name}: port0 {n.address} (BGP), API {n.api_url}\n"
            for n in lab.nodes
        )
        + "".join(
            f"  real     {lab.topo.ns(f'rs{i + 1}'):<18} {lab.topo.real4(i)} (HTTP :8080)\n"
            for i in range(lab.topo.reals)
        ),
        file=out,
    )
    print("  from this machine (its leg on the management network):", file=out)
    for n in lab.nodes:
        base = n.api_url.removesuffix("/api/v1")
        print(f"    {n.name}: web admin {base}/   metrics {base}/metrics", file=out)
    print(f"\n  {lb1.name}$ dplb ctl cluster status", file=out)
    print(indent(ctl(lb1, "cluster", "status")), file=out)
    real = f"/services/{VIP}/{VIP_PORT}/tcp/reals/{lab.topo.real4(2)}/8080"
    for node, action in ((lb2, "quiesce"), (lb1, "enable")):
        result = node.api("POST", f"{real}/{action}?wait=applied")
        cluster = result.get("cluster") or {}
        print(
            f"  {node.name}$ dplb ctl reals {action} {VIP}:{VIP_PORT} {lab.topo.real4(2)}:8080"
            f"  -> version {result['version']}, applied by "
            f"{', '.join(cluster.get('applied', [])) or 'nobody yet'}",
            file=out,
        )
    print(file=out)


def node_connections(node: BgpNode) -> int:
    try:
        return node.connections()
    except (OSError, ValueError, KeyError):
        return 0


def traffic(lab: BgpLab, args: argparse.Namespace, out: TextIO) -> dict[str, Any]:
    load = NamespaceProcess(
        lab.topo.ns("client"),
        python_module(
            "dplb.demo.load", "--target", f"{VIP}:{VIP_PORT}",
            "--concurrency", str(args.concurrency), "--interval", "0.5",
        ),
        lab.workdir / "load.log",
    )  # fmt: skip
    load.start()
    longlived = start_longlived(lab) if args.sync else None
    killed = False
    print(
        f"traffic: {args.concurrency} clients, one connection per request, through the router "
        + ("(Ctrl-C stops)" if not args.duration else f"for {args.duration:g} s"),
        file=out,
    )
    stop = threading.Event()
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in signals}
    deadline = time.monotonic() + args.duration if args.duration else None
    before = {"ok": 0, "time": time.time()}
    start_conns = {n.name: node_connections(n) for n in lab.nodes}
    last: dict[str, Any] = before
    started = time.monotonic()
    try:
        while not stop.wait(1.0):
            lines = [line for line in load.output().splitlines() if line.startswith("{")]
            if lines:
                last = json.loads(lines[-1])
            rate = (last["ok"] - before["ok"]) / max(1e-3, last["time"] - before["time"])
            before = last
            per_node = ", ".join(
                f"{n.name} {node_connections(n) - start_conns[n.name]}" for n in lab.nodes
            )
            long = longlived_status(lab) if longlived else None
            split = ", ".join(f"{k} {v}" for k, v in sorted(last.get("by_real", {}).items()))
            out.write(
                f"\r{rate:7.0f} req/s | connections {per_node} | {split or '-'} | "
                f"errors {last.get('errors', 0)}{longlived_text(lab, long)}   "
            )
            out.flush()
            if (
                long is not None
                and not killed
                and long["alive"] == long["connections"]  # every one open: then the kill
                and time.monotonic() - started >= args.kill_after
            ):
                killed = True
                kill_node(lab.nodes[0], out)
            if deadline is not None and time.monotonic() >= deadline:
                break
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        out.write("\n")
        load.stop(timeout=15)
        if longlived is not None:
            longlived.stop(timeout=15)
    lines = [line for line in load.output().splitlines() if line.startswith("{")]
    final = json.loads(lines[-1]) if lines else last
    final["per_node"] = {n.name: node_connections(n) - start_conns[n.name] for n in lab.nodes}
    if longlived is not None:  # its summary is the last line it printed
        ends = [line for line in longlived.output().splitlines() if line.startswith("{")]
        final["longlived"] = json.loads(ends[-1]) if ends else None
    return final


def start_longlived(lab: BgpLab) -> NamespaceProcess:
    proc = NamespaceProcess(
        lab.topo.ns("client"),
        python_module(
            "dplb.demo.longlived", "--target", f"{VIP}:{KEEP_ALIVE_PORT}",
            "--status", str(lab.workdir / "longlived.json"),
        ),
        lab.workdir / "longlived.log",
    )  # fmt: skip
    proc.start()
    return proc


def longlived_status(lab: BgpLab) -> dict[str, Any] | None:
    try:
        status: dict[str, Any] = json.loads((lab.workdir / "longlived.json").read_text())
        return status
    except (OSError, ValueError):
        return None


def longlived_text(lab: BgpLab, s: dict[str, Any] | None) -> str:
    if s is None:
        return ""
    by = ", ".join(f"{n.name} {s['by_local_address'].get(n.local, 0)}" for n in lab.nodes)
    return (
        f" | long-lived {s['alive']}/{s['connections']} alive ({by}), "
        f"errors {sum(s['errors'].values())}, longest stall {s['longest_stall_seconds']:.2f} s"
    )


def kill_node(node: BgpNode, out: TextIO) -> None:
    """`kill -9` of the node's dplb and its BIRD: the box is gone."""
    if node.proc.proc is not None:
        node.proc.proc.kill()
    node.bird.stop(signal.SIGKILL)
    out.write(f"\n{node.name} killed (kill -9 of dplb and BIRD): its connections go on via lb2\n")
    out.flush()


def run_cluster_demo(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    problem = preflight()
    if problem:
        print(f"dplb: {problem}", file=sys.stderr)
        return 1
    prefix = args.prefix
    remove_stale(prefix)
    workdir = Path(tempfile.gettempdir()) / prefix
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(mode=0o700)
    lab = BgpLab(
        prefix, workdir, cluster=True, sync=args.sync, quick_reconnect=args.sync, host_access=True
    )
    summary: dict[str, Any] = {}
    failed = False
    try:
        print(
            f"dplb demo --cluster: building the topology (namespaces {prefix}-*), etcd, the "
            "router and two nodes...",
            file=out,
        )
        out.flush()
        lab.start()
        for _ in range(100):  # BGP and BFD come up within seconds
            if len(lab.nexthops()) == len(lab.nodes):
                break
            time.sleep(0.2)
        show_cluster(lab, out)
        summary = traffic(lab, args, out)
    except KeyboardInterrupt:
        pass
    except (LabError, TimeoutError, RuntimeError, AssertionError) as exc:
        print(f"\ndplb demo: {exc}\n{lab.logs()}", file=sys.stderr)
        failed = True
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        print(
            "dplb demo: stopping traffic, nodes, BIRD and etcd; removing the namespaces", file=out
        )
        out.flush()
        codes = lab.close()
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if args.sync:
        codes = codes[1:]  # lb1 was killed on purpose
    if failed or any(c not in (0, None) for c in codes):
        print(f"dplb demo: logs in {workdir}", file=sys.stderr)
        return 1
    shutil.rmtree(workdir, ignore_errors=True)
    if summary:
        print(
            f"\n{summary['ok']} requests answered, {summary['errors']} failed\n"
            "  answered by: "
            + ", ".join(f"{k} {v}" for k, v in sorted(summary["by_real"].items()))
            + "\n  connections per node: "
            + ", ".join(f"{k} {v}" for k, v in summary["per_node"].items()),
            file=out,
        )
        if not args.sync:
            return 1 if summary["errors"] or not summary["ok"] else 0
        # A short connection in flight when lb1 died may fail; a long-lived one may not.
        long = summary.get("longlived") or {}
        print(
            f"  long-lived: {long.get('alive', 0)}/{long.get('connections', 0)} alive at the end, "
            f"errors {long.get('errors', '?')}, longest stall "
            f"{long.get('longest_stall_seconds', 0):.2f} s",
            file=out,
        )
        return 1 if long.get("errors") != {} or long.get("alive") != long.get("connections") else 0
    return 0
