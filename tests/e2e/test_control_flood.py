"""Control traffic under a flood, in the lab of dplb.demo.bgp_lab (router BIRD in front
of two dplb nodes with their own BIRD, TCP health checks of the reals twice a second):
junk frames as fast as a raw socket in the router's namespace sends them, to an address
of lb1's client-side subnet that is neither a VIP nor the port's (so they all go to the
control path). lb1's BGP session to the router stays Established, its BFD up, its health
checks keep passing, and its drop counter `control_rate_limited` says the flood arrived
and was held back (docs/architecture.md, "Control traffic")."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from dplb.demo.bgp_lab import BgpLab, running_lab
from dplb.demo.lab import wait_until
from dplb.demo.topology import netns_exec

from .helpers import namespaces_of, run_prefix

pytestmark = pytest.mark.e2e

PREFIX = run_prefix("e2e14")
JUNK_TARGET = "10.10.1.77"  # on lb1's port0 subnet: no VIP, no port address
FLOOD_SECONDS = 8

# Sends UDP frames to MAC argv[2] / JUNK argv[3] on interface argv[1] for argv[4] seconds,
# as fast as it can, from many source ports; prints how many it sent.
_FLOOD = r"""
import socket, struct, sys, time
iface, mac, target, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
dst = bytes.fromhex(mac.replace(":", ""))
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28 + 18, 0, 0, 64, 17, 0,
                 socket.inet_aton("10.10.1.200"), socket.inet_aton(target))
frames = [dst + bytes.fromhex("0a0000000c8e") + b"\x08\x00" + ip
          + struct.pack("!HHHH", 1024 + i, 9, 8 + 18, 0) + bytes(18) for i in range(512)]
sent, end = 0, time.monotonic() + seconds
while time.monotonic() < end:
    for f in frames:
        try:
            s.send(f)
            sent += 1
        except OSError:  # the qdisc full: go on
            pass
print(sent, flush=True)
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BgpLab]:
    with running_lab(PREFIX, tmp_path_factory.mktemp(PREFIX), health_checks=True) as the_lab:
        yield the_lab
    assert not namespaces_of(PREFIX), f"namespaces left behind: {namespaces_of(PREFIX)}"


def reals_health(lab: BgpLab) -> list[dict[str, Any]]:
    """lb1's view of each real of each service: its health."""
    checks = lab.nodes[0].api("GET", "/health-checks")
    return [r["health"] for s in checks["services"] for r in s["reals"]]


def router_session(lab: BgpLab) -> str:
    """The router's one-line state of its session to lb1 (name, state, since, info)."""
    lines = lab.router_says("show", "protocols", "lb1").splitlines()
    return next(line for line in lines if line.startswith("lb1 "))


def rate_limited(lab: BgpLab) -> int:
    drops: dict[str, int] = lab.nodes[0].api("GET", "/stats")["drops"]
    return drops.get("control_rate_limited", 0)


def control_counter(lab: BgpLab, name: str) -> int:
    """A control lcore counter of lb1 as /metrics shows it."""
    text = netns_exec(
        lab.nodes[0].ns, "curl", "-sS", "-m", "30", "http://127.0.0.1:8080/metrics"
    ).stdout
    return int(float(next(line.split()[-1] for line in text.splitlines() if line.startswith(name))))


def test_a_flood_of_junk_leaves_bgp_bfd_and_health_checks_alone(lab: BgpLab) -> None:
    lb1 = lab.nodes[0]
    wait_until(
        lambda: lab.router_says("show", "bfd", "sessions").count(" Up ") == 2 or None,
        30,
        "both BFD sessions up at the router",
    )
    wait_until(
        lambda: all(h["status"] == "up" for h in reals_health(lab)) or None,
        30,
        "lb1's health checks: every real up",
    )
    session_before = router_session(lab)
    assert "Established" in session_before, session_before
    health_before = reals_health(lab)
    limited_before = rate_limited(lab)
    priority_before = control_counter(lab, "dplb_control_priority_packets_total")
    mac = json.loads(netns_exec(lb1.ns, "ip", "-j", "link", "show", "p0").stdout)[0]["address"]
    flood = subprocess.Popen(
        ["ip", "netns", "exec", lab.topo.ns("rtr"), sys.executable, "-c", _FLOOD, "brf", mac,
         JUNK_TARGET, str(FLOOD_SECONDS)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        # The flood reaches lb1's workers, which hold most of it back.
        wait_until(lambda: rate_limited(lab) > limited_before or None, 30, "junk rate-limited")
        assert lab.router_says("show", "bfd", "sessions").count(" Up ") == 2
        assert all(h["status"] == "up" for h in reals_health(lab))
        out, _ = flood.communicate(timeout=FLOOD_SECONDS + 60)
    finally:
        flood.kill()
        flood.wait()
    sent = int(out)
    limited = rate_limited(lab) - limited_before
    print(f"flood: {sent} frames sent, {limited} rate-limited at lb1")  # shown with -s
    assert 0 < limited <= sent, (limited, sent)
    # BGP, BFD and the health checks' replies went up through the priority ring meanwhile.
    assert control_counter(lab, "dplb_control_priority_packets_total") > priority_before
    # The session never went down (its "since" is the same) and BFD is still up.
    assert router_session(lab) == session_before
    assert lab.router_says("show", "bfd", "sessions").count(" Up ") == 2
    status = lb1.api("GET", "/bgp")
    assert status["sessions_established"] == 1 and status["bfd_up"] is True
    # Every real stayed up, checked again during the flood, and passed.
    health_after = reals_health(lab)
    for before, after in zip(health_before, health_after, strict=True):
        assert after["status"] == "up" and after["last_change_at"] == before["last_change_at"]
        assert after["checks"] > before["checks"] and after["last_result"] == "pass", after
    lab.requests(10)  # and the VIP still serves
