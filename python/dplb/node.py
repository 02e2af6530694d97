"""`dplb run --config FILE`: a node. Validates the config before anything starts, takes
the node's lock, starts the DPDK runtime through the binding, gives the kernel side of
each port its addresses, prints a status line per port and worker, and stops cleanly on
SIGINT/SIGTERM."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

import dplb._core as _core
from dplb.config import ConfigError, NodeConfig, load_config
from dplb.engine import to_engine_config

LOCK_DIR = Path(os.environ.get("DPLB_RUN_DIR", "/run/dplb"))


class NodeError(RuntimeError):
    """The node cannot start: the message says why."""


def kernel_interface_name(cfg: NodeConfig, index: int) -> str:
    port = cfg.dataplane.ports[index]
    if port.kernel_interface is not None:
        return port.kernel_interface
    return f"{cfg.node.name}-{port.name}"[:15]


class NodeLock:
    """One node per name, and one node per device, on a host: a second start says who
    holds what instead of fighting over the NIC."""

    def __init__(self, cfg: NodeConfig) -> None:
        LOCK_DIR.mkdir(parents=True, exist_ok=True)
        names = [f"node-{cfg.node.name}"] + [
            "device-" + "".join(c if c.isalnum() else "_" for c in p.device)
            for p in cfg.dataplane.ports
        ]
        self._files: list[TextIO] = []
        for name in names:
            path = LOCK_DIR / f"{name}.lock"
            f = path.open("a+")
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                holder = f.read().strip() or "another process"
                f.close()
                self.release()
                what = name.replace("node-", "node ").replace("device-", "a device of ")
                raise NodeError(f"{what} is already in use by {holder} (lock {path})") from None
            f.seek(0)
            f.truncate()
            f.write(f"dplb pid {os.getpid()}\n")
            f.flush()
            self._files.append(f)

    def release(self) -> None:
        for f in self._files:
            f.close()
        self._files.clear()


def runtime_options(cfg: NodeConfig) -> Any:
    dp = cfg.dataplane
    opts = _core.RuntimeOptions()
    ports = []
    for i, port in enumerate(dp.ports):
        po = _core.PortOptions()
        po.device = port.device
        po.kernel_interface = kernel_interface_name(cfg, i)
        ports.append(po)
    opts.ports = ports
    opts.hugepages = dp.memory.hugepages
    opts.memory_mb = dp.memory.size_mb
    opts.lcores = dp.lcores or ""
    opts.idle_sleep_us = dp.idle_sleep_us
    opts.file_prefix = f"dplb-{cfg.node.name}"
    return opts


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise NodeError(f"ip {' '.join(args)}: {result.stderr.strip()}")


def configure_kernel_interfaces(cfg: NodeConfig) -> None:
    """Gives each port's kernel interface the port's addresses (connected routes only:
    the host's own routing table is not touched)."""
    for i, port in enumerate(cfg.dataplane.ports):
        name = kernel_interface_name(cfg, i)
        if not name:
            continue
        for address in port.address:
            if address.version == 6:
                _ip("-6", "addr", "replace", str(address), "dev", name, "nodad")
            else:
                _ip("addr", "replace", str(address), "dev", name)


def af_packet_interfaces(cfg: NodeConfig) -> list[str]:
    """The kernel interfaces that af_packet ports read (`iface=` of their vdev string)."""
    names = []
    for port in cfg.dataplane.ports:
        if port.device.startswith("net_af_packet"):
            for arg in port.device.split(",")[1:]:
                key, _, value = arg.partition("=")
                if key == "iface" and value:
                    names.append(value)
    return names


NFT_TABLE = "dplb_af_packet"


def _nft(script: str) -> None:
    result = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True)
    if result.returncode != 0:
        raise NodeError(f"nft: {result.stderr.strip()}")


def detach_from_kernel(interfaces: list[str]) -> None:
    """af_packet reads frames beside the kernel stack; without this the kernel would also
    answer them (twice: once itself, once through the exception path). An nftables
    netdev ingress drop comes after the packet taps, so DPDK still sees every frame and
    the stack none (tc would do the same, where the kernel has its drop action)."""
    if not interfaces:
        return
    chains = "".join(
        f"  chain {name} {{ type filter hook ingress device \"{name}\" priority 0; policy drop; }}\n"
        for name in interfaces
    )
    subprocess.run(["nft", "delete", "table", "netdev", NFT_TABLE], capture_output=True)
    _nft(f"table netdev {NFT_TABLE} {{\n{chains}}}\n")
    for name in interfaces:
        _ip("link", "set", name, "up")
        subprocess.run(["sysctl", "-q", "-w", f"net.ipv6.conf.{name}.disable_ipv6=1"], capture_output=True)


def reattach_to_kernel(interfaces: list[str]) -> None:
    if interfaces:
        subprocess.run(["nft", "delete", "table", "netdev", NFT_TABLE], capture_output=True)


class Node:
    def __init__(self, cfg: NodeConfig) -> None:
        if not getattr(_core, "with_dpdk", False):
            raise NodeError(
                "this build of dplb has no DPDK runtime (libdpdk-dev was missing at build time)"
            )
        self.cfg = cfg
        self.runtime = _core.Runtime(to_engine_config(cfg), runtime_options(cfg))
        self.started_at = 0.0

    def start(self) -> None:
        detach_from_kernel(af_packet_interfaces(self.cfg))
        try:
            self.runtime.start()
        except ValueError as exc:
            raise NodeError(str(exc)) from None
        self.started_at = time.monotonic()
        configure_kernel_interfaces(self.cfg)

    def stop(self) -> None:
        self.runtime.stop()
        reattach_to_kernel(af_packet_interfaces(self.cfg))

    def status_lines(self) -> list[str]:
        lines = []
        for p in self.runtime.ports():
            lines.append(
                f"port {p['name']}: {p['device']} mac {p['mac']} link {'up' if p['link_up'] else 'down'} "
                f"queues rx {p['rx_queues']} tx {p['tx_queues']} steering {p['steering']} "
                f"kernel {p['kernel_interface'] or '-'}"
            )
        c = self.runtime.control()
        lines.append(
            f"control: lcore {c['lcore']} arp replies {c['arp_replies']} nd replies {c['nd_replies']} "
            f"to kernel {c['to_kernel']} from kernel {c['from_kernel']} dropped {c['dropped']}"
        )
        stats = self.runtime.worker_stats()
        for w, ws in zip(self.runtime.workers(), stats, strict=True):
            drops = ", ".join(f"{k} {v}" for k, v in ws["drops"].items() if v) or "none"
            lines.append(
                f"worker {w['id']}: lcore {w['lcore']} sessions {ws['sessions']}/{ws['session_capacity']} "
                f"rx {ws['rx_packets']} tx {ws['tx_packets']} handed over {ws['handed_over']} "
                f"in {ws['handed_in']} drops: {drops}"
            )
        return lines


def run(config_path: str, out: TextIO = sys.stdout) -> int:
    try:
        cfg = load_config(config_path)
    except FileNotFoundError:
        print(f"dplb: {config_path}: no such file", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"dplb: {config_path}: {exc}", file=sys.stderr)
        return 1
    try:
        lock = NodeLock(cfg)
    except NodeError as exc:
        print(f"dplb: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()
    report = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    signal.signal(signal.SIGUSR1, lambda *_: report.set())  # print the status lines again
    node: Node | None = None
    try:
        node = Node(cfg)
        node.start()
        print(f"dplb node {cfg.node.name} (cluster {cfg.node.cluster}) running", file=out)
        for line in node.status_lines():
            print(line, file=out)
        out.flush()
        while not stop.wait(0.2):
            if report.is_set():
                report.clear()
                for line in node.status_lines():
                    print(line, file=out)
                out.flush()
        print("dplb: stopping", file=out)
        return 0
    except NodeError as exc:
        print(f"dplb: {exc}", file=sys.stderr)
        return 1
    finally:
        if node is not None:
            node.stop()
        lock.release()
