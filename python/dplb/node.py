"""`dplb run --config FILE`: a node. Validates the config before anything starts, takes
the node's lock, starts the DPDK runtime through the binding, gives the kernel side of
each port its addresses, prints a status line per port and worker, serves the management
API, /metrics and the web admin when `store.file` is set (the reconciler applies the
stored config to the running workers), and stops cleanly on SIGINT/SIGTERM.

With `--status-file PATH` the node also rewrites PATH every second with its counters as
JSON (`status_snapshot`): written to a temporary name in the same folder and renamed, so a
reader never sees half a file: how `dplb demo` and the end-to-end tests watch a node that
runs without a store."""

from __future__ import annotations

import fcntl
import json
import logging
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
from dplb.engine import logger_options, to_engine_config
from dplb.eventlog import LoggerHandler, log_event

LOCK_DIR = Path(os.environ.get("DPLB_RUN_DIR", "/run/dplb"))


class NodeError(RuntimeError):
    """The node cannot start: the message says why."""


def kernel_interface_name(cfg: NodeConfig, index: int) -> str:
    port = cfg.dataplane.ports[index]
    if port.kernel_interface is not None:
        return port.kernel_interface
    return f"{cfg.node.name}-{port.name}"[:15]


def device_identity(device: str) -> str:
    """What a device string names on this host. A PCI address is host-wide; a vdev that
    reads a kernel interface (`iface=`) names that interface in this network namespace, so
    two nodes in two namespaces may each use their own `p0`."""
    if "iface=" not in device:
        return device
    try:
        netns = os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return device
    return f"{device}@netns{netns}"


class NodeLock:
    """One node per name, and one node per device, on a host: a second start says who
    holds what instead of fighting over the NIC. The locks are flock()s on files in
    LOCK_DIR: they die with their process, so a crashed node never blocks the next one.
    A clean stop removes its files (`_lock_one` makes that safe)."""

    def __init__(self, cfg: NodeConfig) -> None:
        LOCK_DIR.mkdir(parents=True, exist_ok=True)
        self.remove_stale()
        wanted = [(f"node-{cfg.node.name}", f"node {cfg.node.name}")] + [
            (
                "device-" + "".join(c if c.isalnum() else "_" for c in device_identity(p.device)),
                f"device {p.device} (port {p.name})",
            )
            for p in cfg.dataplane.ports
        ]
        self._held: list[tuple[Path, TextIO]] = []
        for name, what in wanted:
            path = LOCK_DIR / f"{name}.lock"
            try:
                self._held.append((path, self._lock_one(path)))
            except BlockingIOError as exc:
                self.release()
                holder = str(exc.args[-1]) if exc.args else "another process"
                raise NodeError(f"{what} is already in use by {holder} (lock {path})") from None

    @staticmethod
    def _lock_one(path: Path) -> TextIO:
        busy = 0
        while True:
            f = path.open("a+")
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                holder = f.read().strip() or "another process"
                f.close()
                busy += 1
                if busy < 5:  # another start's remove_stale() holds it for a moment
                    time.sleep(0.01)
                    continue
                raise BlockingIOError(holder) from None
            # The holder before us may have removed the file between our open and our
            # lock: then we hold a lock on a name nobody else sees. Try again.
            try:
                same = os.stat(path).st_ino == os.fstat(f.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            f.close()
        f.seek(0)
        f.truncate()
        f.write(f"dplb pid {os.getpid()}\n")
        f.flush()
        return f

    @staticmethod
    def remove_stale() -> None:
        """Removes the lock files that crashed nodes left (nobody holds their lock)."""
        for path in LOCK_DIR.glob("*.lock"):
            try:
                with path.open("r") as f:  # not "a+": never recreate a removed one
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    if os.stat(path).st_ino == os.fstat(f.fileno()).st_ino:
                        path.unlink()
            except (BlockingIOError, FileNotFoundError):
                continue  # held: a running node's

    def release(self) -> None:
        for path, f in self._held:
            path.unlink(missing_ok=True)  # while still locked: see _lock_one
            f.close()
        self._held.clear()


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
    opts.latency_stats = dp.latency_stats
    opts.control_flow_steering = dp.control.flow_steering
    if dp.log.file is not None:
        # The runtime starts the logger before the lcores and stops it after them.
        opts.log = logger_options(cfg)
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
        f'  chain {name} {{ type filter hook ingress device "{name}" priority 0; policy drop; }}\n'
        for name in interfaces
    )
    subprocess.run(["nft", "delete", "table", "netdev", NFT_TABLE], capture_output=True)
    _nft(f"table netdev {NFT_TABLE} {{\n{chains}}}\n")
    for name in interfaces:
        _ip("link", "set", name, "up")
        subprocess.run(
            ["sysctl", "-q", "-w", f"net.ipv6.conf.{name}.disable_ipv6=1"], capture_output=True
        )


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
        self.runtime = _core.Runtime(
            to_engine_config(cfg, monotonic_clock=True), runtime_options(cfg)
        )
        self.started_at = 0.0

    def start(self) -> None:
        detach_from_kernel(af_packet_interfaces(self.cfg))
        try:
            self.runtime.start()
        except ValueError as exc:
            raise NodeError(str(exc)) from None
        self.started_at = time.monotonic()
        configure_kernel_interfaces(self.cfg)
        self._log_handler: LoggerHandler | None = None
        logger = self.runtime.logger
        if logger is not None:
            log_event(logger, "start", workers=self.cfg.dataplane.workers)
            # The control plane's own messages (reconciler, API) go to the same file.
            self._log_handler = LoggerHandler(logger)
            logging.getLogger("dplb").addHandler(self._log_handler)
            logging.getLogger("dplb").setLevel(logging.INFO)

    def stop(self) -> None:
        logger = self.runtime.logger if self.runtime.running else None
        if logger is not None:
            log_event(logger, "stop")
        handler = getattr(self, "_log_handler", None)
        if handler is not None:
            logging.getLogger("dplb").removeHandler(handler)
        self.runtime.stop()
        reattach_to_kernel(af_packet_interfaces(self.cfg))

    def status_snapshot(self, running: bool = True) -> dict[str, Any]:
        """The node's counters as one JSON-able dict: ports, control lcore, per worker
        (engine counters, named drop reasons, sessions, runtime counters) and per real."""
        rt = self.runtime
        workers = []
        for w, ws in zip(rt.workers(), rt.worker_stats(), strict=True):
            workers.append({**w, **ws})
        reals = [
            {
                "vip": r["vip"][0],
                "port": r["vip"][1],
                "protocol": r["protocol"],
                "real": r["real"][0],
                "real_port": r["real"][1],
                **{k: v for k, v in r.items() if k not in ("vip", "protocol", "real")},
            }
            for r in rt.real_stats()
        ]
        return {
            "node": self.cfg.node.name,
            "cluster": self.cfg.node.cluster,
            "pid": os.getpid(),
            "running": running,
            "time": time.time(),
            "uptime_s": round(time.monotonic() - self.started_at, 3),
            "ports": rt.ports(),
            "control": rt.control(),
            "workers": workers,
            "reals": reals,
        }

    def status_lines(self) -> list[str]:
        lines = []
        for p in self.runtime.ports():
            lines.append(
                f"port {p['name']}: {p['device']} mac {p['mac']} "
                f"link {'up' if p['link_up'] else 'down'} "
                f"queues rx {p['rx_queues']} tx {p['tx_queues']} steering {p['steering']} "
                f"control steering {p['control_steering']} "
                f"kernel {p['kernel_interface'] or '-'}"
            )
        c = self.runtime.control()
        lines.append(
            f"control: lcore {c['lcore']} arp replies {c['arp_replies']} "
            f"nd replies {c['nd_replies']} "
            f"to kernel {c['to_kernel']} from kernel {c['from_kernel']} held {c['held']} "
            f"(expired {c['held_expired']}) dropped {c['dropped']}"
        )
        stats = self.runtime.worker_stats()
        for w, ws in zip(self.runtime.workers(), stats, strict=True):
            drops = ", ".join(f"{k} {v}" for k, v in ws["drops"].items() if v) or "none"
            lines.append(
                f"worker {w['id']}: lcore {w['lcore']} "
                f"sessions {ws['sessions']}/{ws['session_capacity']} "
                f"rx {ws['rx_packets']} tx {ws['tx_packets']} handed over {ws['handed_over']} "
                f"in {ws['handed_in']} drops: {drops}"
            )
        return lines


def write_status_file(path: Path, status: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(status, indent=1) + "\n")
    os.replace(tmp, path)


class StatusWriter:
    """Writes the status file; a failure at start stops the start (a wrong path is a
    config error), a later one is reported once and retried (a full disk must not stop
    the data plane)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.failing = False

    def check(self) -> None:
        """Before anything starts: the folder must exist and be writable."""
        folder = self.path.parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise NodeError(f"--status-file {self.path}: {folder} is not a writable folder")

    def first(self, node: Node) -> None:
        try:
            write_status_file(self.path, node.status_snapshot())
        except OSError as exc:
            raise NodeError(f"--status-file {self.path}: {exc.strerror or exc}") from None

    def write(self, node: Node, running: bool = True) -> None:
        try:
            write_status_file(self.path, node.status_snapshot(running))
            self.failing = False
        except OSError as exc:
            if not self.failing:
                print(f"dplb: --status-file {self.path}: {exc.strerror or exc}", file=sys.stderr)
            self.failing = True


def _report_loop(
    node: Node,
    stop: threading.Event,
    report: threading.Event,
    status: StatusWriter | None,
    out: TextIO,
) -> None:
    """Status lines on SIGUSR1 and the status file each second, beside the API."""
    last_status = time.monotonic()
    while not stop.wait(0.2):
        if report.is_set():
            report.clear()
            for line in node.status_lines():
                print(line, file=out)
            out.flush()
        if status is not None and time.monotonic() - last_status >= 1.0:
            last_status = time.monotonic()
            status.write(node)


def serve_api(cfg: NodeConfig, node: Node, out: TextIO) -> None:
    """The management API and web admin over the running node, until SIGINT/SIGTERM.
    The reconciler in the app applies the store's desired config to the node."""
    from dplb.api.app import create_app
    from dplb.api.serve import make_server
    from dplb.dataplane.node import NodeDataplane

    app = create_app(cfg, NodeDataplane(node.runtime, cfg))
    server = make_server(app, cfg.api.listen)
    where = cfg.store.file or "etcd " + ",".join(cfg.store.etcd.endpoints if cfg.store.etcd else [])
    print(f"dplb: API on http://{cfg.api.listen}/api/v1 (store {where})", file=out)
    out.flush()
    server.run()


def run(config_path: str, out: TextIO = sys.stdout, status_file: str | None = None) -> int:
    try:
        cfg = load_config(config_path)
    except FileNotFoundError:
        print(f"dplb: {config_path}: no such file", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"dplb: {config_path}: {exc}", file=sys.stderr)
        return 1
    status = StatusWriter(Path(status_file)) if status_file else None
    try:
        if status is not None:
            status.check()
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
        if status is not None:
            status.first(node)
        print(f"dplb node {cfg.node.name} (cluster {cfg.node.cluster}) running", file=out)
        for line in node.status_lines():
            print(line, file=out)
        out.flush()
        reporter = threading.Thread(
            target=_report_loop,
            args=(node, stop, report, status, out),
            name="dplb-status",
            daemon=True,
        )
        reporter.start()
        if cfg.store.file is not None or cfg.store.etcd is not None:
            serve_api(cfg, node, out)  # returns on SIGINT/SIGTERM
            stop.set()
        else:
            print("dplb: no API (neither store.file nor store.etcd is set)", file=out)
            out.flush()
            stop.wait()
        reporter.join()
        print("dplb: stopping", file=out)
        out.flush()
        if status is not None:
            # The last counters, marked stopped: a reader knows the node is gone.
            status.write(node, running=False)
        return 0
    except NodeError as exc:
        print(f"dplb: {exc}", file=sys.stderr)
        return 1
    finally:
        if node is not None:
            node.stop()
        lock.release()
