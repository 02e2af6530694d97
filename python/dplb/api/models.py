"""Request and response bodies of the API. Services and reals reuse the node config's
own models (`dplb.config`), so the API accepts exactly what a config file may say."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict

from dplb.cluster.view import ClusterWait
from dplb.config import (
    HealthCheckSection,
    NodeConfig,
    RealSection,
    ServiceSection,
    TimeoutOverrides,
)
from dplb.config_diff import Change, endpoint_id, service_id
from dplb.dataplane import CoreStats, DataplaneStatus
from dplb.store import ApplyStatus, FieldError, VersionInfo


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(Model):
    """What was wrong, each error at its field. `version`: the current config version,
    when a write expected another one (409), or the version the node refused (422)."""

    errors: list[FieldError]
    version: int | None = None


class Service(ServiceSection):
    """A service as configured, with `id` (`10.0.100.10:80/tcp`, `[2001:db8::10]:80/tcp`)."""

    id: str

    @classmethod
    def of(cls, svc: ServiceSection) -> Service:
        # Already validated: construct, do not validate again (a service may have
        # thousands of reals).
        return cls.model_construct(**dict(svc), id=service_id(str(svc.vip), svc.port, svc.protocol))


class RealHealthView(Model):
    """What this node's health checks found of a real (not config: each node checks its
    own paths). `status`: up, down, unchecked (its service checks nothing, or the real
    opted out: counted up) or unknown (the checker does not run, or has not seen the
    real yet). `last_result`: pass, or what failed (timeout, refused, status 503, link
    down, 12 SYNs unanswered...). `down_reason`: active, passive or link."""

    status: Literal["up", "down", "unchecked", "unknown"]
    last_result: str | None = None
    last_check_at: datetime | None = None
    last_change_at: datetime | None = None
    seconds_since_change: float | None = None
    down_reason: str | None = None
    checks: int = 0


class Real(RealSection):
    """A real as configured, with `id` (`10.0.2.11:8080`), its service's id and, where
    the node checks it, its `health`."""

    id: str
    service: str
    health: RealHealthView | None = None

    @classmethod
    def of(
        cls, svc: ServiceSection, real: RealSection, health: RealHealthView | None = None
    ) -> Real:
        return cls.model_construct(
            **dict(real),
            id=endpoint_id(str(real.address), real.port),
            service=service_id(str(svc.vip), svc.port, svc.protocol),
            health=health,
        )


class ServiceHealthView(Model):
    """A service as the health checks see it: `can_serve` while one of its reals is up
    (what decides whether the node announces its VIP)."""

    id: str
    vip: str
    port: int
    protocol: Literal["tcp", "udp"]
    nic: str | None
    check: str  # the check type it runs: none, tcp, http, https, udp
    can_serve: bool
    reals_up: int
    reals_down: int
    reals: list[Real]


class CheckerView(Model):
    """The health checker of this node and its own cost."""

    enabled: bool
    reals_checked: int
    checks: dict[str, int]
    check_seconds: float
    busy_seconds: float
    late: int
    in_flight: int
    applies: int
    apply_errors: int
    passive_downs: int
    link_downs: int


class HealthChecks(Model):
    checker: CheckerView
    services: list[ServiceHealthView]


class ServicePatch(Model):
    """Fields to change; those left out stay. `reals` replaces the whole list."""

    scheduler: Literal["rr", "wrr", "wlc", "maglev"] | None = None
    client_address: Literal["none", "toa", "proxy-v1", "proxy-v2"] | None = None
    nic: str | None = None
    maglev_table_size: int | None = None
    timeouts: TimeoutOverrides | None = None
    health_check: HealthCheckSection | None = None
    reals: list[RealSection] | None = None


class RealPatch(Model):
    weight: Annotated[int, Strict(), Field(ge=0, le=65535)] | None = None
    enabled: Annotated[bool, Strict()] | None = None


ChangeStatus = Literal["applied", "unchanged", "pending"]


class ChangeResult(Model):
    """The config version a change made and what the node did with it: `applied` (it
    runs), `unchanged` (nothing to change), `pending` (written; the node has not applied
    it yet: see /api/v1/config/status). A refused change is an error (422)."""

    version: int
    status: ChangeStatus
    changes: list[Change] = []
    # with `?wait=applied`: which live nodes of the cluster applied the version
    cluster: ClusterWait | None = None


class ServiceChange(ChangeResult):
    service: Service | None = None


class RealChange(ChangeResult):
    real: Real | None = None


class SessionReset(Model):
    removed: int


class NodeStats(Model):
    """Counters summed over the cores."""

    workers: int
    sessions: int
    session_capacity: int
    counters: dict[str, int]
    drops: dict[str, int]


class ServiceStats(Model):
    id: str
    vip: str
    port: int
    protocol: Literal["tcp", "udp"]
    reals: int
    connections: int
    active: int
    packets_in: int
    packets_out: int
    bytes_in: int
    bytes_out: int


class ConfigStatus(ApplyStatus):
    """The desired version in the store beside what this node did with it."""

    desired_version: int | None = None


class NodeStatus(Model):
    name: str
    cluster: str
    software_version: str
    dataplane: DataplaneStatus
    config: ConfigStatus


class Caller(Model):
    name: str
    role: Literal["viewer", "admin"]


class Health(Model):
    """The data plane's liveness: `ok`; `degraded` (it forwards, something is wrong: a
    link down); `failed` (it cannot forward: a loop stuck, a port that stopped
    receiving), answered with 503. `reasons` say what."""

    status: Literal["ok", "degraded", "failed"]
    reasons: list[str] = []


class ConfigDocument(Model):
    """A config version; API token values read as `*** redacted ***`, and a config
    written back with that value keeps the token of the same name."""

    info: VersionInfo
    config: dict[str, Any] | None
    problem: str | None = None


class ConfigDiff(Model):
    from_version: int
    to_version: int
    changes: list[Change]
    text: str


class Rollback(Model):
    version: int = Field(ge=1)


__all__ = [
    "Caller",
    "ChangeResult",
    "ConfigDiff",
    "ConfigDocument",
    "ConfigStatus",
    "CoreStats",
    "ErrorBody",
    "Health",
    "NodeConfig",
    "NodeStats",
    "NodeStatus",
    "Real",
    "RealChange",
    "RealPatch",
    "Rollback",
    "Service",
    "ServiceChange",
    "ServicePatch",
    "ServiceStats",
    "SessionReset",
]
