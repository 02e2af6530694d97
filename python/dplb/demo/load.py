"""The demo's load generator, run inside the client namespace: a bounded number of
threads, each opening one connection per request (HTTP/1.0, no keep-alive) to the
targets in turn, reading the answer to the end and noting which real server answered.

    python -m dplb.demo.load --target 10.10.100.10:80 --target [fd00:10:100::10]:80 \\
        --concurrency 8 [--duration S] [--requests N]

Prints one JSON line per interval with running totals:
`{"time": ..., "ok": 1234, "errors": 0, "by_real": {"rs1": 411, ...}, "error_kinds": {}}`
and exits 0 when it stops (duration or request budget reached, or SIGTERM/SIGINT)."""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import threading
import time
from collections import Counter


def parse_target(text: str) -> tuple[str, int]:
    """`10.10.100.10:80` or `[fd00::10]:80`."""
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def http_get(host: str, port: int, timeout: float) -> str:
    """One request on a new connection; returns the first word of the body (the name of
    the real server that answered)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect((host, port))
        sock.sendall(f"GET / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    response = b"".join(chunks)
    head, _, body = response.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.") or b" 200 " not in head.split(b"\r\n", 1)[0] + b" ":
        raise ValueError("bad response")
    return body.split(b" ", 1)[0].decode(errors="replace").strip()


class Load:
    def __init__(
        self, targets: list[tuple[str, int]], concurrency: int, requests: int, timeout: float
    ) -> None:
        self.targets = targets
        self.concurrency = concurrency
        self.budget = requests  # 0: unbounded
        self.timeout = timeout
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.started = 0
        self.ok = 0
        self.errors = 0
        self.by_real: Counter[str] = Counter()
        self.error_kinds: Counter[str] = Counter()

    def _take(self) -> int | None:
        with self.lock:
            if self.budget and self.started >= self.budget:
                return None
            self.started += 1
            return self.started

    def worker(self) -> None:
        while not self.stop.is_set():
            n = self._take()
            if n is None:
                return
            host, port = self.targets[n % len(self.targets)]
            try:
                real = http_get(host, port, self.timeout)
            except (OSError, ValueError) as exc:
                kind = type(exc).__name__
                with self.lock:
                    self.errors += 1
                    self.error_kinds[kind] += 1
                continue
            with self.lock:
                self.ok += 1
                self.by_real[real] += 1

    def snapshot(self) -> dict[str, object]:
        with self.lock:
            return {
                "time": time.time(),
                "ok": self.ok,
                "errors": self.errors,
                "by_real": dict(sorted(self.by_real.items())),
                "error_kinds": dict(self.error_kinds),
            }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", action="append", required=True, help="HOST:PORT")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=float, default=0, help="seconds (0: until stopped)")
    parser.add_argument("--requests", type=int, default=0, help="stop after N (0: no limit)")
    parser.add_argument("--timeout", type=float, default=10.0, help="per request, seconds")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between lines")
    args = parser.parse_args(argv)

    load = Load(
        [parse_target(t) for t in args.target], args.concurrency, args.requests, args.timeout
    )
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: load.stop.set())
    threads = [
        threading.Thread(target=load.worker, daemon=True) for _ in range(max(1, args.concurrency))
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + args.duration if args.duration else None
    next_line = time.monotonic() + args.interval
    while any(t.is_alive() for t in threads) and not load.stop.is_set():
        load.stop.wait(0.05)
        now = time.monotonic()
        if now >= next_line:
            print(json.dumps(load.snapshot()), flush=True)
            next_line += args.interval
        if deadline is not None and now >= deadline:
            break
    load.stop.set()
    for t in threads:
        t.join()  # each finishes its request in flight (bounded by --timeout)
    print(json.dumps(load.snapshot()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
