"""The cluster's store (DESIGN section 6) on etcd: the shared config under one head key
(see `layout`), its history, each node's status and its member key under a lease.

A node's desired config is its own local sections (from its node config file) with the
shared ones from etcd; a write keeps only the shared ones. The version is the etcd
revision of the transaction that put the head. While etcd is unreachable every call
raises StoreUnavailable; the watch reconnects by itself (next endpoint, backoff) and
resumes from the last revision it saw, or re-reads the head when that was compacted."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel

from dplb.cluster.etcd import (
    EtcdClient,
    EtcdError,
    EtcdUnavailable,
    absent,
    delete_op,
    get_op,
    mod_revision_is,
    prefix_end,
    put_op,
)
from dplb.cluster.layout import FORMAT, Keys, blob_id, canonical, merge, split
from dplb.config import EtcdSection
from dplb.store import (
    ApplyStatus,
    Desired,
    MemberInfo,
    StoreError,
    StoreHealth,
    StoreUnavailable,
    VersionConflict,
    VersionInfo,
    VersionNotFound,
)

log = logging.getLogger("dplb.store")
M = TypeVar("M", bound=BaseModel)

OPS_PER_TXN = 64  # etcd refuses more than --max-txn-ops (128) in one transaction
BYTES_PER_TXN = 1024 * 1024  # and requests over --max-request-bytes (1.5 MiB)
WATCH_BACKOFF = (0.2, 5.0)


class _Head:
    """A parsed head: the version, its metadata and what it refers to."""

    def __init__(self, version: int, value: bytes) -> None:
        self.version = version
        self.problem: str | None = None
        try:
            doc = json.loads(value)
        except ValueError as exc:
            doc, self.problem = {}, f"config/head is not JSON: {exc}"
        if not isinstance(doc, dict):
            doc, self.problem = {}, "config/head must be a JSON object"
        self.doc: dict[str, Any] = doc
        api = doc.get("api", {})
        self.api: dict[str, Any] = api if isinstance(api, dict) else {}
        services = doc.get("services", [])
        self.services: list[Any] = services if isinstance(services, list) else []
        if self.problem is None and not isinstance(services, list):
            self.problem = "config/head: services must be a list"
        time = doc.get("time")
        try:
            when = datetime.fromisoformat(time) if isinstance(time, str) else None
        except ValueError:
            when = None
        self.info = VersionInfo(
            version=version,
            time=when or datetime.fromtimestamp(0, UTC),
            author=str(doc.get("author", "etcd")),
            message=str(doc.get("message", "written into etcd directly")),
        )

    def blob_ids(self) -> list[str]:
        return [s for s in self.services if isinstance(s, str)]


class EtcdStore:
    def __init__(
        self,
        cfg: EtcdSection,
        *,
        cluster: str,
        node: str,
        local: Mapping[str, Any],
        keep_versions: int = 1000,
    ) -> None:
        self.cfg = cfg
        self.client = EtcdClient(cfg)
        # The watch on a channel of its own: a request that fails over closes its channel,
        # which must not cut the watch (nor the other way round).
        self.watch_client = EtcdClient(cfg)
        self.keys = Keys(cfg.prefix, cluster)
        self.cluster = cluster
        self.node = node
        self.local = dict(local)  # this node's own sections, as its config file has them
        self.keep = keep_versions
        self._blobs: dict[str, Any] = {}  # blob id -> service mapping (blobs never change)
        self._desired: Desired | None = None  # the newest one read: versions never change
        self._member: MemberInfo | None = None
        self._status: ApplyStatus | None = None
        self._status_written = True
        self._keeper: asyncio.Task[None] | None = None
        self.watch_restarts = 0
        self.relists = 0

    # -- reading -----------------------------------------------------------------
    async def _head(self, revision: int = 0) -> _Head | None:
        try:
            reply = await self.client.range(self.keys.head, revision=revision)
        except EtcdError as exc:
            if revision and ("compacted" in str(exc) or "future revision" in str(exc)):
                raise VersionNotFound(revision) from None
            raise StoreError(str(exc)) from None
        if not reply.kvs:
            return None
        kv = reply.kvs[0]
        return _Head(int(kv.mod_revision), kv.value)

    async def _fetch_blobs(self, ids: list[str]) -> None:
        missing = sorted({i for i in ids if i not in self._blobs})
        if len(missing) > OPS_PER_TXN:
            reply = await self.client.range(self.keys.blobs, prefix_end(self.keys.blobs))
            kvs = list(reply.kvs)
        else:
            kvs = []
            for start in range(0, len(missing), OPS_PER_TXN):
                batch = missing[start : start + OPS_PER_TXN]
                txn = await self.client.txn(success=[get_op(self.keys.blob(i)) for i in batch])
                for r in txn.responses:
                    kvs.extend(r.response_range.kvs)
        for kv in kvs:
            bid = kv.key[len(self.keys.blobs) :].decode()
            with contextlib.suppress(ValueError):
                self._blobs[bid] = json.loads(kv.value)

    async def _desired_of(self, head: _Head) -> Desired:
        cached = self._desired
        if cached is not None and cached.version == head.version:
            return cached
        if head.problem is not None:
            return Desired(head.info, None, head.problem)
        await self._fetch_blobs(head.blob_ids())
        services: list[Any] = []
        for i, item in enumerate(head.services):
            if isinstance(item, str):
                if item not in self._blobs:
                    return Desired(
                        head.info, None, f"services[{i}]: config/blobs/{item} is missing in etcd"
                    )
                services.append(self._blobs[item])
            else:
                services.append(item)  # written by hand: the reconciler validates it
        desired = Desired(head.info, merge(self.local, head.api, services))
        if cached is None or desired.version >= cached.version:
            self._desired = desired
            self._trim_cache(head)
        return desired

    def _trim_cache(self, head: _Head) -> None:
        keep = set(head.blob_ids())
        if len(self._blobs) > 2 * len(keep) + 1024:
            self._blobs = {k: v for k, v in self._blobs.items() if k in keep}

    async def read(self) -> Desired | None:
        head = await self._head()
        return await self._desired_of(head) if head is not None else None

    async def current_version(self) -> int:
        reply = await self.client.range(self.keys.head, keys_only=True)
        return int(reply.kvs[0].mod_revision) if reply.kvs else 0

    async def read_version(self, version: int) -> Desired:
        if self._desired is not None and self._desired.version == version:
            return self._desired
        reply = await self.client.range(self.keys.history_of(version))
        if reply.kvs:
            return await self._desired_of(_Head(version, reply.kvs[0].value))
        head = await self._head()
        if head is not None and head.version == version:
            return await self._desired_of(head)
        # Not kept (written by hand, or its writer died before the history): etcd may
        # still have it, if it was not compacted.
        try:
            old = await self._head(revision=version)
        except VersionNotFound:
            raise
        if old is None or old.version != version:
            raise VersionNotFound(version)
        return await self._desired_of(old)

    # -- writing -----------------------------------------------------------------
    async def write(
        self,
        data: Mapping[str, Any],
        *,
        author: str,
        message: str = "",
        expected_version: int | None = None,
    ) -> VersionInfo:
        plain = json.loads(json.dumps(data, default=str))
        shared_api, services = split(plain)
        blobs = []
        for s in services:
            text = canonical(s)
            blobs.append((blob_id(text), text))
        for _ in range(5):
            head = await self._head()
            current = head.version if head is not None else 0
            if expected_version is not None and expected_version != current:
                raise VersionConflict(expected_version, current)
            known = set(head.blob_ids()) if head is not None else set()
            await self._put_blobs([(i, t) for i, t in blobs if i not in known])
            now = datetime.now(UTC)
            doc = {
                "format": FORMAT,
                "time": now.isoformat(),
                "author": author,
                "message": message,
                "api": shared_api,
                "services": [i for i, _ in blobs],
            }
            value = canonical(doc)
            reply = await self.client.txn(
                compare=[mod_revision_is(self.keys.head, current)],
                success=[put_op(self.keys.head, value)],
            )
            if not reply.succeeded:
                if expected_version is not None:
                    raise VersionConflict(expected_version, await self.current_version())
                continue  # "whatever is there": read again and write over it
            version = int(reply.header.revision)
            for (i, _), s in zip(blobs, services, strict=True):
                self._blobs[i] = s
            await self._keep_history(version, value)
            return VersionInfo(version=version, time=now, author=author, message=message)
        raise StoreError("the config kept changing under this write")

    async def _put_blobs(self, blobs: list[tuple[str, bytes]]) -> None:
        batch: list[Any] = []
        size = 0
        for bid, text in dict(blobs).items():
            if batch and (len(batch) >= OPS_PER_TXN or size + len(text) > BYTES_PER_TXN):
                await self._txn(batch)
                batch, size = [], 0
            batch.append(put_op(self.keys.blob(bid), text))
            size += len(text) + 64
        if batch:
            await self._txn(batch)

    async def _txn(self, ops: list[Any], compare: list[Any] | None = None) -> Any:
        return await self.client.txn(compare=compare or [], success=ops)

    async def _keep_history(self, version: int, value: bytes) -> None:
        """Puts `history/<version>` (if nobody did) and prunes what `keep` allows no more."""
        key = self.keys.history_of(version)
        try:
            await self.client.txn(compare=[absent(key)], success=[put_op(key, value)])
            count = int(
                (
                    await self.client.range(
                        self.keys.history, prefix_end(self.keys.history), count_only=True
                    )
                ).count
            )
            if count > self.keep + max(1, self.keep // 10):
                await self._prune(count - self.keep)
        except (EtcdUnavailable, EtcdError) as exc:  # the change is made; history can wait
            log.warning("cannot record history of version %d: %s", version, exc)

    async def _prune(self, excess: int) -> None:
        old = await self.client.range(
            self.keys.history, prefix_end(self.keys.history), keys_only=True, limit=excess
        )
        if not old.kvs:
            return
        last = old.kvs[-1].key
        await self.client.txn(success=[delete_op(self.keys.history, last + b"\0")])
        # Blobs that no kept version refers to, and that are older than the oldest kept
        # version: a writer who put a blob after it has not committed yet, but if it
        # read the head before that version its commit fails anyway.
        kept = await self.client.range(self.keys.history, prefix_end(self.keys.history))
        used: set[str] = set()
        oldest = None
        for kv in kept.kvs:
            h = _Head(int(kv.key[len(self.keys.history) :]), kv.value)
            used.update(h.blob_ids())
            oldest = h.version if oldest is None else min(oldest, h.version)
        head = await self._head()
        if head is not None:
            used.update(head.blob_ids())
            oldest = head.version if oldest is None else min(oldest, head.version)
        if oldest is None:
            return
        blobs = await self.client.range(
            self.keys.blobs, prefix_end(self.keys.blobs), keys_only=True
        )
        stale = [
            kv.key
            for kv in blobs.kvs
            if kv.key[len(self.keys.blobs) :].decode() not in used and kv.mod_revision < oldest
        ]
        for start in range(0, len(stale), OPS_PER_TXN):
            await self.client.txn(
                success=[delete_op(k) for k in stale[start : start + OPS_PER_TXN]]
            )

    async def history(self, limit: int | None = None) -> list[VersionInfo]:
        reply = await self.client.range(
            self.keys.history,
            prefix_end(self.keys.history),
            limit=limit or 0,
            descending=True,
        )
        out = [_Head(int(kv.key[len(self.keys.history) :]), kv.value).info for kv in reply.kvs]
        head = await self._head()
        if head is not None and (not out or out[0].version < head.version):
            out.insert(0, head.info)  # written by hand, or its history is on its way
            if limit is not None:
                out = out[:limit]
        return out

    # -- watching ----------------------------------------------------------------
    async def watch(self, after: int = 0) -> AsyncIterator[Desired]:
        """Every version of the head after `after`, in order; after a compaction (or
        when `after` is 0) the current one, once."""
        seen = after
        relist = after == 0
        backoff = WATCH_BACKOFF[0]
        while True:
            try:
                if relist:
                    reply = await self.watch_client.range(self.keys.head)
                    seen = int(reply.header.revision)
                    relist = False
                    if reply.kvs:
                        head = _Head(int(reply.kvs[0].mod_revision), reply.kvs[0].value)
                        yield await self._desired_of(head)
                async for response in self.watch_client.watch(self.keys.head, seen + 1):
                    backoff = WATCH_BACKOFF[0]
                    if response.compact_revision:
                        log.warning(
                            "config watch from revision %d: compacted (at %d), reading it again",
                            seen + 1,
                            response.compact_revision,
                            extra={"event": "store_relist", "fields": {"from": seen + 1}},
                        )
                        self.relists += 1
                        relist = True
                        break
                    if response.canceled:
                        raise EtcdUnavailable(
                            f"etcd cancelled the watch: {response.cancel_reason or 'no reason'}"
                        )
                    for event in response.events:
                        kv = event.kv
                        seen = max(seen, int(kv.mod_revision))
                        if event.type == 0:  # PUT
                            yield await self._desired_of(_Head(int(kv.mod_revision), kv.value))
                        else:
                            info = VersionInfo(
                                version=int(kv.mod_revision),
                                time=datetime.now(UTC),
                                author="etcd",
                                message="config/head deleted",
                            )
                            yield Desired(info, None, "config/head was deleted from etcd")
                    if not response.events and not response.created:
                        seen = max(seen, int(response.header.revision))
            except StoreUnavailable as exc:
                self.watch_restarts += 1
                log.warning(
                    "config watch: %s; again in %.1f s from revision %d",
                    exc,
                    backoff,
                    seen + 1,
                    extra={"event": "store_watch_broken", "fields": {"error": str(exc)}},
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, WATCH_BACKOFF[1])

    # -- nodes -------------------------------------------------------------------
    async def write_status(self, status: ApplyStatus) -> None:
        self._status = status
        try:
            await self.client.put(
                self.keys.status_of(status.node), status.model_dump_json().encode()
            )
            self._status_written = True
        except EtcdUnavailable:
            self._status_written = False  # the keeper writes it when etcd is back
            raise

    async def read_status(self, node: str) -> ApplyStatus | None:
        reply = await self.client.range(self.keys.status_of(node))
        return ApplyStatus.model_validate_json(reply.kvs[0].value) if reply.kvs else None

    async def _all(self, prefix: bytes, model: type[M]) -> list[M]:
        reply = await self.client.range(prefix, prefix_end(prefix))
        out = []
        for kv in reply.kvs:
            with contextlib.suppress(ValueError):
                out.append(model.model_validate_json(kv.value))
        return out

    async def statuses(self) -> list[ApplyStatus]:
        return await self._all(self.keys.status, ApplyStatus)

    async def members(self) -> list[MemberInfo]:
        return await self._all(self.keys.members, MemberInfo)

    async def join(self, member: MemberInfo) -> None:
        """Keeps `members/<node>` under a lease from now on, in the background: while
        etcd is away it tries again, and puts the key back (new lease) when it returns."""
        self._member = member
        if self._keeper is None:
            self._keeper = asyncio.create_task(self._keep_member(), name="dplb-etcd-member")

    async def _keep_member(self) -> None:
        lease = 0
        ttl = self.cfg.lease_ttl
        while True:
            try:
                if lease and await self.client.lease_keepalive(lease) <= 0:
                    log.warning("the member lease expired: joining again")
                    lease = 0
                if not lease and self._member is not None:
                    lease = await self.client.lease_grant(ttl)
                    await self.client.put(
                        self.keys.member(self.node),
                        self._member.model_dump_json().encode(),
                        lease=lease,
                    )
                if not self._status_written and self._status is not None:
                    await self.write_status(self._status)
                await asyncio.sleep(ttl / 3)
            except (StoreUnavailable, EtcdError) as exc:
                log.info("member keep-alive: %s", exc)
                await asyncio.sleep(min(1.0, ttl / 3))
            except Exception:  # the member key must be kept whatever happens
                log.exception("member keep-alive failed")
                await asyncio.sleep(min(1.0, ttl / 3))

    async def leave(self) -> None:
        task, self._keeper = self._keeper, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(EtcdUnavailable, EtcdError):
            await self.client.txn(success=[delete_op(self.keys.member(self.node))])

    async def close(self) -> None:
        await self.leave()
        await self.client.close()
        await self.watch_client.close()

    def health(self) -> StoreHealth:
        c = self.client
        return StoreHealth(
            kind="etcd",
            up=c.up,
            endpoint=c.endpoint,
            last_contact=datetime.fromtimestamp(c.last_contact, UTC) if c.last_contact else None,
            error=c.last_error,
            failovers=c.failovers + self.watch_client.failovers,
            watch_restarts=self.watch_restarts,
            relists=self.relists,
        )
