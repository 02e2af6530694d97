"""The models of the `Dataplane` interface: sessions and their queries, counters per
worker, service and real, local addresses, the status of the node's ports. The API
answers with these."""

from __future__ import annotations

import re
import threading
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
    # Passive health: client SYNs the real never answered, resets it sent.
    syn_unanswered: int = 0
    resets_from_real: int = 0


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


# -- liveness -------------------------------------------------------------------------

LivenessState = Literal["ok", "degraded", "failed"]

# A worker or the control lcore whose loop has not turned for this long is stuck (a
# loop turns every few microseconds, or each idle_sleep_us when idle).
STUCK_SECONDS = 1.0


class PortLiveness(Model):
    name: str
    link_up: bool | None = None
    # False once the port drops frames at the NIC (missed, no buffer) while it receives
    # none, until it receives again: what a port that stopped receiving looks like.
    receiving: bool = True
    rx_idle_seconds: float = 0.0  # since its RX counter last moved (as seen by status reads)


class Liveness(Model):
    """Whether the data plane is alive: `failed` when a loop is stuck (a worker or the
    control lcore has not turned for STUCK_SECONDS) or a port stopped receiving;
    `degraded` when a port's link is down; `reasons` say which and why."""

    state: LivenessState = "ok"
    reasons: list[str] = []
    worker_poll_age_seconds: list[float] = []
    control_loop_age_seconds: float | None = None
    ports: list[PortLiveness] = []


class LivenessTracker:
    """Judges liveness from the runtime's counters, comparing each read with the one
    before (ports: rx_packets, rx_missed, rx_nombuf, link_up; workers: last_poll_age_ns;
    control: last_loop_age_ns). Thread-safe; a status read, a health probe and a scrape
    may each call `observe`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ports: dict[str, tuple[int, int, float, bool]] = {}  # rx, drops, last rx, receiving

    def observe(
        self,
        ports: list[dict[str, Any]],
        workers: list[dict[str, Any]],
        control: dict[str, Any] | None,
        now: float,
    ) -> Liveness:
        failed: list[str] = []
        degraded: list[str] = []
        ages = [int(w.get("last_poll_age_ns", 0)) / 1e9 for w in workers]
        for i, age in enumerate(ages):
            if age > STUCK_SECONDS:
                failed.append(f"worker {i}: has not polled for {age:.1f} s")
        control_age = None if control is None else int(control.get("last_loop_age_ns", 0)) / 1e9
        if control_age is not None and control_age > STUCK_SECONDS:
            failed.append(f"control lcore: has not turned for {control_age:.1f} s")
        port_states = []
        with self._lock:
            for p in ports:
                name = str(p["name"])
                rx = int(p.get("rx_packets", 0))
                drops = int(p.get("rx_missed", 0)) + int(p.get("rx_nombuf", 0))
                last_rx, receiving = now, True
                if name in self._ports:
                    prev_rx, prev_drops, last_rx, receiving = self._ports[name]
                    if rx != prev_rx:
                        last_rx, receiving = now, True
                    elif drops != prev_drops:
                        receiving = False
                self._ports[name] = (rx, drops, last_rx, receiving)
                link = p.get("link_up")
                state = PortLiveness(
                    name=name,
                    link_up=None if link is None else bool(link),
                    receiving=receiving,
                    rx_idle_seconds=round(now - last_rx, 3),
                )
                if not receiving:
                    failed.append(
                        f"port {name}: receives nothing while the NIC drops frames "
                        f"(rx_missed {p.get('rx_missed', 0)}, rx_nombuf {p.get('rx_nombuf', 0)})"
                    )
                if link is False:
                    degraded.append(f"port {name}: link down")
                port_states.append(state)
        return Liveness(
            state="failed" if failed else "degraded" if degraded else "ok",
            reasons=failed + degraded,
            worker_poll_age_seconds=ages,
            control_loop_age_seconds=control_age,
            ports=port_states,
        )


class DataplaneStatus(Model):
    kind: str  # "harness" or "dpdk"
    workers: int
    # how flows reach their worker: "rss" (the NIC picks the owner), "rss+software" (RSS
    # that cannot say the owner function: the rest is handed over), "rte_flow",
    # "software", "harness", or "mixed" when the ports differ
    steering: str
    ports: list[PortStatus]
    started_at: datetime
    uptime_seconds: float
    liveness: Liveness = Liveness()


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
