"""Helpers of the end-to-end tests: a lab that must stop cleanly and leave nothing, and
what the client does in its namespace (curl, the load generator, client_tools.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from dplb.demo.lab import Lab, totals
from dplb.demo.topology import Topology, sh

CLIENT_TOOLS = Path(__file__).with_name("client_tools.py")


def run_prefix(tag: str) -> str:
    """The namespace prefix of one test module in this run (`e2e1p<pid>`): unique per
    run, so two runs on one machine leave each other alone; what a crashed run left is
    removed by the next one (remove_stale_runs)."""
    return f"{tag}p{os.getpid()}"


def remove_stale_runs() -> None:
    """Removes the namespaces (and every process in them) of test runs that are gone."""
    for ns in namespaces_of(""):
        match = re.match(r"^(e2e\d+p(\d+))-", ns)
        if match is None:
            continue
        try:
            os.kill(int(match[2]), 0)
        except ProcessLookupError:
            Topology(prefix=match[1]).destroy()
        except PermissionError:
            pass  # alive


def namespaces_of(prefix: str) -> list[str]:
    listing = sh("ip", "netns", "list", check=False).stdout.split("\n")
    names = [line.split(" ")[0] for line in listing if line]
    return [name for name in names if name.startswith(f"{prefix}-" if prefix else "")]


@contextmanager
def running_lab(
    prefix: str,
    tmp_path_factory: pytest.TempPathFactory,
    config: Callable[[Topology], dict[str, Any]] | None = None,
    **kwargs: Any,
) -> Iterator[Lab]:
    """A started lab; on the way out the node must stop cleanly (exit 0) and nothing of
    the prefix may be left."""
    lab = Lab(prefix, tmp_path_factory.mktemp(prefix), config=config, **kwargs)
    try:
        lab.start()
        yield lab
    finally:
        log = lab.node.output()
        started = lab.node.proc is not None
        code = lab.close()
    assert not namespaces_of(prefix), f"namespaces left behind: {namespaces_of(prefix)}"
    if started:
        assert code == 0, f"the node did not stop cleanly (exit {code}):\n{log[-3000:]}"


def client_tool(lab: Lab, *args: str) -> dict[str, Any]:
    """Runs tests/e2e/client_tools.py in the client namespace; its JSON answer."""
    result = lab.client(sys.executable, str(CLIENT_TOOLS), *args)
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def curl(lab: Lab, url: str, *args: str) -> str:
    """One request from the client namespace (curl fails the test on any error)."""
    result = lab.client("curl", "-sS", "--fail", "-m", "20", *args, url, check=False)
    assert result.returncode == 0, f"curl {url}: {result.stderr.strip()}\n{node_tail(lab)}"
    return result.stdout


def load(lab: Lab, *targets: str, requests: int, concurrency: int = 1) -> dict[str, Any]:
    """`requests` HTTP requests through the targets (HOST:PORT), one connection each, by
    the demo's load generator in the client namespace; its final counts."""
    args = [sys.executable, "-m", "dplb.demo.load", "--requests", str(requests)]
    args += ["--concurrency", str(concurrency), "--interval", "5"]
    for target in targets:
        args += ["--target", target]
    result = lab.client(*args)
    final: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return final


def node_tail(lab: Lab, lines: int = 20) -> str:
    return "node log:\n" + "\n".join(lab.node.output().splitlines()[-lines:])


def drops(status: dict[str, Any]) -> dict[str, int]:
    counted: dict[str, int] = totals(status)["drops"]
    return counted


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    """What moved between two counter dicts (only the keys that moved)."""
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


def port_mac(lab: Lab, port: str) -> str:
    for p in lab.node.status()["ports"]:
        if p["name"] == port:
            mac: str = p["mac"].lower()
            return mac
    raise KeyError(port)


UDP_PORT = 5353
API_TOKEN = "e2e-admin-token-0123456789"


def with_api(cfg: dict[str, Any], workdir: Path, api_port: int) -> dict[str, Any]:
    """`cfg` with the management API on the node namespace's loopback (`api_port`, one
    admin token API_TOKEN) and its store under `workdir`."""
    cfg["api"] = {
        "listen": f"127.0.0.1:{api_port}",
        "tokens": [{"name": "e2e", "token": API_TOKEN, "role": "admin"}],
    }
    cfg["store"] = {"file": str(workdir / "store" / "desired.yaml")}
    return cfg


def services_config(t: Topology, workers: int) -> dict[str, Any]:
    """HTTP on an IPv4 and an IPv6 VIP (rr over the three reals) and a UDP service."""

    def service(
        vip: str, port: int, protocol: str, real: Callable[[int], str], real_port: int
    ) -> dict[str, Any]:
        reals = [{"address": real(i), "port": real_port} for i in range(t.reals)]
        return {"vip": vip, "port": port, "protocol": protocol, "scheduler": "rr", "reals": reals}

    return t.node_config(
        workers,
        [
            service(t.vip4, 80, "tcp", t.real4, 8080),
            service(t.vip6, 80, "tcp", t.real6, 8080),
            service(t.vip4, 53, "udp", t.real4, UDP_PORT),
        ],
    )


# Stops one thread of a process (ptrace: the other threads run on) for `seconds`, then
# lets it go; prints "stopped" once the thread is stopped.
_STALL = r"""
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
PTRACE_DETACH, PTRACE_SEIZE, PTRACE_INTERRUPT, WALL = 17, 0x4206, 0x4207, 0x40000000
tid, seconds = int(sys.argv[1]), float(sys.argv[2])
for request in (PTRACE_SEIZE, PTRACE_INTERRUPT):
    if libc.ptrace(request, tid, None, None) != 0:
        sys.exit(f"ptrace {tid}: {os.strerror(ctypes.get_errno())}")
os.waitpid(tid, WALL)
print("stopped", flush=True)
time.sleep(seconds)
libc.ptrace(PTRACE_DETACH, tid, None, None)
"""


def thread_of(pid: int, name: str) -> int:
    """The id of the thread of `pid` called `name` (DPDK names its lcores' threads)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        if (task / "comm").read_text().strip() == name:
            return int(task.name)
    raise LookupError(f"no thread {name!r} in process {pid}")


@contextmanager
def stalled_thread(pid: int, name: str, seconds: float) -> Iterator[None]:
    """Thread `name` of `pid` stopped for up to `seconds` (resumed on the way out)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _STALL, str(thread_of(pid, name)), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "stopped"
        yield
    finally:
        proc.kill()  # a killed tracer detaches: the thread runs on
        proc.wait()
