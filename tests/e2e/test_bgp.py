"""BGP end to end, in the lab of dplb.demo.bgp_lab: a router namespace running BIRD with
kernel ECMP (`merge paths on`, multipath hash on L4) in front of two real dplb nodes
(`dplb run`), each with its own BIRD talking BGP and BFD through its client-side port's
exception path; a client behind the router; three reals behind both nodes.

Both nodes announce the VIP: the router has two next hops and connections reach both.
A drain moves new connections to the other node while the connections it holds go on.
A node that stops withdraws its routes; a node killed with -9 loses its next hop at the
router through BFD (the router's BGP session says so)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from dplb.demo.bgp_lab import VIP, VIP_FRONT, VIP_PORT, BgpLab, kernel_nexthops, running_lab
from dplb.demo.lab import wait_until
from dplb.demo.topology import netns_exec

from .helpers import namespaces_of, run_prefix

pytestmark = pytest.mark.e2e

PREFIX = run_prefix("e2e8")

# Holds COUNT connections to HOST:PORT, each with the first line of a request sent;
# prints their local ports, waits for a line on stdin, completes each request and prints
# what each got: the server's answer (which names the local address, hence the node),
# "reset", or "timeout".
_HOLD = r"""
import json, socket, sys
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
socks = []
for _ in range(count):
    s = socket.create_connection((host, port), timeout=10)
    s.sendall(b"GET / HTTP/1.0\r\n")
    socks.append(s)
print(json.dumps([s.getsockname()[1] for s in socks]), flush=True)
sys.stdin.readline()
out = {}
for s in socks:
    lport = s.getsockname()[1]
    s.settimeout(5)
    try:
        s.sendall(b"Host: vip\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
        out[lport] = data.decode(errors="replace").splitlines()[-1] if data else "closed"
    except ConnectionResetError:
        out[lport] = "reset"
    except TimeoutError:
        out[lport] = "timeout"
print(json.dumps(out), flush=True)
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BgpLab]:
    with running_lab(PREFIX, tmp_path_factory.mktemp(PREFIX)) as the_lab:
        yield the_lab
    assert not namespaces_of(PREFIX), f"namespaces left behind: {namespaces_of(PREFIX)}"


def test_both_nodes_announce_the_vip_and_connections_reach_both(lab: BgpLab) -> None:
    assert lab.nexthops() == ["10.10.1.1", "10.10.1.2"]
    # Each node's own local address, and BFD under each session.
    for node in lab.nodes:
        assert kernel_nexthops(lab.topo.ns("rtr"), node.local) == [node.address]
    wait_until(
        lambda: lab.router_says("show", "bfd", "sessions").count(" Up ") == 2 or None,
        30,
        "both BFD sessions up at the router",
    )
    before = [n.connections() for n in lab.nodes]
    lab.requests(60)
    moved = wait_until(
        lambda: (
            (m := [n.connections() - b for n, b in zip(lab.nodes, before, strict=True)])
            and sum(m) == 60
            and m
        ),
        30,
        "both nodes' counters",
    )
    assert all(m > 0 for m in moved), f"connections per node: {moved}"
    status = lab.nodes[0].api("GET", "/bgp")
    assert status["bird"] == "up" and status["in_sync"] and status["sessions_established"] == 1
    assert status["bfd_up"] is True


def test_a_drain_moves_new_connections_and_the_other_nodes_go_on(lab: BgpLab) -> None:
    lb1, lb2 = lab.nodes
    hold = subprocess.Popen(
        ["ip", "netns", "exec", lab.topo.ns("client"), sys.executable, "-c", _HOLD, VIP,
         str(VIP_PORT), "16"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert hold.stdout is not None and hold.stdin is not None
        ports = set(json.loads(hold.stdout.readline()))
        on_lb2 = wait_until(
            lambda: (b := lb2.client_ports() & ports) | (lb1.client_ports() & ports) == ports and b,
            30,
            "the held connections in the nodes' sessions",
        )
        drained = lb1.api("POST", "/bgp/drain?wait=true")
        assert drained["drain"]["state"] in ("drained", "timed_out")
        assert drained["announced"][0]["communities"] == ["65535:0"]
        wait_until(lambda: lab.nexthops() == ["10.10.1.2"] or None, 20, "lb1 out of the ECMP")
        route = lab.router_says("show", "route", f"{VIP}/32", "all")
        assert "(65535,0)" in route and "BGP.local_pref: 0" in route
        # New connections: all to lb2.
        before = [n.connections() for n in lab.nodes]
        lab.requests(30)
        after = wait_until(
            lambda: (a := [n.connections() for n in lab.nodes]) and a[1] - before[1] == 30 and a,
            30,
            "lb2 to count the new connections",
        )
        assert after[0] == before[0]
        hold.stdin.write("go\n")
        hold.stdin.flush()
        answers = {int(k): v for k, v in json.loads(hold.stdout.readline()).items()}
    finally:
        hold.kill()
        hold.wait()
    # The connections lb2 held went on across the drain, answered through lb2's local address.
    for port in on_lb2:
        assert f" {lb2.local}:" in answers[port], (port, answers[port])
    # None was reset. (Those lb1 held follow the router to lb2, which has not their
    # session until sessions are synced between nodes: they stall, see the report.)
    assert "reset" not in answers.values(), answers
    undrained = lb1.api("POST", "/bgp/undrain")
    assert undrained["drain"]["state"] == "none"
    wait_until(lambda: lab.nexthops() == ["10.10.1.1", "10.10.1.2"] or None, 20, "back in ECMP")


def test_a_real_side_link_down_withdraws_what_the_node_cannot_reach_there(lab: BgpLab) -> None:
    lb1 = lab.nodes[0]
    back = lab.topo.ns("back")
    wait_until(lambda: lab.nexthops(VIP_FRONT) == ["10.10.1.1", "10.10.1.2"] or None, 20, "both")
    netns_exec(back, "ip", "link", "set", "lb1-b", "down")  # lb1's port1 loses its carrier
    try:
        wait_until(lambda: lab.nexthops() == ["10.10.1.2"] or None, 20, "lb1's port1 VIP withdrawn")
        ports = lb1.api("GET", "/node")["dataplane"]["ports"]
        assert [p["link_up"] for p in ports] == [True, False]
        # The port0 service's reals are behind port1 too: the health checker takes them
        # down with the link, so lb1 withdraws that VIP as well; lb2 keeps both, and lb1's
        # own local address (node-level, through port0) stays announced.
        wait_until(
            lambda: lab.nexthops(VIP_FRONT) == ["10.10.1.2"] or None,
            20,
            "lb1's port0 VIP withdrawn: its reals are unreachable",
        )
        assert kernel_nexthops(lab.topo.ns("rtr"), lb1.local) == [lb1.address]
    finally:
        netns_exec(back, "ip", "link", "set", "lb1-b", "up")
    for vip in (VIP, VIP_FRONT):
        wait_until(lambda v=vip: lab.nexthops(v) == ["10.10.1.1", "10.10.1.2"] or None, 20, "back")


def test_a_node_that_stops_withdraws_its_routes(lab: BgpLab) -> None:
    lb2 = lab.nodes[1]
    code = lb2.proc.stop(timeout=30)  # SIGTERM: drain (at most DRAIN_TIMEOUT), withdraw, stop
    assert code == 0, lb2.log()
    # BIRD had sent the withdrawals when the node stopped; the router takes them in.
    wait_until(lambda: lab.nexthops() == ["10.10.1.1"] or None, 20, "lb2's VIP withdrawn")
    wait_until(
        lambda: not kernel_nexthops(lab.topo.ns("rtr"), lb2.local) or None, 20, "its local address"
    )
    lab.requests(10)  # the survivor serves


def test_kill_9_loses_the_next_hop_through_bfd(lab: BgpLab) -> None:
    lb1 = lab.nodes[0]
    wait_until(lambda: lab.nexthops() == ["10.10.1.1"] or None, 20, "lb1 alone")
    assert lb1.proc.proc is not None
    lb1.proc.proc.kill()
    lb1.proc.proc.wait()
    wait_until(lambda: not lab.nexthops() or None, 20, "the VIP gone from the router")
    # BFD took it down (not the 240 s hold timer): BIRD names the reason.
    session = lab.router_says("show", "protocols", "all", "lb1")
    assert "BFD session down" in session, session
