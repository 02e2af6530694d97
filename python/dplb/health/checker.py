"""The health checker of a node (DESIGN section 7): checks every real of every service on
asyncio, each from the kernel side of the port its service reaches the reals by, spread
evenly over each interval; feeds the rise/fall state (dplb.health.state); reads the
workers' passive counters; and hands the set of down reals to the dataplane, which
quiesces them (weight 0 in a new engine snapshot). It follows the running config: a
config applied again keeps what the checks found."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import ipaddress
import logging
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from dplb.config import HealthCheckSection, HealthSection, NodeConfig, check_type
from dplb.dataplane import Dataplane, PortStatus, SessionKey, SessionQuery
from dplb.dataplane.telemetry import COUNTER_FIELDS
from dplb.health.probes import ProbeResult, ProbeTarget, run_check
from dplb.health.state import HealthState, RealKey, WantedReal

log = logging.getLogger("dplb.health")

_SYN = COUNTER_FIELDS.index("syn_unanswered")
_RST = COUNTER_FIELDS.index("resets_from_real")
_NFIELDS = len(COUNTER_FIELDS)


def real_port_index(cfg: NodeConfig, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> int:
    """The port a real is reached by, as the engine routes: the port with a connected
    subnet holding it, else the first with a gateway of its IP version, else the first
    port with local addresses of its version (0 when none: the config refuses that)."""
    ports = cfg.dataplane.ports
    for i, port in enumerate(ports):
        if any(a.version == address.version and address in a.network for a in port.address):
            return i
    for i, port in enumerate(ports):
        if any(g.version == address.version for g in port.gateway):
            return i
    for i, port in enumerate(ports):
        if any(a.version == address.version for w in port.local_addresses for a in w):
            return i
    return 0


@dataclass
class Target:
    """One real's check, as the running config says."""

    key: RealKey
    kind: str  # tcp, http, https, udp
    check: HealthCheckSection
    probe: ProbeTarget
    port_index: int
    due: float = 0.0  # monotonic
    busy: bool = False  # a check of it is under way


@dataclass
class PassiveWindow:
    """The passive counters of one real over the last `window` seconds."""

    samples: deque[tuple[float, int, int]] = field(default_factory=deque)


@dataclass
class CheckerStats:
    """The checker's own cost, for /metrics."""

    checks: dict[str, int] = field(default_factory=lambda: {"pass": 0, "fail": 0})
    check_seconds: float = 0.0  # summed durations of the checks (waiting included)
    busy_seconds: float = 0.0  # the checker's own work on the event loop
    late: int = 0  # checks started more than one interval after they were due
    in_flight: int = 0
    applies: int = 0  # dataplane snapshots made for health changes
    apply_errors: int = 0
    passive_downs: int = 0
    link_downs: int = 0


def _device(cfg: NodeConfig, index: int, kernel_interfaces: bool) -> str | None:
    if not kernel_interfaces:
        return None
    from dplb.node import kernel_interface_name

    name = kernel_interface_name(cfg, index)
    if not name:
        return None
    try:
        socket.if_nametoindex(name)
    except OSError:
        return None  # not there (yet): unbound rather than failing every check
    return name


class HealthChecker:
    """Runs on the event loop of the node's API. `start()` / `stop()`; `state` holds
    what it found; `stats` its own cost."""

    def __init__(
        self,
        dataplane: Dataplane,
        settings: HealthSection,
        *,
        running_config: Callable[[], NodeConfig] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dataplane = dataplane
        self.settings = settings
        self.state = HealthState()
        self.stats = CheckerStats()
        self._running_config = running_config or dataplane.running_config
        self._clock = clock
        self._kernel_interfaces = dataplane.kind == "dpdk"
        self._targets: dict[RealKey, Target] = {}
        self._heap: list[tuple[float, int, RealKey]] = []
        self._seq = 0
        self._config: NodeConfig | None = None
        self._links_down: set[int] = set()
        self._passive: dict[RealKey, PassiveWindow] = {}
        self._sem = asyncio.Semaphore(settings.max_concurrent)
        self._tasks: set[asyncio.Task[None]] = set()
        self._dirty = asyncio.Event()
        self._wake = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._applied_down: frozenset[RealKey] = frozenset()
        self._passive_wanted = False  # a service has passive thresholds

    # -- following the config ----------------------------------------------------------
    def sync(self, cfg: NodeConfig) -> None:
        """Takes the reals of `cfg`: new ones are scheduled, spread evenly over their
        interval; known ones keep their state and their place in the schedule."""
        started = time.perf_counter()
        self._config = cfg
        now = self._clock()
        targets: dict[RealKey, Target] = {}
        wanted: list[WantedReal] = []
        fresh: list[Target] = []
        devices: dict[int, str | None] = {}  # per port: looked up once per config
        passive = False
        for svc in cfg.services:
            kind = check_type(svc)
            hc = svc.health_check
            for real in svc.reals:
                key: RealKey = (str(svc.vip), svc.port, svc.protocol, str(real.address), real.port)
                own = real.health_check
                checked = kind != "none" and (own is None or own.enabled)
                index = real_port_index(cfg, real.address)
                serving = real.enabled and real.weight > 0
                wanted.append(WantedReal(key, hc.rise, hc.fall, checked, serving, index))
                if not checked:
                    continue
                address = (
                    own.address if own is not None and own.address is not None else real.address
                )
                port = (own.port if own is not None else None) or hc.port or real.port
                probe = ProbeTarget(
                    address=str(address),
                    port=port,
                    family=socket.AF_INET6 if address.version == 6 else socket.AF_INET,
                    device=devices[index]
                    if index in devices
                    else devices.setdefault(index, _device(cfg, index, self._kernel_interfaces)),
                )
                passive = passive or bool(hc.passive.syn_unanswered or hc.passive.resets)
                old = self._targets.get(key)
                target = Target(key, kind, hc, probe, index, old.due if old is not None else 0.0)
                target.busy = old.busy if old is not None else False
                targets[key] = target
                if old is None:
                    fresh.append(target)
        # Spread: the i-th of n new targets sharing an interval starts i/n of it from now.
        by_interval: dict[float, list[Target]] = {}
        for t in fresh:
            by_interval.setdefault(t.check.interval, []).append(t)
        for interval, group in by_interval.items():
            n = len(group)
            for i, t in enumerate(group):
                t.due = now + interval * i / n
                self._push(t)
        self._targets = targets
        self._passive_wanted = passive
        came_up = self.state.sync(wanted)
        self._passive = {k: w for k, w in self._passive.items() if k in targets}
        self.stats.busy_seconds += time.perf_counter() - started
        if came_up:
            self._changed(came_up, "config")
        self._dirty.set()  # a new config: make sure the dataplane has the down set
        self._wake.set()

    def schedule(self) -> list[tuple[float, RealKey]]:
        """When each target is due next (monotonic), soonest first (for tests)."""
        return sorted((t.due, k) for k, t in self._targets.items())

    def _push(self, t: Target) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t.due, self._seq, t.key))

    # -- running -----------------------------------------------------------------------
    def start(self) -> None:
        self.sync(self._running_config())
        for name, coro in (
            ("dplb-health-checks", self._check_loop()),
            ("dplb-health-apply", self._apply_loop()),
            ("dplb-health-watch", self._watch_loop()),
        ):
            self._loops.append(asyncio.create_task(coro, name=name))

    async def stop(self) -> None:
        for task in [*self._loops, *self._tasks]:
            task.cancel()
        for task in [*self._loops, *self._tasks]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._loops.clear()
        self._tasks.clear()

    async def _check_loop(self) -> None:
        while True:
            try:
                self._start_due()
            except Exception:  # keep checking whatever happens
                log.exception("health checker: starting the due checks failed")
            delay = self._heap[0][0] - self._clock() if self._heap else 1.0
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, min(delay, 1.0)))

    def _start_due(self) -> None:
        """Starts every check that is due (or fails it at once behind a dead link)."""
        now = self._clock()
        started = time.perf_counter()
        while self._heap and self._heap[0][0] <= now:
            due, _, key = heapq.heappop(self._heap)
            target = self._targets.get(key)
            if target is None or target.due != due:
                continue  # gone, or rescheduled
            if now - due > target.check.interval:
                self.stats.late += 1
            # The next one keeps its phase; a checker that fell behind skips ahead.
            target.due = due + target.check.interval
            if target.due <= now:
                target.due = now + target.check.interval
            self._push(target)
            if target.port_index in self._links_down:
                self._record(target, ProbeResult(False, "link down"), 0.0)
                continue
            if target.busy:
                self.stats.late += 1  # its last check still runs (timeout > interval)
                continue
            target.busy = True
            task = asyncio.create_task(self._probe(target))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self.stats.busy_seconds += time.perf_counter() - started

    async def _probe(self, target: Target) -> None:
        try:
            async with self._sem:
                self.stats.in_flight += 1
                started = time.monotonic()
                try:
                    result = await run_check(target.kind, target.check, target.probe)
                finally:
                    self.stats.in_flight -= 1
                took = time.monotonic() - started
        finally:
            target.busy = False
            current = self._targets.get(target.key)
            if current is not None:
                current.busy = False
        if self._targets.get(target.key) is not None:
            self._record(self._targets[target.key], result, took)

    def _record(self, target: Target, result: ProbeResult, took: float) -> None:
        started = time.perf_counter()
        self.stats.checks["pass" if result.passed else "fail"] += 1
        self.stats.check_seconds += took
        health = self.state.get(target.key)
        if health is not None and health.record(result.passed, result.result, time.time()):
            self._changed([target.key], "active")
        self.stats.busy_seconds += time.perf_counter() - started

    def _changed(self, keys: list[RealKey], source: str) -> None:
        for key in keys:
            health = self.state.get(key)
            if health is None:
                continue
            vip, port, protocol, address, real_port = key
            level = logging.INFO if health.up else logging.WARNING
            log.log(
                level,
                "real %s:%d of %s:%d/%s is %s (%s)",
                address,
                real_port,
                vip,
                port,
                protocol,
                health.status,
                health.last_result,
                extra={
                    "event": "real_up" if health.up else "real_down",
                    "fields": {
                        "vip": vip,
                        "port": port,
                        "protocol": protocol,
                        "real": address,
                        "real_port": real_port,
                        "result": health.last_result,
                        "source": source,
                    },
                },
            )
        self.state.notify(keys)
        self._dirty.set()

    # -- the effect --------------------------------------------------------------------
    async def _apply_loop(self) -> None:
        """Hands the down set to the dataplane whenever it changed; changes that come
        while one is applied are applied together next."""
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            down = self.state.down()
            if down == self._applied_down and self.stats.applies:
                continue
            went_down = down - self._applied_down
            try:
                await asyncio.to_thread(self.dataplane.set_reals_down, down)
            except Exception as exc:  # keep checking; the next change tries again
                self.stats.apply_errors += 1
                log.error("cannot apply the health of the reals: %s", exc)
                await asyncio.sleep(1.0)
                self._dirty.set()
                continue
            self.stats.applies += 1
            self._applied_down = down
            resets = [k for k in went_down if self._on_down(k) == "reset"]
            if resets:
                try:
                    await asyncio.to_thread(self._reset_sessions, resets)
                except Exception:  # they are quiesced at least; keep applying
                    log.exception("health checker: resetting the sessions of down reals failed")

    def _on_down(self, key: RealKey) -> str:
        target = self._targets.get(key)
        return target.check.on_down if target is not None else "quiesce"

    def _reset_sessions(self, keys: list[RealKey]) -> None:
        for vip, port, protocol, address, real_port in keys:
            query = SessionQuery.model_validate(
                {
                    "vip": vip,
                    "vip_port": port,
                    "protocol": protocol,
                    "real": address,
                    "real_port": real_port,
                    "limit": 1000,
                }
            )
            while True:
                page = self.dataplane.sessions(query)
                for s in page.items:
                    self.dataplane.reset_session(
                        SessionKey(
                            client=s.client,
                            client_port=s.client_port,
                            vip=s.vip,
                            vip_port=s.vip_port,
                            protocol=s.protocol,
                        )
                    )
                if page.next_cursor is None:
                    break
                query = query.model_copy(update={"cursor": page.next_cursor})

    # -- links, config and passive counters --------------------------------------------
    async def _watch_loop(self) -> None:
        last_passive = 0.0
        while True:
            try:
                cfg = self._running_config()
                if cfg is not self._config:
                    self.sync(cfg)
                status = await asyncio.to_thread(self.dataplane.status)
                self._links(status.ports)
                now = self._clock()
                if self._passive_wanted and now - last_passive >= self.settings.passive_interval:
                    last_passive = now
                    table = await asyncio.to_thread(self.dataplane.counters)
                    self._passive_check(table, now)
            except Exception:
                log.exception("health checker: watching the dataplane failed")
            await asyncio.sleep(min(0.5, self.settings.passive_interval))

    def _links(self, ports: list[PortStatus]) -> None:
        """A port whose link goes down takes every real behind it down at once (checked
        ones come back through their checks; unchecked ones when the link is back)."""
        down = {i for i, p in enumerate(ports) if p.link_up is False}
        newly, back = down - self._links_down, self._links_down - down
        self._links_down = down
        if not newly and not back:
            return
        now = time.time()
        changed = []
        for key, health in self.state.reals.items():
            if health.port_index in newly and health.mark_down("link down", now, "link"):
                changed.append(key)
                self.stats.link_downs += 1
            elif (
                health.port_index in back and not health.checked and health.mark_up("link up", now)
            ):
                changed.append(key)
        if changed:
            self._changed(changed, "link")

    def _passive_check(self, table: object, now: float) -> None:
        started = time.perf_counter()
        services = table.services  # type: ignore[attr-defined]
        counters = table.real_counters  # type: ignore[attr-defined]
        changed = []
        for k, (index, address, port, _) in enumerate(table.reals):  # type: ignore[attr-defined]
            vip, vport, protocol = services[index]
            key: RealKey = (vip, vport, protocol, address, port)
            target = self._targets.get(key)
            if target is None:
                continue
            passive = target.check.passive
            if not passive.syn_unanswered and not passive.resets:
                continue
            syns = int(counters[k * _NFIELDS + _SYN])
            rsts = int(counters[k * _NFIELDS + _RST])
            window = self._passive.setdefault(key, PassiveWindow())
            window.samples.append((now, syns, rsts))
            while window.samples and now - window.samples[0][0] > passive.window:
                window.samples.popleft()
            _, syns0, rsts0 = window.samples[0]
            why = None
            if passive.syn_unanswered and syns - syns0 > passive.syn_unanswered:
                why = f"{syns - syns0} SYNs unanswered"
            elif passive.resets and rsts - rsts0 > passive.resets:
                why = f"{rsts - rsts0} resets"
            if why is None:
                continue
            health = self.state.get(key)
            if health is not None and health.mark_down(why, time.time()):
                changed.append(key)
                window.samples.clear()
        self.stats.passive_downs += len(changed)
        self.stats.busy_seconds += time.perf_counter() - started
        if changed:
            self._changed(changed, "passive")
