"""A real etcd cluster for the tests: three members of Debian's `etcd-server` on loopback
ports of their own, each with its own data folder, killed and restarted at will, torn
down at the end (also when a test fails)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"


def free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class EtcdCluster:
    def __init__(self, folder: Path, members: int = 3) -> None:
        self.folder = folder
        ports = free_ports(2 * members)
        self.client_ports = ports[:members]
        self.peer_ports = ports[members:]
        self.names = [f"m{i}" for i in range(members)]
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.paused: set[int] = set()
        self.token = f"dplb-test-{os.getpid()}-{ports[0]}"

    @property
    def endpoints(self) -> list[str]:
        return [f"127.0.0.1:{p}" for p in self.client_ports]

    def _initial_cluster(self) -> str:
        return ",".join(
            f"{n}=http://127.0.0.1:{p}" for n, p in zip(self.names, self.peer_ports, strict=True)
        )

    def start_member(self, i: int, *, state: str = "new") -> None:
        data = self.folder / self.names[i]
        data.mkdir(parents=True, exist_ok=True)
        log = open(self.folder / f"{self.names[i]}.log", "ab")  # noqa: SIM115 - the child keeps it
        url = f"http://127.0.0.1:{self.client_ports[i]}"
        peer = f"http://127.0.0.1:{self.peer_ports[i]}"
        self.procs[i] = subprocess.Popen(
            [
                ETCD,
                "--name", self.names[i],
                "--data-dir", str(data),
                "--listen-client-urls", url,
                "--advertise-client-urls", url,
                "--listen-peer-urls", peer,
                "--initial-advertise-peer-urls", peer,
                "--initial-cluster", self._initial_cluster(),
                "--initial-cluster-state", state,
                "--initial-cluster-token", self.token,
                "--heartbeat-interval", "100",
                "--election-timeout", "1000",
                "--log-level", "warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def start(self) -> EtcdCluster:
        for i in range(len(self.names)):
            self.start_member(i)
        self.wait_healthy()
        return self

    def etcdctl(self, *args: str, endpoints: list[str] | None = None, attempts: int = 10) -> str:
        """Runs etcdctl; tries again while an election is under way (up to `attempts`)."""
        for attempt in range(attempts):
            result = subprocess.run(
                [ETCDCTL, "--endpoints", ",".join(endpoints or self.live_endpoints()), *args],
                capture_output=True,
                text=True,
                env={**os.environ, "ETCDCTL_API": "3"},
                timeout=30,
            )
            if result.returncode == 0:
                return result.stdout
            if attempt + 1 < attempts:
                time.sleep(0.5)
        raise RuntimeError(f"etcdctl {' '.join(args)}: {result.stderr.strip()}")

    def live_endpoints(self) -> list[str]:
        return [
            self.endpoints[i]
            for i, p in self.procs.items()
            if p.poll() is None and i not in self.paused
        ] or self.endpoints

    def wait_healthy(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.etcdctl("endpoint", "health", "--command-timeout=2s", attempts=1)
                return
            except (RuntimeError, subprocess.TimeoutExpired):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def leader(self) -> int:
        out = json.loads(self.etcdctl("endpoint", "status", "-w", "json"))
        for entry in out:
            if entry["Status"]["header"]["member_id"] == entry["Status"]["leader"]:
                return self.endpoints.index(entry["Endpoint"].split("://")[-1])
        raise RuntimeError("no leader")

    def kill(self, i: int) -> None:
        proc = self.procs.pop(i, None)
        self.paused.discard(i)
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def pause(self, i: int) -> None:
        """Stops a member without closing its connections (SIGSTOP): its clients hang."""
        os.killpg(self.procs[i].pid, signal.SIGSTOP)
        self.paused.add(i)

    def restart(self, i: int) -> None:
        self.kill(i)
        self.start_member(i, state="existing")

    def compact(self) -> int:
        """Compacts everything up to the current revision; returns it."""
        out = json.loads(self.etcdctl("endpoint", "status", "-w", "json"))
        revision = max(int(e["Status"]["header"]["revision"]) for e in out)
        self.etcdctl("compaction", "--physical", str(revision))
        return revision

    def stop(self) -> None:
        for i in list(self.procs):
            self.kill(i)
