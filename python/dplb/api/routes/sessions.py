"""Sessions: search (`GET /api/v1/sessions?client=198.51.100.0/24&vip=...`, paged with a
cursor; the walk of the tables runs in C++ without the GIL and stops after `limit`)
and reset one (`DELETE /api/v1/sessions/{protocol}/{client}/{client_port}/{vip}/{vip_port}`):
the session is removed by the worker that owns it, and later packets of the flow find
no session (a TCP peer then sees its connection fail)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request

from dplb.api.audit import note
from dplb.api.deps import AddressParam, Admin, NodeDep, Viewer, parse_address
from dplb.api.errors import READ_ERRORS, WRITE_ERRORS, ApiError
from dplb.api.models import SessionReset
from dplb.config_diff import endpoint_id
from dplb.dataplane import SessionKey, SessionPage, SessionQuery

router = APIRouter(prefix="/sessions", tags=["sessions"])

AnyPort = Annotated[int, Path(ge=0, le=65535)]


@router.get("", responses=READ_ERRORS)
def list_sessions(query: Annotated[SessionQuery, Query()], _: Viewer, node: NodeDep) -> SessionPage:
    """Sessions matching every filter given (`client` is an address or a prefix): at most
    `limit` (1000 at most) from `cursor`, in table order (worker, then slot). The next
    page starts at the answer's `next_cursor`; it is null after the last page. A
    session that lives through a whole paging is in exactly one page."""
    return node.dataplane.sessions(query)


@router.delete("/{protocol}/{client}/{client_port}/{vip}/{vip_port}", responses=WRITE_ERRORS)
async def reset_session(
    protocol: Literal["tcp", "udp"],
    client: AddressParam,
    client_port: AnyPort,
    vip: AddressParam,
    vip_port: AnyPort,
    who: Admin,
    node: NodeDep,
    request: Request,
) -> SessionReset:
    key = SessionKey(
        protocol=protocol,
        client=parse_address(client, "path.client"),
        client_port=client_port,
        vip=parse_address(vip, "path.vip"),
        vip_port=vip_port,
    )
    client_id = endpoint_id(str(key.client), client_port)
    name = f"{protocol} {client_id} -> {endpoint_id(str(key.vip), vip_port)}"
    removed = await asyncio.to_thread(node.dataplane.reset_session, key)
    note(
        request.scope, outcome="reset" if removed else "not_found", message=f"reset session {name}"
    )
    if not removed:
        raise ApiError(404, [("session", f"no session {name}")])
    return SessionReset(removed=removed)
