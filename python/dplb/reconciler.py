"""The reconciler (DESIGN section 6): watches the store, validates the whole desired
config, applies what changed to the dataplane as one snapshot, and writes back the
version that runs, when, and why a version was refused.

A refused config changes nothing: the last good one keeps running. What a running node
cannot change (its name, the dataplane section, where its API listens, its store) is
refused with the field that differs; those need a restart with a new node config."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from dplb.config import ConfigError, NodeConfig, parse_config
from dplb.config_diff import Change, diff_configs
from dplb.dataplane import Dataplane
from dplb.store import ApplyStatus, Desired, FieldError, Store, StoreError, VersionConflict

log = logging.getLogger("dplb.reconciler")

# Sections fixed for a node's life, as paths into the config.
STATIC_SECTIONS = (
    "node",
    "dataplane",
    "api.listen",
    "api.audit_log",
    "api.audit_log_max_bytes",
    "api.audit_log_keep",
    "store",
    "health",
    "bgp",  # node-local (BIRD beside this node)
)


def _leaf_changes(path: str, old: Any, new: Any, out: list[tuple[str, Any, Any]]) -> None:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in [*old, *(k for k in new if k not in old)]:
            _leaf_changes(f"{path}.{key}", old.get(key), new.get(key), out)
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            _leaf_changes(f"{path}[{i}]", a, b, out)
    elif old != new:
        out.append((path, old, new))


def _section(cfg: NodeConfig, path: str) -> Any:
    value: Any = cfg
    for part in path.split("."):
        value = getattr(value, part)
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else str(value)


def static_changes(running: NodeConfig, desired: NodeConfig) -> list[tuple[str, str]]:
    """Errors for each field of a static section that differs."""
    errors: list[tuple[str, str]] = []
    for section in STATIC_SECTIONS:
        leaves: list[tuple[str, Any, Any]] = []
        _leaf_changes(section, _section(running, section), _section(desired, section), leaves)
        for path, old, new in leaves:
            errors.append(
                (
                    path,
                    f"cannot change on a running node (running: {old!r}, desired: {new!r}); "
                    "restart the node with the new node config",
                )
            )
    return errors


def seed_config(node_config: NodeConfig, stored: NodeConfig | None) -> NodeConfig | None:
    """At start: the config to write to the store, or None if it holds the right one.
    An empty store is seeded with the node config; a stored config whose static sections
    differ from the node config (the node was restarted with a new one) takes those
    sections from the node config and keeps its services and tokens."""
    if stored is None:
        return node_config
    if not static_changes(node_config, stored):
        return None
    return stored.model_copy(
        update={
            "node": node_config.node,
            "dataplane": node_config.dataplane,
            "store": node_config.store,
            "health": node_config.health,
            "bgp": node_config.bgp,
            "api": stored.api.model_copy(
                update={
                    name: getattr(node_config.api, name)
                    for name in ("listen", "audit_log", "audit_log_max_bytes", "audit_log_keep")
                }
            ),
        }
    )


class Reconciler:
    def __init__(self, store: Store, dataplane: Dataplane) -> None:
        self.store = store
        self.dataplane = dataplane
        self.running: NodeConfig = dataplane.running_config()
        self.node = self.running.node.name
        self.status = ApplyStatus(node=self.node)
        self._changed = asyncio.Condition()
        self._apply_lock = asyncio.Lock()

    # -- validation ------------------------------------------------------------------
    def validate(self, data: Mapping[str, Any]) -> NodeConfig:
        """The desired config as this node would run it; raises ConfigError with every
        error and its field path."""
        cfg = parse_config(data)
        errors = static_changes(self.running, cfg)
        ports = {p.name for p in self.dataplane.status().ports}
        for i, svc in enumerate(cfg.services):
            if svc.nic is not None and svc.nic not in ports:
                errors.append((f"services[{i}].nic", f"this node has no port '{svc.nic}'"))
        dp = cfg.dataplane
        if len(cfg.services) > dp.max_services:
            errors.append(
                (
                    "services",
                    f"{len(cfg.services)} services, more than max_services ({dp.max_services})",
                )
            )
        reals = sum(len(s.reals) for s in cfg.services)
        if reals > dp.max_reals:
            errors.append(
                ("services", f"{reals} reals in all, more than max_reals ({dp.max_reals})")
            )
        if any(t.role == "admin" for t in self.running.api.tokens) and not any(
            t.role == "admin" for t in cfg.api.tokens
        ):
            errors.append(("api.tokens", "at least one admin token must remain"))
        if errors:
            raise ConfigError(errors)
        return cfg

    def _check(self, desired: Desired) -> tuple[NodeConfig, list[Change]]:
        if desired.data is None:
            raise ConfigError([("(file)", desired.problem or "not a config")])
        cfg = self.validate(desired.data)
        return cfg, diff_configs(self.running, cfg)

    # -- applying --------------------------------------------------------------------
    async def reconcile(self, desired: Desired) -> ApplyStatus:
        """Validates and applies one desired version; returns the new status."""
        async with self._apply_lock:
            now = datetime.now(UTC)
            changes: list[Change] = []
            try:
                cfg, changes = await asyncio.to_thread(self._check, desired)
                if changes:
                    await asyncio.to_thread(self.dataplane.apply, cfg)
            except ConfigError as exc:
                return await self._record(desired.version, now, "refused", exc.errors)
            except ValueError as exc:
                return await self._record(desired.version, now, "refused", [("(engine)", str(exc))])
            self.running = cfg
            log.info(
                "applied version %d (%d change%s)",
                desired.version,
                len(changes),
                "" if len(changes) == 1 else "s",
                extra={
                    "event": "config_applied",
                    "fields": {"version": desired.version, "changes": len(changes)},
                },
            )
            return await self._record(desired.version, now, "applied" if changes else "unchanged")

    async def _record(
        self,
        version: int,
        now: datetime,
        result: str,
        errors: list[tuple[str, str]] | None = None,
    ) -> ApplyStatus:
        status = self.status.model_copy(
            update={
                "last_version": version,
                "last_result": result,
                "last_at": now,
                "errors": [FieldError(path=p, reason=r) for p, r in errors or []],
            }
        )
        if result != "refused":
            status.applied_version = version
            status.applied_at = now
        else:
            log.warning(
                "refused version %d: %s",
                version,
                "; ".join(f"{e.path}: {e.reason}" for e in status.errors),
                extra={
                    "event": "config_refused",
                    "fields": {
                        "version": version,
                        "errors": [{"path": e.path, "reason": e.reason} for e in status.errors],
                    },
                },
            )
        self.status = status
        try:
            await self.store.write_status(status)
        except (OSError, StoreError) as exc:  # kept in memory too; applying goes on
            log.error("cannot write the apply status: %s", exc)
        async with self._changed:
            self._changed.notify_all()
        return status

    async def wait_for(self, version: int, timeout: float) -> ApplyStatus | None:
        """The status once the reconciler has handled `version` (or a later one), or
        None if it has not within `timeout` seconds."""

        def handled() -> bool:
            return self.status.last_version is not None and self.status.last_version >= version

        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(handled), timeout)
            except TimeoutError:
                return None
        return self.status

    async def run(self, after: int = 0) -> None:
        """Reconciles every desired version newer than `after`, for ever. A watch that
        ends or fails is started again after the last version handled."""
        while True:
            try:
                async for desired in self.store.watch(after=after):
                    try:
                        await self.reconcile(desired)
                    except Exception:  # keep the node's config loop alive whatever happens
                        log.exception("reconciling version %d failed", desired.version)
                    after = max(after, desired.version)
            except Exception:
                log.exception("the store's watch failed: watching again after %d", after)
            await asyncio.sleep(1.0)


async def seed_store(store: Store, node_config: NodeConfig) -> None:
    """Puts the node config into an empty store, or its static sections into a stored
    config that has others (see `seed_config`)."""
    current = await store.read()
    stored: NodeConfig | None = None
    if current is not None and current.data is not None:
        with contextlib.suppress(ConfigError):
            stored = parse_config(current.data)
        if stored is None:
            return  # an invalid stored config: the reconciler reports it; nothing to merge
    seed = seed_config(node_config, stored)
    if seed is None:
        return
    message = "seeded from the node config" if current is None else "node config changed"
    # VersionConflict: another writer got there first; the reconciler sees what they wrote.
    with contextlib.suppress(VersionConflict):
        await store.write(
            seed.model_dump(mode="json", exclude_unset=True),
            author="node",
            message=message,
            expected_version=current.version if current is not None else 0,
        )
