"""Flow affinity with two workers (DESIGN section 4): an inbound flow belongs to the worker
its Toeplitz hash names, an outbound one to the worker that owns the local address; a
packet that arrives elsewhere is handed over to the owner, and every packet of a session
is handled by that one worker."""

from __future__ import annotations

import pytest
from scapy.layers.inet import TCP, UDP

from conftest import (
    CLIENT4,
    CLIENT6,
    VIP4,
    VIP6,
    TcpFlow,
    client_frame,
    ip_layer,
    make_engine,
    node_config,
    nonzero_drops,
    real_frame,
    send_one,
)
from dplb import Engine

# worker -> its local addresses on the real-server side: [IPv4, IPv6]
LOCALS = node_config(workers=2)["dataplane"]["ports"][1]["local_addresses"]
FAMILIES = {"ipv4": (CLIENT4, VIP4, 0), "ipv6": (CLIENT6, VIP6, 1)}  # (client, VIP, LOCALS index)


@pytest.fixture
def engine2() -> Engine:
    return make_engine(workers=2)


def port_owned_by(engine: Engine, worker: int, client: str, vip: str, start: int = 46000) -> int:
    """A client port whose inbound flow to vip:80 is owned by `worker`."""
    for cport in range(start, start + 1000):
        if engine.owner(client, cport, vip, 80) == worker:
            return cport
    raise AssertionError(f"no client port owned by worker {worker}")


@pytest.mark.parametrize("family", FAMILIES)
def test_syn_at_the_wrong_worker_is_handed_over(engine2: Engine, family: str) -> None:
    engine = engine2
    client, vip, laddr_index = FAMILIES[family]
    cport = port_owned_by(engine, 1, client, vip)
    flow = TcpFlow(engine, cport, client=client, vip=vip)

    # The SYN arrives at worker 0; worker 1 creates the session with its own address.
    result = engine.trace(bytes(flow.from_client("S", seq=1000)), 0, worker=0)
    assert result["workers"] == [0, 1]
    assert result["verdict"] == "transmit"
    stats = engine.stats()["workers"]
    assert (stats[0]["handed_over"], stats[0]["handed_in"]) == (1, 0)
    assert (stats[1]["handed_over"], stats[1]["handed_in"]) == (0, 1)
    assert (stats[0]["sessions"], stats[1]["sessions"]) == (0, 1)
    (session,) = engine.sessions()
    assert session["worker"] == 1
    assert session["local"][0] == LOCALS[1][laddr_index]
    assert session["client"] == (client, cport)

    # The frame that left is the usual full-NAT SYN.
    ((out_port, raw),) = result["sent"]
    assert out_port == 1
    flow.real, flow.real_port = session["real"]
    flow.local, flow.local_port = session["local"]
    out = flow.to_real(flow.from_client("S", seq=1000), worker=0)  # a retransmission
    assert bytes(out) == raw
    assert ip_layer(out).src == LOCALS[1][laddr_index]

    # The real's SYN-ACK to worker 1's address arrives at worker 0 and is handed over.
    synack = flow.from_real("SA", seq=5000, ack=1001)
    result = engine.trace(bytes(synack), 1, worker=0)
    assert result["workers"] == [0, 1]
    out = flow.to_client(synack, worker=0)
    assert out[TCP].flags == "SA"
    assert (out[TCP].seq, out[TCP].ack) == (5000, 1001)
    assert engine.sessions()[0]["state"] == "syn_recv"

    stats = engine.stats()["workers"]
    assert stats[0]["handed_over"] == 4
    assert stats[1]["handed_in"] == 4
    assert stats[0]["rx_packets"] == 4  # counted where it arrived, not twice
    assert stats[1]["rx_packets"] == 0
    assert stats[1]["tx_packets"] == 4
    assert nonzero_drops(engine) == {}


@pytest.mark.parametrize("family", FAMILIES)
def test_rss_delivers_inbound_to_the_owner(engine2: Engine, family: str) -> None:
    engine = engine2
    client, vip, laddr_index = FAMILIES[family]
    for worker in (0, 1):
        cport = port_owned_by(engine, worker, client, vip, start=47000 + 100 * worker)
        flow = TcpFlow(engine, cport, client=client, vip=vip)
        result = engine.trace(bytes(flow.from_client("S", seq=1)))
        assert result["workers"] == [worker]
        assert result["verdict"] == "transmit"
        session = flow.session()
        assert session is not None
        assert session["worker"] == worker
        assert session["local"][0] == LOCALS[worker][laddr_index]
    assert engine.stats()["total"]["handed_over"] == 0


@pytest.mark.parametrize("family", FAMILIES)
def test_replies_are_handed_over_only_when_rss_puts_them_elsewhere(
    engine2: Engine, family: str
) -> None:
    engine = engine2
    client, vip, _ = FAMILIES[family]
    handed_over = 0
    direct = 0
    for cport in range(48000, 48040):
        flow = TcpFlow(engine, cport, client=client, vip=vip)
        flow.syn()
        session = flow.session()
        assert session is not None
        owner = session["worker"]
        result = engine.trace(bytes(flow.from_real("SA", seq=9, ack=1001)), 1)
        assert result["verdict"] == "transmit"
        assert result["workers"][-1] == owner
        if len(result["workers"]) == 2:
            assert result["workers"][0] != owner
            handed_over += 1
        else:
            assert result["workers"] == [owner]
            direct += 1
    # Both cases occur among 40 flows, and the counters agree with the traces.
    assert handed_over > 0
    assert direct > 0
    total = engine.stats()["total"]
    assert total["handed_over"] == total["handed_in"] == handed_over
    assert nonzero_drops(engine) == {}


def test_flows_spread_over_both_workers(engine2: Engine) -> None:
    engine = engine2
    for cport in range(49000, 49064):
        TcpFlow(engine, cport).syn()
    sessions = engine.sessions()
    per_worker = [sum(1 for s in sessions if s["worker"] == w) for w in (0, 1)]
    assert sum(per_worker) == 64
    assert min(per_worker) >= 16, per_worker
    for s in sessions:
        assert s["local"][0] == LOCALS[s["worker"]][0]
        assert engine.owner(CLIENT4, s["client"][1], VIP4, 80) == s["worker"]


def test_whole_connection_stays_on_its_worker_whatever_worker_receives(engine2: Engine) -> None:
    engine = engine2
    cport = port_owned_by(engine, 0, CLIENT4, VIP4)
    flow = TcpFlow(engine, cport)
    # Every packet arrives at worker 1, the wrong one for both directions.
    flow.syn(worker=1)
    flow.to_client(flow.from_real("SA", seq=5000, ack=1001), worker=1)
    flow.to_real(flow.from_client("A", seq=1001, ack=5001), worker=1)
    flow.to_real(flow.from_client("PA", seq=1001, ack=5001, payload=b"hi"), worker=1)
    out = flow.to_client(flow.from_real("PA", seq=5001, ack=1003, payload=b"yo"), worker=1)
    assert bytes(out[TCP].payload) == b"yo"
    (session,) = engine.sessions()
    assert (session["worker"], session["state"]) == (0, "established")
    assert session["local"][0] == LOCALS[0][0]
    stats = engine.stats()["workers"]
    assert stats[1]["handed_over"] == stats[0]["handed_in"] == 5
    assert stats[1]["sessions"] == 0
    # Expiry happens in the owner's table.
    engine.advance(900)
    assert engine.sessions() == []
    assert engine.stats()["workers"][0]["sessions_expired"] == 1


def test_packet_arriving_at_its_owner_is_not_handed_over(engine2: Engine) -> None:
    engine = engine2
    cport = port_owned_by(engine, 1, CLIENT4, VIP4)
    flow = TcpFlow(engine, cport)
    _, out = send_one(engine, flow.from_client("S", seq=1), 0, worker=1)
    assert engine.stats()["total"]["handed_over"] == 0
    assert ip_layer(out).src == LOCALS[1][0]


def test_udp_request_and_reply_at_the_wrong_worker(engine2: Engine) -> None:
    engine = engine2
    cport = next(p for p in range(46500, 47500) if engine.owner(CLIENT4, p, VIP4, 53, "udp") == 1)
    request = client_frame() / UDP(sport=cport, dport=53) / b"query"
    result = engine.trace(bytes(request), 0, worker=0)
    assert result["workers"] == [0, 1]
    _, out = send_one(engine, request, 0, worker=0)
    assert ip_layer(out).src == LOCALS[1][0]
    assert (ip_layer(out).dst, out[UDP].dport) == ("10.0.2.13", 5353)
    (session,) = engine.sessions()
    assert (session["worker"], session["protocol"]) == (1, "udp")

    reply = (
        real_frame("10.0.2.13", LOCALS[1][0]) / UDP(sport=5353, dport=out[UDP].sport) / b"answer"
    )
    result = engine.trace(bytes(reply), 1, worker=0)
    assert result["workers"] == [0, 1]
    out_port, out = send_one(engine, reply, 1, worker=0)
    assert out_port == 0
    assert (ip_layer(out).src, out[UDP].sport) == (VIP4, 53)
    assert (ip_layer(out).dst, out[UDP].dport) == (CLIENT4, cport)
    assert bytes(out[UDP].payload) == b"answer"
    stats = engine.stats()["workers"]
    assert stats[0]["handed_over"] == stats[1]["handed_in"] == 4
    assert nonzero_drops(engine) == {}
