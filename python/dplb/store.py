"""The store of the desired config (DESIGN section 6): writers put a new version, the
reconciler watches, and each node writes back what it applied.

`Store` is the interface; `FileStore` keeps a standalone node's config in a YAML file
with a history of past versions. The etcd store of a cluster implements the same
protocol (the version is then etcd's revision). A store holds the config as written
(a mapping): validating it is the reconciler's job, so a hand-edited file that does not
parse is recorded and refused, never lost."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import re
import tempfile
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import yaml
from pydantic import BaseModel, ConfigDict

try:  # libyaml is much faster on large configs; PyYAML falls back to pure Python
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]


class StoreError(Exception):
    """The store cannot do what was asked."""


class VersionConflict(StoreError):
    """A write expected a version that is no longer the current one."""

    def __init__(self, expected: int, current: int) -> None:
        super().__init__(f"expected version {expected}, the current one is {current}")
        self.expected = expected
        self.current = current


class StoreUnavailable(StoreError):
    """The store cannot be reached (etcd down or without quorum): nothing was written."""


class VersionNotFound(StoreError):
    def __init__(self, version: int) -> None:
        super().__init__(f"no version {version}")
        self.version = version


class VersionInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int
    time: datetime
    author: str
    message: str = ""


class FieldError(BaseModel):
    """One reason a config was refused, at the field it concerns."""

    model_config = ConfigDict(extra="forbid")

    path: str
    reason: str


class ApplyStatus(BaseModel):
    """What a node's reconciler did with the desired config: the version that runs, and
    the outcome of the last version it looked at."""

    model_config = ConfigDict(extra="forbid")

    node: str
    applied_version: int | None = None
    applied_at: datetime | None = None
    last_version: int | None = None
    last_result: Literal["applied", "unchanged", "refused"] | None = None
    last_at: datetime | None = None
    errors: list[FieldError] = []


class MemberInfo(BaseModel):
    """What a node tells the cluster about itself while it runs."""

    model_config = ConfigDict(extra="forbid")

    node: str
    api: str | None = None
    sync: str | None = None
    workers: int
    local_addresses: list[str] = []
    # each worker's local addresses over all ports (session sync: a peer's worker w's
    # addresses are owned by worker w here)
    worker_local_addresses: list[list[str]] = []
    version: str
    started_at: datetime


class StoreHealth(BaseModel):
    """Whether the store answers, as this node last saw it."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["file", "etcd"]
    up: bool
    endpoint: str | None = None
    last_contact: datetime | None = None
    error: str | None = None
    # etcd: requests moved to the next endpoint, config watches broken and re-made, and
    # re-reads of the whole config after a compaction
    failovers: int = 0
    watch_restarts: int = 0
    relists: int = 0


@dataclass(frozen=True)
class Desired:
    """One version of the desired config, to be treated as read-only (a store may hand the
    same one to every reader). `data` is None when the text is not a YAML mapping;
    `problem` then says why."""

    info: VersionInfo
    data: dict[str, Any] | None
    problem: str | None = None

    @property
    def version(self) -> int:
        return self.info.version


class Store(Protocol):
    async def read(self) -> Desired | None:
        """The current desired config, None while the store is empty."""
        ...

    async def current_version(self) -> int:
        """The current version without reading the config (0 while empty)."""
        ...

    async def read_version(self, version: int) -> Desired:
        """A past (or the current) version; raises VersionNotFound."""
        ...

    async def write(
        self,
        data: Mapping[str, Any],
        *,
        author: str,
        message: str = "",
        expected_version: int | None = None,
    ) -> VersionInfo:
        """Writes a new version. With `expected_version`, only if that is still the
        current one (0: only if the store is empty); else raises VersionConflict."""
        ...

    def watch(self, after: int = 0) -> AsyncIterator[Desired]:
        """Yields the current desired config whenever its version passes `after` (a
        burst of writes may be seen as its last version only)."""
        ...

    async def history(self, limit: int | None = None) -> list[VersionInfo]:
        """Past versions, newest first."""
        ...

    async def write_status(self, status: ApplyStatus) -> None: ...

    async def read_status(self, node: str) -> ApplyStatus | None: ...

    async def statuses(self) -> list[ApplyStatus]:
        """Every node's status, by node name."""
        ...

    async def join(self, member: MemberInfo) -> None:
        """Announces this node as a member for as long as it runs (until `leave`)."""
        ...

    async def leave(self) -> None: ...

    async def members(self) -> list[MemberInfo]:
        """The nodes that run now, by node name."""
        ...

    def health(self) -> StoreHealth: ...


# Strings written plain (unquoted): names, dotted IPv4 addresses and prefixes. Anything
# else is written as a JSON string, which YAML reads back as the same string.
_PLAIN = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_./-]*|\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2})?)$")
_RESERVED = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"}  # YAML 1.1


# What a YAML double-quoted scalar cannot hold as it is: characters YAML does not allow
# in a stream (DEL, C1 controls, surrogates, U+FFFE/F) and the line breaks JSON leaves
# alone (NEL, LS, PS), which YAML would fold into a space. JSON escapes the C0 controls.
_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]")


def _float(value: float) -> str:
    """YAML 1.1 reads a float only with a dot: `1e+16` would come back as a string."""
    text = repr(value)
    if "e" in text and "." not in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"
    return text


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float(value)
    text = str(value)
    if _PLAIN.fullmatch(text) and text.lower() not in _RESERVED:
        return text
    quoted = json.dumps(text, ensure_ascii=False)
    return _UNSAFE.sub(lambda m: f"\\u{ord(m[0]):04x}", quoted)


def _emit(value: Any, indent: str, out: list[str]) -> None:
    """Block-style YAML of plain data, the way PyYAML writes it, in a fraction of its
    time (a config of 100,000 reals takes PyYAML seconds)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            head = f"{indent}{_scalar(key)}:"
            if isinstance(item, Mapping | list) and item:
                out.append(head)
                _emit(item, indent if isinstance(item, list) else indent + "  ", out)
            else:
                out.append(f"{head} {_inline(item)}")
    else:
        for item in value:
            if isinstance(item, Mapping | list) and item:
                lines: list[str] = []
                _emit(item, indent + "  ", lines)
                out.append(f"{indent}- {lines[0][len(indent) + 2 :]}")
                out.extend(lines[1:])
            else:
                out.append(f"{indent}- {_inline(item)}")


def _inline(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return _scalar(value)


def dump_yaml(data: Mapping[str, Any]) -> str:
    out: list[str] = []
    _emit(data, "", out)
    return "\n".join(out) + "\n"


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)


def _parse(text: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        return None, f"not valid YAML: {exc}"
    if not isinstance(data, dict):
        return None, "the config must be a mapping"
    return data, None


def _atomic_write(path: Path, text: str) -> None:
    """Temp file in the same folder, fsync, rename, fsync the folder: a reader sees the
    old file or the new one, never a part, even across a crash. Owner-only: the config
    holds API tokens."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class FileStore:
    """The desired config in one YAML file (`path`), each version also kept as
    `history/<version>.yaml` with its `history/<version>.json` (time, author, message)
    beside the file, and each node's apply status as `status/<node>.json`.

    The file may be edited by hand: a content that differs from the newest version is
    recorded as the next version (author "file") when the store next reads it. Versions
    only grow; `keep` prunes the oldest history files but never the newest one."""

    def __init__(self, path: Path | str, *, poll_interval: float = 0.5, keep: int | None = None):
        self.path = Path(path)
        self.history_dir = self.path.parent / "history"
        self.status_dir = self.path.parent / "status"
        self.poll_interval = poll_interval
        self.keep = keep
        self._lock_path = self.path.parent / f".{self.path.name}.lock"
        # ((inode, size, mtime_ns) of `path`, its version): one attribute, so that a
        # reader on another thread never pairs a new stat with an old version.
        self._seen: tuple[tuple[int, int, int] | None, int] = (None, 0)
        self._watchers: set[asyncio.Event] = set()
        # Parsed versions: reading a large YAML config takes seconds, and versions never
        # change. Callers treat `Desired.data` as read-only.
        self._parsed: dict[int, Desired] = {}
        self._member: MemberInfo | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.history_dir.mkdir(exist_ok=True)
        self.status_dir.mkdir(exist_ok=True)

    # -- Store -----------------------------------------------------------------------
    async def read(self) -> Desired | None:
        return await asyncio.to_thread(self._read)

    async def current_version(self) -> int:
        return await asyncio.to_thread(self._current_version)

    async def read_version(self, version: int) -> Desired:
        return await asyncio.to_thread(self._read_version, version)

    async def write(
        self,
        data: Mapping[str, Any],
        *,
        author: str,
        message: str = "",
        expected_version: int | None = None,
    ) -> VersionInfo:
        info = await asyncio.to_thread(self._write, data, author, message, expected_version)
        for event in self._watchers:
            event.set()
        return info

    async def watch(self, after: int = 0) -> AsyncIterator[Desired]:
        event = asyncio.Event()
        self._watchers.add(event)
        try:
            while True:
                event.clear()
                version = await asyncio.to_thread(self._current_version)
                if version > after:
                    after = version
                    yield await self.read_version(version)
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), self.poll_interval)
        finally:
            self._watchers.discard(event)

    async def history(self, limit: int | None = None) -> list[VersionInfo]:
        return await asyncio.to_thread(self._history, limit)

    async def write_status(self, status: ApplyStatus) -> None:
        path = self.status_dir / f"{status.node}.json"
        await asyncio.to_thread(_atomic_write, path, status.model_dump_json(indent=2) + "\n")

    async def read_status(self, node: str) -> ApplyStatus | None:
        path = self.status_dir / f"{node}.json"
        try:
            text = await asyncio.to_thread(path.read_text)
        except FileNotFoundError:
            return None
        return ApplyStatus.model_validate_json(text)

    async def statuses(self) -> list[ApplyStatus]:
        def read_all() -> list[ApplyStatus]:
            out = []
            for path in sorted(self.status_dir.glob("*.json")):
                with contextlib.suppress(OSError, ValueError):
                    out.append(ApplyStatus.model_validate_json(path.read_text()))
            return out

        return await asyncio.to_thread(read_all)

    async def join(self, member: MemberInfo) -> None:
        self._member = member

    async def leave(self) -> None:
        self._member = None

    async def members(self) -> list[MemberInfo]:
        """A standalone node is its own cluster."""
        return [self._member] if self._member is not None else []

    def health(self) -> StoreHealth:
        return StoreHealth(kind="file", up=True, endpoint=str(self.path))

    # -- files -----------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialises writers across processes (a node and `dplb` commands)."""
        with open(self._lock_path, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _versions(self) -> list[int]:
        out = []
        for p in self.history_dir.glob("*.json"):
            if p.stem.isdigit() and (self.history_dir / f"{p.stem}.yaml").exists():
                out.append(int(p.stem))
        return sorted(out)

    def _info(self, version: int) -> VersionInfo:
        try:
            text = (self.history_dir / f"{version}.json").read_text()
        except FileNotFoundError:
            raise VersionNotFound(version) from None
        return VersionInfo.model_validate_json(text)

    def _read_version(self, version: int) -> Desired:
        cached = self._parsed.get(version)
        if cached is not None:
            return cached
        info = self._info(version)
        try:
            text = (self.history_dir / f"{version}.yaml").read_text()
        except FileNotFoundError:
            raise VersionNotFound(version) from None
        data, problem = _parse(text)
        return self._cache(Desired(info, data, problem))

    def _cache(self, desired: Desired) -> Desired:
        self._parsed[desired.version] = desired
        while len(self._parsed) > 4:
            del self._parsed[min(self._parsed)]
        return desired

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _current_version(self) -> int:
        """The current version (0: empty); a stat when the file has not changed."""
        seen_stat, seen_version = self._seen
        if seen_version and seen_stat is not None and self._stat() == seen_stat:
            return seen_version
        with self._locked():
            return self._adopt()

    def _read(self) -> Desired | None:
        version = self._current_version()
        return self._read_version(version) if version else None

    def _adopt(self) -> int:
        """Under the lock: the current version, recording a hand edit of the file."""
        stat = self._stat()
        versions = self._versions()
        newest = versions[-1] if versions else 0
        if stat is None:
            if not newest:
                return 0
            # The file was removed: put the newest version back rather than lose it.
            _atomic_write(self.path, (self.history_dir / f"{newest}.yaml").read_text())
            return self._remember(newest)
        # The stat taken before reading: if the file changes while it is read (an editor
        # that does not rename), the next look sees another stat and reads it again.
        text = self.path.read_text()
        if newest and (self.history_dir / f"{newest}.yaml").read_text() == text:
            return self._remember(newest, stat)
        info = self._record(text, newest + 1, "file", "edited in place")
        return self._remember(info.version, stat)

    def _remember(self, version: int, stat: tuple[int, int, int] | None = None) -> int:
        self._seen = (stat or self._stat(), version)
        return version

    def _record(self, text: str, version: int, author: str, message: str) -> VersionInfo:
        info = VersionInfo(version=version, time=datetime.now(UTC), author=author, message=message)
        _atomic_write(self.history_dir / f"{version}.yaml", text)
        _atomic_write(self.history_dir / f"{version}.json", info.model_dump_json() + "\n")
        self._prune(version)
        return info

    def _prune(self, newest: int) -> None:
        if self.keep is None:
            return
        for v in self._versions()[: -max(self.keep, 1)]:
            if v != newest:
                for suffix in (".json", ".yaml"):
                    with contextlib.suppress(FileNotFoundError):
                        (self.history_dir / f"{v}{suffix}").unlink()

    def _write(
        self, data: Mapping[str, Any], author: str, message: str, expected: int | None
    ) -> VersionInfo:
        # A copy of plain data (JSON types), so that the caller's later edits cannot
        # change a version, and what is cached is what the file holds.
        plain = json.loads(json.dumps(data, default=str))
        text = dump_yaml(plain)
        with self._locked():
            current_version = self._adopt()
            if expected is not None and expected != current_version:
                raise VersionConflict(expected, current_version)
            info = self._record(text, current_version + 1, author, message)
            _atomic_write(self.path, text)
            self._remember(info.version)
            self._cache(Desired(info, plain))
            return info

    def _history(self, limit: int | None) -> list[VersionInfo]:
        with self._locked():
            self._adopt()
        versions = list(reversed(self._versions()))
        if limit is not None:
            versions = versions[:limit]
        return [self._info(v) for v in versions]
