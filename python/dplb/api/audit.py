"""The audit log: one JSON line per change made through the API (and per refused or
forbidden attempt): who (the token's name, never the token), when, the request, the
outcome, the config version it made, and what changed."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from dplb.config_diff import Change

log = logging.getLogger("dplb.audit")

Outcome = Literal["applied", "unchanged", "pending", "refused", "forbidden", "not_found", "reset"]


class AuditEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    who: str
    role: str
    method: str
    path: str
    outcome: Outcome
    status: int
    version: int | None = None
    message: str = ""
    changes: list[Change] = []
    errors: list[dict[str, str]] = []


class AuditLog:
    """Appends entries to a JSON lines file (flushed and synced: an entry written is an
    entry kept); `path` None keeps them in memory only (tests, development)."""

    def __init__(self, path: Path | None, memory: int = 1000) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._recent: deque[AuditEntry] = deque(maxlen=memory)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    async def record(self, entry: AuditEntry) -> None:
        log.info(
            "%s (%s) %s %s: %s%s",
            entry.who,
            entry.role,
            entry.method,
            entry.path,
            entry.outcome,
            f" version {entry.version}" if entry.version is not None else "",
        )
        await asyncio.to_thread(self._append, entry)

    def _append(self, entry: AuditEntry) -> None:
        with self._lock:
            self._recent.append(entry)
            if self.path is None:
                return
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, (entry.model_dump_json() + "\n").encode())
                os.fsync(fd)
            finally:
                os.close(fd)

    async def tail(self, limit: int) -> list[AuditEntry]:
        """The newest `limit` entries, newest first."""
        return await asyncio.to_thread(self._tail, limit)

    def _tail(self, limit: int) -> list[AuditEntry]:
        with self._lock:
            if self.path is None or not self.path.exists():
                return list(reversed(self._recent))[:limit]
            lines = self.path.read_text().splitlines()
        out: list[AuditEntry] = []
        for line in reversed(lines):
            if len(out) == limit:
                break
            if line.strip():
                out.append(AuditEntry.model_validate_json(line))
        return out
