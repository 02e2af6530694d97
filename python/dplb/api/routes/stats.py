"""Counters read from the engine at request time: the node (summed over cores), each
core, each service (summed over its reals) and each real."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from dplb.api.deps import NodeDep, Viewer
from dplb.api.errors import READ_ERRORS
from dplb.api.models import NodeStats, ServiceStats
from dplb.config import ServiceSection
from dplb.config_diff import service_id
from dplb.dataplane import CoreStats, RealStats

router = APIRouter(prefix="/stats", tags=["stats"])

_CORE_FIELDS = {"worker", "sessions", "session_capacity", "drops"}
_SUMMED = ("connections", "active", "packets_in", "packets_out", "bytes_in", "bytes_out")


def node_stats(cores: list[CoreStats]) -> NodeStats:
    counters: dict[str, int] = {}
    drops: dict[str, int] = {}
    for core in cores:
        for name, value in core.model_dump().items():
            if name not in _CORE_FIELDS and isinstance(value, int):
                counters[name] = counters.get(name, 0) + value
        for reason, count in core.drops.items():
            drops[reason] = drops.get(reason, 0) + count
    return NodeStats(
        workers=len(cores),
        sessions=sum(c.sessions for c in cores),
        session_capacity=sum(c.session_capacity for c in cores),
        counters=counters,
        drops=drops,
    )


def service_stats(services: list[ServiceSection], reals: list[RealStats]) -> list[ServiceStats]:
    """Per running service (in config order), summed over its reals."""

    def entry(vip: str, port: int, protocol: str) -> dict[str, Any]:
        sid = service_id(vip, port, protocol)
        return by_service.setdefault(
            sid,
            {"id": sid, "vip": vip, "port": port, "protocol": protocol, "reals": 0}
            | dict.fromkeys(_SUMMED, 0),
        )

    by_service: dict[str, dict[str, Any]] = {}
    for svc in services:
        entry(str(svc.vip), svc.port, svc.protocol)
    for r in reals:
        e = entry(r.vip, r.port, r.protocol)
        e["reals"] += 1
        for name in _SUMMED:
            e[name] += getattr(r, name)
    return [ServiceStats.model_validate(e) for e in by_service.values()]


@router.get("", responses=READ_ERRORS)
def get_node_stats(_: Viewer, node: NodeDep) -> NodeStats:
    return node_stats(node.dataplane.stats().cores)


@router.get("/cores", responses=READ_ERRORS)
def list_core_stats(_: Viewer, node: NodeDep) -> list[CoreStats]:
    return node.dataplane.stats().cores


@router.get("/services", responses=READ_ERRORS)
def list_service_stats(_: Viewer, node: NodeDep) -> list[ServiceStats]:
    """Per running service, summed over its reals."""
    return service_stats(node.reconciler.running.services, node.dataplane.stats().reals)


@router.get("/reals", responses=READ_ERRORS)
def list_real_stats(_: Viewer, node: NodeDep) -> list[RealStats]:
    return node.dataplane.stats().reals
