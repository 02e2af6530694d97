"""Session sync as this node sees it: ready or not (full sync), each peer (heard from,
records, sequence gaps, lag, why it is refused) and the sync thread's counters."""

from __future__ import annotations

from fastapi import APIRouter, Request

from dplb.api.deps import Viewer
from dplb.api.errors import READ_ERRORS
from dplb.sync import SyncManager, SyncStatus

router = APIRouter(prefix="/sync", tags=["sync"])


@router.get("", responses=READ_ERRORS)
def get_sync_status(_: Viewer, request: Request) -> SyncStatus:
    """`enabled: false` on a node without `sync.enabled`."""
    manager: SyncManager | None = getattr(request.app.state, "sync", None)
    if manager is None:
        return SyncStatus(enabled=False, ready=True)
    return manager.status()
