"""Sessions through the API: search by client (address or prefix), VIP, real and more,
paginated in a stable order; reset one, after which its flow has no session (the engine
drops its next packet) while the others carry on."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from api_helpers import ADMIN, API, VIEWER, Node, api_client
from conftest import CLIENT4, CLIENT6, VIP4, VIP6, TcpFlow, drops, send
from dplb.dataplane import SessionKey


def open_flows(node: Node, client_ports: range, client: str = CLIENT4) -> list[TcpFlow]:
    flows = []
    for cport in client_ports:
        flow = TcpFlow(node.engine, cport, client=client)
        flow.handshake()
        flows.append(flow)
    return flows


def test_list_sessions_shows_both_tuples(client: TestClient, node: Node) -> None:
    (flow,) = open_flows(node, range(45000, 45001))
    page = client.get(f"{API}/sessions", headers=VIEWER).json()
    assert (page["total"], page["offset"], page["limit"]) == (1, 0, 100)
    s = page["items"][0]
    assert (s["protocol"], s["client"], s["client_port"], s["vip"], s["vip_port"]) == (
        "tcp",
        CLIENT4,
        45000,
        VIP4,
        80,
    )
    assert (s["real"], s["real_port"]) == (flow.real, flow.real_port)
    assert (s["local"], s["local_port"]) == (flow.local, flow.local_port)
    assert s["state"] == "established"
    assert s["expires_in"] > 0


def test_search_by_client_prefix_vip_real_and_protocol(client: TestClient, node: Node) -> None:
    open_flows(node, range(45100, 45104))  # rr: 10.0.2.11, .12, .11, .12
    open_flows(node, range(45200, 45202), client="203.0.113.9")
    six = TcpFlow(node.engine, 45300, client=CLIENT6, vip=VIP6)
    six.handshake()

    def total(**query: object) -> int:
        r = client.get(f"{API}/sessions", headers=VIEWER, params=query)
        assert r.status_code == 200, r.text
        n: int = r.json()["total"]
        return n

    assert total() == 7
    assert total(client=CLIENT4) == 4
    assert total(client="203.0.113.0/24") == 2
    assert total(client="198.51.100.0/24", client_port=45101) == 1
    assert total(vip=VIP6) == 1
    assert total(vip=VIP4, vip_port=80) == 6
    assert total(real="10.0.2.11") == 3
    assert total(real="10.0.2.12", real_port=8080) == 3
    assert total(protocol="udp") == 0
    assert total(state="established", worker=0) == 7


def test_pages_are_stable_and_cover_everything_once(tmp_path: Path) -> None:
    node = Node(tmp_path, workers=2)
    with api_client(node) as client:
        open_flows(node, range(46000, 46025))
        seen = []
        for offset in range(0, 25, 10):
            page = client.get(
                f"{API}/sessions", headers=VIEWER, params={"offset": offset, "limit": 10}
            ).json()
            assert page["total"] == 25
            seen += [s["client_port"] for s in page["items"]]
        assert seen == list(range(46000, 46025))
        assert {s["worker"] for s in node.engine.sessions()} == {0, 1}


def test_bad_search_parameters_are_422(client: TestClient) -> None:
    r = client.get(f"{API}/sessions", headers=VIEWER, params={"client": "nope", "limit": 0})
    assert r.status_code == 422
    assert {e["path"] for e in r.json()["errors"]} == {"query.client", "query.limit"}
    r = client.get(f"{API}/sessions", headers=VIEWER, params={"colour": "blue"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["path"] == "query.colour"


def test_reset_removes_the_session_and_its_next_packet_is_dropped(
    client: TestClient, node: Node
) -> None:
    gone, kept = open_flows(node, range(45400, 45402))
    r = client.delete(f"{API}/sessions/tcp/{CLIENT4}/45400/{VIP4}/80", headers=ADMIN)
    assert (r.status_code, r.json()) == (200, {"removed": 1})
    ports = [s["client_port"] for s in client.get(f"{API}/sessions", headers=ADMIN).json()["items"]]
    assert ports == [45401]
    assert node.engine.stats()["total"]["sessions_reset"] == 1

    assert send(node.engine, gone.from_client("PA", seq=1001, ack=5001, payload=b"x")) == []
    assert drops(node.engine)["no_session"] == 1
    kept.to_real(kept.from_client("PA", seq=1001, ack=5001, payload=b"y"))
    # Its local port went back to the pool.
    laddrs = client.get(f"{API}/local-addresses", headers=ADMIN).json()
    assert [a["ports_in_use"] for a in laddrs if a["address"] == "10.0.2.101"] == [1]


def test_reset_on_another_worker_and_ipv6(tmp_path: Path) -> None:
    node = Node(tmp_path, workers=2)
    with api_client(node) as client:
        flows = open_flows(node, range(47000, 47010))
        owners = {node.engine.owner(CLIENT4, f.client_port, VIP4, 80) for f in flows}
        assert owners == {0, 1}
        for f in flows:
            r = client.delete(
                f"{API}/sessions/tcp/{CLIENT4}/{f.client_port}/{VIP4}/80", headers=ADMIN
            )
            assert r.status_code == 200
        six = TcpFlow(node.engine, 47100, client=CLIENT6, vip=VIP6)
        six.handshake()
        r = client.delete(f"{API}/sessions/tcp/[{CLIENT6}]/47100/[{VIP6}]/80", headers=ADMIN)
        assert r.status_code == 200
        assert node.engine.sessions() == []


def test_reset_of_no_session_is_404(client: TestClient) -> None:
    r = client.delete(f"{API}/sessions/tcp/{CLIENT4}/1/{VIP4}/80", headers=ADMIN)
    assert r.status_code == 404
    assert r.json()["errors"] == [
        {"path": "session", "reason": f"no session tcp {CLIENT4}:1 -> {VIP4}:80"}
    ]


def test_reset_is_audited(client: TestClient, node: Node) -> None:
    open_flows(node, range(45500, 45501))
    client.delete(f"{API}/sessions/tcp/{CLIENT4}/45500/{VIP4}/80", headers=ADMIN)
    entry = client.get(f"{API}/audit", headers=ADMIN).json()[0]
    assert (entry["who"], entry["outcome"], entry["message"]) == (
        "ops",
        "reset",
        f"reset session tcp {CLIENT4}:45500 -> {VIP4}:80",
    )


def test_dataplane_reset_session_counts_what_it_removed(node: Node) -> None:
    open_flows(node, range(45600, 45601))
    key = SessionKey(protocol="tcp", client=CLIENT4, client_port=45600, vip=VIP4, vip_port=80)
    assert node.dataplane.reset_session(key) == 1
    assert node.dataplane.reset_session(key) == 0


def test_reset_with_a_scoped_address_is_422_naming_the_field(client: TestClient) -> None:
    r = client.delete(f"{API}/sessions/tcp/fe80::1%25eth0/1/{VIP4}/80", headers=ADMIN)
    assert r.status_code == 422
    (error,) = r.json()["errors"]
    assert error["path"] == "path.client"
    assert "has a zone" in error["reason"]
    r = client.delete(f"{API}/sessions/tcp/{CLIENT4}/1/fe80::10%25eth0/80", headers=ADMIN)
    assert (r.status_code, r.json()["errors"][0]["path"]) == (422, "path.vip")
