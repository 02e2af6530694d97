"""A small etcd v3 client over aetcd's generated gRPC stubs: several endpoints tried in
turn, TLS (CA, client certificate) and user/password auth, a deadline on every request,
and the time of the last answer (what `dplb_store_up` and the cluster view report).

aetcd's own `Client` opens a plaintext channel to one endpoint and keeps no lease alive;
this wraps what is missing and uses aetcd only for the protocol (`aetcd.rpc`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from aetcd import rpc

from dplb.config import EtcdSection
from dplb.store import StoreUnavailable

T = TypeVar("T")

# The server refuses pings more often than every 5 s (--grpc-keepalive-min-time).
_CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2_000),
]
# Codes that say "this endpoint cannot serve now": try the next one.
_UNREACHABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNKNOWN,
}


class EtcdUnavailable(StoreUnavailable):
    """No endpoint answered (down, unreachable, or without quorum)."""


class EtcdError(Exception):
    """etcd answered with an error that another endpoint would give too."""


def prefix_end(prefix: bytes) -> bytes:
    """The range end that covers every key starting with `prefix`."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end[: len(end)])
        end.pop()
    return b"\0"


@dataclass
class Stubs:
    kv: Any
    watch: Any
    lease: Any
    maintenance: Any
    metadata: tuple[tuple[str, str], ...]


def _target(endpoint: str) -> str:
    return endpoint.split("://", 1)[-1]


class EtcdClient:
    def __init__(self, cfg: EtcdSection) -> None:
        self.cfg = cfg
        self.endpoints = [_target(e) for e in cfg.endpoints]
        self._index = 0
        self._channel: grpc.aio.Channel | None = None
        self._stubs: Stubs | None = None
        self._connect_lock = asyncio.Lock()
        self._closing: set[grpc.aio.Channel] = set()
        self.last_contact: float | None = None  # time.time() of the last answer
        self.last_error: str | None = None
        self.up = False
        self.failovers = 0

    @property
    def endpoint(self) -> str:
        return self.endpoints[self._index]

    # -- connection --------------------------------------------------------------
    def _credentials(self) -> grpc.ChannelCredentials:
        def read(path: Any) -> bytes | None:
            return None if path is None else open(path, "rb").read()

        return grpc.ssl_channel_credentials(
            root_certificates=read(self.cfg.ca_file),
            private_key=read(self.cfg.key_file),
            certificate_chain=read(self.cfg.cert_file),
        )

    async def _connect(self) -> Stubs:
        async with self._connect_lock:
            if self._stubs is not None:
                return self._stubs
            target = self.endpoint
            if self.cfg.tls:
                channel = grpc.aio.secure_channel(target, self._credentials(), _CHANNEL_OPTIONS)
            else:
                channel = grpc.aio.insecure_channel(target, _CHANNEL_OPTIONS)
            metadata: tuple[tuple[str, str], ...] = ()
            if self.cfg.user is not None:
                auth = rpc.AuthStub(channel)
                try:
                    reply = await auth.Authenticate(
                        rpc.AuthenticateRequest(name=self.cfg.user, password=self.cfg.password),
                        timeout=self.cfg.timeout,
                    )
                except grpc.aio.AioRpcError:
                    await channel.close()
                    raise
                metadata = (("token", reply.token),)
            self._channel = channel
            self._stubs = Stubs(
                kv=rpc.KVStub(channel),
                watch=rpc.WatchStub(channel),
                lease=rpc.LeaseStub(channel),
                maintenance=rpc.MaintenanceStub(channel),
                metadata=metadata,
            )
            return self._stubs

    async def _drop(self, failed: Stubs | None, *, rotate: bool) -> None:
        """Forgets the channel `failed` was made on (if it is still the current one)
        and moves to the next endpoint."""
        async with self._connect_lock:
            if failed is not None and self._stubs is not failed:
                return  # another caller already moved on
            channel, self._channel, self._stubs = self._channel, None, None
            if rotate:
                self._index = (self._index + 1) % len(self.endpoints)
                self.failovers += 1
        if channel is not None:
            # Calls still under way on it end on their own deadline: closing it now would
            # fail them as if their endpoint had failed too.
            self._closing.add(channel)
            asyncio.get_running_loop().call_later(
                2 * self.cfg.timeout, lambda: asyncio.ensure_future(self._close(channel))
            )

    async def _close(self, channel: grpc.aio.Channel) -> None:
        if channel in self._closing:
            self._closing.discard(channel)
            await channel.close()

    async def close(self) -> None:
        await self._drop(None, rotate=False)
        for channel in list(self._closing):
            await self._close(channel)

    def _contact(self) -> None:
        self.last_contact = time.time()
        self.up = True
        self.last_error = None

    async def call(self, what: str, request: Callable[[Stubs, float], Awaitable[T]]) -> T:
        """Runs `request(stubs, timeout)` on the current endpoint, then on each other
        one while they cannot serve; raises EtcdUnavailable when none could."""
        problems: list[str] = []
        for _ in range(len(self.endpoints)):
            endpoint = self.endpoint
            stubs: Stubs | None = None
            try:
                stubs = await self._connect()
                reply = await request(stubs, self.cfg.timeout)
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
                if stubs is None and code == grpc.StatusCode.INVALID_ARGUMENT:
                    # Authenticate refused: every endpoint would say the same
                    self.up = False
                    self.last_error = f"{endpoint}: {exc.details()}"
                    raise EtcdUnavailable(
                        f"etcd refused store.etcd.user {self.cfg.user!r}: {exc.details()}"
                    ) from None
                if code == grpc.StatusCode.UNAUTHENTICATED and stubs is not None:
                    await self._drop(stubs, rotate=False)  # token expired: log in again
                    stubs = await self._connect()
                    try:
                        reply = await request(stubs, self.cfg.timeout)
                    except grpc.aio.AioRpcError as again:
                        exc, code = again, again.code()
                    else:
                        self._contact()
                        return reply
                if code not in _UNREACHABLE and "no leader" not in (exc.details() or ""):
                    self._contact()  # it answered: the error is the request's
                    raise EtcdError(f"{what}: {exc.details() or code.name}") from None
                problems.append(f"{endpoint}: {exc.details() or code.name}")
                await self._drop(stubs, rotate=True)
                continue
            except (OSError, grpc.aio.UsageError, grpc.aio.InternalError) as exc:
                # a certificate file that cannot be read, a channel closed under the call
                problems.append(f"{endpoint}: {exc}")
                await self._drop(stubs, rotate=True)
                continue
            self._contact()
            return reply
        self.up = False
        self.last_error = "; ".join(problems)
        raise EtcdUnavailable(f"etcd is unavailable ({what}): {self.last_error}")

    # -- requests ----------------------------------------------------------------
    async def range(
        self,
        key: bytes,
        range_end: bytes | None = None,
        *,
        keys_only: bool = False,
        count_only: bool = False,
        limit: int = 0,
        revision: int = 0,
        descending: bool = False,
    ) -> Any:
        request = rpc.RangeRequest(
            key=key,
            range_end=range_end or b"",
            keys_only=keys_only,
            count_only=count_only,
            limit=limit,
            revision=revision,
        )
        if descending:
            request.sort_order = rpc.RangeRequest.DESCEND
            request.sort_target = rpc.RangeRequest.KEY

        async def run(s: Stubs, timeout: float) -> Any:
            return await s.kv.Range(request, timeout=timeout, metadata=s.metadata)

        return await self.call("range", run)

    async def txn(
        self,
        compare: Sequence[Any] = (),
        success: Sequence[Any] = (),
        failure: Sequence[Any] = (),
    ) -> Any:
        request = rpc.TxnRequest(
            compare=list(compare), success=list(success), failure=list(failure)
        )

        async def run(s: Stubs, timeout: float) -> Any:
            return await s.kv.Txn(request, timeout=timeout, metadata=s.metadata)

        return await self.call("txn", run)

    async def put(self, key: bytes, value: bytes, *, lease: int = 0) -> Any:
        return await self.txn(success=[put_op(key, value, lease=lease)])

    async def lease_grant(self, ttl: int) -> int:
        async def run(s: Stubs, timeout: float) -> Any:
            return await s.lease.LeaseGrant(
                rpc.LeaseGrantRequest(TTL=ttl), timeout=timeout, metadata=s.metadata
            )

        reply = await self.call("lease grant", run)
        return int(reply.ID)

    async def lease_keepalive(self, lease_id: int) -> int:
        """Refreshes the lease; returns its TTL, 0 when it has expired."""

        async def run(s: Stubs, timeout: float) -> Any:
            stream = s.lease.LeaseKeepAlive(
                iter([rpc.LeaseKeepAliveRequest(ID=lease_id)]),
                timeout=timeout,
                metadata=s.metadata,
            )
            async for reply in stream:
                return reply
            return None

        reply = await self.call("lease keep-alive", run)
        return int(reply.TTL) if reply is not None else 0

    async def lease_revoke(self, lease_id: int) -> None:
        async def run(s: Stubs, timeout: float) -> Any:
            return await s.lease.LeaseRevoke(
                rpc.LeaseRevokeRequest(ID=lease_id), timeout=timeout, metadata=s.metadata
            )

        await self.call("lease revoke", run)

    async def watch(self, key: bytes, start_revision: int) -> AsyncIterator[Any]:
        """The watch responses for `key` from `start_revision` on the current endpoint
        (progress notifications included). The stream asks for a member with a leader
        (`hasleader`): a member that loses quorum cancels it, and the caller moves on.
        Raises EtcdUnavailable when the stream breaks."""
        stubs = None
        try:
            stubs = await self._connect()
            requests: asyncio.Queue[Any] = asyncio.Queue()
            await requests.put(
                rpc.WatchRequest(
                    create_request=rpc.WatchCreateRequest(
                        key=key, start_revision=start_revision, progress_notify=True
                    )
                )
            )

            async def outgoing() -> AsyncIterator[Any]:
                while True:
                    item = await requests.get()
                    if item is None:
                        return
                    yield item

            stream = stubs.watch.Watch(
                outgoing(), metadata=(*stubs.metadata, ("hasleader", "true"))
            )
            async for response in stream:
                self._contact()
                yield response
        except grpc.aio.AioRpcError as exc:
            problem = f"{self.endpoint}: {exc.details() or exc.code().name}"
            await self._drop(stubs, rotate=True)
            raise EtcdUnavailable(f"etcd watch broke: {problem}") from None
        except (grpc.aio.UsageError, grpc.aio.InternalError) as exc:
            await self._drop(stubs, rotate=True)
            raise EtcdUnavailable(f"etcd watch broke: {self.endpoint}: {exc}") from None
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # our caller stops
            # grpc cancels the stream when its channel is closed under it
            await self._drop(stubs, rotate=False)
            raise EtcdUnavailable(f"etcd watch on {self.endpoint} was cancelled") from None


def put_op(key: bytes, value: bytes, *, lease: int = 0) -> Any:
    return rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=value, lease=lease))


def delete_op(key: bytes, range_end: bytes | None = None) -> Any:
    return rpc.RequestOp(
        request_delete_range=rpc.DeleteRangeRequest(key=key, range_end=range_end or b"")
    )


def get_op(key: bytes, range_end: bytes | None = None) -> Any:
    return rpc.RequestOp(request_range=rpc.RangeRequest(key=key, range_end=range_end or b""))


def mod_revision_is(key: bytes, revision: int) -> Any:
    return rpc.Compare(
        key=key,
        result=rpc.Compare.EQUAL,
        target=rpc.Compare.MOD,
        mod_revision=revision,
    )


def absent(key: bytes) -> Any:
    return rpc.Compare(
        key=key, result=rpc.Compare.EQUAL, target=rpc.Compare.CREATE, create_revision=0
    )
