"""Which services can serve now: the seam between whoever judges the reals (today the
running config, soon the health checker's HealthState) and the BIRD controller.

A `ServingSource` answers `serving()` with the (vip, port, protocol) of each service that
can take a new connection on this node, and calls its listeners when that may have
changed; the controller reads `serving()` again then (and at least once a second), so a
source that cannot tell when it changes may never call them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from dplb.config import IPAddress, NodeConfig
from dplb.dataplane import Dataplane

ServiceKey = tuple[IPAddress, int, str]  # (vip, port, protocol)


class ServingSource(Protocol):
    def serving(self) -> set[ServiceKey]: ...

    def add_listener(self, listener: Callable[[], None]) -> None: ...


class RunningConfigServing:
    """The default source, from the running config and the ports' links: a service can
    serve while it has a real that is enabled with a weight above 0 and the port it is
    bound to (`nic`) has its link up (a link the dataplane cannot tell counts as up).
    It has no news of its own: the controller's once-a-second look is its notification."""

    def __init__(self, running: Callable[[], NodeConfig], dataplane: Dataplane) -> None:
        self._running = running
        self._dataplane = dataplane
        self._listeners: list[Callable[[], None]] = []

    def add_listener(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def serving(self) -> set[ServiceKey]:
        cfg = self._running()
        down = {p.name for p in self._dataplane.status().ports if p.link_up is False}
        return {
            (svc.vip, svc.port, svc.protocol)
            for svc in cfg.services
            if (svc.nic is None or svc.nic not in down)
            and any(r.enabled and r.weight > 0 for r in svc.reals)
        }
