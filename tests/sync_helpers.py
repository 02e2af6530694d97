"""Session-sync test helpers: harness engines with a node's sync settings, a flow moved
to another engine, and pairs of sync threads on loopback."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import CLIENT_GW_MAC, REAL_MACS, TcpFlow, node_config
from dplb import Engine

KEY1 = (1, bytes.fromhex("ab" * 32))
KEY2 = (2, bytes.fromhex("cd" * 32))


def sync_engine(workers: int, tmp: Path) -> Engine:
    """An engine of a node with session sync on (its settings as a node has them)."""
    key = tmp / "sync.key"
    key.write_text("ab" * 32)
    cfg = node_config(workers)
    cfg["store"] = {"etcd": {"endpoints": ["127.0.0.1:2379"]}}
    cfg["api"] = {"audit_log": str(tmp / "audit.jsonl")}
    cfg["sync"] = {
        "enabled": True,
        "refresh_interval": 2.0,
        "listen": "127.0.0.1:7100",
        "keys": [{"id": 1, "file": str(key)}],
    }
    engine = Engine(cfg)
    engine.set_neighbour("port0", "10.0.1.254", CLIENT_GW_MAC)
    for ip, mac in REAL_MACS.items():
        engine.set_neighbour("port1", ip, mac)
    return engine


def moved(flow: TcpFlow, engine: Engine) -> TcpFlow:
    """`flow` as it arrives at `engine` after the routers moved it there."""
    out = TcpFlow(engine, flow.client_port, flow.client, flow.vip, flow.vip_port)
    out.real, out.real_port, out.local, out.local_port = (
        flow.real,
        flow.real_port,
        flow.local,
        flow.local_port,
    )
    return out


def address(service: Any) -> str:
    return f"127.0.0.1:{service.listen_port}"


def wait_for(condition: Callable[[], Any], drive: list[Engine], timeout: float = 10.0) -> Any:
    """Polls `condition`, moving the harness engines' clocks by 1 ms between tries (their
    workers install what the sync threads queued when driven)."""
    deadline = time.monotonic() + timeout
    while True:
        for e in drive:
            e.advance(0.001)
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout} s: {condition}")
        time.sleep(0.02)
