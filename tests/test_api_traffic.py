"""Changes while traffic flows (DESIGN section 6): refused configs change nothing and lose
no packet; a good change is picked up between packets without a pause in forwarding.
A thread keeps an established flow busy and opens new ones while the API is used."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from scapy.layers.inet import TCP
from scapy.layers.l2 import Ether

from api_helpers import ADMIN, API, Node, wait_for
from conftest import VIP4, TcpFlow, nonzero_drops

WEB = f"{API}/services/{VIP4}/80/tcp"
# The most new flows the traffic thread opens; the node's table holds them all, so a
# fast machine that opens many during the changes never fills it.
MAX_NEW_FLOWS = 10_000


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(tmp_path, sessions_per_worker=2 * MAX_NEW_FLOWS)


@dataclass
class Traffic:
    """Sends, until stopped: a data segment on an established flow, then a SYN of a new
    flow; records every frame that did not come out as it should."""

    node: Node
    flow: TcpFlow
    sent: int = 0
    failures: list[str] = field(default_factory=list)
    reals: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        seq = 1001
        cport = 50000
        while not self.stop.is_set() and cport < 50000 + MAX_NEW_FLOWS:
            data = self.flow.from_client("PA", seq=seq, ack=5001, payload=b"x")
            out = self.node.dataplane.process(bytes(data))
            if len(out) != 1 or Ether(out[0][1])[TCP].dport != self.flow.real_port:
                self.failures.append(f"data segment {seq}: {out}")
            seq += 1
            syn = TcpFlow(self.node.engine, cport).from_client("S", seq=1)
            out = self.node.dataplane.process(bytes(syn))
            if len(out) != 1:
                self.failures.append(f"SYN from port {cport}: {len(out)} frames out")
            else:
                self.reals.append(Ether(out[0][1])["IP"].dst)
            cport += 1
            self.sent += 2


def start(node: Node) -> tuple[Traffic, threading.Thread]:
    flow = TcpFlow(node.engine, 49000)
    with node.dataplane.lock:
        flow.handshake()
    traffic = Traffic(node, flow)
    thread = threading.Thread(target=traffic.run, daemon=True)
    thread.start()
    wait_for(lambda: traffic.sent > 20, what="traffic to flow")
    return traffic, thread


def test_refused_changes_while_traffic_flows_lose_nothing(client: TestClient, node: Node) -> None:
    traffic, thread = start(node)
    try:
        sent_before = traffic.sent
        bad_changes = [
            ("PATCH", f"{WEB}/reals/10.0.2.11/8080", {"weight": -1}),
            ("POST", f"{API}/services", {"vip": "10.0.100.30", "port": 80, "nic": "port9"}),
            (
                "PATCH",
                WEB,
                {"client_address": "toa", "reals": [{"address": "2001:db8::1", "port": 1}]},
            ),
        ]
        for method, path, body in bad_changes * 3:
            r = client.request(method, path, headers=ADMIN, json=body)
            assert r.status_code == 422, r.text
        wait_for(lambda: traffic.sent > sent_before + 20, what="traffic during the changes")
    finally:
        traffic.stop.set()
        thread.join(10)
    assert traffic.failures == []
    assert set(traffic.reals) == {"10.0.2.11", "10.0.2.12"}
    assert nonzero_drops(node.engine) == {}
    versions = client.get(f"{API}/config/versions", headers=ADMIN).json()
    assert [v["version"] for v in versions] == [1]
    session = traffic.flow.session()
    assert session is not None and session["state"] == "established"


def test_a_good_change_while_traffic_flows_is_picked_up_between_packets(
    client: TestClient, node: Node
) -> None:
    traffic, thread = start(node)
    try:
        r = client.post(f"{WEB}/reals/10.0.2.12/8080/quiesce", headers=ADMIN)
        assert r.json()["status"] == "applied"
        applied_at = len(traffic.reals)
        wait_for(lambda: len(traffic.reals) > applied_at + 20, what="traffic after the change")
    finally:
        traffic.stop.set()
        thread.join(10)
    assert traffic.failures == []
    assert nonzero_drops(node.engine) == {}
    # Every SYN after the change went to the real that stayed.
    assert set(traffic.reals[applied_at + 1 :]) == {"10.0.2.11"}
