"""The audit log, newest first: who changed what, when, and with what outcome."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from dplb.api.audit import AuditEntry
from dplb.api.deps import NodeDep, Viewer
from dplb.api.errors import READ_ERRORS

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", responses=READ_ERRORS)
async def list_audit_entries(
    _: Viewer, node: NodeDep, limit: Annotated[int, Query(ge=1, le=10000)] = 100
) -> list[AuditEntry]:
    return await node.audit.tail(limit)
