"""BIRD 2 for the tests: a daemon in a network namespace with its own config and control
socket (started with `bird -c -s -P`, stopped by its pid), the example configs of
ops/bird/ made concrete, and what a router's kernel has for a prefix."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

OPS_BIRD = Path(__file__).resolve().parent.parent / "ops" / "bird"


def concrete(example: str, replacements: dict[str, str]) -> str:
    """An ops/bird/ example with its addresses replaced; each must be in the example (a
    changed example fails here, not somewhere obscure)."""
    text = (OPS_BIRD / example).read_text()
    for old, new in replacements.items():
        assert old in text, f"ops/bird/{example} no longer has {old!r}"
        text = text.replace(old, new)
    return text


class BirdDaemon:
    def __init__(self, netns: str, config: Path, folder: Path, name: str) -> None:
        self.netns = netns
        self.config = config
        self.socket = folder / f"{name}.ctl"
        self.pidfile = folder / f"{name}.pid"
        self.pid: int | None = None

    def start(self) -> None:
        self.pidfile.unlink(missing_ok=True)
        subprocess.run(
            ["ip", "netns", "exec", self.netns, "bird", "-c", str(self.config),
             "-s", str(self.socket), "-P", str(self.pidfile)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while not (self.pidfile.exists() and self.pidfile.read_text().strip()):
            if time.monotonic() > deadline:
                raise AssertionError(f"BIRD in {self.netns} wrote no pid file")
            time.sleep(0.05)
        self.pid = int(self.pidfile.read_text())

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.pid is None:
            return
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            self.pid = None
            return
        deadline = time.monotonic() + 10
        while Path(f"/proc/{self.pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.pid = None

    def ask(self, *command: str) -> str:
        result = subprocess.run(
            ["birdc", "-s", str(self.socket), *command], capture_output=True, text=True
        )
        return result.stdout

    def established(self, protocol: str) -> bool:
        return "Established" in self.ask("show", "protocols", protocol)


def kernel_nexthops(netns: str, prefix: str) -> list[str]:
    """The next hops the kernel of `netns` has for `prefix` (one per ECMP path)."""
    out = subprocess.run(
        ["ip", "-n", netns, "-j", "route", "show", prefix], capture_output=True, text=True
    ).stdout
    routes: list[dict[str, Any]] = json.loads(out or "[]")
    hops: list[str] = []
    for r in routes:
        if "nexthops" in r:
            hops += [h["gateway"] for h in r["nexthops"] if "gateway" in h]
        elif "gateway" in r:
            hops.append(r["gateway"])
    return sorted(hops)
