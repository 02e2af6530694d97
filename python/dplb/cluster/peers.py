"""The peers' local addresses, from the cluster's members, for BGP's backup
announcements (a dead node's return traffic reaches a survivor): refreshed in the
background, read without waiting (the BIRD controller asks synchronously).

With session sync on this node, a peer that syncs too keeps its backups after its member
key is gone (its lease ran out: it died, or lost the store): that is when its return
traffic needs a survivor, which holds its sessions. They go when this node restarts."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Mapping, Sequence

from dplb.config import IPAddress
from dplb.store import Store, StoreError

log = logging.getLogger("dplb.cluster")


class PeerAddresses:
    def __init__(
        self, store: Store, node: str, interval: float = 5.0, keep_synced: bool = False
    ) -> None:
        self.store = store
        self.node = node
        self.interval = interval
        self.keep_synced = keep_synced
        self._peers: dict[str, list[IPAddress]] = {}
        self._synced: set[str] = set()  # peers seen with sync on
        self._task: asyncio.Task[None] | None = None

    def __call__(self) -> Mapping[str, Sequence[IPAddress]]:
        """The last known members but this node, with their local addresses. While the
        store is away, the last answer stands (a peer that died meanwhile stays backed up)."""
        return self._peers

    async def refresh(self) -> None:
        members = await self.store.members()
        live = {
            m.node: [ipaddress.ip_address(a) for a in m.local_addresses]
            for m in members
            if m.node != self.node
        }
        kept: dict[str, list[IPAddress]] = {}
        if self.keep_synced:
            kept = {n: a for n, a in self._peers.items() if n in self._synced and n not in live}
            self._synced |= {m.node for m in members if m.node != self.node and m.sync}
        self._peers = kept | live

    def start(self) -> None:
        async def loop() -> None:
            while True:
                try:
                    await self.refresh()
                except (StoreError, ValueError) as exc:
                    log.debug("peers: %s", exc)
                await asyncio.sleep(self.interval)

        self._task = asyncio.create_task(loop(), name="dplb-peers")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
