"""The `Dataplane` interface: what the reconciler and the management API need from the
thing that forwards packets. The engine harness (`HarnessDataplane`) implements it for
tests, development and the web admin; the DPDK node implements the same protocol.

Every method may be called from any thread; an implementation serialises what its
engine cannot do concurrently. `apply` may take a while for a large config and is called
off the event loop."""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, IPvAnyAddress, IPvAnyNetwork

from dplb.config import IPAddress, NodeConfig
from dplb.engine import Engine

Protocol_ = Literal["tcp", "udp"]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Counters(BaseModel):
    """Engine counters; an engine may report more than the fields named here (they are
    passed through), so a newer engine's counters reach clients unchanged."""

    model_config = ConfigDict(extra="allow")


# -- sessions -----------------------------------------------------------------------


class SessionKey(Model):
    """A session, named by its inbound tuple (client -> VIP)."""

    protocol: Protocol_
    client: IPAddress
    client_port: Annotated[int, Field(ge=0, le=65535)]
    vip: IPAddress
    vip_port: Annotated[int, Field(ge=0, le=65535)]


class Session(Model):
    worker: int
    protocol: Protocol_
    client: str
    client_port: int
    vip: str
    vip_port: int
    local: str
    local_port: int
    real: str
    real_port: int
    state: str
    expires_in: float
    bytes_in: int
    bytes_out: int


class SessionQuery(Model):
    """Filters (all optional, combined with AND) and a page."""

    client: IPvAnyNetwork | None = None
    client_port: int | None = None
    vip: IPvAnyAddress | None = None
    vip_port: int | None = None
    real: IPvAnyAddress | None = None
    real_port: int | None = None
    protocol: Protocol_ | None = None
    state: str | None = None
    worker: int | None = None
    offset: Annotated[int, Field(ge=0)] = 0
    limit: Annotated[int, Field(ge=1, le=1000)] = 100

    def matches(self, s: Session) -> bool:
        checks: list[tuple[Any, Any]] = [
            (self.client_port, s.client_port),
            (self.vip_port, s.vip_port),
            (self.real_port, s.real_port),
            (self.protocol, s.protocol),
            (self.state, s.state),
            (self.worker, s.worker),
            (self.vip, ipaddress.ip_address(s.vip) if self.vip is not None else None),
            (self.real, ipaddress.ip_address(s.real) if self.real is not None else None),
        ]
        if any(want is not None and want != got for want, got in checks):
            return False
        return self.client is None or ipaddress.ip_address(s.client) in self.client


class SessionPage(Model):
    total: int
    offset: int
    limit: int
    items: list[Session]


def page_sessions(sessions: Iterable[Session], query: SessionQuery) -> SessionPage:
    """Filters and pages sessions in a stable order (client, then VIP, then protocol)."""
    matched = sorted(
        (s for s in sessions if query.matches(s)),
        key=lambda s: (
            ipaddress.ip_address(s.client).packed,
            s.client_port,
            ipaddress.ip_address(s.vip).packed,
            s.vip_port,
            s.protocol,
        ),
    )
    return SessionPage(
        total=len(matched),
        offset=query.offset,
        limit=query.limit,
        items=matched[query.offset : query.offset + query.limit],
    )


# -- counters -----------------------------------------------------------------------


class CoreStats(Counters):
    worker: int
    sessions: int
    session_capacity: int
    drops: dict[str, int]


class RealStats(Counters):
    vip: str
    port: int
    protocol: Protocol_
    address: str
    real_port: int
    weight: int
    connections: int
    active: int
    packets_in: int
    packets_out: int
    bytes_in: int
    bytes_out: int


class EngineStats(Model):
    cores: list[CoreStats]
    reals: list[RealStats]


class LocalAddress(Model):
    address: str
    port: str
    worker: int
    ports_in_use: int
    ports_total: int


# -- status -------------------------------------------------------------------------


class PortStatus(Counters):
    name: str
    device: str
    mac: str
    addresses: list[str]
    gateways: list[str]
    link_up: bool | None = None  # None: the dataplane cannot tell (harness)
    steering: str


class DataplaneStatus(Model):
    kind: str  # "harness" or "dpdk"
    workers: int
    steering: str  # how flows reach their worker: "rss", "rte_flow", "software", "harness"
    ports: list[PortStatus]
    started_at: datetime
    uptime_seconds: float


# -- telemetry (metrics) ------------------------------------------------------------

# The per-service and per-real counters of CounterTable, in this order.
COUNTER_FIELDS = ("connections", "active", "packets_in", "packets_out", "bytes_in", "bytes_out")


@dataclass(frozen=True)
class CounterTable:
    """Service and real counters of the running engine snapshot, read cheaply enough for
    every scrape of a node with 100,000 reals: identities as tuples (the same objects as
    long as the snapshot's `generation` is the same, so a reader can cache what it derives
    from them), counters as native uint64 views, len(COUNTER_FIELDS) per entry, summed
    over the workers."""

    generation: int
    services: list[tuple[str, int, str]]  # (vip, port, protocol), snapshot order
    reals: list[tuple[int, str, int, int]]  # (index in services, address, port, weight)
    service_counters: memoryview
    real_counters: memoryview


def read_counter_table(
    read: Callable[[int], dict[str, Any]], previous: CounterTable | None
) -> CounterTable:
    """Reads the engine's counter table (the binding's `counter_table`), reusing the
    identities of `previous` when the snapshot did not change."""
    raw = read(previous.generation if previous is not None else -1)
    if raw["services"] is None and previous is not None:
        services, reals = previous.services, previous.reals
    else:
        services, reals = raw["services"], raw["reals"]
    return CounterTable(
        generation=raw["generation"],
        services=services,
        reals=reals,
        service_counters=memoryview(raw["service_counters"]).cast("Q"),
        real_counters=memoryview(raw["real_counters"]).cast("Q"),
    )


@dataclass(frozen=True)
class Telemetry:
    """What the metrics collector reads at scrape time, as the engine and runtime give
    it (plain values, no validation: a scrape must stay cheap).

    `cores`: one dict per worker with the engine's counters (the keys of `worker_stats`:
    rx_packets, ..., drops, sessions, session_capacity, log_dropped) and, where the
    dataplane runs worker lcores, the runtime's: busy_polls, idle_polls, tx_dropped,
    handover_dropped, bursts, burst_ns_sum, burst_ns_buckets (bucket i counts bursts
    under 2**i ns). `ports`: name, and where there is a NIC its counters (rx_packets,
    tx_packets, rx_bytes, tx_bytes, rx_missed, rx_errors, tx_errors, rx_nombuf, link_up,
    speed_mbps, device, steering). `control`: the control lcore's counters, if any.
    `latency`: DPDK latency stats (enabled, min_ns, avg_ns, max_ns, jitter_ns), if any.
    `logger`: the logger thread's stats, if it runs."""

    kind: str
    started_at: float  # Unix time
    cores: list[dict[str, Any]]
    counters: CounterTable
    ports: list[dict[str, Any]]
    control: dict[str, Any] | None = None
    latency: dict[str, Any] | None = None
    logger: dict[str, Any] | None = None
    dpdk_version: str | None = None


@runtime_checkable
class Dataplane(Protocol):
    """What the reconciler and the API drive. `apply` raises ValueError saying what it
    refused; it is never given a config whose node or dataplane sections differ from
    `running_config()` (the reconciler refuses those first)."""

    @property
    def kind(self) -> str: ...

    def running_config(self) -> NodeConfig: ...

    def apply(self, config: NodeConfig) -> None: ...

    def status(self) -> DataplaneStatus: ...

    def stats(self) -> EngineStats: ...

    def sessions(self, query: SessionQuery) -> SessionPage: ...

    def reset_session(self, key: SessionKey) -> int: ...

    def local_addresses(self) -> list[LocalAddress]: ...

    def telemetry(self) -> Telemetry: ...


# -- the harness --------------------------------------------------------------------


def core_stats(raw: list[dict[str, Any]]) -> list[CoreStats]:
    """Engine per-worker counters (as the binding gives them) as CoreStats."""
    return [CoreStats.model_validate({"worker": i, **w}) for i, w in enumerate(raw)]


def real_stats(raw: list[dict[str, Any]]) -> list[RealStats]:
    out = []
    for r in raw:
        fields = dict(r)
        fields["vip"], fields["port"] = r["vip"]
        fields["address"], fields["real_port"] = r["real"]
        del fields["real"]
        out.append(RealStats.model_validate(fields))
    return out


def session_from_engine(raw: dict[str, Any]) -> Session:
    return Session(
        worker=raw["worker"],
        protocol=raw["protocol"],
        client=raw["client"][0],
        client_port=raw["client"][1],
        vip=raw["vip"][0],
        vip_port=raw["vip"][1],
        local=raw["local"][0],
        local_port=raw["local"][1],
        real=raw["real"][0],
        real_port=raw["real"][1],
        state=raw["state"],
        expires_in=raw["expires_in"],
        bytes_in=raw["bytes_in"],
        bytes_out=raw["bytes_out"],
    )


class HarnessDataplane:
    """The engine harness as a Dataplane. The harness engine is single-threaded, so
    every call holds `lock`; code that drives traffic (tests, demos) uses `process` and
    `advance`, which take it too."""

    kind = "harness"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.lock = threading.Lock()
        self._started_at = datetime.now(UTC)
        self._started = time.monotonic()
        self._counters: CounterTable | None = None

    # -- traffic (harness only) ------------------------------------------------------
    def process(
        self, frame: bytes, port: int | str = 0, worker: int | None = None
    ) -> list[tuple[int, bytes]]:
        with self.lock:
            return self.engine.process(frame, port, worker)

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.engine.advance(seconds)

    # -- Dataplane -------------------------------------------------------------------
    def running_config(self) -> NodeConfig:
        with self.lock:
            return self.engine.config

    def apply(self, config: NodeConfig) -> None:
        with self.lock:
            self.engine.update(config)

    def status(self) -> DataplaneStatus:
        with self.lock:
            cfg = self.engine.config
            ports = [
                PortStatus(
                    name=p.name,
                    device=p.device,
                    mac=self.engine.port_mac(i),
                    addresses=[str(a) for a in p.address],
                    gateways=[str(g) for g in p.gateway],
                    steering="harness",
                )
                for i, p in enumerate(cfg.dataplane.ports)
            ]
        return DataplaneStatus(
            kind=self.kind,
            workers=cfg.dataplane.workers,
            steering="harness",
            ports=ports,
            started_at=self._started_at,
            uptime_seconds=time.monotonic() - self._started,
        )

    def stats(self) -> EngineStats:
        with self.lock:
            raw = self.engine.stats()
        return EngineStats(cores=core_stats(raw["workers"]), reals=real_stats(raw["reals"]))

    def sessions(self, query: SessionQuery) -> SessionPage:
        with self.lock:
            raw = self.engine.sessions()
        return page_sessions((session_from_engine(s) for s in raw), query)

    def reset_session(self, key: SessionKey) -> int:
        with self.lock:
            return self.engine.reset_session(
                str(key.client), key.client_port, str(key.vip), key.vip_port, key.protocol
            )

    def local_addresses(self) -> list[LocalAddress]:
        with self.lock:
            raw = self.engine.local_addresses()
        return [LocalAddress.model_validate(a) for a in raw]

    def telemetry(self) -> Telemetry:
        with self.lock:
            cores = self.engine.worker_stats()
            self._counters = read_counter_table(self.engine.counter_table, self._counters)
            counters = self._counters
            logger = self.engine.logger
            logger_stats = logger.stats() if logger is not None else None
            ports = [{"name": p.name} for p in self.engine.config.dataplane.ports]
        return Telemetry(
            kind=self.kind,
            started_at=self._started_at.timestamp(),
            cores=cores,
            counters=counters,
            ports=ports,
            logger=logger_stats,
        )
