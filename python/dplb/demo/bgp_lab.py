"""BGP in the namespace topology, shared by the end-to-end tests (tests/e2e/test_bgp.py)
and the failover benchmark (bench/bgp_bench.py): a router namespace running BIRD with
kernel ECMP (ops/bird/router.conf) in front of two dplb nodes, each `dplb run` with its
own BIRD (ops/bird/bird.conf) talking BGP and BFD through its client-side port's
exception path; a client behind the router; three reals behind both nodes.

  client ── router (BIRD, ECMP) ── bridge ── lb1 | lb2 (dplb + BIRD) ── bridge ── rs1..rs3

With `cluster=True` the nodes share one config in etcd (`dplb demo --cluster`): an etcd
in a management namespace, reached by each node over a management veth (its API listens
there too), instead of a store file per node.

With `sync=True` (implies `cluster=True`) the nodes sync their sessions over the
management network (one cluster key in the workdir). Their local addresses are then
routed (`routed_locals`, on by default with sync) instead of on the reals' subnet:
10.10.3.N/32, announced by the node's BIRD (and by its peer's, prepended, as a backup);
the router has a leg on the reals' bridge and the reals reach 10.10.3.0/24 through it,
so a dead node's return traffic goes to the survivor, which holds its sessions. The
router sets each laddr route's next hop to the announcing node's back address: return
traffic enters the node on the port its reals are behind, as with ARP on the bridge.

  client ── router ── bridge ── lb1 | lb2 ── bridge ── rs1..rs3
              └──── 10.10.2.254 (laddrs 10.10.3.0/24 via BGP) ──┘

BIRD daemons run with their own config, control socket and pid file (`BirdDaemon`);
everything lives in namespaces of one prefix, removed by `BgpLab.close()`."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from dplb.demo.lab import NamespaceProcess, python_module, tail, wait_until
from dplb.demo.topology import Topology, netns_exec, sh

TOKEN = "bgp-lab-admin-token-0123456789"  # each node's admin token
VIP, VIP_PORT = "10.10.100.10", 80
VIP_FRONT = "10.10.100.20"  # a service bound to the client-side port (nic: port0)
CLIENT, CLIENT_GW = "10.10.0.10", "10.10.0.1"
ROUTER_FRONT = "10.10.1.254"
NODES = ("lb1", "lb2")
DRAIN_TIMEOUT = 5.0  # bgp.drain.timeout of the nodes
MGMT_ETCD = "10.10.9.254"  # etcd on the management network (cluster=True)
MGMT_HOST = "10.10.9.200"  # the machine itself there, with host_access
ETCD_PORT = 2379
KEEP_ALIVE_PORT = 81  # sync=True: a service to the reals' HTTP/1.1 keep-alive port
REAL_KEEP_ALIVE = 8081
SYNC_PORT = 7100
ROUTER_BACK = "10.10.2.254"  # routed local addresses: the router's leg on the reals' bridge
ROUTED_LOCALS = "10.10.3.0/24"

OPS_BIRD = Path(__file__).resolve().parents[3] / "ops" / "bird"  # the repository's ops/bird/


def concrete(example: str, replacements: dict[str, str]) -> str:
    """An ops/bird/ example with its addresses replaced; each must be in the example (a
    changed example fails here, not somewhere obscure)."""
    text = (OPS_BIRD / example).read_text()
    for old, new in replacements.items():
        assert old in text, f"ops/bird/{example} no longer has {old!r}"
        text = text.replace(old, new)
    return text


class BirdDaemon:
    def __init__(self, netns: str, config: Path, folder: Path, name: str) -> None:
        self.netns = netns
        self.config = config
        self.socket = folder / f"{name}.ctl"
        self.pidfile = folder / f"{name}.pid"
        self.pid: int | None = None

    def start(self) -> None:
        self.pidfile.unlink(missing_ok=True)
        subprocess.run(
            ["ip", "netns", "exec", self.netns, "bird", "-c", str(self.config),
             "-s", str(self.socket), "-P", str(self.pidfile)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while not (self.pidfile.exists() and self.pidfile.read_text().strip()):
            if time.monotonic() > deadline:
                raise AssertionError(f"BIRD in {self.netns} wrote no pid file")
            time.sleep(0.05)
        self.pid = int(self.pidfile.read_text())

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.pid is None:
            return
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            self.pid = None
            return
        deadline = time.monotonic() + 10
        while Path(f"/proc/{self.pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.pid = None

    def ask(self, *command: str) -> str:
        result = subprocess.run(
            ["birdc", "-s", str(self.socket), *command], capture_output=True, text=True
        )
        return result.stdout

    def established(self, protocol: str) -> bool:
        return "Established" in self.ask("show", "protocols", protocol)


def kernel_nexthops(netns: str, prefix: str) -> list[str]:
    """The next hops the kernel of `netns` has for `prefix` (one per ECMP path)."""
    out = subprocess.run(
        ["ip", "-n", netns, "-j", "route", "show", prefix], capture_output=True, text=True
    ).stdout
    routes: list[dict[str, Any]] = json.loads(out or "[]")
    hops: list[str] = []
    for r in routes:
        if "nexthops" in r:
            hops += [h["gateway"] for h in r["nexthops"] if "gateway" in h]
        elif "gateway" in r:
            hops.append(r["gateway"])
    return sorted(hops)


class BgpTopology(Topology):
    """Namespaces: client, router, lb1, lb2, back (the reals' bridge), rs1..rs3; with
    `mgmt`, a management namespace whose bridge reaches each node's `m0`."""

    mgmt: bool = False
    # The nodes' local addresses are routed (10.10.3.0/24 via the router's leg on the
    # reals' bridge), not on the reals' subnet.
    routed_locals: bool = False
    # The machine itself on the management network (MGMT_HOST, a veth from the root
    # namespace): the nodes' web admin and /metrics reachable from it (the demo).
    host_access: bool = False

    def ns(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def namespaces(self) -> list[str]:
        names = ["client", "rtr", *NODES, "back"] + [f"rs{i + 1}" for i in range(self.reals)]
        return [self.ns(n) for n in names + (["mgmt"] if self.mgmt else [])]

    def mgmt_address(self, index: int) -> str:
        return f"10.10.9.{index + 1}"

    def create_mgmt(self) -> None:
        mgmt = self.ns("mgmt")
        netns_exec(mgmt, "ip", "link", "add", "brm", "type", "bridge")
        netns_exec(mgmt, "ip", "link", "set", "brm", "up")
        netns_exec(mgmt, "ip", "addr", "add", f"{MGMT_ETCD}/24", "dev", "brm")
        for i, node in enumerate(NODES):
            self._veth(self.ns(node), "m0", mgmt, f"{node}-m")
            netns_exec(mgmt, "ip", "link", "set", f"{node}-m", "master", "brm")
            netns_exec(
                self.ns(node), "ip", "addr", "add", f"{self.mgmt_address(i)}/24", "dev", "m0"
            )
        if self.host_access:  # the root end goes with the namespace's end when it is removed
            host_end = f"{self.prefix}-h"
            sh("ip", "link", "add", host_end, "type", "veth", "peer", "name", f"{self.prefix}-th")
            sh("ip", "link", "set", f"{self.prefix}-th", "netns", mgmt)
            netns_exec(mgmt, "ip", "link", "set", f"{self.prefix}-th", "name", "host-m")
            netns_exec(mgmt, "ip", "link", "set", "host-m", "master", "brm")
            netns_exec(mgmt, "ip", "link", "set", "host-m", "up")
            sh("ip", "addr", "add", f"{MGMT_HOST}/24", "dev", host_end)
            sh("ip", "link", "set", host_end, "up")

    def create(self) -> None:
        self.destroy()
        for ns in self.namespaces():
            sh("ip", "netns", "add", ns)
            netns_exec(ns, "ip", "link", "set", "lo", "up")
        rtr, back = self.ns("rtr"), self.ns("back")
        self._veth(self.ns("client"), "eth0", rtr, "c0")
        netns_exec(self.ns("client"), "ip", "addr", "add", f"{CLIENT}/24", "dev", "eth0")
        netns_exec(self.ns("client"), "ip", "route", "add", "default", "via", CLIENT_GW)
        netns_exec(rtr, "ip", "addr", "add", f"{CLIENT_GW}/24", "dev", "c0")
        for ns, bridge in ((rtr, "brf"), (back, "brb")):
            netns_exec(ns, "ip", "link", "add", bridge, "type", "bridge")
            netns_exec(ns, "ip", "link", "set", bridge, "up")
        netns_exec(rtr, "ip", "addr", "add", f"{ROUTER_FRONT}/24", "dev", "brf")
        netns_exec(rtr, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        netns_exec(rtr, "sysctl", "-q", "-w", "net.ipv4.fib_multipath_hash_policy=1")
        for node in NODES:
            self._veth(self.ns(node), "p0", rtr, f"{node}-f")
            netns_exec(rtr, "ip", "link", "set", f"{node}-f", "master", "brf")
            self._veth(self.ns(node), "p1", back, f"{node}-b")
            netns_exec(back, "ip", "link", "set", f"{node}-b", "master", "brb")
        for i in range(self.reals):
            self._veth(self.ns(f"rs{i + 1}"), "eth0", back, f"rs{i + 1}-b")
            netns_exec(back, "ip", "link", "set", f"rs{i + 1}-b", "master", "brb")
            netns_exec(
                self.ns(f"rs{i + 1}"), "ip", "addr", "add", f"{self.real4(i)}/24", "dev", "eth0"
            )
        if self.mgmt:
            self.create_mgmt()
        if self.routed_locals:
            self.create_router_back()

    def create_router_back(self) -> None:
        """The router's leg on the reals' bridge; the reals route the local addresses
        through it. No ICMP redirects: a real told to reach a laddr through its node
        directly would keep sending to that node after it died."""
        rtr, back = self.ns("rtr"), self.ns("back")
        self._veth(rtr, "b0", back, "rtr-b")
        netns_exec(back, "ip", "link", "set", "rtr-b", "master", "brb")
        netns_exec(rtr, "ip", "addr", "add", f"{ROUTER_BACK}/24", "dev", "b0")
        for conf in ("all", "default", "b0"):
            netns_exec(rtr, "sysctl", "-q", "-w", f"net.ipv4.conf.{conf}.send_redirects=0")
        for i in range(self.reals):
            rs = self.ns(f"rs{i + 1}")
            netns_exec(rs, "sysctl", "-q", "-w", "net.ipv4.conf.all.accept_redirects=0")
            netns_exec(rs, "ip", "route", "add", ROUTED_LOCALS, "via", ROUTER_BACK)


class BgpNode:
    """One dplb node (`dplb run`) and the BIRD beside it, in the node's namespace."""

    def __init__(
        self,
        topo: BgpTopology,
        index: int,
        workdir: Path,
        health_checks: bool = False,
        sync_key: Path | None = None,
    ) -> None:
        self.name = NODES[index]
        self.ns = topo.ns(self.name)
        self.address = f"10.10.1.{index + 1}"
        self.back = f"10.10.2.{index + 1}"  # port1's address
        self.local = f"10.10.3.{index + 1}" if topo.routed_locals else f"10.10.2.{101 + index}"
        self.dir = workdir / self.name
        self.dir.mkdir(parents=True, exist_ok=True)
        routes = self.dir / "dplb-routes.conf"
        routes.write_text("protocol static dplb4 { ipv4; }\nprotocol static dplb6 { ipv6; }\n")
        bird_conf = self.dir / "bird.conf"
        bird_conf.write_text(
            concrete(
                "bird.conf",
                {
                    "log syslog all;": f'log "{self.dir}/bird.log" all;',
                    "router id 10.10.1.1;": f"router id {self.address};",
                    "/etc/bird/dplb-routes.conf": str(routes),
                    '"lb1-port0"': '"k0"',
                },
            )
        )
        self.bird = BirdDaemon(self.ns, bird_conf, self.dir, "bird")
        config: dict[str, Any] = {
            "node": {"name": f"{topo.prefix}-{self.name}", "cluster": "e2e"},
            "dataplane": {
                "workers": 1,
                "sessions_per_worker": 65536,
                "memory": {"hugepages": False, "size_mb": 256},
                "ports": [
                    {
                        "name": "port0",
                        "device": "net_af_packet0,iface=p0",
                        "address": f"{self.address}/24",
                        "gateway": ROUTER_FRONT,
                        "kernel_interface": "k0",
                    },
                    {
                        "name": "port1",
                        "device": "net_af_packet1,iface=p1",
                        "address": f"{self.back}/24",
                        "local_addresses": [[self.local]],
                        "kernel_interface": "k1",
                    },
                ],
            },
            "api": {"tokens": [{"name": "e2e", "token": TOKEN, "role": "admin"}]},
            "store": {"file": str(self.dir / "store" / "desired.yaml")},
            "bgp": {
                "enabled": True,
                "asn": 65001,
                "router_id": self.address,
                "bird_config": str(bird_conf),
                "routes_file": str(routes),
                "control_socket": str(self.bird.socket),
                "poll_interval": 0.5,
                "drain": {"timeout": DRAIN_TIMEOUT},
            },
            "services": [
                {
                    "vip": vip,
                    "port": VIP_PORT,
                    "scheduler": "rr",
                    "nic": nic,
                    "reals": [{"address": topo.real4(i), "port": 8080} for i in range(topo.reals)],
                }
                for vip, nic in ((VIP, "port1"), (VIP_FRONT, "port0"))
            ],
        }
        if health_checks:  # TCP checks of each real from the node, twice a second
            for service in config["services"]:
                service["health_check"] = {"interval": 0.5, "timeout": 1.0}
        self.api_url = "http://127.0.0.1:8080/api/v1"
        if topo.mgmt:  # one config for both, in etcd; the API on the management network
            listen = f"{topo.mgmt_address(index)}:8080"
            self.api_url = f"http://{listen}/api/v1"
            config["node"]["cluster"] = "demo"
            config["api"] |= {"listen": listen, "audit_log": str(self.dir / "audit.jsonl")}
            config["store"] = {"etcd": {"endpoints": [f"{MGMT_ETCD}:{ETCD_PORT}"]}}
        if sync_key is not None:  # session sync over the management network
            assert topo.mgmt, "session sync needs the cluster's members: cluster=True"
            config["sync"] = {
                "enabled": True,
                "listen": f"{topo.mgmt_address(index)}:{SYNC_PORT}",
                "keys": [{"id": 1, "file": str(sync_key)}],
                "send_key": 1,
            }
            config["services"].append(
                {
                    "vip": VIP,
                    "port": KEEP_ALIVE_PORT,
                    "scheduler": "rr",
                    "nic": "port1",
                    "reals": [
                        {"address": topo.real4(i), "port": REAL_KEEP_ALIVE}
                        for i in range(topo.reals)
                    ],
                }
            )
        self.config = config
        config_path = self.dir / "node.yaml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.status_path = self.dir / "status.json"
        self.proc = NamespaceProcess(
            self.ns,
            python_module(
                "dplb.cli",
                "run",
                "--config",
                str(config_path),
                "--status-file",
                str(self.status_path),
            ),
            self.dir / "node.log",
        )

    def start(self) -> None:
        """The node, then its BIRD (which needs the node's kernel interface k0)."""
        self.proc.start()
        self.proc.wait_for_output(r"^dplb node .* running$", 60)
        wait_until(lambda: self.api("GET", "/health", check=False) is not None, 30, "the API")
        self.bird.start()

    def api(self, method: str, path: str, check: bool = True) -> Any:
        result = netns_exec(
            self.ns, "curl", "-sS", "--fail-with-body", "-m", "60", "-X", method,
            "-H", f"Authorization: Bearer {TOKEN}", f"{self.api_url}{path}",
            check=False,
        )  # fmt: skip
        if result.returncode != 0:
            if check:
                raise AssertionError(f"{method} {path}: {result.stderr}{result.stdout}")
            return None
        return json.loads(result.stdout)

    def connections(self, port: int = VIP_PORT) -> int:
        status = json.loads(self.status_path.read_text())
        return sum(
            r["connections"] for r in status["reals"] if r["vip"] == VIP and r["port"] == port
        )

    def client_ports(self) -> set[int]:
        """The client's source ports of this node's established sessions to the VIP."""
        # Established only: a closed connection of an earlier test may share a port.
        page = self.api("GET", f"/sessions?vip={VIP}&state=established&limit=1000")
        return {s["client_port"] for s in page["items"] if s["client"] == CLIENT}

    def log(self) -> str:
        return f"{self.name}:\n{tail(self.proc.log)}\nBIRD:\n{tail(self.dir / 'bird.log')}"


class BgpLab:
    """The topology, the reals, the router's BIRD and both nodes with theirs: `start()`
    builds and starts it all, `close()` stops it and removes the namespaces."""

    def __init__(
        self,
        prefix: str,
        workdir: Path,
        quick_reconnect: bool = False,
        cluster: bool = False,
        health_checks: bool = False,
        sync: bool = False,
        routed_locals: bool | None = None,
        host_access: bool = False,
    ) -> None:
        self.topo = BgpTopology(prefix=prefix)
        self.topo.mgmt = cluster or sync
        self.topo.host_access = host_access
        self.topo.routed_locals = sync if routed_locals is None else routed_locals
        self.workdir = workdir
        self.etcd: NamespaceProcess | None = None
        self.sync_key: Path | None = None
        if sync:  # one cluster key for both nodes, readable by dplb only
            self.sync_key = workdir / "sync.key"
            self.sync_key.touch(mode=0o600)
            self.sync_key.write_text(secrets.token_hex(32) + "\n")
        self.nodes = [
            BgpNode(self.topo, i, workdir, health_checks, self.sync_key) for i in range(len(NODES))
        ]
        replacements = {"log syslog all;": f'log "{workdir}/router-bird.log" all;'}
        if quick_reconnect:  # a benchmark that restarts nodes: BIRD waits 60 s by default
            replacements["  bfd on;\n"] = (
                "  bfd on;\n  error wait time 1, 2;\n  connect retry time 1;\n"
            )
        if self.topo.routed_locals:
            replacements |= self.routed_local_filters()
        router_conf = workdir / "router.conf"
        router_conf.write_text(concrete("router.conf", replacements))
        self.router = BirdDaemon(self.topo.ns("rtr"), router_conf, workdir, "router")
        self.servers: list[NamespaceProcess] = []

    def routed_local_filters(self) -> dict[str, str]:
        """router.conf's replacements for routed local addresses: each node's session
        imports through a filter of its own that sets a laddr route's next hop to that
        node's back address (the BGP next hop is its client-side port). The backups
        lose on their longer AS path, so a laddr has one next hop, not ECMP."""
        out: dict[str, str] = {}
        filters = []
        for node in self.nodes:
            filters.append(
                f"filter from_{node.name} {{\n"
                f"  if net ~ [ {ROUTED_LOCALS}+ ] then gw = {node.back};\n"
                "  if (65535, 0) ~ bgp_community then bgp_local_pref = 0;\n"
                "  accept;\n"
                "}\n"
            )
            line = (
                f"protocol bgp {node.name} from dplb_nodes {{ neighbor {node.address} as 65001; }}"
            )
            out[line] = (
                f"protocol bgp {node.name} from dplb_nodes {{ neighbor {node.address} as 65001;\n"
                f"  ipv4 {{ import filter from_{node.name}; }};\n}}"
            )
        out["template bgp dplb_nodes {"] = "".join(filters) + "\ntemplate bgp dplb_nodes {"
        return out

    def start(self) -> None:
        self.topo.create()
        args = ["--http", "8080", "--keep-alive", str(REAL_KEEP_ALIVE)]
        for i in range(self.topo.reals):
            server = NamespaceProcess(
                self.topo.ns(f"rs{i + 1}"),
                python_module("dplb.demo.servers", "--name", f"rs{i + 1}", *args),
                self.workdir / f"rs{i + 1}.log",
            )
            server.start()
            self.servers.append(server)
        for server in self.servers:
            server.wait_for_output(r"^ready$", 30)
        self.router.start()
        if self.topo.mgmt:
            self.start_etcd()
        for node in self.nodes:
            node.start()

    def start_etcd(self) -> None:
        url = f"http://{MGMT_ETCD}:{ETCD_PORT}"
        peer = f"http://{MGMT_ETCD}:{ETCD_PORT + 1}"
        self.etcd = NamespaceProcess(
            self.topo.ns("mgmt"),
            [
                "etcd", "--name", "mgmt", "--data-dir", str(self.workdir / "etcd"),
                "--listen-client-urls", url, "--advertise-client-urls", url,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"mgmt={peer}", "--log-level", "warn",
            ],
            self.workdir / "etcd.log",
        )  # fmt: skip
        self.etcd.start()
        wait_until(
            lambda: netns_exec(
                self.topo.ns("mgmt"), "etcdctl", "--endpoints", url, "endpoint", "health",
                check=False,
            ).returncode == 0,
            30,
            "etcd on the management network",
        )  # fmt: skip

    def close(self) -> list[int | None]:
        codes = []
        try:
            for node in self.nodes:
                codes.append(node.proc.stop(timeout=30))
                node.bird.stop()
            self.router.stop()
            for server in self.servers:
                server.stop(timeout=5)
            if self.etcd is not None:
                self.etcd.stop(timeout=10)
        finally:
            self.topo.destroy()
        return codes

    def nexthops(self, vip: str = VIP) -> list[str]:
        return kernel_nexthops(self.topo.ns("rtr"), vip)

    def router_says(self, *command: str) -> str:
        return self.router.ask(*command)

    def client(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return netns_exec(self.topo.ns("client"), *argv)

    def requests(self, count: int) -> None:
        """`count` HTTP requests, one new connection each (new source ports: spread by
        the router's L4 hash)."""
        args = [sys.executable, "-m", "dplb.demo.load", "--requests", str(count)]
        result = self.client(
            *args, "--concurrency", "4", "--interval", "5", "--target", f"{VIP}:{VIP_PORT}"
        )
        final = json.loads(result.stdout.strip().splitlines()[-1])
        assert final["errors"] == 0, final

    def logs(self) -> str:
        return "\n".join(n.log() for n in self.nodes)


@contextmanager
def running_lab(prefix: str, workdir: Path, **options: Any) -> Iterator[BgpLab]:
    """A started BgpLab (`options` as BgpLab takes them) once the router has both nodes
    as next hops for the VIP; closed (namespaces removed) on leaving."""
    lab = BgpLab(prefix, workdir, **options)
    try:
        lab.start()
        wait_until(
            lambda: lab.nexthops() == ["10.10.1.1", "10.10.1.2"] or None,
            60,
            "two next hops for the VIP at the router\n" + lab.logs(),
        )
        yield lab
    finally:
        lab.close()
