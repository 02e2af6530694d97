"""`SyncManager`: session sync of one node, as the control plane runs it. It starts the
sync thread of the dataplane's engine (`dplb._core.SyncService`), keeps its peers and
the peers' local addresses up to date from the cluster's members, pulls every live
peer's table once at start (full sync) and says when the node is ready: until then the
BGP controller announces no VIP (`SyncGatedServing`), so routers send no new flow to a
node that does not yet hold the sessions it might receive.

The peers' local addresses stay installed after a peer's member key is gone: that is
when they matter (the dead node's return traffic reaches this node by the backup
routes, and its synced sessions need the addresses to be ours)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from dplb.config import NodeConfig
from dplb.store import MemberInfo, Store, StoreError

log = logging.getLogger("dplb.sync")

FullSyncState = Literal["idle", "running", "done", "failed", "skipped"]


def node_id(name: str) -> int:
    """A node's id on the sync wire: a 31-bit hash of its name, the same on every node
    (two names with the same id are refused as peers, see `SyncManager._peers_of`)."""
    return (zlib.crc32(name.encode()) & 0x7FFFFFFF) or 1


def worker_local_addresses(cfg: NodeConfig) -> list[list[str]]:
    """Each worker's local addresses over all ports: what a peer installs as owned by its
    worker of the same index."""
    out: list[list[str]] = [[] for _ in range(cfg.dataplane.workers)]
    for port in cfg.dataplane.ports:
        for w, addresses in enumerate(port.local_addresses):
            out[w].extend(str(a) for a in addresses)
    return out


class SyncService(Protocol):
    """The binding's SyncService (cpp/host/sync_service.hpp), as the manager uses it."""

    def set_peers(self, peers: list[tuple[int, str]]) -> None: ...
    def set_keys(self, keys: list[tuple[int, bytes]], send_key: int) -> None: ...
    def stats(self) -> dict[str, Any]: ...
    def peers(self) -> list[dict[str, Any]]: ...
    def full_sync(self, peers: list[tuple[int, str]]) -> None: ...
    def full_sync_status(self) -> dict[str, Any]: ...
    def stop(self) -> None: ...


class SyncPeer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    node: str
    node_id: int
    address: str
    # its member key is there: it runs and reaches the store
    live: bool
    # a datagram from it authenticated within the last `up_after` seconds
    up: bool
    last_seen_seconds: float | None = None
    datagrams: int = 0
    records: int = 0
    gaps: int = 0
    lag_p50_seconds: float | None = None
    lag_p99_seconds: float | None = None
    # why it is not synced with (different worker count, an id taken by another peer)
    refused: str | None = None


class FullSync(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: FullSyncState
    records: int = 0
    peers_done: int = 0
    peers: int = 0
    error: str | None = None
    seconds: float | None = None


class SyncStatus(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool
    # the node holds its peers' sessions (full sync done, failed or not needed)
    ready: bool
    node_id: int | None = None
    listen: str | None = None
    full_sync: FullSync | None = None
    peers: list[SyncPeer] = []
    stats: dict[str, Any] = {}


class SyncManager:
    def __init__(
        self,
        config: NodeConfig,
        store: Store,
        service_factory: Callable[..., SyncService],
        set_peer_local_addresses: Callable[[int, list[list[str]]], None],
        keys: Sequence[tuple[int, bytes]],
        send_key: int,
        interval: float = 2.0,
        up_after: float = 3.0,
    ) -> None:
        settings = config.sync
        self.config = config
        self.settings = settings
        self.store = store
        self.node = config.node.name
        self.node_id = node_id(self.node)
        self.interval = interval
        self.up_after = up_after
        self._set_laddrs = set_peer_local_addresses
        self._installed: dict[int, list[list[str]]] = {}  # peer id -> laddrs installed
        self._members: dict[str, MemberInfo] = {}  # every member seen, by node name
        self._live: set[str] = set()
        self._refused: dict[str, str] = {}
        self._peers: list[tuple[int, str]] = []
        self._full: FullSync = FullSync(state="idle")
        self._full_started = 0.0
        self._listeners: list[Callable[[], None]] = []
        self._last_peer_stats: dict[int, tuple[dict[str, Any], float]] = {}
        self._task: asyncio.Task[None] | None = None
        self.service = service_factory(
            node_id=self.node_id,
            listen=settings.listen,
            keys=list(keys),
            send_key=send_key,
            mtu=settings.mtu,
            flush_ms=settings.flush_ms,
        )

    # -- readiness (the BGP gate) ------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self._full.state in ("done", "failed", "skipped")

    def add_listener(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def _became_ready(self) -> None:
        for listener in self._listeners:
            listener()

    # -- peers -------------------------------------------------------------------------
    def _peers_of(self, members: list[MemberInfo]) -> list[tuple[int, str]]:
        """The members to sync with, each with its id and sync address; refusals named."""
        workers = self.config.dataplane.workers
        taken: dict[int, str] = {self.node_id: self.node}
        peers: list[tuple[int, str]] = []
        self._refused = {}
        for m in sorted(members, key=lambda m: m.node):
            if m.node == self.node:
                continue
            if m.sync is None:
                self._refused[m.node] = "session sync is off there (sync.enabled)"
                continue
            pid = node_id(m.node)
            if pid in taken:
                self._refused[m.node] = f"its sync id {pid} is {taken[pid]}'s too: rename one"
                continue
            if m.workers != workers:
                self._refused[m.node] = (
                    f"it runs {m.workers} workers, this node {workers}: session sync "
                    "needs the same worker count on every node"
                )
                continue
            taken[pid] = m.node
            peers.append((pid, m.sync))
        return peers

    def _install_local_addresses(self, members: list[MemberInfo]) -> None:
        for m in members:
            if (
                m.node == self.node
                or m.sync is None  # it syncs with nobody: none of its sessions come here
                or m.node in self._refused
                or not m.worker_local_addresses
            ):
                continue
            pid = node_id(m.node)
            if self._installed.get(pid) == m.worker_local_addresses:
                continue
            try:
                self._set_laddrs(pid, m.worker_local_addresses)
            except ValueError as exc:
                self._refused[m.node] = str(exc)
                continue
            self._installed[pid] = m.worker_local_addresses
            log.info(
                "sync: peer %s's local addresses installed (%d workers)",
                m.node,
                len(m.worker_local_addresses),
            )

    async def refresh(self) -> None:
        members = await self.store.members()
        self._live = {m.node for m in members}
        for m in members:
            self._members[m.node] = m
        peers = self._peers_of(members)
        self._install_local_addresses(members)
        if peers != self._peers:
            self._peer_stats()  # the last counters of a peer about to be dropped
            log.info("sync: peers %s", ", ".join(f"{a} (id {i})" for i, a in peers) or "none")
            await asyncio.to_thread(self.service.set_peers, peers)
            self._peers = peers

    # -- full sync ---------------------------------------------------------------------
    async def _full_sync(self) -> None:
        if not self._peers:
            self._full = FullSync(state="skipped")
            log.info("sync: no live peer, nothing to pull: ready")
            self._became_ready()
            return
        self._full_started = time.monotonic()
        self._full = FullSync(state="running", peers=len(self._peers))
        log.info("sync: full sync from %d peers", len(self._peers))
        await asyncio.to_thread(self.service.full_sync, list(self._peers))
        deadline = self._full_started + self.settings.full_sync_timeout
        last_log = 0.0
        while True:
            status = await asyncio.to_thread(self.service.full_sync_status)
            self._full = self._full_of(status)
            now = time.monotonic()
            if self._full.state in ("done", "failed"):
                break
            if now > deadline:
                self._full = self._full.model_copy(
                    update={
                        "state": "failed",
                        "error": f"not done after {self.settings.full_sync_timeout:g} s",
                    }
                )
                break
            if now - last_log >= 1.0:
                last_log = now
                log.info(
                    "sync: full sync %d records, %d of %d peers done",
                    self._full.records,
                    self._full.peers_done,
                    self._full.peers,
                )
            await asyncio.sleep(0.1)
        if self._full.state == "done":
            log.info(
                "sync: full sync done: %d records in %.2f s: ready",
                self._full.records,
                self._full.seconds or 0.0,
            )
        else:
            log.warning("sync: full sync failed (%s): ready without it", self._full.error)
        self._became_ready()

    def _full_of(self, status: dict[str, Any]) -> FullSync:
        peers = status.get("peers") or []
        state = status.get("state", "running")
        return FullSync(
            state=state if state in ("idle", "running", "done", "failed") else "running",
            records=int(status.get("records", 0)),
            peers=len(peers) or len(self._peers),
            peers_done=sum(1 for p in peers if p.get("done")),
            error=status.get("error") or None,
            seconds=time.monotonic() - self._full_started,
        )

    # -- running -----------------------------------------------------------------------
    async def start(self) -> None:
        try:
            await self.refresh()
        except (StoreError, ValueError) as exc:
            log.warning("sync: members unreadable at start (%s): no full sync", exc)
        self._task = asyncio.create_task(self._run(), name="dplb-sync")

    async def _run(self) -> None:
        await self._full_sync()
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.refresh()
            except (StoreError, ValueError) as exc:
                log.debug("sync: members: %s", exc)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.to_thread(self.service.stop)

    def _peer_stats(self) -> dict[int, dict[str, Any]]:
        """The sync thread's per-peer counters by node id. A peer dropped from its list
        (its member key gone: dead, or cut off) keeps the last ones seen, its silence
        growing, so that operators see when it went quiet."""
        now = time.monotonic()
        by_id: dict[int, dict[str, Any]] = {}
        for p in self.service.peers():
            by_id[p["node_id"]] = p
            self._last_peer_stats[p["node_id"]] = (p, now)
        for pid, (p, when) in self._last_peer_stats.items():
            if pid not in by_id:
                seen = p.get("last_seen_seconds")
                silent = None if seen is None else seen + now - when
                by_id[pid] = p | {"last_seen_seconds": silent, "listed": False}
        return by_id

    def status(self) -> SyncStatus:
        by_id = self._peer_stats()
        peers: list[SyncPeer] = []
        for name, m in sorted(self._members.items()):
            if name == self.node:
                continue
            pid = node_id(name)
            p = by_id.get(pid, {})
            seen = p.get("last_seen_seconds")
            peers.append(
                SyncPeer(
                    node=name,
                    node_id=pid,
                    address=m.sync or "",
                    live=name in self._live,
                    # heard from lately, and still listed (a dropped peer's datagrams are not taken)
                    up=seen is not None and seen < self.up_after and p.get("listed", True),
                    last_seen_seconds=seen,
                    datagrams=int(p.get("datagrams", 0)),
                    records=int(p.get("records", 0)),
                    gaps=int(p.get("gaps", 0)),
                    lag_p50_seconds=p.get("lag_p50_seconds"),
                    lag_p99_seconds=p.get("lag_p99_seconds"),
                    refused=self._refused.get(name),
                )
            )
        return SyncStatus(
            enabled=True,
            ready=self.ready,
            node_id=self.node_id,
            listen=self.settings.listen,
            full_sync=self._full,
            peers=peers,
            stats=self.service.stats(),
        )


class SyncGatedServing:
    """A `ServingSource` that serves nothing until session sync is ready, then what the
    wrapped source serves: a node that starts or rejoins announces no VIP before it
    holds its peers' sessions."""

    def __init__(self, inner: Any, manager: SyncManager) -> None:
        self.inner = inner
        self.manager = manager

    def add_listener(self, listener: Callable[[], None]) -> None:
        self.inner.add_listener(listener)
        self.manager.add_listener(listener)

    def serving(self) -> set[Any]:
        if not self.manager.ready:
            return set()
        served: set[Any] = self.inner.serving()
        return served


async def start_sync(config: NodeConfig, store: Store, dataplane: Any) -> SyncManager | None:
    """The node's session sync, started (peers read, full sync under way), or None when
    `sync.enabled` is off. The dataplane gives the sync thread of its engine
    (`sync_service`) and installs peers' local addresses (`set_peer_local_addresses`)."""
    if not config.sync.enabled:
        return None
    from dplb.config import ConfigError
    from dplb.sync.keys import load_keys

    if not hasattr(dataplane, "sync_service"):
        raise ConfigError(
            [
                (
                    "sync.enabled",
                    f"the {getattr(dataplane, 'kind', 'this')} dataplane has no sync thread "
                    "(the harness and DPDK dataplanes have one): turn sync off",
                )
            ]
        )

    keys, send_key = load_keys(config.sync)
    manager = SyncManager(
        config,
        store,
        dataplane.sync_service,
        dataplane.set_peer_local_addresses,
        keys,
        send_key,
    )
    await manager.start()
    return manager
