"""The audit log: one JSON line per change made through the API (and per refused or
forbidden attempt): who (the token's name, never the token), when, the request, the
outcome, the status the client got, the config version it made, and what changed.

`AuditWrites` writes the line of every write request that carries a valid token, when
its answer starts (so the status is the one the client gets, and the line is there
before the client reads the answer); what a route knows beyond the request (the
version, the changes, the outcome) it `note`s in the request's state first. A write that
changes nothing (outcome `unchanged`) is no line."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections import deque
from collections.abc import MutableMapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dplb.config_diff import Change

log = logging.getLogger("dplb.audit")

Outcome = Literal[
    "applied", "unchanged", "pending", "refused", "forbidden", "not_found", "reset", "failed"
]


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
    entry kept); `path` None keeps them in memory only (tests, development). Before the
    file would grow past `max_bytes` it is rotated: `path.1` is the newest rotated
    file, `path.<keep>` the oldest kept, and older ones are removed."""

    def __init__(
        self,
        path: Path | None,
        memory: int = 1000,
        *,
        max_bytes: int = 16 * 1024 * 1024,
        keep: int = 5,
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep
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

    def rotated(self, n: int) -> Path:
        assert self.path is not None
        return self.path.with_name(f"{self.path.name}.{n}")

    def _rotate(self) -> None:
        assert self.path is not None
        for n in range(self.keep, 0, -1):
            source = self.path if n == 1 else self.rotated(n - 1)
            with contextlib.suppress(FileNotFoundError):
                os.replace(source, self.rotated(n))
        if self.keep == 0:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def _append(self, entry: AuditEntry) -> None:
        line = (entry.model_dump_json() + "\n").encode()
        with self._lock:
            self._recent.append(entry)
            if self.path is None:
                return
            with contextlib.suppress(FileNotFoundError):
                size = self.path.stat().st_size
                if size and size + len(line) > self.max_bytes:
                    self._rotate()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)

    async def tail(self, limit: int) -> list[AuditEntry]:
        """The newest `limit` entries, newest first (from the rotated files too)."""
        return await asyncio.to_thread(self._tail, limit)

    def _tail(self, limit: int) -> list[AuditEntry]:
        with self._lock:
            if self.path is None:
                return list(reversed(self._recent))[:limit]
            out: list[AuditEntry] = []
            for file in [self.path, *(self.rotated(n) for n in range(1, self.keep + 1))]:
                try:
                    # Lines end at \n only: JSON strings may hold U+2028, \x85, ...
                    lines = file.read_text().split("\n")
                except FileNotFoundError:
                    continue
                for line in reversed(lines):
                    if len(out) == limit:
                        return out
                    if line.strip():
                        out.append(AuditEntry.model_validate_json(line))
            return out


def note(scope: MutableMapping[str, Any], **fields: Any) -> None:
    """Adds to what the audit line of this request will say (`outcome`, `version`,
    `message`, `changes`, `errors` as (path, reason) pairs)."""
    scope.setdefault("state", {}).setdefault("audit", {}).update(fields)


def outcome_of(status: int) -> Outcome:
    if status == 202:
        return "pending"
    if status < 300:
        return "applied"
    if status == 403:
        return "forbidden"
    if status == 404:
        return "not_found"
    if status < 500:
        return "refused"
    return "failed"


AUDITED_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class AuditWrites:
    """ASGI middleware: the audit line of each write under `prefix` by a known caller."""

    def __init__(self, app: ASGIApp, audit: AuditLog, prefix: str) -> None:
        self.app = app
        self.audit = audit
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in AUDITED_METHODS
            or not scope["path"].startswith(self.prefix + "/")
        ):
            await self.app(scope, receive, send)
            return
        recorded = False

        async def send_after_audit(message: Message) -> None:
            nonlocal recorded
            if message["type"] == "http.response.start" and not recorded:
                recorded = True
                await self._record(scope, message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_after_audit)
        except Exception:
            if not recorded:
                await self._record(scope, 500)
            raise

    async def _record(self, scope: Scope, status: int) -> None:
        state = scope.get("state", {})
        who = state.get("principal")
        if who is None:  # no valid token: nothing was attempted in anyone's name
            return
        draft = state.get("audit", {})
        outcome = draft.get("outcome") or outcome_of(status)
        if status >= 300 and outcome in ("applied", "pending", "unchanged", "reset"):
            outcome = outcome_of(status)  # the route got no further than that
        if outcome == "unchanged":
            return
        await self.audit.record(
            AuditEntry(
                who=who.name,
                role=who.role,
                method=scope["method"],
                path=scope["path"],
                outcome=outcome,
                status=status,
                version=draft.get("version"),
                message=draft.get("message", ""),
                changes=draft.get("changes", []),
                errors=[{"path": p, "reason": r} for p, r in draft.get("errors", [])],
            )
        )
