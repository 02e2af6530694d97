"""The cluster: every node with the config version it runs against the desired one, what
it refused and why, the store's health; and a wait until every live node applied a
version (what `?wait=applied` on a write does too)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from dplb.api.deps import NodeDep, Viewer
from dplb.api.errors import READ_ERRORS, ApiError
from dplb.cluster.view import ClusterView, ClusterWait, build_view, read_view, wait_applied
from dplb.store import MemberInfo, StoreUnavailable

router = APIRouter(prefix="/cluster", tags=["cluster"])


@router.get("", responses=READ_ERRORS)
async def get_cluster(_: Viewer, node: NodeDep) -> ClusterView:
    """While the store is unavailable: this node alone, as it knows itself, with the
    store's error (`store.up` false)."""
    cluster = node.node_config.node.cluster
    try:
        return await read_view(node.store, cluster)
    except StoreUnavailable:
        status = node.reconciler.status
        me = MemberInfo(
            node=node.reconciler.node,
            workers=node.node_config.dataplane.workers,
            version="",
            started_at=node.dataplane.status().started_at,
        )
        return build_view(cluster, None, node.store.health(), [me], [status])


@router.get("/wait", responses=READ_ERRORS)
async def wait_cluster_applied(
    _: Viewer,
    node: NodeDep,
    version: Annotated[int, Query(ge=1, description="the config version to wait for")],
    timeout: Annotated[float, Query(gt=0, le=300, description="seconds")] = 10.0,
) -> ClusterWait:
    """Returns once every live node applied `version` (or a later one) or refused it, or
    after `timeout` seconds, with the nodes still pending."""
    current = await node.store.current_version()
    if version > current:
        raise ApiError(
            422, [("query.version", f"no version {version} yet: the current one is {current}")]
        )
    return await wait_applied(node.store, version, timeout)
