"""The running parts of the demo topology, shared by `dplb demo` and the end-to-end
tests: the node (`dplb run` in the node's namespace, watched through its status file),
the real servers and the load generator, each a process in its namespace with its output
in a log file, and `Lab`, which builds and removes all of it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from dplb.demo.topology import Topology, netns_exec

T = TypeVar("T")

NODE_START_TIMEOUT = 60.0  # EAL, ports and TAPs take 2-4 s; a loaded CI machine more


class LabError(RuntimeError):
    """Something of the lab did not come up: the message says what, with its log."""


def wait_until(
    check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.1
) -> T:
    """Polls `check` until it returns something other than None/False; raises with
    `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None and value is not False:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class NamespaceProcess:
    """A command in a network namespace, its stdout and stderr in a log file."""

    def __init__(self, ns: str, argv: Sequence[str], log: Path) -> None:
        self.ns = ns
        self.argv = list(argv)
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("wb") as out:
            # Its own session: a Ctrl-C in the terminal reaches the demo, which stops
            # everything in order, not every process at once.
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", self.ns, *self.argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_for_output(self, pattern: str, timeout: float) -> re.Match[str]:
        """Waits until the log has a line matching `pattern`; fails early if the process
        exits first."""
        regex = re.compile(pattern, re.MULTILINE)

        def seen() -> re.Match[str] | None:
            match = regex.search(self.output())
            if match is None and not self.running():
                rc = self.proc.returncode if self.proc else None
                raise LabError(
                    f"{self.argv[0]} in {self.ns} exited ({rc}) before '{pattern}':\n"
                    + tail(self.log)
                )
            return match

        return wait_until(seen, timeout, f"'{pattern}' from {' '.join(self.argv[:4])}")

    def stop(self, timeout: float = 20.0, sig: int = signal.SIGTERM) -> int | None:
        """Signals the process, waits; kills it if it does not go. Returns its exit code
        (None if it had to be killed)."""
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


def python_module(module: str, *args: str) -> list[str]:
    """Runs one of dplb's modules with this interpreter (the venv's, inside namespaces)."""
    return [sys.executable, "-m", module, *args]


class NodeProcess(NamespaceProcess):
    """`dplb run --config FILE --status-file FILE` in the node's namespace."""

    def __init__(self, topology: Topology, config: dict[str, Any], workdir: Path) -> None:
        self.config = config
        self.config_path = workdir / "node.yaml"
        self.status_path = workdir / "node-status.json"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        super().__init__(
            topology.node_ns,
            python_module(
                "dplb.cli",
                "run",
                "--config",
                str(self.config_path),
                "--status-file",
                str(self.status_path),
            ),
            workdir / "node.log",
        )

    def start(self) -> None:
        self.status_path.unlink(missing_ok=True)
        super().start()

    def wait_running(self, timeout: float = NODE_START_TIMEOUT) -> None:
        self.wait_for_output(r"^dplb node .* running$", timeout)

    def status(self) -> dict[str, Any]:
        """The node's last status snapshot (rewritten each second)."""
        for _ in range(50):  # written by rename: only a missing file needs a retry
            try:
                data: dict[str, Any] = json.loads(self.status_path.read_text())
                return data
            except FileNotFoundError:
                time.sleep(0.1)
        raise LabError(f"no status file {self.status_path}:\n{tail(self.log)}")

    def fresh_status(self, timeout: float = 10.0) -> dict[str, Any]:
        """A snapshot taken after this call: counters include what happened before it."""
        since = time.time()

        def newer() -> dict[str, Any] | None:
            status = self.status()
            return status if status["time"] > since else None

        return wait_until(newer, timeout, "a new status snapshot from the node")


def totals(status: dict[str, Any]) -> dict[str, Any]:
    """Per-worker counters of a status snapshot summed (drops per reason)."""
    out: dict[str, Any] = {"drops": {}}
    for w in status["workers"]:
        for key, value in w.items():
            if key == "drops":
                for reason, n in value.items():
                    out["drops"][reason] = out["drops"].get(reason, 0) + n
            elif isinstance(value, int) and key not in ("id", "lcore"):
                out[key] = out.get(key, 0) + value
    return out


class Lab:
    """The topology, three real servers and a node, built by `start()` and removed by
    `close()` (also after a failure half-way); `Lab(...)` is a context manager."""

    def __init__(
        self,
        prefix: str,
        workdir: Path,
        config: Callable[[Topology], dict[str, Any]] | None = None,
        workers: int = 1,
        http_port: int = 8080,
        udp_port: int = 0,
        files: Path | None = None,
    ) -> None:
        self.topology = Topology(prefix=prefix)
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.http_port = http_port
        self.udp_port = udp_port
        self.files = files
        self.config = (
            config(self.topology) if config is not None else self.topology.node_config(workers)
        )
        self.servers: list[NamespaceProcess] = []
        self.node = NodeProcess(self.topology, self.config, workdir)
        self.extra: list[NamespaceProcess] = []

    def __enter__(self) -> Lab:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        self.topology.create()
        self.start_servers()
        self.node.start()
        self.node.wait_running()

    def start_servers(self) -> None:
        topo = self.topology
        for i in range(topo.reals):
            args = ["--name", f"rs{i + 1}", "--http", str(self.http_port)]
            if self.udp_port:
                args += ["--udp", str(self.udp_port)]
            if self.files is not None:
                args += ["--root", str(self.files)]
            server = NamespaceProcess(
                topo.real_ns(i),
                python_module("dplb.demo.servers", *args),
                self.workdir / f"rs{i + 1}.log",
            )
            server.start()
            self.servers.append(server)
        for server in self.servers:
            server.wait_for_output(r"^ready$", 30)

    def spawn(self, ns: str, argv: Sequence[str], name: str) -> NamespaceProcess:
        """Another process of the lab (stopped by close())."""
        proc = NamespaceProcess(ns, argv, self.workdir / f"{name}.log")
        proc.start()
        self.extra.append(proc)
        return proc

    def client(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Runs a command in the client's namespace."""
        return netns_exec(self.topology.client_ns, *argv, check=check)

    def close(self) -> int | None:
        """Stops traffic, then the node (SIGTERM: a clean stop), then the servers, and
        removes the namespaces. Safe to call twice. Returns the node's exit code (None:
        never started, or had to be killed)."""
        try:
            for proc in self.extra:
                proc.stop(timeout=15)
            code = self.node.stop(timeout=30)
            for server in self.servers:
                server.stop(timeout=5, sig=signal.SIGKILL)
        finally:
            self.topology.destroy()
        return code


def remove_stale(prefix: str) -> None:
    """What a crashed run of this prefix left: its namespaces (with every process still
    in them) and half-made veth pairs. Locks in /run/dplb need nothing: flock dies with
    its process."""
    Topology(prefix=prefix).destroy()


def is_root() -> bool:
    return os.geteuid() == 0
