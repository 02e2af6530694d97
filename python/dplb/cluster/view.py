"""The cluster as an operator sees it: each node (live or gone), the version it runs
against the desired one, what it refused and why; and waiting until every live node has
applied a version. Built from the store's members and statuses, the same on every node."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from dplb.store import ApplyStatus, FieldError, MemberInfo, Store, StoreHealth

NodeState = Literal["in_sync", "lagging", "refused", "gone", "starting"]


class ClusterNode(BaseModel):
    model_config = ConfigDict(extra="forbid")

    node: str
    # live: its member key is there (it runs and reaches the store)
    live: bool
    state: NodeState
    api: str | None = None
    software_version: str | None = None
    workers: int | None = None
    local_addresses: list[str] = []
    started_at: datetime | None = None
    applied_version: int | None = None
    applied_at: datetime | None = None
    last_version: int | None = None
    last_result: str | None = None
    last_at: datetime | None = None
    errors: list[FieldError] = []
    # the node runs another version than the desired one
    drift: bool = False


class ClusterView(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cluster: str
    desired_version: int | None
    store: StoreHealth
    nodes: list[ClusterNode]
    # every live node runs the desired version
    in_sync: bool


def _state(live: bool, status: ApplyStatus | None, desired: int | None) -> NodeState:
    if not live:
        return "gone"
    if status is None or status.last_version is None:
        return "starting"
    if status.last_result == "refused" and desired is not None and status.last_version >= desired:
        return "refused"
    if desired is not None and (status.applied_version or 0) < desired:
        return "lagging"
    return "in_sync"


def build_view(
    cluster: str,
    desired: int | None,
    health: StoreHealth,
    members: list[MemberInfo],
    statuses: list[ApplyStatus],
) -> ClusterView:
    by_status = {s.node: s for s in statuses}
    by_member = {m.node: m for m in members}
    nodes = []
    for name in sorted(set(by_status) | set(by_member)):
        m, s = by_member.get(name), by_status.get(name)
        state = _state(m is not None, s, desired)
        nodes.append(
            ClusterNode(
                node=name,
                live=m is not None,
                state=state,
                api=m.api if m else None,
                software_version=m.version if m else None,
                workers=m.workers if m else None,
                local_addresses=m.local_addresses if m else [],
                started_at=m.started_at if m else None,
                applied_version=s.applied_version if s else None,
                applied_at=s.applied_at if s else None,
                last_version=s.last_version if s else None,
                last_result=s.last_result if s else None,
                last_at=s.last_at if s else None,
                errors=s.errors if s and s.last_result == "refused" else [],
                drift=bool(desired and (s is None or s.applied_version != desired)),
            )
        )
    live = [n for n in nodes if n.live]
    return ClusterView(
        cluster=cluster,
        desired_version=desired,
        store=health,
        nodes=nodes,
        in_sync=bool(live) and all(n.state == "in_sync" for n in live),
    )


async def read_view(store: Store, cluster: str) -> ClusterView:
    desired, members, statuses = await asyncio.gather(
        store.current_version(), store.members(), store.statuses()
    )
    return build_view(cluster, desired or None, store.health(), members, statuses)


class ClusterWait(BaseModel):
    """Which live nodes handled a version within the wait: applied it (or a later one),
    refused it (with why), or not yet."""

    model_config = ConfigDict(extra="forbid")

    version: int
    applied: list[str] = []
    refused: dict[str, list[FieldError]] = {}
    pending: list[str] = []
    complete: bool = False


def _wait_state(
    version: int, members: list[MemberInfo], statuses: list[ApplyStatus]
) -> ClusterWait:
    by_status = {s.node: s for s in statuses}
    out = ClusterWait(version=version)
    for m in sorted(members, key=lambda m: m.node):
        s = by_status.get(m.node)
        if s is not None and (s.applied_version or 0) >= version:
            out.applied.append(m.node)
        elif s is not None and s.last_result == "refused" and (s.last_version or 0) >= version:
            out.refused[m.node] = s.errors
        else:
            out.pending.append(m.node)
    out.complete = not out.pending
    return out


async def wait_applied(store: Store, version: int, timeout: float) -> ClusterWait:
    """Polls the members' statuses until every live node handled `version`, or the
    timeout passed; says which did what."""
    deadline = time.monotonic() + timeout
    while True:
        members, statuses = await asyncio.gather(store.members(), store.statuses())
        state = _wait_state(version, members, statuses)
        if state.complete or time.monotonic() >= deadline:
            return state
        await asyncio.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
