"""The BIRD controller (DESIGN section 7): keeps the routes file that the node's BIRD
includes equal to what the node can serve, reads BIRD's own state, and drains.

Each change: render the file, write it to a temporary name in its folder and rename it,
check BIRD's whole config with `bird -p -c`, then `birdc configure`, taking only an answer
that says it reconfigured. A refused config puts the previous file back; BIRD that cannot
be reached keeps the new (checked) file, which it reads when it starts, and the
controller tries again each `poll_interval`. Nothing here stops the node from forwarding.

A VIP is announced while the dataplane is not failed and one of its services can serve
(`ServingSource`); the node's local addresses always, its peers' (`PeerSource`) as
backups; everything is withdrawn when the node stops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from dplb.bgp.birdc import Bird, BirdProtocol, BirdUnavailable
from dplb.bgp.render import Route, plan_routes, render_routes
from dplb.bgp.serving import ServingSource
from dplb.config import BgpSection, IPAddress, NodeConfig
from dplb.dataplane import Dataplane

log = logging.getLogger("dplb.bgp")

# The cluster members' local addresses by node name (the etcd membership fills it in).
PeerSource = Callable[[], Mapping[str, Sequence[IPAddress]]]
BirdState = Literal["unknown", "up", "down", "not_installed"]
DrainState = Literal["none", "draining", "drained", "timed_out"]
FAILURE_REASONS = ("invalid_config", "refused", "bird_unavailable")


class AnnouncedRoute(BaseModel):
    prefix: str
    kind: str
    communities: list[str]


class BgpSession(BaseModel):
    name: str
    neighbor_address: str | None
    neighbor_as: int | None
    state: str
    info: str
    since: str
    established: bool
    routes_exported: int
    routes_imported: int


class Reconfiguration(BaseModel):
    at: datetime
    ok: bool
    message: str


class DrainStatus(BaseModel):
    state: DrainState = "none"
    mode: str = "graceful_shutdown"
    since: datetime | None = None
    established_sessions: int | None = None
    timeout_seconds: float = 0.0


class BgpStatus(BaseModel):
    enabled: bool
    bird: BirdState = "unknown"
    bird_message: str = ""
    asn: int | None = None
    router_id: str | None = None
    routes_file: str | None = None
    in_sync: bool = False  # BIRD took the routes the node wants announced
    announced: list[AnnouncedRoute] = []  # what BIRD took last
    desired: list[AnnouncedRoute] = []  # what the node wants announced now
    sessions: list[BgpSession] = []
    sessions_established: int = 0
    bfd_up: bool | None = None  # a BFD protocol runs in BIRD (None: none configured)
    last_reconfiguration: Reconfiguration | None = None
    reconfigurations: int = 0
    failures: dict[str, int] = {}
    drain: DrainStatus = DrainStatus()


def _announced(routes: Sequence[Route]) -> list[AnnouncedRoute]:
    return [
        AnnouncedRoute(prefix=r.prefix, kind=r.kind, communities=list(r.communities))
        for r in routes
    ]


def local_addresses_of(cfg: NodeConfig) -> list[IPAddress]:
    return [a for p in cfg.dataplane.ports for worker in p.local_addresses for a in worker]


def write_atomically(path: Path, text: str) -> None:
    """To `.NAME.tmp` in the same folder, then renamed: BIRD never reads half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class BirdController:
    def __init__(
        self,
        bgp: BgpSection,
        *,
        node: str,
        running: Callable[[], NodeConfig],
        dataplane: Dataplane,
        serving: ServingSource,
        peers: PeerSource | None = None,
        bird: Bird | None = None,
        evaluate_interval: float = 1.0,
    ) -> None:
        self.bgp = bgp
        self.node = node
        self._running = running
        self.dataplane = dataplane
        self.serving = serving
        self.peers: PeerSource = peers or (lambda: {})
        self.bird = bird or Bird(bgp.bird, bgp.birdc, bgp.control_socket, bgp.command_timeout)
        self.evaluate_interval = evaluate_interval
        self.bird_state: BirdState = "unknown"
        self.bird_message = ""
        self.protocols: list[BirdProtocol] = []
        self.reconfigurations = 0
        self.failures = dict.fromkeys(FAILURE_REASONS, 0)
        self.last: Reconfiguration | None = None
        self.stopped = False
        self.drain = DrainStatus(mode=bgp.drain.mode, timeout_seconds=bgp.drain.timeout)
        self._desired: list[Route] = []
        self._applied_text: str | None = None
        self._applied: list[Route] = []
        self._failed_text: str | None = None
        self._failed_at = 0.0
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._drain_task: asyncio.Task[None] | None = None
        serving.add_listener(self.notify)

    # -- what to announce --------------------------------------------------------------
    def notify(self) -> None:
        """A listener for the serving source (may be called from any thread)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            self._wake.set()
        elif self._task is not None:
            self._task.get_loop().call_soon_threadsafe(self._wake.set)

    def plan(self) -> list[Route]:
        if self.stopped:
            return []
        cfg = self._running()
        vips: set[IPAddress] = set()
        if self.dataplane.status().liveness.state != "failed":
            vips = {vip for vip, _, _ in self.serving.serving()}
        return plan_routes(
            self.bgp,
            vips=vips,
            local_addresses=local_addresses_of(cfg),
            peer_local_addresses=self.peers(),
            draining=self.drain.state != "none",
        )

    # -- applying ----------------------------------------------------------------------
    async def sync(self, force: bool = False) -> bool:
        """Makes BIRD announce `plan()`; True when it does. A text that failed is tried
        again only after `poll_interval` (or when `force`)."""
        async with self._lock:
            routes = await asyncio.to_thread(self.plan)
            self._desired = routes
            text = render_routes(self.bgp, routes, self.node)
            if text == self._applied_text:
                return True
            if (
                not force
                and text == self._failed_text
                and time.monotonic() - self._failed_at < self.bgp.poll_interval
            ):
                return False
            ok = await self._apply(text)
            if ok:
                self._applied_text, self._applied = text, routes
                self._failed_text = None
            else:
                self._failed_text, self._failed_at = text, time.monotonic()
            return ok

    async def _apply(self, text: str) -> bool:
        path = self.bgp.routes_file
        try:
            old = path.read_text()
        except FileNotFoundError:
            old = render_routes(self.bgp, [], self.node)
        except OSError as exc:
            return self._failed("invalid_config", f"{path}: {exc.strerror or exc}")
        try:
            await asyncio.to_thread(write_atomically, path, text)
        except OSError as exc:
            return self._failed("invalid_config", f"cannot write {path}: {exc.strerror or exc}")
        try:
            check = await self.bird.check_config(self.bgp.bird_config)
        except BirdUnavailable as exc:
            await self._put_back(path, old)
            self._bird_is("not_installed", str(exc))
            return self._failed("bird_unavailable", str(exc))
        if not check.ok:
            await self._put_back(path, old)
            return self._failed(
                "invalid_config", f"bird -p -c {self.bgp.bird_config}: {check.message}"
            )
        try:
            result = await self.bird.configure()
        except BirdUnavailable as exc:
            # The new file is checked: a BIRD that starts later reads it. Retried.
            self._bird_is("down", str(exc))
            return self._failed("bird_unavailable", str(exc))
        if not result.ok:
            await self._put_back(path, old)
            return self._failed("refused", f"birdc configure: {result.message}")
        self._bird_is("up", "")
        self.reconfigurations += 1
        self.last = Reconfiguration(at=datetime.now(UTC), ok=True, message=result.message)
        counts = {
            kind: sum(1 for r in self._desired if r.kind == kind)
            for kind in ("vip", "local_address", "backup")
        }
        log.info(
            "BIRD reconfigured: %d VIP, %d local, %d backup routes",
            counts["vip"],
            counts["local_address"],
            counts["backup"],
            extra={"event": "bgp_reconfigured", "fields": {**counts, "answer": result.message}},
        )
        return True

    async def _put_back(self, path: Path, old: str) -> None:
        try:
            await asyncio.to_thread(write_atomically, path, old)
        except OSError as exc:
            log.error("cannot put back %s: %s", path, exc)

    def _failed(self, reason: str, message: str) -> bool:
        self.failures[reason] += 1
        repeated = self.last is not None and not self.last.ok and self.last.message == message
        self.last = Reconfiguration(at=datetime.now(UTC), ok=False, message=message)
        if not repeated:  # a BIRD that stays down is one line, not one per retry
            log.warning(
                "BIRD not reconfigured (%s): %s",
                reason,
                message,
                extra={
                    "event": "bgp_reconfigure_failed",
                    "fields": {"reason": reason, "message": message},
                },
            )
        return False

    def _bird_is(self, state: BirdState, message: str) -> None:
        if state != self.bird_state:
            event = "bgp_bird_up" if state == "up" else "bgp_bird_down"
            level = logging.INFO if state == "up" else logging.WARNING
            log.log(
                level,
                "BIRD is %s%s",
                state.replace("_", " "),
                f": {message}" if message else "",
                extra={"event": event, "fields": {"state": state, "message": message}},
            )
        self.bird_state, self.bird_message = state, message
        if state != "up":
            self.protocols = []

    async def poll(self) -> None:
        """Reads BIRD's protocols (sessions, routes exported)."""
        try:
            protocols = await self.bird.protocols()
        except BirdUnavailable as exc:
            self._bird_is("not_installed" if "not installed" in str(exc) else "down", str(exc))
            return
        self._bird_is("up", "")
        self.protocols = protocols

    # -- the loop --------------------------------------------------------------------
    async def run(self) -> None:
        next_poll = 0.0
        while True:
            try:
                now = time.monotonic()
                if now >= next_poll:
                    was = self.bird_state
                    await self.poll()
                    next_poll = now + self.bgp.poll_interval
                    # BIRD came back: what it read at its start may be older than wanted.
                    await self.sync(force=was != "up" and self.bird_state == "up")
                else:
                    await self.sync()
            except Exception:  # the controller must outlive any one bad turn
                log.exception("BIRD controller turn failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.evaluate_interval)

    async def start(self) -> None:
        await self.poll()
        await self.sync(force=True)
        self._task = asyncio.create_task(self.run(), name="dplb-bgp")

    async def stop(self) -> None:
        """Drains first when `drain.on_stop` and BIRD runs, then withdraws everything."""
        if self.bgp.drain.on_stop and self.bird_state == "up" and self.drain.state == "none":
            await self.start_drain()
        if self._drain_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain_task
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.stopped = True
        if await self.sync(force=True):
            await self._until_exported_none(2.0)
        log.info("BGP announcements withdrawn", extra={"event": "bgp_withdrawn", "fields": {}})

    async def _until_exported_none(self, timeout: float) -> None:
        """Until BIRD exports nothing to its established sessions (it has sent the
        withdrawals), at most `timeout` s: the data plane stops right after."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            await self.poll()
            if self.bird_state != "up" or not any(
                p.established and p.routes_exported for p in self.protocols
            ):
                return
            await asyncio.sleep(0.1)

    # -- drain -----------------------------------------------------------------------
    def established_sessions(self) -> int:
        return sum(r.active for r in self.dataplane.stats().reals)

    async def start_drain(self) -> DrainStatus:
        if self.drain.state == "none":
            self.drain = DrainStatus(
                state="draining",
                mode=self.bgp.drain.mode,
                since=datetime.now(UTC),
                timeout_seconds=self.bgp.drain.timeout,
                established_sessions=await asyncio.to_thread(self.established_sessions),
            )
            log.info(
                "draining (%s): %d established sessions",
                self.bgp.drain.mode,
                self.drain.established_sessions or 0,
                extra={
                    "event": "bgp_drain_started",
                    "fields": {
                        "mode": self.bgp.drain.mode,
                        "sessions": self.drain.established_sessions,
                    },
                },
            )
            await self.sync(force=True)
            self._drain_task = asyncio.create_task(self._wait_drained(), name="dplb-bgp-drain")
        return self.drain

    async def _wait_drained(self) -> None:
        deadline = time.monotonic() + self.bgp.drain.timeout
        while True:
            left = await asyncio.to_thread(self.established_sessions)
            self.drain.established_sessions = left
            if left == 0 or time.monotonic() >= deadline:
                break
            await asyncio.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        self.drain.state = "drained" if left == 0 else "timed_out"
        log.info(
            "drain %s: %d established sessions left",
            "done" if left == 0 else "timed out",
            left,
            extra={
                "event": "bgp_drained",
                "fields": {"result": self.drain.state, "sessions": left},
            },
        )

    async def wait_drained(self) -> DrainStatus:
        if self._drain_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain_task
        return self.drain

    async def undrain(self) -> DrainStatus:
        if self._drain_task is not None:
            self._drain_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain_task
            self._drain_task = None
        if self.drain.state != "none":
            self.drain = DrainStatus(
                mode=self.bgp.drain.mode, timeout_seconds=self.bgp.drain.timeout
            )
            log.info("undrained", extra={"event": "bgp_undrained", "fields": {}})
            await self.sync(force=True)
        return self.drain

    # -- what the API and metrics show ------------------------------------------------
    def status(self) -> BgpStatus:
        sessions = [
            BgpSession(
                name=p.name,
                neighbor_address=p.neighbor_address,
                neighbor_as=p.neighbor_as,
                state=p.state,
                info=p.info,
                since=p.since,
                established=p.established,
                routes_exported=p.routes_exported,
                routes_imported=p.routes_imported,
            )
            for p in self.protocols
            if p.proto == "BGP"
        ]
        bfd = [p for p in self.protocols if p.proto == "BFD"]
        return BgpStatus(
            enabled=True,
            bird=self.bird_state,
            bird_message=self.bird_message,
            asn=self.bgp.asn,
            router_id=str(self.bgp.router_id) if self.bgp.router_id else None,
            routes_file=str(self.bgp.routes_file),
            in_sync=self._applied_text is not None and self._applied == self._desired,
            announced=_announced(self._applied),
            desired=_announced(self._desired),
            sessions=sessions,
            sessions_established=sum(1 for s in sessions if s.established),
            bfd_up=any(p.state == "up" for p in bfd) if bfd else None,
            last_reconfiguration=self.last,
            reconfigurations=self.reconfigurations,
            failures=dict(self.failures),
            drain=self.drain.model_copy(),
        )
