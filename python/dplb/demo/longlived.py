"""Long-lived connections for failover tests, run inside the client namespace: N TCP
connections (HTTP/1.1 keep-alive to `dplb.demo.servers --keep-alive PORT`), each sending
a request and reading the whole answer every `--interval`, and beside them, optionally,
short connections (a new connection per request, M a second).

    python -m dplb.demo.longlived --target 10.10.100.10:81 [--connections 200] \\
        [--interval 0.1] [--short-rate 20 --short-target 10.10.100.10:81] \\
        [--duration S] [--json FILE] [--status FILE] [--after EPOCH]

Per long-lived connection it counts requests, errors (reset, eof, bad_answer, timeout:
the connection is then closed and not opened again) and the longest stall: the longest
wait for an answer, and the longest time without a completed request. A line a second
on stderr says how many are alive and the worst stall; `--status FILE` is rewritten each
second with the summary so far. On SIGTERM/SIGINT, or after `--duration`, the summary is
written as JSON (stdout, or `--json FILE`): connections opened and alive, errors by kind
with their times, the longest stall, short connection attempts and failures, and with
`--after EPOCH` the failures of each kind that happened (short: attempts started) at or
after that time. Exits 0 when it stopped as asked, whatever the errors."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_EVENTS = 1000  # error and failure times kept for the summary


def parse_target(text: str) -> tuple[str, int]:
    """`10.10.100.10:81` or `[fd00::10]:81`."""
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


class BadAnswer(Exception):
    """The answer was not `HTTP/1.x 200` with a body of Content-Length bytes."""


async def read_answer(reader: asyncio.StreamReader) -> bytes:
    """One HTTP/1.1 answer: its head, then Content-Length bytes of body (the body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = lines[0].split(b" ")
    if len(status) < 2 or not status[0].startswith(b"HTTP/1.") or status[1] != b"200":
        raise BadAnswer(lines[0][:80].decode(errors="replace"))
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length is None:
        raise BadAnswer("no Content-Length")
    return await reader.readexactly(length)


def error_kind(exc: BaseException) -> str:
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return "reset"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, asyncio.IncompleteReadError):
        return "eof"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, BadAnswer | ValueError | asyncio.LimitOverrunError):
        return "bad_answer"
    return type(exc).__name__


@dataclass
class Conn:
    """One long-lived connection's counts."""

    index: int
    local_port: int = 0
    peer: str = ""  # what the real saw: dplb's local address and port
    real: str = ""
    alive: bool = False
    requests: int = 0
    error: str | None = None
    error_time: float | None = None
    longest_answer: float = 0.0
    longest_gap: float = 0.0
    last_done: float = 0.0  # monotonic time of the last completed request

    def gap_now(self, now: float) -> float:
        return max(self.longest_gap, now - self.last_done) if self.alive else self.longest_gap

    def stall(self, now: float) -> float:
        return max(self.longest_answer, self.gap_now(now))


@dataclass
class Short:
    """The short connections' counts."""

    attempts: int = 0
    ok: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    failure_times: list[tuple[float, str]] = field(default_factory=list)
    longest: float = 0.0


class LongLived:
    def __init__(self, args: argparse.Namespace) -> None:
        self.host, self.port = parse_target(args.target)
        self.short_host, self.short_port = parse_target(args.short_target or args.target)
        self.args = args
        self.conns = [Conn(i) for i in range(args.connections)]
        self.open_failures: Counter[str] = Counter()
        self.short = Short()
        self.stop = asyncio.Event()
        self.started = time.time()
        self.started_mono = time.monotonic()
        self.tasks: set[asyncio.Task[None]] = set()

    # -- long-lived ------------------------------------------------------------------
    async def request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, close: bool = False
    ) -> bytes:
        extra = "Connection: close\r\n" if close else ""
        writer.write(f"GET / HTTP/1.1\r\nHost: {self.host}\r\n{extra}\r\n".encode())
        await writer.drain()
        return await read_answer(reader)

    async def long_lived(self, c: Conn, gate: asyncio.Semaphore) -> None:
        timeout = self.args.timeout
        async with gate:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port), timeout
                )
            except (OSError, TimeoutError) as exc:
                self.open_failures[error_kind(exc)] += 1
                return
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.local_port = writer.get_extra_info("sockname")[1]
        c.alive = True
        c.last_done = time.monotonic()
        interval = self.args.interval
        # A random phase: the requests of all connections spread over the interval.
        next_at = time.monotonic() + random.uniform(0, interval)
        try:
            while not self.stop.is_set():
                delay = next_at - time.monotonic()
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.stop.wait(), delay)
                    if self.stop.is_set():
                        break
                next_at = max(next_at + interval, time.monotonic())
                sent = time.monotonic()
                body = await asyncio.wait_for(self.request(reader, writer), timeout)
                done = time.monotonic()
                c.longest_answer = max(c.longest_answer, done - sent)
                c.longest_gap = max(c.longest_gap, done - c.last_done)
                c.last_done = done
                c.requests += 1
                words = body.decode(errors="replace").split()
                if len(words) < 2:
                    raise BadAnswer(f"body {body[:40]!r}")
                c.real, c.peer = words[0], words[1]
        except (OSError, TimeoutError, BadAnswer, ValueError, asyncio.IncompleteReadError) as exc:
            now = time.monotonic()
            c.longest_gap = max(c.longest_gap, now - c.last_done)
            c.error = error_kind(exc)
            c.error_time = time.time()
        finally:
            c.alive = c.error is None
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    # -- short -----------------------------------------------------------------------
    async def one_short(self) -> None:
        started, t0 = time.time(), time.monotonic()
        self.short.attempts += 1
        writer = None
        try:
            async with asyncio.timeout(self.args.timeout):
                reader, writer = await asyncio.open_connection(self.short_host, self.short_port)
                await self.request(reader, writer, close=True)
            self.short.ok += 1
            self.short.longest = max(self.short.longest, time.monotonic() - t0)
        except (OSError, TimeoutError, BadAnswer, ValueError, asyncio.IncompleteReadError) as exc:
            kind = error_kind(exc)
            self.short.failures[kind] += 1
            if len(self.short.failure_times) < MAX_EVENTS:
                self.short.failure_times.append((started, kind))
        finally:
            if writer is not None:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()

    async def shorts(self) -> None:
        rate = self.args.short_rate
        next_at = time.monotonic()
        while not self.stop.is_set():
            task = asyncio.create_task(self.one_short())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            next_at += 1.0 / rate
            delay = next_at - time.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), delay)
            else:
                next_at = time.monotonic()  # behind: no burst to catch up

    # -- reporting -------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        now = time.monotonic()
        opened = [c for c in self.conns if c.local_port]
        errors: Counter[str] = Counter(c.error for c in opened if c.error)
        events = sorted(
            (
                {"connection": c.index, "kind": c.error, "time": c.error_time}
                for c in opened
                if c.error
            ),
            key=lambda e: e["time"] or 0.0,
        )[:MAX_EVENTS]
        worst = max(opened, key=lambda c: c.stall(now), default=None)
        out: dict[str, Any] = {
            "time": time.time(),
            "seconds": round(now - self.started_mono, 3),
            "target": f"{self.host}:{self.port}",
            "connections": len(self.conns),
            "opened": len(opened),
            "open_failures": dict(self.open_failures),
            "alive": sum(1 for c in opened if c.alive),
            "requests": sum(c.requests for c in opened),
            "errors": dict(errors),
            "error_events": events,
            "longest_stall_seconds": round(worst.stall(now), 4) if worst else 0.0,
            "longest_answer_seconds": round(max((c.longest_answer for c in opened), default=0), 4),
            "longest_gap_seconds": round(max((c.gap_now(now) for c in opened), default=0), 4),
            "worst_connection": (
                {"index": worst.index, "local_port": worst.local_port, "peer": worst.peer}
                if worst
                else None
            ),
            "by_local_address": dict(
                sorted(Counter(c.peer.rpartition(":")[0] for c in opened if c.peer).items())
            ),
            "by_real": dict(sorted(Counter(c.real for c in opened if c.real).items())),
            "per_connection": [
                [c.local_port, c.requests, c.error, round(c.stall(now), 3), c.peer] for c in opened
            ],
        }
        if self.args.short_rate:
            out["short"] = {
                "rate": self.args.short_rate,
                "target": f"{self.short_host}:{self.short_port}",
                "attempts": self.short.attempts,
                "ok": self.short.ok,
                "failures": sum(self.short.failures.values()),
                "failure_kinds": dict(self.short.failures),
                "failure_times": [[round(t, 3), k] for t, k in self.short.failure_times],
                "longest_seconds": round(self.short.longest, 4),
            }
        if self.args.after is not None:
            since = self.args.after
            out["after"] = {
                "since": since,
                "long": sum(1 for e in events if (e["time"] or 0) >= since),
                "short": sum(1 for t, _ in self.short.failure_times if t >= since),
            }
        return out

    def live_line(self, s: dict[str, Any]) -> str:
        line = (
            f"{s['seconds']:7.1f}s alive {s['alive']}/{s['opened']} of {s['connections']} | "
            f"requests {s['requests']} | errors {sum(s['errors'].values())} "
            f"{s['errors'] or ''} | longest stall {s['longest_stall_seconds']:.3f} s"
        )
        if "short" in s:
            sh = s["short"]
            line += f" | short {sh['ok']}/{sh['attempts']} failed {sh['failures']}"
        return line

    async def report(self) -> None:
        status = Path(self.args.status) if self.args.status else None
        while not self.stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), 1.0)
            s = self.summary()
            print(self.live_line(s), file=sys.stderr, flush=True)
            if status is not None:
                write_atomically(status, json.dumps(s))

    async def run(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop.set)
        gate = asyncio.Semaphore(self.args.open_concurrency)
        workers = [asyncio.create_task(self.long_lived(c, gate)) for c in self.conns]
        side = [asyncio.create_task(self.report())]
        if self.args.short_rate:
            side.append(asyncio.create_task(self.shorts()))
        if self.args.duration:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.args.duration)
        else:
            await self.stop.wait()
        self.stop.set()
        summary = self.summary()  # as things stood when asked to stop
        await asyncio.gather(*workers, *side, *list(self.tasks), return_exceptions=True)
        return summary


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, help="HOST:PORT of the long-lived ones")
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between requests")
    parser.add_argument("--timeout", type=float, default=10.0, help="per request, seconds")
    parser.add_argument("--open-concurrency", type=int, default=20, help="connects at once")
    parser.add_argument("--short-rate", type=float, default=0, help="short connections/s")
    parser.add_argument("--short-target", help="HOST:PORT (default: --target)")
    parser.add_argument("--duration", type=float, default=0, help="seconds (0: until stopped)")
    parser.add_argument("--json", help="write the summary here, not to stdout")
    parser.add_argument("--status", help="rewrite the summary so far here each second")
    parser.add_argument("--after", type=float, help="count failures at or after this epoch")
    args = parser.parse_args(argv)
    summary = asyncio.run(LongLived(args).run())
    text = json.dumps(summary)
    if args.json:
        write_atomically(Path(args.json), text)
    else:
        print(text, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
