"""`dplb ctl`: the management API from the shell. Tables for people, `--json` for
scripts (the API's own JSON), and exit codes scripts can trust:

  0  done (a change is applied)        3  no token, a bad token, or a viewer token
  1  refused: invalid, conflict, or    4  the node cannot be reached, or failed (5xx)
     no such service/real/session      5  written but not applied yet (see `config status`)
  2  wrong usage of the command        6  `cluster status`: a live node lags or refused

The node is `--url` or $DPLB_URL (default http://127.0.0.1:8080); the token is
`--token-file`, `--token` (visible to other users in `ps`: avoid) or $DPLB_TOKEN."""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import quote

import httpx
import yaml

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_AUTH, EXIT_UNREACHABLE, EXIT_PENDING = 0, 1, 2, 3, 4, 5
EXIT_DRIFT = 6
DEFAULT_URL = "http://127.0.0.1:8080"
API = "/api/v1"


class CtlError(Exception):
    def __init__(self, code: int, message: str, body: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.body = body


# -- names on the command line -------------------------------------------------------


def _split_endpoint(text: str, what: str) -> tuple[str, int]:
    """`10.0.2.11:8080` or `[2001:db8::11]:8080` -> (address, port)."""
    if text.startswith("["):
        addr, sep, port = text[1:].partition("]:")
    else:
        addr, sep, port = text.rpartition(":")
    try:
        if not sep or not port.isdigit():
            raise ValueError
        return str(ipaddress.ip_address(addr)), int(port)
    except ValueError:
        raise CtlError(
            EXIT_USAGE, f"{what} '{text}': expected ADDRESS:PORT ([ADDRESS]:PORT for IPv6)"
        ) from None


def parse_service(text: str) -> tuple[str, int, str]:
    """`10.0.100.10:80/tcp`, `[2001:db8::10]:443/tcp`; the protocol defaults to tcp."""
    endpoint, _, protocol = text.partition("/")
    protocol = protocol or "tcp"
    if protocol not in ("tcp", "udp"):
        raise CtlError(EXIT_USAGE, f"service '{text}': the protocol is tcp or udp")
    vip, port = _split_endpoint(endpoint, "service")
    return vip, port, protocol


def service_path(text: str) -> str:
    vip, port, protocol = parse_service(text)
    return f"/services/{quote(vip, safe='')}/{port}/{protocol}"


def real_path(service: str, real: str) -> str:
    address, port = _split_endpoint(real, "real")
    return f"{service_path(service)}/reals/{quote(address, safe='')}/{port}"


def parse_real_spec(text: str) -> dict[str, Any]:
    """`10.0.2.11:8080` or `10.0.2.11:8080@50` (weight 50)."""
    endpoint, _, weight = text.partition("@")
    address, port = _split_endpoint(endpoint, "real")
    real: dict[str, Any] = {"address": address, "port": port}
    if weight:
        if not weight.isdigit():
            raise CtlError(EXIT_USAGE, f"real '{text}': the weight after @ is a number")
        real["weight"] = int(weight)
    return real


# -- HTTP ----------------------------------------------------------------------------


class Client:
    def __init__(self, url: str, token: str | None, timeout: float) -> None:
        self.base = url.rstrip("/") + API
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.timeout = timeout
        self.last_status = 0

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        try:
            response = httpx.request(
                method,
                self.base + path,
                json=body,
                params={k: v for k, v in (params or {}).items() if v is not None},
                headers=self.headers,
                timeout=self.timeout,
            )
        except httpx.HTTPError as exc:
            raise CtlError(EXIT_UNREACHABLE, f"cannot reach {self.base}: {exc}") from None
        self.last_status = response.status_code
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code < 400:
            return data
        code = (
            EXIT_AUTH
            if response.status_code in (401, 403)
            else EXIT_UNREACHABLE
            if response.status_code >= 500
            else EXIT_REFUSED
        )
        raise CtlError(code, _error_text(response.status_code, data), data)


def _error_text(status: int, data: Any) -> str:
    if isinstance(data, dict) and isinstance(data.get("errors"), list):
        lines = [f"{e.get('path')}: {e.get('reason')}" for e in data["errors"]]
        head = f"refused (HTTP {status})"
        if data.get("version") is not None:
            head += f", version {data['version']} is not applied"
        return head + ":\n  " + "\n  ".join(lines)
    if isinstance(data, dict) and "error" in data:
        return f"HTTP {status}: {data['error']}"
    return f"HTTP {status}"


# -- output --------------------------------------------------------------------------


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    cells = [[str(c) for c in header]] + [["-" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


def _change_text(data: dict[str, Any]) -> str:
    status = data.get("status")
    lines = [f"{status}: version {data.get('version')}"]
    for c in data.get("changes", []):
        if c["op"] == "changed":
            lines.append(f"  {c['path']}: {c['old']} -> {c['new']}")
        else:
            lines.append(f"  {c['op']} {c['path']}")
    if status == "pending":
        lines.append("  not applied yet: see `dplb ctl config status`")
    return "\n".join(lines)


def _services_text(data: list[dict[str, Any]], down: set[tuple[str, str]]) -> str:
    """REALS-UP: the reals that take new sessions (enabled, weight above 0, not down by
    the health checks) of all."""
    rows = []
    for s in data:
        enabled = sum(
            1
            for r in s["reals"]
            if r["enabled"] and r["weight"] > 0 and (s["id"], _real_id(r)) not in down
        )
        rows.append(
            [
                s["id"],
                s["scheduler"],
                s["client_address"],
                s.get("nic"),
                f"{enabled}/{len(s['reals'])}",
            ]
        )
    return table(rows, ["SERVICE", "SCHEDULER", "CLIENT-ADDRESS", "NIC", "REALS-UP"])


def _service_text(s: dict[str, Any]) -> str:
    head = (
        f"{s['id']}  scheduler {s['scheduler']}  client address {s['client_address']}"
        f"  nic {s.get('nic') or '-'}"
    )
    return head + "\n" + _reals_text(s["reals"], s["id"])


def _real_id(r: dict[str, Any]) -> str:
    if r.get("id"):
        return str(r["id"])
    addr = ipaddress.ip_address(r["address"])
    return f"[{addr}]:{r['port']}" if addr.version == 6 else f"{addr}:{r['port']}"


def _reals_text(reals: list[dict[str, Any]], service: str | None = None) -> str:
    rows = []
    for r in reals:
        rid = _real_id(r)
        health = r.get("health") or {}
        status = health.get("status", "unknown")
        state = "up" if r["enabled"] and r["weight"] > 0 else "quiesced"
        if state == "up" and status == "down":
            state = "down"
        rows.append(
            [
                rid,
                r["weight"],
                "yes" if r["enabled"] else "no",
                state,
                status,
                health.get("last_result"),
                _since(health.get("seconds_since_change")),
            ]
        )
    return table(rows, ["REAL", "WEIGHT", "ENABLED", "STATE", "HEALTH", "LAST-CHECK", "SINCE"])


def _since(seconds: float | None) -> str | None:
    """12s, 5m, 3h, 2d: how long ago a real's health last changed."""
    if seconds is None:
        return None
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _health_text(data: dict[str, Any]) -> str:
    rows = [
        [
            s["id"],
            s["check"],
            s.get("nic"),
            "yes" if s["can_serve"] else "NO",
            s["reals_up"],
            s["reals_down"],
        ]
        for s in data["services"]
    ]
    out = table(rows, ["SERVICE", "CHECK", "NIC", "CAN-SERVE", "UP", "DOWN"])
    down = [
        [s["id"], r["id"], r["health"].get("last_result"), r["health"].get("down_reason")]
        for s in data["services"]
        for r in s["reals"]
        if r.get("health", {}).get("status") == "down"
    ]
    if down:
        out += "\n\n" + table(down, ["SERVICE", "REAL DOWN", "LAST-CHECK", "REASON"])
    c = data["checker"]
    if not c["enabled"]:
        return out + "\n\nhealth checker: off (health.enabled: false)"
    return (
        out + f"\n\nhealth checker: {c['reals_checked']} reals checked, "
        f"{c['checks']['pass']} passed, {c['checks']['fail']} failed, {c['late']} late, "
        f"{c['in_flight']} in flight, busy {c['busy_seconds']:.3f}s"
    )


def _sessions_text(page: dict[str, Any]) -> str:
    def ep(a: str, p: int) -> str:
        return f"[{a}]:{p}" if ":" in a else f"{a}:{p}"

    rows = [
        [
            s["protocol"],
            ep(s["client"], s["client_port"]),
            ep(s["vip"], s["vip_port"]),
            ep(s["local"], s["local_port"]),
            ep(s["real"], s["real_port"]),
            s["state"],
            f"{s['expires_in']:.0f}s",
            s["worker"],
        ]
        for s in page["items"]
    ]
    shown = len(page["items"])
    more = page["next_cursor"]
    footer = f"{shown} session{'' if shown == 1 else 's'}"
    if more:
        footer += f"; more with --cursor {more}"
    return (
        table(rows, ["PROTO", "CLIENT", "VIP", "LOCAL", "REAL", "STATE", "EXPIRES", "WORKER"])
        + "\n"
        + footer
    )


def _node_text(n: dict[str, Any]) -> str:
    dp, cfg = n["dataplane"], n["config"]
    lines = [
        f"node      {n['name']} (cluster {n['cluster']}), dplb {n['software_version']}",
        f"dataplane {dp['kind']}, {dp['workers']} workers, steering {dp['steering']}, "
        f"up {dp['uptime_seconds']:.0f}s",
        f"liveness  {dp['liveness']['state']}"
        + "".join(f"\n  {r}" for r in dp["liveness"]["reasons"]),
        f"config    desired version {cfg.get('desired_version')}, applied "
        f"{cfg.get('applied_version')}, last {cfg.get('last_result')} "
        f"(version {cfg.get('last_version')})",
    ]
    for e in cfg.get("errors", []):
        lines.append(f"  {e['path']}: {e['reason']}")
    ports = [
        [
            p["name"],
            p["device"],
            p["mac"],
            " ".join(p["addresses"]),
            {True: "up", False: "down"}.get(p.get("link_up"), "-"),
            p["steering"],
        ]
        for p in dp["ports"]
    ]
    lines.append(table(ports, ["PORT", "DEVICE", "MAC", "ADDRESSES", "LINK", "STEERING"]))
    return "\n".join(lines)


def _stats_text(kind: str, data: Any) -> str:
    if kind == "node":
        lines = [
            f"workers {data['workers']}, sessions {data['sessions']}/{data['session_capacity']}"
        ]
        lines += [f"{k:<24} {v}" for k, v in data["counters"].items()]
        lines += [f"drop {k:<19} {v}" for k, v in data["drops"].items() if v]
        return "\n".join(lines)
    if kind == "cores":
        rows = [
            [
                c["worker"],
                c["sessions"],
                c.get("rx_packets"),
                c.get("tx_packets"),
                c.get("handed_over"),
                sum(c["drops"].values()),
            ]
            for c in data
        ]
        return table(rows, ["CORE", "SESSIONS", "RX", "TX", "HANDED-OVER", "DROPS"])
    cols = ["connections", "active", "packets_in", "packets_out", "bytes_in", "bytes_out"]
    if kind == "services":
        rows = [[s["id"], s["reals"], *(s[c] for c in cols)] for s in data]
        return table(rows, ["SERVICE", "REALS", *(c.upper().replace("_", "-") for c in cols)])
    rows = [
        [
            f"{r['vip']}:{r['port']}/{r['protocol']}",
            f"{r['address']}:{r['real_port']}",
            r["weight"],
            *(r[c] for c in cols),
        ]
        for r in data
    ]
    return table(rows, ["SERVICE", "REAL", "WEIGHT", *(c.upper().replace("_", "-") for c in cols)])


def _versions_text(data: list[dict[str, Any]]) -> str:
    rows = [[v["version"], v["time"], v["author"], v["message"]] for v in data]
    return table(rows, ["VERSION", "TIME", "AUTHOR", "MESSAGE"])


def _status_text(s: dict[str, Any]) -> str:
    lines = [
        f"desired version {s.get('desired_version')}, applied version "
        f"{s.get('applied_version')} at {s.get('applied_at')}",
        f"last version {s.get('last_version')}: {s.get('last_result')} at {s.get('last_at')}",
    ]
    lines += [f"  {e['path']}: {e['reason']}" for e in s.get("errors", [])]
    return "\n".join(lines)


def _audit_text(data: list[dict[str, Any]]) -> str:
    rows = [
        [e["time"], e["who"], e["method"], e["path"], e["outcome"], e.get("version")] for e in data
    ]
    return table(rows, ["TIME", "WHO", "METHOD", "PATH", "OUTCOME", "VERSION"])


def _laddrs_text(data: list[dict[str, Any]]) -> str:
    rows = [
        [
            a["address"],
            a["port"],
            a["worker"],
            a["ports_in_use"],
            a["ports_resting"],
            f"{a['ports_busiest_real']}/{a['ports_per_real']}",
        ]
        for a in data
    ]
    return table(rows, ["ADDRESS", "PORT", "WORKER", "IN-USE", "RESTING", "BUSIEST-REAL"])


def _bgp_text(b: dict[str, Any]) -> str:
    if not b.get("enabled"):
        return "bgp       off (node config: bgp.enabled)"
    drain = b["drain"]
    last = b.get("last_reconfiguration")
    lines = [
        f"bird      {b['bird']}" + (f": {b['bird_message']}" if b["bird_message"] else ""),
        f"routes    {'in sync' if b['in_sync'] else 'NOT in sync'}, {len(b['announced'])} "
        f"announced, {b['reconfigurations']} reconfigurations, failures "
        + ", ".join(f"{k} {v}" for k, v in b["failures"].items()),
        f"drain     {drain['state']}"
        + (
            f" ({drain['mode']}, {drain['established_sessions']} established sessions)"
            if drain["state"] != "none"
            else ""
        ),
    ]
    if last is not None:
        lines.append(
            f"last      {'ok' if last['ok'] else 'FAILED'} at {last['at']}: {last['message']}"
        )
    sessions = [
        [s["name"], s["neighbor_address"] or "-", s["neighbor_as"] or "-", s["state"], s["info"],
         s["routes_exported"]]
        for s in b["sessions"]
    ]  # fmt: skip
    lines.append(table(sessions, ["SESSION", "NEIGHBOR", "AS", "STATE", "INFO", "EXPORTED"]))
    routes = [[r["prefix"], r["kind"], " ".join(r["communities"]) or "-"] for r in b["announced"]]
    lines.append(table(routes, ["PREFIX", "KIND", "COMMUNITIES"]))
    return "\n".join(lines)


def _sync_text(s: dict[str, Any]) -> str:
    if not s.get("enabled"):
        return "sync      off (node config: sync.enabled)"
    full = s.get("full_sync") or {}
    lines = [
        f"sync      {'ready' if s['ready'] else 'NOT ready (no VIP announced yet)'}, node id "
        f"{s['node_id']}, listening on {s['listen']}",
        f"full sync {full.get('state', '-')}: {full.get('records', 0)} records, "
        f"{full.get('peers_done', 0)} of {full.get('peers', 0)} peers done"
        + (f": {full['error']}" if full.get("error") else ""),
    ]
    rows = [
        [p["node"], p["address"] or "-", "up" if p["up"] else "DOWN",
         "yes" if p["live"] else "gone", p["records"], p["gaps"],
         _since(p["last_seen_seconds"]) or "never", p["refused"] or "-"]
        for p in s["peers"]
    ]  # fmt: skip
    lines.append(
        table(
            rows, ["PEER", "ADDRESS", "SYNC", "MEMBER", "RECORDS", "GAPS", "LAST SEEN", "REFUSED"]
        )
    )
    return "\n".join(lines)


# -- commands ------------------------------------------------------------------------

Command = Callable[[Client, argparse.Namespace], tuple[Any, str]]


def _change(client: Client, method: str, path: str, body: Any = None) -> tuple[Any, str]:
    data = client.call(method, path, body=body)
    return data, _change_text(data)


def cmd_node(c: Client, a: argparse.Namespace) -> tuple[Any, str]:
    data = c.call("GET", "/node")
    return data, _node_text(data)


def cmd_services_list(c: Client, a: argparse.Namespace) -> tuple[Any, str]:
    data = c.call("GET", "/services")
    checks = c.call("GET", "/health-checks")
    down = {
        (s["id"], r["id"])
        for s in checks["services"]
        for r in s["reals"]
        if (r.get("health") or {}).get("status") == "down"
    }
    return data, _services_text(data, down)


def cmd_services_show(c: Client, a: argparse.Namespace) -> tuple[Any, str]:
    data = c.call("GET", service_path(a.service))
    return data, _service_text(data)


def _service_fields(a: argparse.Namespace) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name in ("scheduler", "client_address", "nic"):
        if getattr(a, name, None) is not None:
            fields[name] = getattr(a, name)
    if getattr(a, "real", None):
        fields["reals"] = [parse_real_spec(r) for r in a.real]
    return fields


def cmd_services_add(c: Client, a: argparse.Namespace) -> tuple[Any, str]:
    vip, port, protocol = parse_service(a.service)
    body = {"vip": vip, "port": port, "protocol": protocol, **_service_fields(a)}
    return _change(c, "POST", "/services", body)


def cmd_services_set(c: Client, a: argparse.Namespace) -> tuple[Any, str]:
    fields = _service_fields(a)
    if not fields:
        raise CtlError(
            EXIT_USAGE, "nothing to set: give --scheduler, --client-address, --nic or --real"
        )
    return _change(c, "PATCH", service_path(a.service), fields)


def cmd_services_delete(c: Client, a: argparse.Namespace) -> tuple[Any, str]:
    return _change(c, "DELETE", service_path(a.service))


def cmd_reals_list(c: Client, a: argparse.Namespace) -> tuple[Any, str]:
    data = c.call("GET", service_path(a.service) + "/reals")
    return data, _reals_text(data)


def cmd_reals_add(c: Client, a: argparse.Namespace) -> tuple[Any, str]:
    body = parse_real_spec(a.real)
    if a.weight is not None:
        body["weight"] = a.weight
    return _change(c, "POST", service_path(a.service) + "/reals", body)


def cmd_reals_set(c: Client, a: argparse.Namespace) -> tuple[Any, str]:
    body: dict[str, Any] = {}
    if a.weight is not None:
        body["weight"] = a.weight
    if a.enabled is not None:
        body["enabled"] = a.enabled
    if not body:
        raise CtlError(EXIT_USAGE, "nothing to set: give --weight, --enable or --disable")
    return _change(c, "PATCH", real_path(a.service, a.real), body)


def cmd_reals_quiesce(c: Client, a: argparse.Namespace) -> tuple[Any, str]:
    return _change(c, "POST", real_path(a.service, a.real) + "/quiesce")


def cmd_reals_enable(c: Client, a: argparse.Namespace) -> tuple[Any, str]:
    return _change(c, "POST", real_path(a.service, a.real) + "/enable")


def cmd_reals_delete(c: Client, a: argparse.Namespace) -> tuple[Any, str]:
    return _change(c, "DELETE", real_path(a.service, a.real))


def cmd_health(c: Client, a: argparse.Namespace) -> tuple[Any, str]:
    data = c.call("GET", "/health-checks")
    return data, _health_text(data)


def cmd_laddrs(c: Client, a: argparse.Namespace) -> tuple[Any, str]:
    data = c.call("GET", "/local-addresses")
    return data, _laddrs_text(data)


def cmd_sessions_list(c: Client, a: argparse.Namespace) -> tuple[Any, str]:
    params = {
        "client": a.client,
        "client_port": a.client_port,
        "vip": a.vip,
        "vip_port": a.vip_port,
        "real": a.real,
        "real_port": a.real_port,
        "protocol": a.protocol,
        "state": a.state,
        "worker": a.worker,
        "cursor": a.cursor,
        "limit": a.limit,
    }
    data = c.call("GET", "/sessions", params=params)
    return data, _sessions_text(data)


def cmd_sessions_reset(c: Client, a: argparse.Namespace) -> tuple[Any, str]:
    client, cport = _split_endpoint(a.client, "client")
    vip, vport = _split_endpoint(a.vip, "vip")
    path = f"/sessions/{a.protocol}/{quote(client, safe='')}/{cport}/{quote(vip, safe='')}/{vport}"
    data = c.call("DELETE", path)
    return data, f"reset: {data['removed']} session{'s' if data['removed'] != 1 else ''} removed"


def cmd_stats(c: Client, a: argparse.Namespace) -> tuple[Any, str]:
    data = c.call("GET", "/stats" if a.kind == "node" else f"/stats/{a.kind}")
    return data, _stats_text(a.kind, data)


def cmd_config_show(c: Client, a: argparse.Namespace) -> tuple[Any, str]:
    data = c.call("GET", "/config" if a.version is None else f"/config/versions/{a.version}")
    info = data["info"]
    head = f"# version {info['version']}, {info['time']}, by {info['author']}: {info['message']}\n"
    if data["config"] is None:
        return data, head + f"# not a config: {data.get('problem')}"
    text: str = yaml.safe_dump(data["config"], sort_keys=False)
    return data, head + text


def cmd_config_apply(c: Client, a: argparse.Namespace) -> tuple[Any, str]:
    try:
        body = yaml.safe_load(Path(a.file).read_text())
    except OSError as exc:
        raise CtlError(EXIT_USAGE, f"{a.file}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise CtlError(EXIT_REFUSED, f"{a.file}: not valid YAML: {exc}") from None
    data = c.call("PUT", "/config", body=body, params={"expected_version": a.expected_version})
    return data, _change_text(data)


def cmd_config_versions(c: Client, a: argparse.Namespace) -> tuple[Any, str]:
    data = c.call("GET", "/config/versions", params={"limit": a.limit})
    return data, _versions_text(data)


def cmd_config_diff(c: Client, a: argparse.Namespace) -> tuple[Any, str]:
    params = {"from_version": a.from_version, "to_version": a.to_version}
    data = c.call("GET", "/config/diff", params=params)
    return data, data["text"] or f"no difference between {a.from_version} and {data['to_version']}"


def cmd_config_rollback(c: Client, a: argparse.Namespace) -> tuple[Any, str]:
    return _change(c, "POST", "/config/rollback", {"version": a.version})


def cmd_config_status(c: Client, a: argparse.Namespace) -> tuple[Any, str]:
    data = c.call("GET", "/config/status")
    return data, _status_text(data)


def _cluster_text(v: dict[str, Any]) -> str:
    store = v["store"]
    lines = [
        f"cluster {v['cluster']}: desired version {v['desired_version']}, "
        + ("every live node runs it" if v["in_sync"] else "NOT in sync"),
        f"store {store['kind']} {store.get('endpoint') or ''}: "
        + ("up" if store["up"] else f"UNAVAILABLE ({store.get('error')})"),
        "",
    ]
    rows = [
        [
            n["node"],
            n["state"],
            n.get("applied_version") or "-",
            f"{n.get('last_version') or '-'} {n.get('last_result') or ''}".strip(),
            n.get("api") or "-",
            n.get("software_version") or "-",
        ]
        for n in v["nodes"]
    ]
    lines.append(table(rows, ["NODE", "STATE", "APPLIED", "LAST", "API", "VERSION"]))
    for n in v["nodes"]:
        if n["state"] == "refused":
            lines.append(f"{n['node']} refused version {n['last_version']}:")
            lines += [f"  {e['path']}: {e['reason']}" for e in n["errors"]]
    return "\n".join(lines)


def cmd_cluster_status(c: Client, a: argparse.Namespace) -> tuple[Any, str]:
    data = c.call("GET", "/cluster")
    if not data["in_sync"]:
        a.exit_code = EXIT_DRIFT
    text = _cluster_text(data)
    sync = c.call("GET", "/sync")  # session sync with each peer, as this node sees it
    if sync.get("enabled"):
        data = data | {"sync": sync}
        text += "\n\nsession sync, as this node sees it:\n" + _sync_text(sync)
    return data, text


def cmd_bgp(c: Client, a: argparse.Namespace) -> tuple[Any, str]:
    data = c.call("GET", "/bgp")
    return data, _bgp_text(data)


def cmd_sync(c: Client, a: argparse.Namespace) -> tuple[Any, str]:
    data = c.call("GET", "/sync")
    if data.get("enabled") and (
        not data["ready"]
        or any(p["live"] and not p["up"] and not p["refused"] for p in data["peers"])
    ):
        a.exit_code = EXIT_DRIFT
    return data, _sync_text(data)


def cmd_drain(c: Client, a: argparse.Namespace) -> tuple[Any, str]:
    data = c.call("POST", "/bgp/drain")
    while a.wait and data["drain"]["state"] == "draining":  # as long as bgp.drain.timeout
        time.sleep(0.5)
        data = c.call("GET", "/bgp")
    return data, _bgp_text(data)


def cmd_undrain(c: Client, a: argparse.Namespace) -> tuple[Any, str]:
    data = c.call("POST", "/bgp/undrain")
    return data, _bgp_text(data)


def cmd_audit(c: Client, a: argparse.Namespace) -> tuple[Any, str]:
    data = c.call("GET", "/audit", params={"limit": a.limit})
    return data, _audit_text(data)


# -- the parser ----------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `ctl` options and commands, on the parser `dplb ctl` gets."""
    parser.add_argument(
        "--url", default=None, help=f"the node's API (default $DPLB_URL or {DEFAULT_URL})"
    )
    parser.add_argument(
        "--token", default=None, help="API token (visible in ps: prefer $DPLB_TOKEN)"
    )
    parser.add_argument("--token-file", default=None, help="read the API token from this file")
    parser.add_argument("--json", action="store_true", help="print the API's JSON")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request (30)")
    groups = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")

    def command(sub: Any, name: str, func: Command, help: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=help)
        p.set_defaults(ctl_command=func)
        return p

    command(groups, "node", cmd_node, "node status: ports, workers, steering, config version")
    command(groups, "laddrs", cmd_laddrs, "local (SNAT) addresses and their source ports")

    services = groups.add_parser("services", help="services").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    command(services, "list", cmd_services_list, "every service")
    p = command(services, "show", cmd_services_show, "one service and its reals")
    p.add_argument("service", help="VIP:PORT[/tcp|udp]; [VIP]:PORT for IPv6")
    for name, func, help in (
        ("add", cmd_services_add, "create a service"),
        ("set", cmd_services_set, "change a service"),
    ):
        p = command(services, name, func, help)
        p.add_argument("service", help="VIP:PORT[/tcp|udp]")
        p.add_argument("--scheduler", choices=["rr", "wrr", "wlc", "maglev"])
        p.add_argument("--client-address", choices=["none", "toa", "proxy-v1", "proxy-v2"])
        p.add_argument("--nic", help="the port the service is on")
        p.add_argument(
            "--real",
            action="append",
            help="ADDRESS:PORT[@WEIGHT], repeatable (with set: replaces the reals)",
        )
    p = command(services, "delete", cmd_services_delete, "remove a service (it drains)")
    p.add_argument("service")

    reals = groups.add_parser("reals", help="the reals of a service").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = command(reals, "list", cmd_reals_list, "the reals of a service")
    p.add_argument("service")
    p = command(reals, "add", cmd_reals_add, "add a real")
    p.add_argument("service")
    p.add_argument("real", help="ADDRESS:PORT[@WEIGHT]")
    p.add_argument("--weight", type=int)
    p = command(reals, "set", cmd_reals_set, "set weight, enable or disable")
    p.add_argument("service")
    p.add_argument("real", help="ADDRESS:PORT")
    p.add_argument("--weight", type=int)
    on_off = p.add_mutually_exclusive_group()
    on_off.add_argument("--enable", dest="enabled", action="store_const", const=True)
    on_off.add_argument("--disable", dest="enabled", action="store_const", const=False)
    for name, func, help in (
        ("quiesce", cmd_reals_quiesce, "no new sessions; established ones finish"),
        ("enable", cmd_reals_enable, "take new sessions again"),
        ("delete", cmd_reals_delete, "remove a real (quiesces it)"),
    ):
        p = command(reals, name, func, help)
        p.add_argument("service")
        p.add_argument("real", help="ADDRESS:PORT")

    sessions = groups.add_parser("sessions", help="sessions").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = command(sessions, "list", cmd_sessions_list, "search sessions")
    p.add_argument("--client", help="client address or prefix")
    p.add_argument("--client-port", type=int)
    p.add_argument("--vip")
    p.add_argument("--vip-port", type=int)
    p.add_argument("--real")
    p.add_argument("--real-port", type=int)
    p.add_argument("--protocol", choices=["tcp", "udp"])
    p.add_argument("--state")
    p.add_argument("--worker", type=int)
    p.add_argument("--cursor", help="where the page starts (printed after the previous one)")
    p.add_argument("--limit", type=int, default=100, help="at most 1000")
    p = command(sessions, "reset", cmd_sessions_reset, "remove one session")
    p.add_argument("protocol", choices=["tcp", "udp"])
    p.add_argument("client", help="CLIENT:PORT")
    p.add_argument("vip", help="VIP:PORT")

    command(groups, "health", cmd_health, "health checks: services that can serve, reals down")

    p = command(groups, "stats", cmd_stats, "counters")
    p.add_argument(
        "kind", nargs="?", default="node", choices=["node", "cores", "services", "reals"]
    )

    config = groups.add_parser("config", help="config versions").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = command(config, "show", cmd_config_show, "the desired config (or --version N) as YAML")
    p.add_argument("--version", type=int)
    p = command(config, "apply", cmd_config_apply, "replace the whole config with a YAML file")
    p.add_argument("file")
    p.add_argument("--expected-version", type=int, help="only if this is still the current one")
    p = command(config, "versions", cmd_config_versions, "past versions, newest first")
    p.add_argument("--limit", type=int, default=20)
    p = command(config, "diff", cmd_config_diff, "what changed between two versions")
    p.add_argument("from_version", type=int)
    p.add_argument("to_version", type=int, nargs="?")
    p = command(config, "rollback", cmd_config_rollback, "write an old version again")
    p.add_argument("version", type=int)
    command(config, "status", cmd_config_status, "what the node did with the desired config")

    cluster = groups.add_parser("cluster", help="the nodes of the cluster").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    command(
        cluster,
        "status",
        cmd_cluster_status,
        f"each node's applied version and state (exit {EXIT_DRIFT} while one lags or refused)",
    )

    command(groups, "bgp", cmd_bgp, "BIRD: sessions, announced routes, reconfigurations, drain")
    command(
        groups,
        "sync",
        cmd_sync,
        f"session sync: ready, full sync, each peer (exit {EXIT_DRIFT} while not ready or a "
        "live peer is not heard from)",
    )
    p = command(groups, "drain", cmd_drain, "the routers stop sending new connections (BGP)")
    p.add_argument("--wait", action="store_true", help="until the established sessions are gone")
    command(groups, "undrain", cmd_undrain, "announce the VIPs again after a drain")

    p = command(groups, "audit", cmd_audit, "who changed what, newest first")
    p.add_argument("--limit", type=int, default=20)


def _token(args: argparse.Namespace) -> str | None:
    if args.token_file:
        try:
            return Path(args.token_file).read_text().strip()
        except OSError as exc:
            raise CtlError(EXIT_USAGE, f"{args.token_file}: {exc.strerror}") from None
    return args.token or os.environ.get("DPLB_TOKEN") or None


def run(args: argparse.Namespace) -> int:
    """Runs a parsed `dplb ctl` command; returns its exit code."""
    try:
        client = Client(
            args.url or os.environ.get("DPLB_URL") or DEFAULT_URL, _token(args), args.timeout
        )
        data, text = args.ctl_command(client, args)
    except CtlError as exc:
        if args.json and exc.body is not None:
            print(json.dumps(exc.body, indent=2))
        print(f"dplb ctl: {exc}", file=sys.stderr)
        return exc.code
    print(json.dumps(data, indent=2) if args.json else text)
    if getattr(args, "exit_code", None) is not None:
        code: int = args.exit_code
        return code
    return EXIT_PENDING if client.last_status == 202 else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(
        prog="dplb ctl", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
