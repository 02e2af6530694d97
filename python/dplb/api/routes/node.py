"""The node: its status (ports, workers, steering mode, uptime, config versions), its
local (SNAT) addresses, and an unauthenticated liveness probe."""

from __future__ import annotations

from fastapi import APIRouter

from dplb import __version__
from dplb.api.context import NodeContext
from dplb.api.deps import NodeDep, Viewer
from dplb.api.errors import READ_ERRORS
from dplb.api.models import Caller, ConfigStatus, Health, NodeStatus
from dplb.dataplane import LocalAddress

router = APIRouter(tags=["node"])
# Routes that need no token (dplb.api.auth.TokenFirst lets them through).
public_router = APIRouter(tags=["node"])


async def config_status(node: NodeContext) -> ConfigStatus:
    return ConfigStatus(
        **dict(node.reconciler.status), desired_version=await node.store.current_version() or None
    )


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


@public_router.get("/health")
def get_health() -> Health:
    """Liveness for monitors and load balancers: no token needed, tells nothing more."""
    return Health(status="ok")
