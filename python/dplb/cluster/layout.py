"""What of a node's config the cluster shares, and how it is laid out in etcd.

The shared config is `services` and `api.tokens`: what every node of the cluster runs.
Everything else (node, dataplane, api.listen and the audit log, store, and the other
node-local sections) stays in each node's config file. A node's desired config is its
local sections with the shared ones put in.

Keys, under `<prefix>/<cluster>/`:
- `config/head`: the shared config as one small JSON document: author, message, time,
  `api` (tokens) and `services`, a list of blob ids (or, written by hand, of inline
  service mappings). One transaction per change puts it; its `mod_revision` is the
  config's version. Only the head changes a config, so a node never sees half a change.
- `config/blobs/<id>`: one service as JSON; the id is a hash of that JSON, so a blob
  never changes and a change of one service writes one blob. Written before the head
  that refers to them, removed once no kept version refers to them.
- `history/<revision>`: the head of each kept version (author, message, blob ids), so
  history and rollback outlive etcd's compaction; at most `store.keep_versions`.
- `members/<node>`: the node's API address, workers, local addresses, version and
  start time, under a lease the node keeps alive.
- `status/<node>`: what the node did with the newest version it saw."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

SHARED_API_KEYS = ("tokens",)
FORMAT = 1


class Keys:
    def __init__(self, prefix: str, cluster: str) -> None:
        self.base = f"{prefix.rstrip('/')}/{cluster}/"
        self.head = self._k("config/head")
        self.blobs = self._k("config/blobs/")
        self.history = self._k("history/")
        self.members = self._k("members/")
        self.status = self._k("status/")

    def _k(self, tail: str) -> bytes:
        return (self.base + tail).encode()

    def blob(self, blob_id: str) -> bytes:
        return self.blobs + blob_id.encode()

    def history_of(self, version: int) -> bytes:
        return self.history + f"{version:020d}".encode()

    def member(self, node: str) -> bytes:
        return self.members + node.encode()

    def status_of(self, node: str) -> bytes:
        return self.status + node.encode()


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def blob_id(service_json: bytes) -> str:
    return hashlib.sha256(service_json).hexdigest()[:32]


def split(data: Mapping[str, Any]) -> tuple[dict[str, Any], list[Any]]:
    """The shared part of a config: (`api` with its shared keys, `services`)."""
    api = data.get("api")
    shared_api: dict[str, Any] = {}
    if isinstance(api, Mapping):
        shared_api = {k: api[k] for k in SHARED_API_KEYS if k in api}
    services = data.get("services")
    return shared_api, list(services) if isinstance(services, list) else []


def local_part(data: Mapping[str, Any]) -> dict[str, Any]:
    """A node config without its shared sections."""
    out = {k: v for k, v in data.items() if k != "services"}
    api = out.get("api")
    if isinstance(api, Mapping):
        out["api"] = {k: v for k, v in api.items() if k not in SHARED_API_KEYS}
    return out


def merge(
    local: Mapping[str, Any], shared_api: Mapping[str, Any], services: list[Any]
) -> dict[str, Any]:
    """A node's desired config: its local sections with the shared ones put in."""
    out: dict[str, Any] = dict(local)
    api = dict(out.get("api") or {})
    api.update(shared_api)
    if api:
        out["api"] = api
    out["services"] = services
    return out
