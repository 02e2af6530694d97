"""The models of the `Dataplane` interface: sessions and their queries, counters per
worker, service and real, local addresses, the status of the node's ports. The API
answers with these."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, IPvAnyAddress, IPvAnyNetwork

from dplb.config import IPAddress

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
    """A worker's SNAT address and what its ports do. Ports are pooled per (local
    address, real): each real can have `ports_per_real` at once."""

    address: str
    port: str
    worker: int
    ports_in_use: int  # in sessions, summed over the reals
    ports_resting: int  # held toward reals that closed first (their TIME_WAIT), summed
    ports_busiest_real: int  # in use or resting toward the real with the most
    ports_per_real: int


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


# -- conversions of what the bindings give -------------------------------------


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
