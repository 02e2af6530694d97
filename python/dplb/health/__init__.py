"""Health checks (DESIGN section 7): `state` holds the rise/fall state of each real and
what the BGP controller asks (`HealthState.service_can_serve`, `changed`), `probes` the
checks themselves (TCP, HTTP, HTTPS, UDP), `checker` the scheduler that runs them per NIC
and hands the down reals to the dataplane. `start_health_checker` starts it for an app."""

from __future__ import annotations

from typing import Any

from dplb.health.checker import CheckerStats, HealthChecker
from dplb.health.state import HealthState, RealHealth, RealKey, ServiceKey

__all__ = [
    "CheckerStats",
    "HealthChecker",
    "HealthState",
    "RealHealth",
    "RealKey",
    "ServiceKey",
    "app_health",
    "service_can_serve",
    "start_health_checker",
]


def start_health_checker(app: Any) -> HealthChecker | None:
    """Starts the checker of a started app (`app.state.node`) when the node config's
    `health.enabled` says so, and keeps it as `app.state.health`; it follows the
    reconciler's running config. Stop it with `await checker.stop()`."""
    node = app.state.node
    settings = node.node_config.health
    if not settings.enabled:
        app.state.health = None
        return None
    reconciler = node.reconciler
    checker = HealthChecker(node.dataplane, settings, running_config=lambda: reconciler.running)
    checker.start()
    app.state.health = checker
    return checker


def app_health(app: Any) -> HealthChecker | None:
    """The running checker of an app, or None (not started, or disabled)."""
    checker: HealthChecker | None = getattr(app.state, "health", None)
    return checker


def service_can_serve(app: Any, service: ServiceKey) -> bool:
    """Whether this node can serve `service` (vip, port, protocol): one of its reals is
    up by the health checks (with the checker running) and takes sessions by the config
    (enabled, weight above 0). Without a checker (`health.enabled: false`), the config
    alone decides. What announcing the VIP depends on; `app_health(app).state.changed`
    (an asyncio.Event) and `.state.subscribe(callback)` say when it may have changed."""
    checker = app_health(app)
    if checker is not None:
        return checker.state.service_can_serve(service)
    for svc in app.state.node.reconciler.running.services:
        if (str(svc.vip), svc.port, svc.protocol) == service:
            return any(r.enabled and r.weight > 0 for r in svc.reals)
    return False
