"""The `Dataplane` contract: one suite run against both implementations, the engine
harness (`HarnessDataplane`) and the DPDK node (`NodeDataplane` over `dplb._core.Runtime`,
`--no-huge --no-shconf -m 256`, no NIC, no namespaces), so that behaviour only one of
them has cannot hide.

Both get the same traffic, `FRAMES`: on the DPDK node port 0 is a `net_pcap` vdev that
reads them from a capture file when it starts, port 1 a `net_ring` vdev; the harness
processes them. The SYN timeout is an hour, so the sessions last the whole run.

EAL starts once per process: the DPDK node is started once for the whole test session
and every test leaves it running `BASE` again (sessions are never reset but the one
`RESET_CLIENT`'s). When this build has no DPDK runtime, or the runtime does not start,
the `dpdk` tests fail and say why (they are never skipped)."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dplb._core as _core
import pytest
from scapy.layers.inet import TCP, UDP
from scapy.utils import wrpcap

from conftest import (
    CLIENT4,
    CLIENT6,
    CLIENT_GW_MAC,
    REAL_MACS,
    VIP4,
    VIP6,
    client_frame,
    node_config,
)
from dplb.config import NodeConfig, parse_config
from dplb.dataplane import Dataplane, HarnessDataplane
from dplb.engine import Engine, to_engine_config

IMPLEMENTATIONS = ["harness", "dpdk"]


RESET_CLIENT = "192.0.2.77"  # the sessions the reset tests remove (ports 60000, 60001)
UDP_CLIENT = "203.0.113.9"


def traffic() -> list[Any]:
    """30 TCP SYNs from CLIENT4 and one from CLIENT6, two UDP flows, two SYNs of
    RESET_CLIENT: 35 sessions."""
    frames = [
        client_frame(CLIENT4, VIP4) / TCP(sport=50000 + i, dport=80, flags="S", seq=1000)
        for i in range(30)
    ]
    frames.append(client_frame(CLIENT6, VIP6) / TCP(sport=50100, dport=80, flags="S"))
    frames += [client_frame(UDP_CLIENT, VIP4) / UDP(sport=p, dport=53) / b"q" for p in (5300, 5301)]
    frames += [
        client_frame(RESET_CLIENT, VIP4) / TCP(sport=p, dport=80, flags="S") for p in (60000, 60001)
    ]
    return frames


FRAMES = [bytes(f) for f in traffic()]
SESSIONS = len(FRAMES)
_TMP = Path(tempfile.mkdtemp(prefix="dplb-contract-"))
wrpcap(str(_TMP / "rx.pcap"), traffic())


def base_config() -> NodeConfig:
    raw = node_config(workers=2)
    ports = raw["dataplane"]["ports"]
    ports[0]["device"] = f"net_pcap0,rx_pcap={_TMP / 'rx.pcap'},tx_pcap={_TMP / 'tx.pcap'}"
    ports[1]["device"] = "net_ring0"
    raw["dataplane"]["timeouts"] = {"tcp_syn": 3600, "udp": 3600}
    return parse_config(raw)


BASE = base_config()

_node: dict[str, Any] = {}
FILE_PREFIX = f"dplb-contract-{os.getpid()}"


def _start_dpdk() -> Dataplane:
    from dplb.dataplane.node import NodeDataplane

    if "dataplane" in _node:
        return _node["dataplane"]  # type: ignore[no-any-return]
    if "error" in _node:
        pytest.fail(_node["error"])
    if not getattr(_core, "with_dpdk", False):
        _node["error"] = "this build of dplb has no DPDK runtime (no libdpdk-dev at build time)"
        pytest.fail(_node["error"])
    opts = _core.RuntimeOptions()
    ports = []
    for p in BASE.dataplane.ports:
        po = _core.PortOptions()
        po.device = p.device
        po.kernel_interface = ""
        ports.append(po)
    opts.ports = ports
    opts.hugepages = False
    opts.memory_mb = 256
    opts.file_prefix = FILE_PREFIX
    # Asked for, and refused by these vdevs (no spare RX queue): the node runs without it.
    opts.control_flow_steering = True
    runtime = _core.Runtime(to_engine_config(BASE), opts)
    try:
        runtime.start()
    except ValueError as exc:
        _node["error"] = f"the DPDK runtime did not start on net_ring vdevs: {exc}"
        pytest.fail(_node["error"])
    _node["runtime"] = runtime
    dp = NodeDataplane(runtime, BASE)
    deadline = time.monotonic() + 20
    while sum(c.sessions for c in dp.stats().cores) < SESSIONS:
        if time.monotonic() > deadline:
            _node["error"] = (
                f"the DPDK node made {sum(c.sessions for c in dp.stats().cores)} of the "
                f"{SESSIONS} sessions of its capture in 20 s: {dp.stats().cores}"
            )
            pytest.fail(_node["error"])
        time.sleep(0.05)
    _node["dataplane"] = dp
    return dp


def harness() -> HarnessDataplane:
    engine = Engine(BASE)
    engine.set_neighbour("port0", "10.0.1.254", CLIENT_GW_MAC)
    engine.set_neighbour("port0", "2001:db8:1::fe", CLIENT_GW_MAC)
    for ip, mac in REAL_MACS.items():
        engine.set_neighbour("port1", ip, mac)
    dp = HarnessDataplane(engine)
    for frame in FRAMES:
        dp.process(frame, "port0")
    return dp


@pytest.fixture(params=IMPLEMENTATIONS)
def dataplane(request: pytest.FixtureRequest) -> Iterator[Dataplane]:
    dp = harness() if request.param == "harness" else _start_dpdk()
    try:
        yield dp
    finally:
        dp.apply(BASE)


@pytest.fixture
def both() -> tuple[Dataplane, Dataplane]:
    """The harness and the DPDK node, to compare what they answer."""
    return harness(), _start_dpdk()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    runtime = _node.pop("runtime", None)
    if runtime is not None:
        runtime.stop()
        # What EAL leaves of its run, even with --no-shconf (issue 10 item 13).
        shutil.rmtree(Path("/var/run/dpdk") / FILE_PREFIX, ignore_errors=True)
    shutil.rmtree(_TMP, ignore_errors=True)
