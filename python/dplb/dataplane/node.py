"""`NodeDataplane`: the running DPDK node as a `Dataplane`, so the reconciler and the
management API drive the real node exactly as they drive the harness in tests."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dplb._core as _core
from dplb.config import NodeConfig
from dplb.dataplane.models import (
    DataplaneStatus,
    EngineStats,
    LivenessTracker,
    LocalAddress,
    PortStatus,
    SessionKey,
    SessionPage,
    SessionQuery,
    core_stats,
    real_stats,
    session_page,
    session_search,
)
from dplb.dataplane.telemetry import CounterTable, Telemetry, read_counter_table
from dplb.engine import RealKey, services_to_core

_PROTOCOLS = {"tcp": 6, "udp": 17}
SYS_CLASS_NET = Path("/sys/class/net")


def kernel_carrier(device: str) -> bool | None:
    """For a vdev over a kernel interface (`iface=`: af_packet, af_xdp), whether that
    interface has its carrier; None for other devices. DPDK 22.11's af_packet PMD reports
    its link up whatever the wire does, so the kernel is asked (a port whose cable, or
    veth peer, is gone must count as down: the BGP controller withdraws its services)."""
    for arg in device.split(",")[1:]:
        key, _, name = arg.partition("=")
        if key == "iface" and name:
            try:
                return (SYS_CLASS_NET / name / "carrier").read_text().strip() == "1"
            except OSError:  # EINVAL: the interface is administratively down
                return False
    return None


_PORT_FIELDS = {"name", "device", "mac", "link_up", "steering", "control_steering"}


class NodeDataplane:
    """Wraps the runtime binding (`dplb._core.Runtime`) of a started node. Workers read
    the configuration through a snapshot pointer, so `apply` never pauses them; the
    lock only keeps two control-side writers apart."""

    kind = "dpdk"

    def __init__(self, runtime: Any, config: NodeConfig) -> None:
        self.runtime = runtime
        self._config = config
        self._lock = threading.Lock()
        self._started_at = datetime.now(UTC)
        self._started = time.monotonic()
        self._counters: CounterTable | None = None
        self._counters_lock = threading.Lock()
        self._liveness = LivenessTracker()
        self._down: frozenset[RealKey] = frozenset()

    def running_config(self) -> NodeConfig:
        with self._lock:
            return self._config

    def apply(self, config: NodeConfig) -> None:
        with self._lock:
            if config.dataplane != self._config.dataplane:
                raise ValueError("dataplane: cannot change on a running node (restart it)")
            self.runtime.apply_services(services_to_core(config, self._down))
            self._config = config

    def set_reals_down(self, down: frozenset[RealKey]) -> None:
        with self._lock:
            if down != self._down:
                self.runtime.apply_services(services_to_core(self._config, down))
                self._down = down

    # -- session sync (dplb.sync.SyncManager) ----------------------------------------
    def sync_service(self, **options: Any) -> Any:
        """The engine's sync thread (`dplb._core.SyncService`), started."""
        return self.runtime.sync_service(**options)

    def set_peer_local_addresses(self, peer_id: int, per_worker: list[list[str]]) -> None:
        with self._lock:
            self.runtime.set_peer_local_addresses(peer_id, per_worker)

    def counters(self) -> CounterTable:
        with self._counters_lock:
            self._counters = read_counter_table(self.runtime.counter_table, self._counters)
            return self._counters

    def status(self) -> DataplaneStatus:
        with self._lock:
            cfg = self._config
        runtime_ports = self._ports(cfg)
        ports = []
        for section, rp in zip(cfg.dataplane.ports, runtime_ports, strict=True):
            extra = {
                k: v
                for k, v in rp.items()
                if k not in {"name", "device", "mac", "link_up", "steering", "control_steering"}
            }
            ports.append(
                PortStatus(
                    name=rp["name"],
                    device=rp["device"],
                    mac=rp["mac"].lower(),
                    addresses=[str(a) for a in section.address],
                    gateways=[str(g) for g in section.gateway],
                    link_up=rp["link_up"],
                    steering=rp["steering"],
                    **extra,
                )
            )
        modes = {p.steering for p in ports}
        liveness = self._liveness.observe(
            runtime_ports, self.runtime.workers(), self.runtime.control(), time.monotonic()
        )
        return DataplaneStatus(
            kind=self.kind,
            workers=cfg.dataplane.workers,
            steering=modes.pop() if len(modes) == 1 else "mixed",
            ports=ports,
            started_at=self._started_at,
            uptime_seconds=time.monotonic() - self._started,
            liveness=liveness,
        )

    def stats(self) -> EngineStats:
        raw = [
            {**engine, **{k: v for k, v in loop.items() if k != "id"}}
            for engine, loop in zip(
                self.runtime.worker_stats(), self.runtime.workers(), strict=True
            )
        ]
        return EngineStats(cores=core_stats(raw), reals=real_stats(self.runtime.real_stats()))

    def sessions(self, query: SessionQuery) -> SessionPage:
        search = session_search(query)
        return session_page(
            self.runtime.find_sessions(search) if search is not None else None, query
        )

    def reset_session(self, key: SessionKey) -> int:
        before = self.runtime.sessions_reset()
        self.runtime.reset_session(
            str(key.client), key.client_port, str(key.vip), key.vip_port, _PROTOCOLS[key.protocol]
        )
        # The owner worker carries it out at its next clock tick (a millisecond).
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            done = int(self.runtime.sessions_reset()) - int(before)
            if done:
                return done
            time.sleep(0.002)
        return 0

    def local_addresses(self) -> list[LocalAddress]:
        # The runtime names a port by its index; the API by its name, as the harness does.
        names = [p.name for p in self.running_config().dataplane.ports]
        return [
            LocalAddress.model_validate({**a, "port": names[a["port"]]})
            for a in self.runtime.local_addresses()
        ]

    def _ports(self, cfg: NodeConfig) -> list[dict[str, Any]]:
        """The runtime's ports, a link counted down when its kernel interface is."""
        runtime_ports: list[dict[str, Any]] = self.runtime.ports()
        for section, rp in zip(cfg.dataplane.ports, runtime_ports, strict=True):
            if rp.get("link_up") and kernel_carrier(section.device) is False:
                rp["link_up"] = False
        return runtime_ports

    def telemetry(self) -> Telemetry:
        """Engine and runtime counters for the metrics collector (dplb.metrics)."""
        rt = self.runtime
        cores = [
            {**engine, **{k: v for k, v in loop.items() if k != "id"}}
            for engine, loop in zip(rt.worker_stats(), rt.workers(), strict=True)
        ]
        with self._counters_lock:
            self._counters = read_counter_table(rt.counter_table, self._counters)
            counters = self._counters
        logger = rt.logger
        ports, control = self._ports(self.running_config()), rt.control()
        return Telemetry(
            kind=self.kind,
            started_at=self._started_at.timestamp(),
            cores=cores,
            counters=counters,
            ports=ports,
            control=control,
            latency=rt.latency(),
            logger=logger.stats() if logger is not None else None,
            dpdk_version=getattr(_core, "dpdk_version", None),
            liveness=self._liveness.observe(ports, cores, control, time.monotonic()),
            local_addresses=rt.local_addresses(),
        )
