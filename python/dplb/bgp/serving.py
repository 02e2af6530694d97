"""Which services can serve now: the seam between whoever judges the reals (the running
config, and the health checker when it runs) and the BIRD controller.

A `ServingSource` answers `serving()` with the (vip, port, protocol) of each service that
can take a new connection on this node, and calls its listeners when that may have
changed; the controller reads `serving()` again then (and at least once a second), so a
source that cannot tell when it changes may never call them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from dplb.config import IPAddress, NodeConfig, ServiceSection
from dplb.dataplane import Dataplane

ServiceKey = tuple[IPAddress, int, str]  # (vip, port, protocol)
# A service as the health checker names it: ("10.0.100.10", 80, "tcp").
ServiceId = tuple[str, int, str]


class ServingSource(Protocol):
    def serving(self) -> set[ServiceKey]: ...

    def add_listener(self, listener: Callable[[], None]) -> None: ...


def config_can_serve(svc: ServiceSection) -> bool:
    """A real of the service that the config lets take sessions (enabled, weight > 0)."""
    return any(r.enabled and r.weight > 0 for r in svc.reals)


class RunningConfigServing:
    """The services of the running config that can serve: the port the service is bound
    to (`nic`) has its link up (a link the dataplane cannot tell counts as up), and
    `can_serve(service id)` says yes: by default the config alone (`config_can_serve`);
    with the health checker, its verdict (`dplb.health.service_can_serve`).
    `subscribe(callback)` is how the judge says it changed (`HealthState.subscribe`, whose
    callback gets the changed keys); without one, the controller's once-a-second look is
    the notification."""

    def __init__(
        self,
        running: Callable[[], NodeConfig],
        dataplane: Dataplane,
        can_serve: Callable[[ServiceId], bool] | None = None,
        subscribe: Callable[[Callable[..., Any]], None] | None = None,
    ) -> None:
        self._running = running
        self._dataplane = dataplane
        self._can_serve = can_serve
        self._subscribe = subscribe

    def add_listener(self, listener: Callable[[], None]) -> None:
        if self._subscribe is not None:
            self._subscribe(lambda *_: listener())

    def serving(self) -> set[ServiceKey]:
        cfg = self._running()
        down = {p.name for p in self._dataplane.status().ports if p.link_up is False}
        judge = self._can_serve
        return {
            (svc.vip, svc.port, svc.protocol)
            for svc in cfg.services
            if (svc.nic is None or svc.nic not in down)
            and (
                config_can_serve(svc)
                if judge is None
                else judge((str(svc.vip), svc.port, svc.protocol))
            )
        }
