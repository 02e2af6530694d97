"""The models of the `Dataplane` interface: sessions and their queries, counters per
worker, service and real, local addresses, the status of the node's ports. The API
answers with these."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, IPvAnyAddress, IPvAnyNetwork, field_validator

import dplb._core as _core
from dplb.config import IPAddress

Protocol_ = Literal["tcp", "udp"]
Port = Annotated[int, Field(ge=0, le=65535)]


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
    client_port: Port
    vip: IPAddress
    vip_port: Port


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


SESSION_PAGE_MAX = 1000  # the most sessions one page holds (a hard cap on `limit`)
_CURSOR = re.compile(r"^([0-9]{1,3})\.([0-9]{1,10})$")


class SessionQuery(Model):
    """Filters (all optional, combined with AND) and a page: at most `limit` sessions
    from `cursor` on (the `next_cursor` of the previous page; none: from the start)."""

    client: IPvAnyNetwork | None = None
    client_port: Port | None = None
    vip: IPvAnyAddress | None = None
    vip_port: Port | None = None
    real: IPvAnyAddress | None = None
    real_port: Port | None = None
    protocol: Protocol_ | None = None
    state: str | None = None
    worker: Annotated[int, Field(ge=0, le=1023)] | None = None
    cursor: Annotated[
        str | None,
        Field(
            description="Where the page starts: the `next_cursor` of the previous page, as "
            "given (opaque). None: from the first session."
        ),
    ] = None
    limit: Annotated[
        int,
        Field(
            ge=1,
            le=SESSION_PAGE_MAX,
            description=f"The most sessions in the page (at most {SESSION_PAGE_MAX}).",
        ),
    ] = 100

    @field_validator("cursor")
    @classmethod
    def _cursor_is_one_we_gave(cls, value: str | None) -> str | None:
        if value is not None and decode_cursor(value) is None:
            raise ValueError("not a cursor this node gave (pass next_cursor as it came)")
        return value


def decode_cursor(cursor: str) -> tuple[int, int] | None:
    """(worker, slot) of a cursor, or None when it is not one `encode_cursor` made."""
    m = _CURSOR.match(cursor)
    if m is None or int(m[2]) >= 2**32:
        return None
    return int(m[1]), int(m[2])


def encode_cursor(worker: int, index: int) -> str:
    return f"{worker}.{index}"


class SessionPage(Model):
    """Sessions in table order (worker, then slot): a session that lives through a whole
    paging is in exactly one page; one created or removed meanwhile may be missed."""

    limit: int
    items: list[Session]
    next_cursor: Annotated[
        str | None,
        Field(
            description="Pass as `cursor` for the next page; null when the walk reached the "
            "end (a page of `limit` items may be followed by an empty last one)."
        ),
    ]


def session_search(query: SessionQuery) -> Any | None:
    """The query as the bindings' `SessionSearch`, or None when nothing can match it (a
    scoped IPv6 address: sessions have none)."""
    search = _core.SessionSearch()
    for name in ("vip", "real"):
        address = getattr(query, name)
        if address is not None:
            if getattr(address, "scope_id", None):
                return None
            setattr(search, name, str(address))
    if query.client is not None:
        search.client = str(query.client)
    search.client_port = query.client_port
    search.vip_port = query.vip_port
    search.real_port = query.real_port
    search.protocol = {"tcp": 6, "udp": 17}[query.protocol] if query.protocol else None
    search.state = query.state
    search.worker = query.worker
    position = decode_cursor(query.cursor) if query.cursor is not None else None
    if position is not None:  # a cursor the query's validation passed
        search.cursor_worker, search.cursor_index = position
    search.limit = query.limit
    return search


def session_page(raw: dict[str, Any] | None, query: SessionQuery) -> SessionPage:
    """A page from what the bindings' `find_sessions` gave (None: nothing matched)."""
    if raw is None:
        return SessionPage(limit=query.limit, items=[], next_cursor=None)
    nxt = raw["next"]
    return SessionPage(
        limit=query.limit,
        items=[session_from_engine(s) for s in raw["items"]],
        next_cursor=encode_cursor(*nxt) if nxt is not None else None,
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
