"""The node: its status (ports, workers, steering mode, uptime, config versions), its
local (SNAT) addresses, and an unauthenticated liveness probe."""

from __future__ import annotations

from fastapi import APIRouter, Response

from dplb import __version__
from dplb.api.context import NodeContext
from dplb.api.deps import NodeDep, Viewer
from dplb.api.errors import READ_ERRORS
from dplb.api.models import Caller, ConfigStatus, Health, NodeStatus
from dplb.dataplane import LocalAddress
from dplb.store import StoreUnavailable

router = APIRouter(tags=["node"])
# Routes that need no token (dplb.api.auth.TokenFirst lets them through).
public_router = APIRouter(tags=["node"])


async def config_status(node: NodeContext) -> ConfigStatus:
    try:
        desired: int | None = await node.store.current_version() or None
    except StoreUnavailable:
        desired = None  # not known while the store is away
    return ConfigStatus(**dict(node.reconciler.status), desired_version=desired)


@router.get("/node", responses=READ_ERRORS)
async def get_node_status(_: Viewer, node: NodeDep) -> NodeStatus:
    running = node.reconciler.running
    return NodeStatus(
        name=running.node.name,
        cluster=running.node.cluster,
        software_version=__version__,
        dataplane=node.dataplane.status(),
        config=await config_status(node),
    )


@router.get("/local-addresses", responses=READ_ERRORS)
def list_local_addresses(_: Viewer, node: NodeDep) -> list[LocalAddress]:
    """Each worker's SNAT addresses and how many of their source ports are in use.
    They are part of the dataplane section: changing them needs a restart."""
    return node.dataplane.local_addresses()


@router.get("/whoami", responses=READ_ERRORS)
def get_caller(who: Viewer) -> Caller:
    """The token's name and role: what a client (the web admin) may offer to do."""
    return Caller(name=who.name, role=who.role)


@public_router.get(
    "/health", responses={503: {"model": Health, "description": "The data plane failed"}}
)
def get_health(node: NodeDep, response: Response) -> Health:
    """Liveness for monitors and load balancers, no token needed: 200 with `ok` or
    `degraded`, 503 with `failed` (a worker or the control lcore stuck, a port that
    stopped receiving); `reasons` say why."""
    liveness = node.dataplane.status().liveness
    if liveness.state == "failed":
        response.status_code = 503
    return Health(status=liveness.state, reasons=liveness.reasons)
