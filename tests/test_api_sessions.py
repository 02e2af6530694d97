"""Sessions through the API: search by client (address or prefix), VIP, real and more,
paged with a cursor (at most 1000 a page); reset one, after which its flow has no
session (the engine drops its next packet) while the others carry on."""

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
    assert (len(page["items"]), page["limit"], page["next_cursor"]) == (1, 100, None)
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
        assert r.json()["next_cursor"] is None
        return len(r.json()["items"])

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


def pages(api: TestClient, **query: object) -> list[list[int]]:
    """The client ports of every page of a search, following `next_cursor` to the end."""
    out: list[list[int]] = []
    params: dict[str, object] = dict(query)
    while True:
        r = api.get(f"{API}/sessions", headers=VIEWER, params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        out.append([s["client_port"] for s in page["items"]])
        if page["next_cursor"] is None:
            return out
        params["cursor"] = page["next_cursor"]


def test_pages_cover_everything_once_across_workers(tmp_path: Path) -> None:
    node = Node(tmp_path, workers=2)
    with api_client(node) as client:
        open_flows(node, range(46000, 46025))
        assert {s["worker"] for s in node.engine.sessions()} == {0, 1}
        got = pages(client, limit=10)
        assert [len(p) for p in got[:2]] == [10, 10] and len(got[2]) == 5
        assert sorted(p for page in got for p in page) == list(range(46000, 46025))
        # With a filter, pages hold matches only; the walk goes on where the last stopped.
        odd = pages(client, limit=4, client=CLIENT4, state="established", worker=1)
        on_1 = {s["client"][1] for s in node.engine.sessions() if s["worker"] == 1}
        assert sorted(p for page in odd for p in page) == sorted(on_1)
        assert all(len(page) == 4 for page in odd[:-1])


def test_a_session_removed_between_pages_does_not_shift_the_next_page(tmp_path: Path) -> None:
    node = Node(tmp_path)
    with api_client(node) as client:
        open_flows(node, range(46100, 46110))
        first = client.get(f"{API}/sessions", headers=VIEWER, params={"limit": 5}).json()
        gone = first["items"][0]["client_port"]
        r = client.delete(f"{API}/sessions/tcp/{CLIENT4}/{gone}/{VIP4}/80", headers=ADMIN)
        assert r.status_code == 200
        rest = pages(client, limit=5, cursor=first["next_cursor"])
        shown = [s["client_port"] for s in first["items"]] + [p for page in rest for p in page]
        assert sorted(shown) == list(range(46100, 46110))


def test_limit_has_a_hard_cap(client: TestClient) -> None:
    r = client.get(f"{API}/sessions", headers=VIEWER, params={"limit": 1001})
    assert r.status_code == 422
    assert [e["path"] for e in r.json()["errors"]] == ["query.limit"]
    assert client.get(f"{API}/sessions", headers=VIEWER, params={"limit": 1000}).status_code == 200


def test_bad_search_parameters_are_422(client: TestClient) -> None:
    r = client.get(f"{API}/sessions", headers=VIEWER, params={"client": "nope", "limit": 0})
    assert r.status_code == 422
    assert {e["path"] for e in r.json()["errors"]} == {"query.client", "query.limit"}
    r = client.get(f"{API}/sessions", headers=VIEWER, params={"colour": "blue"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["path"] == "query.colour"
    for bad in {"cursor": "x"}, {"cursor": "0.99999999999"}, {"worker": -1}, {"vip_port": 70000}:
        r = client.get(f"{API}/sessions", headers=VIEWER, params=bad)
        assert r.status_code == 422, (bad, r.text)
        assert [e["path"] for e in r.json()["errors"]] == [f"query.{next(iter(bad))}"]


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
