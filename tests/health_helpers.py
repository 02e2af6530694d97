"""Shared by the health-check tests: a real HTTP listener on loopback that can stop
listening and come back on the same port (a real's health endpoint), and the harness
node with health checks on whose real 10.0.2.11 is checked there."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from api_helpers import Node
from conftest import node_config

FAST = {"interval": 0.05, "timeout": 0.5, "rise": 2, "fall": 2}


class Listener:
    """A real HTTP server on 127.0.0.1 that can stop listening and start again on the
    same port: the health endpoint of a real."""

    def __init__(self) -> None:
        self.port = 0
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.requests: list[bytes] = []

    def start(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        sock.listen(64)
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
        self._thread.start()

    def _serve(self, sock: socket.socket) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(1.0)
                try:
                    request = conn.recv(4096)
                    self.requests.append(request)
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\nhealthy"
                    )
                except OSError:
                    pass

    def stop(self) -> None:
        if self._sock is not None:
            self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
            self._sock = None
        if self._thread is not None:
            self._thread.join(timeout=5)


@contextmanager
def listener() -> Iterator[Listener]:
    server = Listener()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def checked_node(tmp_path: Path, health_port: int, *, both: bool = False, **check: Any) -> Node:
    """The harness node with health checks on: the TCP service's real 10.0.2.11 is
    checked at 127.0.0.1:health_port (its per-real override), 10.0.2.12 and the other
    services' reals not at all."""
    cfg = node_config()
    web = cfg["services"][0]
    web["health_check"] = {**FAST, **check}
    web["reals"][0]["health_check"] = {"address": "127.0.0.1", "port": health_port}
    # `both`: 10.0.2.12 is checked at the same listener too (the service goes down).
    web["reals"][1]["health_check"] = (
        {"address": "127.0.0.1", "port": health_port} if both else {"enabled": False}
    )
    cfg["services"][2]["health_check"] = {"type": "none"}  # the IPv6 service: frames only
    return Node(tmp_path, services=cfg["services"], health={"enabled": True})
