"""Every change through the API takes one way (DESIGN section 6): read the desired config,
edit it, validate the whole of it as the node would, write a new version to the store,
and wait (briefly) for the reconciler to apply it. The audit log records each attempt."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import Request

from dplb.api.audit import AuditLog, note
from dplb.api.auth import Principal
from dplb.api.errors import ApiError
from dplb.api.models import ChangeResult
from dplb.cluster.view import wait_applied
from dplb.config import ConfigError, NodeConfig, parse_config
from dplb.config_diff import diff_configs
from dplb.reconciler import Reconciler
from dplb.store import Store, StoreUnavailable, VersionConflict

# Edits the desired config (a mapping as written, edited in place) given its validated
# form; returns a one-line description for the history. Raises ApiError (404, 409).
Edit = Callable[[dict[str, Any], NodeConfig], str]

WRITE_ATTEMPTS = 3  # another writer may write between our read and our write


def plain_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy to edit; through JSON, many times faster than copy.deepcopy."""
    copied: dict[str, Any] = json.loads(json.dumps(data, default=str))
    return copied


class ConfigWriter:
    def __init__(
        self, store: Store, reconciler: Reconciler, audit: AuditLog, apply_timeout: float
    ) -> None:
        self.store = store
        self.reconciler = reconciler
        self.audit = audit
        self.apply_timeout = apply_timeout
        self._lock = asyncio.Lock()
        self._parsed: tuple[int, NodeConfig] | None = None  # versions never change: cache

    async def current(self) -> tuple[int, NodeConfig]:
        """The desired config's version and validated form (409 when it is invalid)."""
        return await self._current()

    async def desired(self) -> NodeConfig:
        return (await self._current())[1]

    async def edit(self, who: Principal, request: Request, edit: Edit) -> ChangeResult:
        """Applies `edit` to the current desired config."""
        async with self._lock:
            for _ in range(WRITE_ATTEMPTS):
                version, base = await self._current()
                data = plain_copy(await self._data(version))
                try:
                    message = edit(data, base)
                except ApiError as exc:
                    note(request.scope, outcome="not_found" if exc.status == 404 else "refused")
                    raise
                try:
                    return await self._write(who, request, data, base, version, message)
                except VersionConflict:
                    continue
            raise ApiError(409, [("(store)", "the config kept changing under this write")])

    async def replace(
        self,
        who: Principal,
        request: Request,
        data: Mapping[str, Any],
        message: str,
        expected_version: int | None = None,
    ) -> ChangeResult:
        """Writes `data` as the whole desired config (PUT /config, rollback)."""
        async with self._lock:
            current = await self.store.read()
            version = current.version if current is not None else 0
            if expected_version is not None and expected_version != version:
                raise ApiError(
                    409,
                    [
                        (
                            "query.expected_version",
                            f"the current version is {version}, not {expected_version}",
                        )
                    ],
                    extra={"version": version},
                )
            base: NodeConfig | None = None
            if current is not None and current.data is not None:
                try:
                    base = await asyncio.to_thread(parse_config, current.data)
                except ConfigError:
                    base = None  # replacing an invalid desired config is how one fixes it
            try:
                return await self._write(who, request, dict(data), base, version, message)
            except VersionConflict as exc:
                raise ApiError(
                    409, [("(store)", str(exc))], extra={"version": exc.current}
                ) from None

    # -- steps -----------------------------------------------------------------------
    async def _current(self) -> tuple[int, NodeConfig]:
        cached = self._parsed
        try:
            version = await self.store.current_version()
        except StoreUnavailable:
            if cached is None:
                raise
            return cached  # reads go on from the last config read; a write will fail
        if cached is not None and cached[0] == version:
            return cached
        current = await self.store.read()
        if current is None:
            raise ApiError(503, [("(store)", "the store holds no config yet")])
        if current.data is None:
            raise ApiError(
                409,
                [
                    (
                        "(desired)",
                        f"the desired config (version {current.version}) cannot be read: "
                        f"{current.problem}; replace it (PUT /api/v1/config) or roll back",
                    )
                ],
            )
        try:
            base = await asyncio.to_thread(parse_config, current.data)
        except ConfigError as exc:
            raise ApiError(
                409,
                [
                    (
                        "(desired)",
                        f"the desired config (version {current.version}) is invalid; "
                        "replace it (PUT /api/v1/config) or roll back",
                    ),
                    *exc.errors,
                ],
            ) from None
        self._parsed = (current.version, base)
        return current.version, base

    async def _data(self, version: int) -> dict[str, Any]:
        desired = await self.store.read_version(version)
        assert desired.data is not None
        return desired.data

    async def _write(
        self,
        who: Principal,
        request: Request,
        data: dict[str, Any],
        base: NodeConfig | None,
        base_version: int,
        message: str,
    ) -> ChangeResult:
        note(request.scope, message=message)
        cfg = await asyncio.to_thread(self.reconciler.validate, data)  # ConfigError: 422
        changes = await asyncio.to_thread(diff_configs, base, cfg)
        if not changes:
            note(request.scope, outcome="unchanged")
            return ChangeResult(version=base_version, status="unchanged")
        info = await self.store.write(
            data, author=who.name, message=message, expected_version=base_version
        )
        note(request.scope, version=info.version, changes=changes)
        status = await self.reconciler.wait_for(info.version, self.apply_timeout)
        if status is None:
            return ChangeResult(version=info.version, status="pending", changes=changes)
        if status.applied_version is not None and status.applied_version >= info.version:
            cluster = None
            if request.query_params.get("wait") == "applied":
                cluster = await wait_applied(self.store, info.version, self.apply_timeout)
            return ChangeResult(
                version=info.version, status="applied", changes=changes, cluster=cluster
            )
        # Validated as the node validates, and yet refused (the engine ran out of
        # something): write the version before it again, so that the refused change does
        # not go live later, when something else changes.
        errors = [(e.path, e.reason) for e in status.errors]
        if base is not None:
            with contextlib.suppress(VersionConflict):
                await self.store.write(
                    await self._data(base_version),
                    author=who.name,
                    message=f"revert version {info.version}: the node refused it",
                    expected_version=info.version,
                )
        raise ApiError(422, errors, extra={"version": info.version})
