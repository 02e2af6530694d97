"""The namespace topology of DESIGN section 10, shared by `dplb demo` and the end-to-end
tests: a client namespace, the dplb node's namespace with two ports (veth ends for
DPDK's af_packet PMD), and real-server namespaces behind a bridge. Everything lives in
namespaces named with one prefix, so a crashed run is cleaned up by the next."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(args), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {result.stderr.strip() or result.stdout.strip()}")
    return result


def netns_exec(ns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return sh("ip", "netns", "exec", ns, *args, check=check)


@dataclass
class Topology:
    """Names and addresses; `create()` builds it, `destroy()` removes all of it."""

    prefix: str = "dplb"
    reals: int = 3
    client4: str = "10.10.1.10"
    client6: str = "fd00:10:1::10"
    port0_4: str = "10.10.1.1"
    port0_6: str = "fd00:10:1::1"
    port1_4: str = "10.10.2.1"
    port1_6: str = "fd00:10:2::1"
    vip4: str = "10.10.100.10"
    vip6: str = "fd00:10:100::10"
    created: list[str] = field(default_factory=list)

    # -- names ------------------------------------------------------------------------
    @property
    def client_ns(self) -> str:
        return f"{self.prefix}-client"

    @property
    def node_ns(self) -> str:
        return f"{self.prefix}-lb"

    def real_ns(self, i: int) -> str:
        return f"{self.prefix}-rs{i + 1}"

    def real4(self, i: int) -> str:
        return f"10.10.2.{11 + i}"

    def real6(self, i: int) -> str:
        return f"fd00:10:2::{11 + i}"

    def local4(self, worker: int) -> str:
        return f"10.10.2.{101 + worker}"

    def local6(self, worker: int) -> str:
        return f"fd00:10:2::{101 + worker}"

    def namespaces(self) -> list[str]:
        return [self.client_ns, self.node_ns, *(self.real_ns(i) for i in range(self.reals))]

    # -- build and tear down ------------------------------------------------------------
    def destroy(self) -> None:
        """Removes every namespace of this prefix (also those a crashed run left)."""
        existing = sh("ip", "netns", "list", check=False).stdout.split("\n")
        for line in existing:
            name = line.split(" ")[0]
            if name.startswith(f"{self.prefix}-"):
                for pid in sh("ip", "netns", "pids", name, check=False).stdout.split():
                    with contextlib.suppress(ProcessLookupError, ValueError):
                        os.kill(int(pid), signal.SIGKILL)
                sh("ip", "netns", "delete", name, check=False)
        # A veth pair that create() had made but not yet moved into its namespaces.
        sh("ip", "link", "delete", f"{self.prefix}-ta", check=False)

    def create(self) -> None:
        self.destroy()
        for ns in self.namespaces():
            sh("ip", "netns", "add", ns)
            netns_exec(ns, "ip", "link", "set", "lo", "up")
        lb = self.node_ns
        # client <-> port0
        self._veth(self.client_ns, "eth0", lb, "p0")
        netns_exec(self.client_ns, "ip", "addr", "add", f"{self.client4}/24", "dev", "eth0")
        netns_exec(
            self.client_ns, "ip", "-6", "addr", "add", f"{self.client6}/64", "dev", "eth0", "nodad"
        )
        netns_exec(self.client_ns, "ip", "route", "add", f"{self.vip4}/32", "via", self.port0_4)
        netns_exec(
            self.client_ns, "ip", "-6", "route", "add", f"{self.vip6}/128", "via", self.port0_6
        )
        # port1 <-> bridge <-> real servers; the bridge lives in the node's namespace
        netns_exec(lb, "ip", "link", "add", "br1", "type", "bridge")
        netns_exec(lb, "ip", "link", "set", "br1", "up")
        netns_exec(lb, "ip", "link", "add", "p1", "type", "veth", "peer", "name", "p1-br")
        for dev in ("p1", "p1-br"):
            self._quiet(lb, dev)
        netns_exec(lb, "ip", "link", "set", "p1-br", "master", "br1")
        for i in range(self.reals):
            ns = self.real_ns(i)
            self._veth(ns, "eth0", lb, f"rs{i + 1}-br")
            netns_exec(lb, "ip", "link", "set", f"rs{i + 1}-br", "master", "br1")
            netns_exec(ns, "ip", "addr", "add", f"{self.real4(i)}/24", "dev", "eth0")
            netns_exec(ns, "ip", "-6", "addr", "add", f"{self.real6(i)}/64", "dev", "eth0", "nodad")

    def _veth(self, ns_a: str, name_a: str, ns_b: str, name_b: str) -> None:
        tmp_a, tmp_b = f"{self.prefix}-ta", f"{self.prefix}-tb"
        sh("ip", "link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b)
        sh("ip", "link", "set", tmp_a, "netns", ns_a)
        sh("ip", "link", "set", tmp_b, "netns", ns_b)
        netns_exec(ns_a, "ip", "link", "set", tmp_a, "name", name_a)
        netns_exec(ns_b, "ip", "link", "set", tmp_b, "name", name_b)
        self._quiet(ns_a, name_a)
        self._quiet(ns_b, name_b)

    @staticmethod
    def _quiet(ns: str, dev: str) -> None:
        # As a real wire: no checksum offload (the frame must carry its checksum) and no
        # segmentation/merging offloads, then up.
        netns_exec(
            ns,
            "ethtool",
            "-K",
            dev,
            "tx",
            "off",
            "rx",
            "off",
            "tso",
            "off",
            "gso",
            "off",
            "gro",
            "off",
            check=False,
        )
        netns_exec(ns, "ip", "link", "set", dev, "up")

    # -- the node's config ----------------------------------------------------------------
    def node_config(
        self,
        workers: int = 1,
        services: Sequence[dict[str, Any]] | None = None,
        pmd: str = "net_af_packet",
        **dataplane: Any,
    ) -> dict[str, Any]:
        if services is None:
            services = [
                {
                    "vip": self.vip4,
                    "port": 80,
                    "protocol": "tcp",
                    "scheduler": "rr",
                    "reals": [{"address": self.real4(i), "port": 8080} for i in range(self.reals)],
                }
            ]
        return {
            "node": {"name": f"{self.prefix}-lb"[:20], "cluster": "demo"},
            "dataplane": {
                "workers": workers,
                "sessions_per_worker": dataplane.pop("sessions_per_worker", 65536),
                "idle_sleep_us": dataplane.pop("idle_sleep_us", 50),
                "memory": {"hugepages": False, "size_mb": 512},
                "ports": [
                    {
                        "name": "port0",
                        "device": f"{pmd}0,iface=p0",
                        "address": [f"{self.port0_4}/24", f"{self.port0_6}/64"],
                        "kernel_interface": "k0",
                    },
                    {
                        "name": "port1",
                        "device": f"{pmd}1,iface=p1",
                        "address": [f"{self.port1_4}/24", f"{self.port1_6}/64"],
                        "local_addresses": [
                            [self.local4(w), self.local6(w)] for w in range(workers)
                        ],
                        "kernel_interface": "k1",
                    },
                ],
                **dataplane,
            },
            "services": list(services),
        }
