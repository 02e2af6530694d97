"""Differences between two node configs, as an operator reads them: services and reals
are named by what they are (`services[10.0.100.10:80/tcp].reals[10.0.2.11:8080].weight`),
not by their position, so removing one service does not show every later one as changed.
API tokens are never shown, only that they changed."""

from __future__ import annotations

import difflib
import ipaddress
from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from dplb.config import NodeConfig

REDACTED = "*** redacted ***"  # 16 characters: a valid token length, see `restore_tokens`


class Change(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str
    op: Literal["added", "removed", "changed"]
    old: Any = None
    new: Any = None


def endpoint_id(address: str, port: int) -> str:
    """`10.0.2.11:8080`, `[2001:db8::11]:8080`."""
    addr = ipaddress.ip_address(address)
    return f"[{addr}]:{port}" if addr.version == 6 else f"{addr}:{port}"


def service_id(vip: str, port: int, protocol: str) -> str:
    """`10.0.100.10:80/tcp`, `[2001:db8::10]:80/tcp`: how the API and logs name a service."""
    return f"{endpoint_id(vip, port)}/{protocol}"


def _endpoint_key(address: Any, port: Any) -> str:
    text = str(address)
    try:
        return endpoint_id(text, int(port))
    except ValueError:  # not validated: name it as written
        return f"{text}:{port}"


def _service_key(item: Mapping[str, Any]) -> str:
    return f"{_endpoint_key(item['vip'], item['port'])}/{item.get('protocol', 'tcp')}"


def _real_key(item: Mapping[str, Any]) -> str:
    return _endpoint_key(item["address"], item["port"])


def _name_key(item: Mapping[str, Any]) -> str:
    return str(item["name"])


def _keyer(path: str) -> Callable[[Mapping[str, Any]], str] | None:
    if path == "services":
        return _service_key
    if path.startswith("services[") and path.endswith("].reals"):
        return _real_key
    if path in ("api.tokens", "dataplane.ports"):
        return _name_key
    return None


def redact(data: Any) -> Any:
    """A copy of a config mapping with every API token value replaced by REDACTED."""
    if not isinstance(data, Mapping):
        return data
    out = dict(data)
    api = out.get("api")
    if isinstance(api, Mapping) and isinstance(api.get("tokens"), list):
        api = dict(api)
        api["tokens"] = [
            {**t, "token": REDACTED} if isinstance(t, Mapping) and "token" in t else t
            for t in api["tokens"]
        ]
        out["api"] = api
    return out


def restore_tokens(data: Mapping[str, Any], running: NodeConfig) -> dict[str, Any]:
    """A config read back from the API carries REDACTED for each token; put the running
    value of the token with the same name back, so a read-edit-write keeps them."""
    out = dict(data)
    api = out.get("api")
    if not isinstance(api, Mapping) or not isinstance(api.get("tokens"), list):
        return out
    known = {t.name: t.token for t in running.api.tokens}
    tokens = []
    for t in api["tokens"]:
        if isinstance(t, Mapping) and t.get("token") == REDACTED and t.get("name") in known:
            t = {**t, "token": known[t["name"]]}
        tokens.append(t)
    out["api"] = {**api, "tokens": tokens}
    return out


def _scrub(value: Any) -> Any:
    """`value` with every `token` string in it replaced by REDACTED."""
    if isinstance(value, Mapping):
        return {
            k: REDACTED if k == "token" and isinstance(v, str) else _scrub(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def _diff(path: str, old: Any, new: Any, out: list[Change]) -> None:
    if old == new:  # one comparison in C skips an unchanged service and its reals
        return
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in [*old, *(k for k in new if k not in old)]:
            sub = f"{path}.{key}" if path else str(key)
            if key not in new:
                out.append(Change(path=sub, op="removed", old=old[key]))
            elif key not in old:
                out.append(Change(path=sub, op="added", new=new[key]))
            else:
                _diff(sub, old[key], new[key], out)
        return
    keyer = _keyer(path)
    if keyer is not None and isinstance(old, list) and isinstance(new, list):
        old_by = {keyer(item): item for item in old}
        new_by = {keyer(item): item for item in new}
        for key in [*old_by, *(k for k in new_by if k not in old_by)]:
            sub = f"{path}[{key}]"
            if key not in new_by:
                out.append(Change(path=sub, op="removed", old=old_by[key]))
            elif key not in old_by:
                out.append(Change(path=sub, op="added", new=new_by[key]))
            else:
                _diff(sub, old_by[key], new_by[key], out)
        return
    out.append(Change(path=path, op="changed", old=old, new=new))


def _full(data: NodeConfig | Mapping[str, Any] | None) -> dict[str, Any]:
    if data is None:
        return {}
    if isinstance(data, NodeConfig):
        return data.model_dump(mode="json")
    return dict(data)


def _diff_models(old: NodeConfig, new: NodeConfig, out: list[Change]) -> None:
    """Like _diff on the dumps, without dumping the services that did not change (a
    config may hold 100,000 reals; comparing models is much cheaper than dumping them)."""
    fields = [f for f in NodeConfig.model_fields if f != "services"]
    _diff("", old.model_dump(mode="json", include=set(fields)),
          new.model_dump(mode="json", include=set(fields)), out)  # fmt: skip

    def by_key(cfg: NodeConfig) -> dict[str, Any]:
        return {service_id(str(s.vip), s.port, s.protocol): s for s in cfg.services}

    old_by, new_by = by_key(old), by_key(new)
    for key in [*old_by, *(k for k in new_by if k not in old_by)]:
        path = f"services[{key}]"
        if key not in new_by:
            out.append(Change(path=path, op="removed", old=old_by[key].model_dump(mode="json")))
        elif key not in old_by:
            out.append(Change(path=path, op="added", new=new_by[key].model_dump(mode="json")))
        elif old_by[key] != new_by[key]:
            _diff(
                path,
                old_by[key].model_dump(mode="json"),
                new_by[key].model_dump(mode="json"),
                out,
            )


def diff_configs(
    old: NodeConfig | Mapping[str, Any] | None, new: NodeConfig | Mapping[str, Any] | None
) -> list[Change]:
    """What changed from `old` to `new`. Give validated configs to compare meanings
    (a default and the same value written out are equal); mappings are compared as
    written. Token values are redacted."""
    out: list[Change] = []
    if isinstance(old, NodeConfig) and isinstance(new, NodeConfig):
        _diff_models(old, new, out)
    else:
        _diff("", _full(old), _full(new), out)
    for change in out:
        if change.path == "api" or change.path.startswith("api."):
            if change.path.endswith(".token"):
                change.old = REDACTED if change.old is not None else None
                change.new = REDACTED if change.new is not None else None
            else:
                change.old, change.new = _scrub(change.old), _scrub(change.new)
    return out


def text_diff(
    old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, old_name: str, new_name: str
) -> str:
    """A unified diff of the two configs as YAML, tokens redacted."""
    from dplb.store import dump_yaml

    a = dump_yaml(redact(old)).splitlines(keepends=True) if old is not None else []
    b = dump_yaml(redact(new)).splitlines(keepends=True) if new is not None else []
    return "".join(difflib.unified_diff(a, b, old_name, new_name))
