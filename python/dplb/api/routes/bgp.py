"""BGP through the node's BIRD: what it announces, BIRD's sessions and the drain.
`POST /bgp/drain` marks the VIPs GRACEFUL_SHUTDOWN (or withdraws them, as
`bgp.drain.mode` says) and answers at once; `GET /bgp` follows the drain."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from dplb.api.deps import Admin, Viewer
from dplb.api.errors import READ_ERRORS, WRITE_ERRORS, ApiError
from dplb.bgp import BgpStatus, BirdController

router = APIRouter(prefix="/bgp", tags=["bgp"])


def get_bgp(request: Request) -> BirdController | None:
    controller: BirdController | None = getattr(request.app.state, "bgp", None)
    return controller


BgpDep = Annotated[BirdController | None, Depends(get_bgp)]


def _enabled(controller: BirdController | None) -> BirdController:
    if controller is None:
        raise ApiError(409, [("bgp.enabled", "BGP is off on this node (node config: bgp.enabled)")])
    return controller


@router.get("", responses=READ_ERRORS)
def get_bgp_status(_: Viewer, controller: BgpDep) -> BgpStatus:
    """BIRD's state (up, down, not installed), its BGP sessions and the routes it
    exports to each, what dplb wants announced and what BIRD took, the last
    reconfiguration and the drain."""
    if controller is None:
        return BgpStatus(enabled=False)
    return controller.status()


@router.post("/drain", responses=WRITE_ERRORS)
async def drain_node(
    _: Admin,
    controller: BgpDep,
    wait: Annotated[
        bool, Query(description="Answer once the established sessions are gone (or timeout)")
    ] = False,
) -> BgpStatus:
    """Drains the node: the routers stop sending it new connections; the established
    ones go on. `state` becomes `drained` when they are gone, `timed_out` after
    `bgp.drain.timeout`."""
    c = _enabled(controller)
    await c.start_drain()
    if wait:
        await c.wait_drained()
    return c.status()


@router.post("/undrain", responses=WRITE_ERRORS)
async def undrain_node(_: Admin, controller: BgpDep) -> BgpStatus:
    """Announces the VIPs as before the drain."""
    c = _enabled(controller)
    await c.undrain()
    return c.status()
