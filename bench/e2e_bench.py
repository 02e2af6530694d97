"""End-to-end benchmark: dplb beside its peers on the namespace topology of DESIGN
section 10, same clients, same real servers, same run.

    client ns ── veth ── LB ns [p0 | p1] ── veth ── bridge ── rs1, rs2, rs3 ns

The load balancer namespace takes, one after the other:
  dplb     the node (`dplb run`), its ports on DPDK's net_af_xdp PMD (af_packet with
           --pmd net_af_packet), one worker, full-NAT
  kernel   Linux full-NAT: nftables DNAT (numgen round robin over the reals) + masquerade
           (fully-random ports) on the real servers' side, addresses on p0/p1, forwarding on
  haproxy  HAProxy in TCP mode (Debian's package, default thread count), the VIP on lo
Real servers: nginx (one worker each, a 4-byte answer) on port 8080 and iperf3 -s on 5201.
Client: wrk and iperf3. For each load balancer:
  keep-alive   wrk, 32 connections, 10 s: requests per second, p50/p99 latency
  short        wrk with `Connection: close`, 32 connections, 10 s: one connection per
               request, so requests per second = new connections per second
  bulk         iperf3, one TCP stream, 10 s, to rs1:5201 through VIP:5201
  idle latency wrk, 1 connection, 5 s: p50/p99 of a load balancer that is not busy
Traffic stays inside namespaces this script creates; everything is removed at the end,
also after a failure. Needs root. Not a test: nothing asserts.

Run: .venv/bin/python bench/e2e_bench.py [--seconds 10] [--only dplb,kernel,haproxy]
Prints a table and writes bench/results/e2e.json."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dplb import __version__
from dplb.demo.lab import NamespaceProcess, NodeProcess, wait_until
from dplb.demo.topology import Topology, netns_exec

PREFIX = "dplbb"
HTTP_PORT = 80
REAL_PORT = 8080
BULK_PORT = 5201
CONNECTIONS = 32
# Local addresses of the dplb worker: each lends 64,512 ports toward each real, busy 60 s
# after a close by the real (dataplane.local_ports.real_time_wait, its TIME_WAIT): sized
# to new connections per second toward one real x 60 s / 64,512 (README, "Local ports").
LOCAL_ADDRESSES = 16

AIMS = {
    "connections_per_second_vs_kernel": 1.0,
    "throughput_vs_kernel": 1.0,
    "connections_per_second_vs_haproxy": 2.0,
}


def log(text: str) -> None:
    print(text, flush=True)


def load_average() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def version_of(*argv: str) -> str:
    try:
        result = subprocess.run(list(argv), capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "missing"
    text = (result.stdout + result.stderr).strip().splitlines()
    return text[0].strip() if text else "unknown"


# -- the real servers -----------------------------------------------------------------


NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {workdir}/{name}-nginx.pid;
error_log {workdir}/{name}-nginx-error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path {workdir}/{name}-body;
  proxy_temp_path {workdir}/{name}-proxy;
  fastcgi_temp_path {workdir}/{name}-fastcgi;
  uwsgi_temp_path {workdir}/{name}-uwsgi;
  scgi_temp_path {workdir}/{name}-scgi;
  server {{
    listen {port} backlog=8192;
    location / {{ return 200 "{name}\\n"; }}
  }}
}}
"""


class Reals:
    """nginx and iperf3 -s in every real-server namespace."""

    def __init__(self, topology: Topology, workdir: Path) -> None:
        self.topology = topology
        self.workdir = workdir
        self.procs: list[NamespaceProcess] = []

    def start(self) -> None:
        for i in range(self.topology.reals):
            ns, name = self.topology.real_ns(i), f"rs{i + 1}"
            conf = self.workdir / f"{name}-nginx.conf"
            conf.write_text(NGINX_CONF.format(workdir=self.workdir, name=name, port=REAL_PORT))
            nginx = NamespaceProcess(
                ns,
                ["nginx", "-c", str(conf), "-e", str(self.workdir / f"{name}-nginx-error.log")],
                self.workdir / f"{name}-nginx.log",
            )
            iperf = NamespaceProcess(
                ns, ["iperf3", "-s", "-p", str(BULK_PORT)], self.workdir / f"{name}-iperf3.log"
            )
            for proc in (nginx, iperf):
                proc.start()
                self.procs.append(proc)
        for i in range(self.topology.reals):
            ns = self.topology.real_ns(i)
            wait_until(
                lambda ns=ns: (
                    netns_exec(
                        ns, "curl", "-s", "-m", "1", f"http://127.0.0.1:{REAL_PORT}/", check=False
                    ).returncode
                    == 0
                ),
                20,
                f"nginx in {ns}",
            )

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop(timeout=5, sig=signal.SIGKILL)


# -- the load balancers -------------------------------------------------------------------


class Peer:
    name = ""
    description = ""

    def __init__(self, topology: Topology, workdir: Path) -> None:
        self.topology = topology
        self.workdir = workdir
        self.lb = topology.node_ns

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def info(self) -> dict[str, Any]:
        return {}

    # The kernel side of the LB namespace, as addresses and forwarding need it.
    def kernel_addresses(self, on: bool) -> None:
        t = self.topology
        for dev, address in (("p0", f"{t.port0_4}/24"), ("p1", f"{t.port1_4}/24")):
            verb = "add" if on else "del"
            netns_exec(self.lb, "ip", "addr", verb, address, "dev", dev, check=False)

    def reset(self) -> None:
        """What any peer may have left in the LB namespace, gone."""
        t = self.topology
        self.kernel_addresses(False)
        netns_exec(self.lb, "ip", "addr", "del", f"{t.vip4}/32", "dev", "lo", check=False)
        netns_exec(self.lb, "nft", "flush", "ruleset", check=False)
        netns_exec(self.lb, "sysctl", "-q", "-w", "net.ipv4.ip_forward=0", check=False)
        for dev in ("p0", "p1"):
            netns_exec(self.lb, "ip", "link", "set", "dev", dev, "xdp", "off", check=False)
            netns_exec(self.lb, "ip", "link", "set", "dev", dev, "up", check=False)
        for ns in (t.client_ns, *(t.real_ns(i) for i in range(t.reals))):
            netns_exec(ns, "ip", "neigh", "flush", "all", check=False)


class DplbPeer(Peer):
    name = "dplb"

    def __init__(self, topology: Topology, workdir: Path, pmd: str, idle_sleep_us: int) -> None:
        super().__init__(topology, workdir)
        self.pmd = pmd
        self.idle_sleep_us = idle_sleep_us
        self.description = (
            f"dplb node, ports on {pmd}, 1 worker, idle_sleep_us {idle_sleep_us}, "
            f"{LOCAL_ADDRESSES} local addresses"
        )
        t = topology
        services = [
            {
                "vip": t.vip4,
                "port": HTTP_PORT,
                "protocol": "tcp",
                "scheduler": "rr",
                "reals": [{"address": t.real4(i), "port": REAL_PORT} for i in range(t.reals)],
            },
            {
                "vip": t.vip4,
                "port": BULK_PORT,
                "protocol": "tcp",
                "scheduler": "rr",
                "reals": [{"address": t.real4(0), "port": BULK_PORT}],
            },
        ]
        config = t.node_config(
            workers=1,
            services=services,
            pmd=pmd,
            sessions_per_worker=2_000_000,
            idle_sleep_us=idle_sleep_us,
        )
        config["dataplane"]["ports"][1]["local_addresses"] = [
            [f"10.10.2.{101 + k}" for k in range(LOCAL_ADDRESSES)]
        ]
        self.node = NodeProcess(topology, config, workdir)
        self.rss_bytes = 0

    def start(self) -> None:
        self.reset()
        self.node.start()
        self.node.wait_running()

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            status = self.node.status()
            self.last_status = status
        self.rss_bytes = rss_of(self.node.pid) if self.node.running() else 0
        self.node.stop(timeout=30)

    def snapshot_rss(self) -> None:
        if self.node.running():
            self.rss_bytes = max(self.rss_bytes, rss_of(self.node.pid))

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "config": self.node.config["dataplane"],
            "node_rss_bytes": self.rss_bytes,
        }
        status = getattr(self, "last_status", None)
        if status is not None:
            drops: dict[str, int] = {}
            for w in status["workers"]:
                for reason, n in w.get("drops", {}).items():
                    drops[reason] = drops.get(reason, 0) + n
            out["drops"] = {k: v for k, v in drops.items() if v}
            out["sessions_created"] = sum(w.get("sessions_created", 0) for w in status["workers"])
            out["tx_dropped"] = sum(w.get("tx_dropped", 0) for w in status["workers"])
        return out


class KernelPeer(Peer):
    name = "kernel"
    description = "Linux full-NAT: nftables DNAT (numgen inc round robin) + masquerade fully-random"

    def start(self) -> None:
        self.reset()
        t = self.topology
        self.kernel_addresses(True)
        netns_exec(self.lb, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        reals = ", ".join(f"{i} : {t.real4(i)}" for i in range(t.reals))
        ruleset = f"""
table ip dplb_bench {{
  chain pre {{
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr {t.vip4} tcp dport {HTTP_PORT} \\
      dnat to numgen inc mod {t.reals} map {{ {reals} }} : {REAL_PORT}
    ip daddr {t.vip4} tcp dport {BULK_PORT} dnat to {t.real4(0)}:{BULK_PORT}
  }}
  chain post {{
    type nat hook postrouting priority srcnat; policy accept;
    oifname "p1" masquerade fully-random
  }}
}}
"""
        (self.workdir / "kernel-nat.nft").write_text(ruleset)
        netns_exec(self.lb, "nft", "-f", str(self.workdir / "kernel-nat.nft"))

    def stop(self) -> None:
        self.reset()

    def info(self) -> dict[str, Any]:
        return {"ruleset": (self.workdir / "kernel-nat.nft").read_text()}


HAPROXY_CONF = """\
global
  maxconn 8000
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend http
  bind {vip}:{http_port}
  default_backend reals
backend reals
  balance roundrobin
{servers}
frontend bulk
  bind {vip}:{bulk_port}
  default_backend bulk
backend bulk
  server rs1 {rs1}:{bulk_port}
"""


class HaproxyPeer(Peer):
    name = "haproxy"
    description = "HAProxy in TCP mode (roundrobin), default thread count, the VIP on lo"

    def __init__(self, topology: Topology, workdir: Path) -> None:
        super().__init__(topology, workdir)
        self.proc: NamespaceProcess | None = None

    def start(self) -> None:
        self.reset()
        t = self.topology
        self.kernel_addresses(True)
        netns_exec(self.lb, "ip", "addr", "add", f"{t.vip4}/32", "dev", "lo")
        servers = "\n".join(f"  server rs{i + 1} {t.real4(i)}:{REAL_PORT}" for i in range(t.reals))
        conf = self.workdir / "haproxy.cfg"
        conf.write_text(
            HAPROXY_CONF.format(
                vip=t.vip4,
                http_port=HTTP_PORT,
                bulk_port=BULK_PORT,
                servers=servers,
                rs1=t.real4(0),
            )
        )
        self.proc = NamespaceProcess(
            self.lb, ["haproxy", "-db", "-f", str(conf)], self.workdir / "haproxy.log"
        )
        self.proc.start()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(timeout=10)
        self.reset()

    def info(self) -> dict[str, Any]:
        return {"config": (self.workdir / "haproxy.cfg").read_text()}


def rss_of(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


# -- the client side -----------------------------------------------------------------------

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def parse_duration_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * UNITS[match.group(2)]


def parse_wrk(output: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if rps is None:
        raise RuntimeError(f"wrk printed no rate:\n{output}")
    out["requests_per_second"] = float(rps.group(1))
    total = re.search(r"(\d+) requests in ([\d.]+)(\w+),", output)
    if total:
        out["requests"] = int(total.group(1))
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", output, re.MULTILINE)
        if m:
            out[f"p{pct}_ms"] = parse_duration_ms(m.group(1))
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    out["socket_errors"] = (
        dict(zip(("connect", "read", "write", "timeout"), map(int, errors.groups()), strict=True))
        if errors
        else {}
    )
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    out["bad_responses"] = int(bad.group(1)) if bad else 0
    return out


class Client:
    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.url = f"http://{topology.vip4}:{HTTP_PORT}/"

    def run(self, *argv: str, timeout: float) -> str:
        result = subprocess.run(
            ["ip", "netns", "exec", self.topology.client_ns, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({result.returncode}): {result.stderr.strip()}")
        return result.stdout

    def wait_ready(self) -> None:
        """Every real answers through the VIP (the load balancer resolved its neighbours)."""
        seen: set[str] = set()

        def all_reals() -> bool:
            result = netns_exec(
                self.topology.client_ns, "curl", "-s", "-m", "2", self.url, check=False
            )
            if result.returncode == 0:
                seen.add(result.stdout.strip())
            return len(seen) >= self.topology.reals

        wait_until(all_reals, 30, "answers from every real through the VIP")

    def wrk(self, connections: int, seconds: float, close: bool) -> dict[str, Any]:
        argv = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds:g}s", "--latency"]
        if close:
            argv += ["-H", "Connection: close"]
        output = self.run(*argv, self.url, timeout=seconds + 60)
        return parse_wrk(output)

    def iperf3(self, seconds: float) -> dict[str, Any]:
        output = self.run(
            "iperf3",
            "-c",
            self.topology.vip4,
            "-p",
            str(BULK_PORT),
            "-t",
            f"{seconds:g}",
            "-J",
            timeout=seconds + 60,
        )
        data = json.loads(output)
        end = data["end"]
        return {
            "bits_per_second": end["sum_received"]["bits_per_second"],
            "retransmits": end["sum_sent"].get("retransmits", 0),
        }


CLIENT_COUNTERS = ("TcpExtTCPSynRetrans", "TcpExtTCPTimeouts")
REAL_COUNTERS = ("TcpExtPAWSTimewait", "TcpExtListenOverflows", "TcpExtListenDrops")


def tcp_counters(topology: Topology) -> dict[str, int]:
    """TCP counters that explain a slow connect: the client's SYN retransmissions, and the
    real servers' refusals (a SYN that met a TIME_WAIT socket and failed PAWS, a full
    accept queue), summed over the real servers."""

    def read(ns: str, names: tuple[str, ...]) -> dict[str, int]:
        out = netns_exec(ns, "nstat", "-asz", *names, check=False).stdout
        values = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] in names:
                values[parts[0]] = int(parts[1])
        return values

    totals = {f"client_{k}": v for k, v in read(topology.client_ns, CLIENT_COUNTERS).items()}
    for i in range(topology.reals):
        for k, v in read(topology.real_ns(i), REAL_COUNTERS).items():
            totals[f"reals_{k}"] = totals.get(f"reals_{k}", 0) + v
    return totals


def attempt(what: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """One measurement; a failure is recorded (and the next one still runs)."""
    try:
        return what()
    except (RuntimeError, subprocess.TimeoutExpired, ValueError, KeyError) as exc:
        log(f"   failed: {exc}")
        return {"error": str(exc)}


def measure(peer: Peer, client: Client, seconds: float) -> dict[str, Any]:
    log(f"== {peer.name}: {peer.description}")
    started = time.time()
    peer.start()
    try:
        client.wait_ready()
        # A short warm-up: caches, ARP, the first connections.
        client.wrk(4, 1, close=False)
        out: dict[str, Any] = {"load_average_start": load_average()}
        out["keep_alive"] = attempt(lambda: client.wrk(CONNECTIONS, seconds, close=False))
        log(
            f"   keep-alive: {out['keep_alive'].get('requests_per_second', 0):.0f} req/s, "
            f"p99 {out['keep_alive'].get('p99_ms', 0):.2f} ms"
        )
        if isinstance(peer, DplbPeer):
            peer.snapshot_rss()
        before = tcp_counters(client.topology)
        out["short_connections"] = attempt(lambda: client.wrk(CONNECTIONS, seconds, close=True))
        after = tcp_counters(client.topology)
        out["short_connections"]["tcp_counters"] = {
            k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)
        }
        log(
            f"   short connections: "
            f"{out['short_connections'].get('requests_per_second', 0):.0f} conn/s, "
            f"p99 {out['short_connections'].get('p99_ms', 0):.2f} ms, "
            f"TCP {out['short_connections']['tcp_counters'] or 'no retransmissions'}"
        )
        out["bulk"] = attempt(lambda: client.iperf3(seconds))
        log(f"   bulk: {out['bulk'].get('bits_per_second', 0) / 1e9:.2f} Gbit/s")
        idle_seconds = max(3.0, seconds / 2)
        out["idle_latency"] = attempt(lambda: client.wrk(1, idle_seconds, close=False))
        log(
            f"   idle latency: p50 {out['idle_latency'].get('p50_ms', 0):.3f} ms, "
            f"p99 {out['idle_latency'].get('p99_ms', 0):.3f} ms"
        )
        if isinstance(peer, DplbPeer):
            peer.snapshot_rss()
        out["load_average_end"] = load_average()
    finally:
        peer.stop()
    out["description"] = peer.description
    out.update(peer.info())
    out["seconds_taken"] = round(time.time() - started, 1)
    return out


def headline(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The figures side by side, ratios of dplb to each peer, and the aims."""

    def figures(r: dict[str, Any]) -> dict[str, float | None]:
        bps = r["bulk"].get("bits_per_second")
        return {
            "requests_per_second": r["keep_alive"].get("requests_per_second"),
            "connections_per_second": r["short_connections"].get("requests_per_second"),
            "throughput_gbit_per_second": bps / 1e9 if bps is not None else None,
            "p99_ms_keep_alive": r["keep_alive"].get("p99_ms"),
            "p99_ms_short_connections": r["short_connections"].get("p99_ms"),
            "p99_ms_idle": r["idle_latency"].get("p99_ms"),
        }

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    table = {name: figures(r) for name, r in results.items()}
    out: dict[str, Any] = {"figures": table, "ratios": {}, "aims": []}
    if "dplb" not in table:
        return out
    d = table["dplb"]
    for peer in ("kernel", "haproxy"):
        if peer not in table:
            continue
        p = table[peer]
        out["ratios"][f"dplb_over_{peer}"] = {key: ratio(d[key], p[key]) for key in d}
    checks: list[tuple[str, str, float]] = [
        ("kernel", "connections_per_second", AIMS["connections_per_second_vs_kernel"]),
        ("kernel", "throughput_gbit_per_second", AIMS["throughput_vs_kernel"]),
        ("haproxy", "connections_per_second", AIMS["connections_per_second_vs_haproxy"]),
    ]
    for peer, key, at_least in checks:
        value = ratio(d[key], table[peer][key]) if peer in table else None
        if value is None:
            continue
        met = value >= at_least
        out["aims"].append(
            {
                "aim": f"dplb {key} over {peer}",
                "at_least": at_least,
                "value": value,
                "met": met,
                "missed_by_fraction": 0.0 if met else (at_least - value) / at_least,
            }
        )
    return out


def print_table(summary: dict[str, Any]) -> None:
    table = summary["figures"]
    names = list(table)
    rows: list[tuple[str, str, Callable[[float], str]]] = [
        ("requests/s (keep-alive)", "requests_per_second", lambda v: f"{v:,.0f}"),
        ("connections/s (short)", "connections_per_second", lambda v: f"{v:,.0f}"),
        ("throughput Gbit/s (iperf3)", "throughput_gbit_per_second", lambda v: f"{v:.2f}"),
        ("p99 ms (keep-alive, 32 conns)", "p99_ms_keep_alive", lambda v: f"{v:.2f}"),
        ("p99 ms (short, 32 conns)", "p99_ms_short_connections", lambda v: f"{v:.2f}"),
        ("p99 ms (1 connection)", "p99_ms_idle", lambda v: f"{v:.3f}"),
    ]
    ratio_names = list(summary["ratios"])
    print()
    header = f"{'':32}" + "".join(f"{n:>12}" for n in names)
    header += "".join(f"{r.replace('dplb_over_', 'dplb/'):>14}" for r in ratio_names)
    print(header)
    for label, key, fmt in rows:
        line = f"{label:32}" + "".join(
            f"{(fmt(table[n][key]) if table[n][key] is not None else 'failed'):>12}" for n in names
        )
        for r in ratio_names:
            v = summary["ratios"][r].get(key)
            line += f"{(f'{v:.2f}x' if v is not None else '-'):>14}"
        print(line)
    if summary["aims"]:
        print("\naims (issue 7):")
        for a in summary["aims"]:
            verdict = "met" if a["met"] else f"MISSED by {a['missed_by_fraction']:.0%}"
            print(f"  {a['aim']:<50} >= {a['at_least']:.1f}x: {a['value']:.2f}x {verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--only", default="dplb,kernel,haproxy")
    parser.add_argument("--pmd", default="net_af_xdp", choices=["net_af_xdp", "net_af_packet"])
    parser.add_argument("--idle-sleep-us", type=int, default=50)
    parser.add_argument("--json", default="bench/results/e2e.json")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("e2e_bench: needs root (network namespaces, DPDK)", file=sys.stderr)
        return 2
    for tool in ("wrk", "iperf3", "nginx", "haproxy", "nft"):
        if shutil.which(tool) is None:
            print(f"e2e_bench: {tool} is missing (make bench-deps)", file=sys.stderr)
            return 2

    topology = Topology(prefix=PREFIX)
    workdir = Path(tempfile.mkdtemp(prefix="dplb-e2e-bench-"))
    results: dict[str, dict[str, Any]] = {}
    load_start = load_average()
    reals = Reals(topology, workdir)
    try:
        topology.create()
        reals.start()
        client = Client(topology)
        peers: dict[str, Callable[[], Peer]] = {
            "dplb": lambda: DplbPeer(topology, workdir, args.pmd, args.idle_sleep_us),
            "kernel": lambda: KernelPeer(topology, workdir),
            "haproxy": lambda: HaproxyPeer(topology, workdir),
        }
        for name in args.only.split(","):
            results[name] = measure(peers[name](), client, args.seconds)
    except BaseException:
        log(f"e2e_bench: failed; logs in {workdir}")
        raise
    finally:
        reals.stop()
        topology.destroy()
    summary = headline(results)
    print_table(summary)
    report = {
        "benchmark": "e2e",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "kernel": platform.release(),
            "virtual_machine": "hypervisor" in Path("/proc/cpuinfo").read_text(),
        },
        "versions": {
            "dplb": __version__,
            "wrk": version_of("wrk", "--version"),
            "iperf3": version_of("iperf3", "--version"),
            "nginx": version_of("nginx", "-v"),
            "haproxy": version_of("haproxy", "-v"),
            "nftables": version_of("nft", "--version"),
        },
        "load_average_start": load_start,
        "load_average_end": load_average(),
        "parameters": {
            "seconds": args.seconds,
            "connections": CONNECTIONS,
            "wrk_threads": 1,
            "reals": topology.reals,
            "real_server": "nginx, 1 worker, `return 200` of 4 bytes, keep-alive",
            "bulk": "iperf3, 1 TCP stream, to rs1 through the VIP",
            "veth": "checksum, TSO, GSO and GRO offloads off on every veth (as a real wire)",
            "pmd": args.pmd,
        },
        "peers": results,
        **summary,
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    shutil.rmtree(workdir, ignore_errors=True)
    print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
