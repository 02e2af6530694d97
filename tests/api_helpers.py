"""Shared by the management tests (store, reconciler, API, `dplb ctl`): a node config with
tokens and a store in a temporary folder, the harness engine behind the API, and
helpers that wait for a condition instead of sleeping."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient

from conftest import CLIENT_GW_MAC, REAL_MACS, node_config
from dplb.api import create_app
from dplb.api.audit import AuditLog
from dplb.config import NodeConfig, parse_config
from dplb.dataplane import HarnessDataplane
from dplb.engine import Engine
from dplb.store import FileStore

ADMIN_TOKEN = "admin-token-0123456789abcdef"
VIEWER_TOKEN = "viewer-token-0123456789abcdef"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
VIEWER = {"Authorization": f"Bearer {VIEWER_TOKEN}"}
API = "/api/v1"


def api_config(
    tmp_path: Path, workers: int = 1, sessions_per_worker: int = 1024, **overrides: Any
) -> dict[str, Any]:
    """The harness topology with two tokens and a file store under tmp_path, without
    health checks (`health=...` turns them on)."""
    cfg = node_config(workers, sessions_per_worker=sessions_per_worker)
    cfg["api"] = {
        "tokens": [
            {"name": "ops", "token": ADMIN_TOKEN, "role": "admin"},
            {"name": "dashboard", "token": VIEWER_TOKEN, "role": "viewer"},
        ],
        "audit_log": str(tmp_path / "audit.jsonl"),
    }
    cfg["store"] = {"file": str(tmp_path / "store" / "desired.yaml")}
    # The harness's reals are frames, not hosts: nothing to check (test_health does).
    cfg["health"] = {"enabled": False}
    cfg.update(overrides)
    return cfg


def harness_dataplane(cfg: NodeConfig) -> HarnessDataplane:
    engine = Engine(cfg)
    engine.set_neighbour("port0", "10.0.1.254", CLIENT_GW_MAC)
    engine.set_neighbour("port0", "2001:db8:1::fe", CLIENT_GW_MAC)
    for ip, mac in REAL_MACS.items():
        engine.set_neighbour("port1", ip, mac)
    return HarnessDataplane(engine)


class Node:
    """A node as the API tests see it: its config, harness dataplane, store and app."""

    def __init__(
        self, tmp_path: Path, workers: int = 1, sessions_per_worker: int = 1024, **overrides: Any
    ) -> None:
        self.config = parse_config(api_config(tmp_path, workers, sessions_per_worker, **overrides))
        self.dataplane = harness_dataplane(self.config)
        assert self.config.store.file is not None
        self.store = FileStore(self.config.store.file, poll_interval=0.05)
        self.audit_path = tmp_path / "audit.jsonl"
        self.app = create_app(
            self.config, self.dataplane, self.store, audit_log=AuditLog(self.audit_path)
        )

    @property
    def engine(self) -> Engine:
        return self.dataplane.engine

    def running(self) -> NodeConfig:
        return self.dataplane.running_config()


@contextmanager
def api_client(node: Node) -> Iterator[TestClient]:
    with TestClient(node.app, raise_server_exceptions=False) as client:
        yield client


def wait_for(condition: Callable[[], Any], timeout: float = 5.0, what: str = "") -> Any:
    """Polls `condition` until it returns something true; fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.01)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def running_server(node: Node) -> Iterator[str]:
    """A real uvicorn server with the node's app on 127.0.0.1 and a free port; yields
    its URL, stops it afterwards."""
    port = free_port()
    config = uvicorn.Config(node.app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, timeout=10, what="uvicorn to start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# -- fixtures (tests/conftest.py loads this module as a plugin) -----------------------


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(tmp_path)


@pytest.fixture
def client(node: Node) -> Iterator[TestClient]:
    with api_client(node) as c:
        yield c
