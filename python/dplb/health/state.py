"""Health state of the reals: the rise/fall state machine of one real (`RealHealth`) and
the node's view of all of them (`HealthState`), which the dataplane, the API, the
metrics and the BGP controller read. Health is the node's own observation, never
desired config: it lives here, not in the store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

# (vip, port, protocol, real address, real port): the same key as dplb.metrics.RealKey.
RealKey = tuple[str, int, str, str, int]
ServiceKey = tuple[str, int, str]  # (vip, port, protocol)
HealthStatus = Literal["up", "down", "unchecked"]


@dataclass(frozen=True, slots=True)
class WantedReal:
    """A real of the running config as the state follows it."""

    key: RealKey
    rise: int
    fall: int
    checked: bool  # its service checks it (type not none, the real did not opt out)
    serving: bool  # enabled, weight above 0
    port_index: int  # the port it is reached by


@dataclass
class RealHealth:
    """One real's checks: `rise` passes in a row bring a down real up, `fall` failures
    in a row take an up real down. A real starts up (a node that restarts must not drop
    every service until the first round of checks), its first result still unknown.
    `unchecked`: its service checks nothing (type none) or the real opted out: up
    (but for a link down under it)."""

    rise: int
    fall: int
    checked: bool = True
    up: bool = True
    passes: int = 0  # in a row
    failures: int = 0  # in a row
    last_result: str = "unknown"  # "pass", or what failed: "timeout", "refused", ...
    last_check_at: float | None = None  # Unix time
    last_change_at: float = field(default_factory=time.time)  # Unix time
    checks: int = 0
    # Why it went down: "active" (its checks), "passive" (the workers' counters) or
    # "link" (the link of the port it is reached by went down).
    down_reason: str | None = None
    # The config lets it take sessions (enabled, weight above 0): service_can_serve.
    serving: bool = True
    port_index: int = 0  # the port it is reached by

    @property
    def status(self) -> HealthStatus:
        if not self.up:
            return "down"
        return "up" if self.checked else "unchecked"

    def record(self, passed: bool, result: str, now: float) -> bool:
        """Counts one check; True when the real changed between up and down."""
        self.checks += 1
        self.last_result = result
        self.last_check_at = now
        if passed:
            self.passes += 1
            self.failures = 0
            if not self.up and self.passes >= self.rise:
                self._change(True, None, now)
                return True
        else:
            self.failures += 1
            self.passes = 0
            if self.up and self.failures >= self.fall:
                self._change(False, "active", now)
                return True
        return False

    def mark_down(self, result: str, now: float, reason: str = "passive") -> bool:
        """Down at once (passive checks, a link down): True when it was up. Back up
        through `rise` passing active checks (an unchecked real: `mark_up`)."""
        self.last_result = result
        self.passes = 0
        if not self.up:
            return False
        self._change(False, reason, now)
        return True

    def mark_up(self, result: str, now: float) -> bool:
        """Up at once (an unchecked real whose link came back): True when it was down."""
        self.last_result = result
        if self.up:
            return False
        self._change(True, None, now)
        return True

    def _change(self, up: bool, reason: str | None, now: float) -> None:
        self.up = up
        self.down_reason = reason
        self.last_change_at = now


class HealthState:
    """Every checked real of the node, by RealKey. Written by the checker (on the event
    loop), read by anyone. `service_can_serve` and `changed` are what the BGP controller
    needs: a VIP is announced while its service can serve."""

    def __init__(self) -> None:
        self.reals: dict[RealKey, RealHealth] = {}
        # Per service: the keys of its reals that are checked here (its NIC's checks).
        self._services: dict[ServiceKey, list[RealKey]] = {}
        self.changed = asyncio.Event()  # set at each change; a reader clears it
        self._listeners: list[Callable[[list[RealKey]], None]] = []
        self.generation = 0

    # -- what readers ask --------------------------------------------------------------
    def get(self, key: RealKey) -> RealHealth | None:
        return self.reals.get(key)

    def is_up(self, key: RealKey) -> bool:
        """Up, unchecked or unknown here: only a real the checks took down is down."""
        health = self.reals.get(key)
        return health is None or health.up

    def down(self) -> frozenset[RealKey]:
        return frozenset(k for k, h in self.reals.items() if not h.up)

    def real_up(self) -> dict[RealKey, bool]:
        """Every known real's verdict (dplb_real_up)."""
        return {k: h.up for k, h in self.reals.items()}

    def service_can_serve(self, service: ServiceKey) -> bool:
        """True while at least one real of the service is up (checked or unchecked) and
        takes sessions by the config (enabled, weight above 0). False for a service
        with no such real, and for one this node does not run."""
        keys = self._services.get(service)
        if not keys:
            return False
        return any(h.up and h.serving for k in keys if (h := self.reals.get(k)) is not None)

    def services(self) -> dict[ServiceKey, bool]:
        """service_can_serve for every known service."""
        return {s: self.service_can_serve(s) for s in self._services}

    def subscribe(self, listener: Callable[[list[RealKey]], None]) -> None:
        """`listener(changed_keys)` after each change, on the event loop (keep it short)."""
        self._listeners.append(listener)

    # -- what the checker does ---------------------------------------------------------
    def sync(self, wanted: Iterable[WantedReal]) -> list[RealKey]:
        """Follows the config: `wanted` holds every real. Known reals keep their state
        (a re-applied config does not bring a down real back); new ones start up; gone
        ones are forgotten. Returns the keys that changed between up and down (a real
        no longer checked comes up)."""
        seen: dict[RealKey, RealHealth] = {}
        services: dict[ServiceKey, list[RealKey]] = {}
        changed: list[RealKey] = []
        for w in wanted:
            key = w.key
            health = self.reals.get(key)
            if health is None:
                health = RealHealth(rise=w.rise, fall=w.fall, checked=w.checked)
            else:
                health.rise, health.fall = w.rise, w.fall
                if health.checked != w.checked:
                    health.checked = w.checked
                    if not w.checked and health.down_reason != "link" and not health.up:
                        health._change(True, None, time.time())
                        changed.append(key)
            health.serving = w.serving
            health.port_index = w.port_index
            seen[key] = health
            services.setdefault((key[0], key[1], key[2]), []).append(key)
        self.reals = seen
        self._services = services
        return changed

    def notify(self, keys: list[RealKey]) -> None:
        if not keys:
            return
        self.generation += 1
        self.changed.set()
        for listener in list(self._listeners):
            listener(keys)
