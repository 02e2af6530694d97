"""What the health checks found: `/api/v1/health-checks` (every service with its reals'
health and whether it can serve, and the checker's own cost). The reals routes carry
each real's health too (`Real.health`)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from fastapi import APIRouter, Request

from dplb.api.deps import NodeDep, Viewer
from dplb.api.errors import READ_ERRORS
from dplb.api.models import CheckerView, HealthChecks, Real, RealHealthView, ServiceHealthView
from dplb.config import RealSection, ServiceSection, check_type
from dplb.config_diff import service_id
from dplb.health import HealthChecker, app_health, service_can_serve

router = APIRouter(prefix="/health-checks", tags=["health"])


def _when(unix: float | None) -> datetime | None:
    return datetime.fromtimestamp(unix, UTC) if unix is not None else None


def real_health(
    checker: HealthChecker | None, svc: ServiceSection, real: RealSection
) -> RealHealthView:
    """The health of one real of `svc` as `checker` saw it (unknown without a checker)."""
    if checker is None:
        return RealHealthView(status="unknown")
    key = (str(svc.vip), svc.port, svc.protocol, str(real.address), real.port)
    health = checker.state.get(key)
    if health is None:
        return RealHealthView(status="unknown")
    return RealHealthView(
        status=health.status,
        last_result=health.last_result,
        last_check_at=_when(health.last_check_at),
        last_change_at=_when(health.last_change_at),
        seconds_since_change=max(0.0, time.time() - health.last_change_at),
        down_reason=health.down_reason,
        checks=health.checks,
    )


def request_checker(request: Request) -> HealthChecker | None:
    return app_health(request.app)


@router.get("", responses=READ_ERRORS)
async def get_health_checks(request: Request, _: Viewer, node: NodeDep) -> HealthChecks:
    """Every service this node runs, with the health of each real and `can_serve`."""
    checker = request_checker(request)
    cfg = node.reconciler.running
    services = []
    for svc in cfg.services:
        reals = [Real.of(svc, r, real_health(checker, svc, r)) for r in svc.reals]
        up = sum(1 for r in reals if r.health is not None and r.health.status != "down")
        key = (str(svc.vip), svc.port, svc.protocol)
        services.append(
            ServiceHealthView(
                id=service_id(*key),
                vip=key[0],
                port=svc.port,
                protocol=svc.protocol,
                nic=svc.nic,
                check=check_type(svc),
                can_serve=service_can_serve(request.app, key),
                reals_up=up,
                reals_down=len(reals) - up,
                reals=reals,
            )
        )
    stats = checker.stats if checker is not None else None
    view = CheckerView(
        enabled=checker is not None,
        reals_checked=len(checker.schedule()) if checker is not None else 0,
        checks=dict(stats.checks) if stats else {"pass": 0, "fail": 0},
        check_seconds=stats.check_seconds if stats else 0.0,
        busy_seconds=stats.busy_seconds if stats else 0.0,
        late=stats.late if stats else 0,
        in_flight=stats.in_flight if stats else 0,
        applies=stats.applies if stats else 0,
        apply_errors=stats.apply_errors if stats else 0,
        passive_downs=stats.passive_downs if stats else 0,
        link_downs=stats.link_downs if stats else 0,
    )
    return HealthChecks(checker=view, services=services)
