"""dplb nodes of a cluster for the tests: `dplb harness-api` processes (the real API,
store and reconciler over the engine harness) sharing one etcd, each with its own node
config, port and log; killed at the end whatever happens."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from api_helpers import ADMIN_TOKEN, VIEWER_TOKEN, free_port, wait_for
from conftest import node_config
from dplb.store import dump_yaml

DPLB = [sys.executable, "-m", "dplb.cli"]


def cluster_config(
    name: str, cluster: str, endpoints: list[str], folder: Path, port: int, **etcd: Any
) -> dict[str, Any]:
    cfg = node_config(1)
    cfg["node"] = {"name": name, "cluster": cluster}
    cfg["api"] = {
        "listen": f"127.0.0.1:{port}",
        "tokens": [
            {"name": "ops", "token": ADMIN_TOKEN, "role": "admin"},
            {"name": "dashboard", "token": VIEWER_TOKEN, "role": "viewer"},
        ],
        "audit_log": str(folder / f"{name}-audit.jsonl"),
    }
    cfg["store"] = {"etcd": {"endpoints": endpoints, "lease_ttl": 5, **etcd}}
    cfg["health"] = {"enabled": False}  # the harness's reals are only frames
    return cfg


class ClusterNode:
    def __init__(self, name: str, cluster: str, endpoints: list[str], folder: Path) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api/v1"
        self.config = cluster_config(name, cluster, endpoints, folder, self.port)
        self.config_path = folder / f"{name}.yaml"
        self.config_path.write_text(dump_yaml(self.config))
        self.log_path = folder / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
        )

    def start(self) -> ClusterNode:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*DPLB, "harness-api", "--config", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                if self.http.get("/health").status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{self.name} did not start:\n{self.log()}")
            time.sleep(0.1)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def get(self, path: str) -> Any:
        r = self.http.get(path)
        assert r.status_code == 200, r.text
        return r.json()

    def applied(self) -> int | None:
        version: int | None = self.get("/node")["config"]["applied_version"]
        return version


def wait_until(condition: Any, timeout: float = 30.0, what: str = "") -> Any:
    """`wait_for` with the longer bound a cluster needs (elections, leases)."""
    return wait_for(condition, timeout, what)
