"""Serving the API with uvicorn: `listen` addresses as the node config writes them, and
`dplb harness-api`, the API over the engine harness (no DPDK, no NIC) for development,
demos and the web admin's own tests."""

from __future__ import annotations

import logging
import sys

import uvicorn
from fastapi import FastAPI

from dplb.api.app import create_app
from dplb.config import ConfigError, load_config
from dplb.dataplane import HarnessDataplane
from dplb.engine import Engine


def split_listen(listen: str) -> tuple[str, int]:
    """`127.0.0.1:8080` -> ("127.0.0.1", 8080); `[::1]:8080` -> ("::1", 8080)."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def make_server(app: FastAPI, listen: str) -> uvicorn.Server:
    host, port = split_listen(listen)
    # No access log: request lines are not audit entries, and the audit log has the changes.
    config = uvicorn.Config(app, host=host, port=port, access_log=False, log_level="info")
    return uvicorn.Server(config)


def serve_harness(config_path: str, listen: str | None = None) -> int:
    try:
        cfg = load_config(config_path)
    except (OSError, ConfigError) as exc:
        print(f"dplb: {config_path}: {exc}", file=sys.stderr)
        return 1
    if cfg.store.file is None and cfg.store.etcd is None:
        print(
            f"dplb: {config_path}: store: the API needs store.file or store.etcd", file=sys.stderr
        )
        return 1
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = create_app(cfg, HarnessDataplane(Engine(cfg)))
    make_server(app, listen or cfg.api.listen).run()
    return 0
