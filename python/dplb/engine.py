"""The engine harness (DESIGN section 9): the real C++ engine driven with byte strings,
with a clock the caller moves. Tests, fuzzers and benchmarks use it; the node uses the
same config conversion to build its DPDK runtime."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dplb._core as _core
from dplb.config import NodeConfig, ServiceSection, Timeouts, parse_config

_PROTOCOLS = {"tcp": 6, "udp": 17}
_CLIENT_ADDRESS = {
    "none": _core.ClientAddressMode.none,
    "toa": _core.ClientAddressMode.toa,
    "proxy-v1": _core.ClientAddressMode.proxy_v1,
    "proxy-v2": _core.ClientAddressMode.proxy_v2,
}
_PROXY_FROM_CLIENT = {
    "refuse": _core.ProxyFromClient.refuse,
    "trust": _core.ProxyFromClient.trust,
}
DROP_REASONS: tuple[str, ...] = tuple(_core.drop_reasons)
SESSION_BYTES: int = _core.session_bytes


def harness_mac(port_index: int) -> str:
    """The MAC a harness port gets when the config names none (locally administered)."""
    return f"02:00:00:00:00:{port_index + 1:02x}"


# (vip, port, protocol, real address, real port): a real as health checks name it.
RealKey = tuple[str, int, str, str, int]


def _service_to_core(
    svc: ServiceSection, defaults: Timeouts, down: frozenset[RealKey] = frozenset()
) -> Any:
    core = _core.ServiceConfig()
    core.vip = str(svc.vip)
    core.port = svc.port
    core.proto = _PROTOCOLS[svc.protocol]
    core.scheduler = getattr(_core.SchedulerKind, svc.scheduler)
    core.client_address = _CLIENT_ADDRESS[svc.client_address]
    core.proxy_from_client = _PROXY_FROM_CLIENT[svc.proxy_protocol_from_client]
    core.maglev_table_size = svc.maglev_table_size
    core.connection_log = svc.connection_log
    overrides = svc.timeouts.model_dump()
    core.timeouts = [
        overrides[kind] if overrides[kind] is not None else getattr(defaults, kind)
        for kind in _core.timeout_kinds
    ]
    reals = []
    vip = str(svc.vip)
    for real in svc.reals:
        r = _core.RealConfig()
        r.address = str(real.address)
        r.port = real.port
        r.weight = real.weight if real.enabled else 0
        if down and (vip, svc.port, svc.protocol, r.address, real.port) in down:
            r.weight = 0  # failed its health checks: quiesced, like weight 0
        reals.append(r)
    core.reals = reals
    return core


def services_to_core(cfg: NodeConfig, down: frozenset[RealKey] = frozenset()) -> list[Any]:
    """The services of a validated config as the engine's ServiceConfig list; the reals
    in `down` (health checks) get weight 0: no new sessions, established ones go on."""
    return [_service_to_core(s, cfg.dataplane.timeouts, down) for s in cfg.services]


def logger_options(
    cfg: NodeConfig, path: str | Path | None = None, *, monotonic_clock: bool = True
) -> Any:
    """The logger thread's options from `dataplane.log` (`path` overrides its file).
    `monotonic_clock`: the workers' clocks are CLOCK_MONOTONIC (the DPDK runtime), so
    record times become wall-clock times; False for the harness's own clock."""
    log = cfg.dataplane.log
    target = path if path is not None else log.file
    if target is None:
        raise ValueError("dataplane.log.file: no log file configured")
    opts = _core.LoggerOptions()
    opts.path = str(target)
    opts.max_bytes = log.max_bytes
    opts.keep = log.keep
    opts.drop_report_ms = max(1, int(log.drop_report_interval * 1000))
    opts.monotonic_clock = monotonic_clock
    opts.node = cfg.node.name
    opts.cluster = cfg.node.cluster
    return opts


def to_engine_config(
    cfg: NodeConfig, *, monotonic_clock: bool = False, clock_epoch_ns: int | None = None
) -> Any:
    """Converts a validated NodeConfig into the C++ EngineConfig. The workers' clocks are
    CLOCK_MONOTONIC with `monotonic_clock` (the DPDK runtime), else they start at 0 now
    (the harness); `clock_epoch_ns` sets the Unix time at which they read 0 instead (the
    local ports' walk follows the wall clock, so that a restart does not begin with the
    ports a previous run left in the reals' TIME_WAIT)."""
    dp = cfg.dataplane
    core = _core.EngineConfig()
    core.workers = dp.workers
    core.sessions_per_worker = dp.sessions_per_worker
    core.local_port_first = dp.local_ports.first
    core.local_port_last = dp.local_ports.last
    core.local_port_real_time_wait_s = dp.local_ports.real_time_wait
    if clock_epoch_ns is None:
        clock_epoch_ns = time.time_ns() - (time.monotonic_ns() if monotonic_clock else 0)
    core.local_port_clock_epoch_ns = clock_epoch_ns
    core.max_services = dp.max_services
    core.max_reals = dp.max_reals
    core.control_rest_rate_pps = dp.control.rest_rate_pps
    core.control_rest_burst = dp.control.rest_burst
    core.sync_enabled = cfg.sync.enabled
    core.sync_refresh_ms = max(1, int(cfg.sync.refresh_interval * 1000))
    ports = []
    for i, port in enumerate(dp.ports):
        p = _core.PortConfig()
        p.name = port.name
        p.mac = port.mac or harness_mac(i)
        p.addresses = [str(a) for a in port.address]
        p.gateways = [str(g) for g in port.gateway]
        p.local_addresses = [[str(a) for a in worker] for worker in port.local_addresses]
        ports.append(p)
    core.ports = ports
    core.services = services_to_core(cfg)
    return core


class Engine:
    """`Engine(config)` builds the engine; `process(frame, port)` returns what leaves as
    `(port, frame)` pairs; `advance(seconds)` moves its clock."""

    def __init__(
        self, config: NodeConfig | Mapping[str, Any], *, started_at_ns: int | None = None
    ) -> None:
        """`started_at_ns`: the Unix time (ns) at which its clock reads 0 (default: now);
        a test restarts a node by making a second engine that starts later."""
        self.config = config if isinstance(config, NodeConfig) else parse_config(config)
        self._core = _core.HarnessEngine(
            to_engine_config(self.config, clock_epoch_ns=started_at_ns)
        )
        self._now_ns = 0
        self.port_names = [p.name for p in self.config.dataplane.ports]

    # -- packets ---------------------------------------------------------------------
    def process(
        self, frame: bytes, port: int | str = 0, worker: int | None = None
    ) -> list[tuple[int, bytes]]:
        """Receives `frame` on `port`; `worker` makes it arrive at that worker instead
        of where RSS would put it (to exercise the hand-over)."""
        result: list[tuple[int, bytes]] = self._core.process(
            bytes(frame), self._port_index(port), worker
        )
        return result

    def trace(self, frame: bytes, port: int | str = 0, worker: int | None = None) -> dict[str, Any]:
        """Like process, and also says which workers handled it and the last verdict."""
        result: dict[str, Any] = self._core.trace(bytes(frame), self._port_index(port), worker)
        return result

    def owner(
        self, client: str, client_port: int, vip: str, vip_port: int, protocol: str = "tcp"
    ) -> int:
        """The worker that owns the inbound flow client -> vip (Toeplitz hash)."""
        owner: int = self._core.inbound_owner(
            client, client_port, vip, vip_port, _PROTOCOLS[protocol]
        )
        return owner

    def reset_session(
        self, client: str, client_port: int, vip: str, vip_port: int, protocol: str = "tcp"
    ) -> int:
        """Removes the session of the inbound flow client -> vip (through its worker's
        command ring, drained at once); later packets of the flow find no session.
        Returns how many sessions were removed: 1, or 0 when there was none."""
        removed: int = self._core.reset_session(
            client, client_port, vip, vip_port, _PROTOCOLS[protocol]
        )
        return removed

    def port_stats(self) -> list[dict[str, int]]:
        """Per port (config order), what its NIC would count: rx_packets, rx_bytes (the
        frames given to `process` on it), tx_packets, tx_bytes (the frames it sent)."""
        stats: list[dict[str, int]] = self._core.port_stats()
        return stats

    def local_addresses(self) -> list[dict[str, Any]]:
        """Every local (SNAT) address with its port name, worker and source ports in use."""
        out: list[dict[str, Any]] = self._core.local_addresses()
        for entry in out:
            entry["port"] = self.port_names[entry["port"]]
        return out

    # -- time ------------------------------------------------------------------------
    def advance(self, seconds: float) -> None:
        """Moves the engine's clock forward; sessions whose timeout passed expire."""
        if seconds < 0:
            raise ValueError("seconds: the clock only moves forward")
        self._now_ns += int(seconds * 1e9)
        self._core.set_clock(self._now_ns)

    @property
    def now(self) -> float:
        return self._now_ns / 1e9

    # -- neighbours and config -------------------------------------------------------
    def set_neighbour(self, port: int | str, ip: str, mac: str) -> None:
        """Tells the engine the MAC of a next hop (what ARP/ND would learn on a node)."""
        self._core.set_neighbour(self._port_index(port), ip, mac)

    def port_mac(self, port: int | str) -> str:
        mac: str = self._core.port_mac(self._port_index(port))
        return mac

    def update(
        self, config: NodeConfig | Mapping[str, Any], down: frozenset[RealKey] = frozenset()
    ) -> None:
        """Applies the services of a new config as one snapshot; the reals in `down`
        (failed health checks) get no new sessions. The dataplane section (ports,
        workers, local addresses) is fixed for the engine's life."""
        cfg = config if isinstance(config, NodeConfig) else parse_config(config)
        if cfg.dataplane != self.config.dataplane:
            raise ValueError("dataplane: cannot change on a running engine")
        self._core.apply_services(services_to_core(cfg, down))
        self.config = cfg

    def worker_stats(self) -> list[dict[str, Any]]:
        """Per-worker counters alone (stats() without the per-real part: cheap)."""
        workers: list[dict[str, Any]] = self._core.worker_stats()
        return workers

    def counter_table(self, known_generation: int = -1) -> dict[str, Any]:
        """Service and real counters for metrics (dplb.dataplane.read_counter_table)."""
        table: dict[str, Any] = self._core.counter_table(known_generation)
        return table

    # -- the log ---------------------------------------------------------------------
    def start_logger(self, path: str | Path | None = None) -> Any:
        """Starts the logger thread (connection log, events, drop reports) writing JSON
        lines to `path` (default: `dataplane.log.file`). One per engine; it stops when
        the engine goes. Returns it: `pause()`, `resume()`, `flush()`, `event()`,
        `stats()`, `stop()`."""
        return self._core.start_logger(logger_options(self.config, path, monotonic_clock=False))

    @property
    def logger(self) -> Any:
        """The logger thread, or None when none was started."""
        return self._core.logger

    # -- state -----------------------------------------------------------------------
    def sessions(self) -> list[dict[str, Any]]:
        sessions: list[dict[str, Any]] = self._core.sessions()
        return sessions

    def find_sessions(self, search: Any) -> dict[str, Any]:
        """At most `search.limit` sessions matching a `_core.SessionSearch`, walked in C++
        without the GIL, and the cursor to continue from (see dataplane.models)."""
        page: dict[str, Any] = self._core.find_sessions(search)
        return page

    def stats(self) -> dict[str, Any]:
        """Per-worker counters under `workers`, their sums under `total`, and per-real
        counters under `reals`."""
        workers: list[dict[str, Any]] = self._core.worker_stats()
        total: dict[str, Any] = {}
        for w in workers:
            for key, value in w.items():
                if key == "drops":
                    drops = total.setdefault("drops", dict.fromkeys(DROP_REASONS, 0))
                    for reason, count in value.items():
                        drops[reason] += count
                else:
                    total[key] = total.get(key, 0) + value
        return {
            "workers": workers,
            "total": total,
            "reals": self._core.real_stats(),
            "sync": self._core.sync_counters(),
        }

    # -- session sync (in-process: the sync thread is the wire's) ----------------------
    def sync_pull(self, max_records: int = 1 << 20) -> bytes:
        """At most `max_records` records from the workers' sync rings, concatenated."""
        data: bytes = self._core.sync_pull(max_records)
        return data

    def sync_install(self, records: bytes) -> int:
        """Installs a peer's records (as sync_pull gives them); returns how many were
        accepted (the rest are counted by reason in stats()["sync"] and worker_stats())."""
        accepted: int = self._core.sync_install(bytes(records))
        return accepted

    def sync_service(self, **options: Any) -> Any:
        """This engine's sync thread (`dplb._core.SyncService`: UDP records to and from
        the peers, full syncs over TCP), started with `options` (node_id, listen, keys,
        send_key, mtu, flush_ms, ...; cpp/host/sync_service.hpp)."""
        return self._core.sync_service(**options)

    def set_peer_local_addresses(self, peer_id: int, per_worker: list[list[str]]) -> None:
        """A peer's local addresses per worker index (equal worker counts); [] removes it."""
        self._core.set_peer_local_addresses(peer_id, per_worker)

    def _port_index(self, port: int | str) -> int:
        if isinstance(port, str):
            try:
                return self.port_names.index(port)
            except ValueError:
                raise ValueError(f"port: no port named '{port}'") from None
        return port
