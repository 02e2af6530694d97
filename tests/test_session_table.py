"""A full session table (DESIGN section 5): new connections are dropped and counted,
existing ones are never evicted to make room, and room comes back when sessions expire."""

from __future__ import annotations

from scapy.layers.inet import TCP, UDP

from conftest import (
    CLIENT4,
    VIP4,
    TcpFlow,
    client_frame,
    drops,
    make_engine,
    nonzero_drops,
    send,
    send_one,
    session_of,
)
from dplb import Engine


def full_engine() -> tuple[Engine, list[TcpFlow]]:
    engine = make_engine(sessions_per_worker=4)
    flows = [TcpFlow(engine, cport) for cport in range(44000, 44004)]
    for flow in flows:
        flow.handshake()
    assert len(engine.sessions()) == 4
    assert engine.stats()["workers"][0]["session_capacity"] == 4
    return engine, flows


def test_fifth_syn_is_dropped_when_the_table_is_full() -> None:
    engine, flows = full_engine()
    fifth = TcpFlow(engine, 44004)
    assert send(engine, fifth.from_client("S", seq=1)) == []
    assert nonzero_drops(engine) == {"session_table_full": 1}
    assert fifth.session() is None
    assert engine.stats()["total"]["sessions_created"] == 4

    # The four sessions are all still there and forward both ways.
    for i, flow in enumerate(flows):
        payload = f"request {i}".encode()
        out = flow.to_real(flow.from_client("PA", seq=1001, ack=5001, payload=payload))
        assert bytes(out[TCP].payload) == payload
        out = flow.to_client(flow.from_real("PA", seq=5001, ack=1001 + len(payload), payload=b"ok"))
        assert bytes(out[TCP].payload) == b"ok"
        assert flow.session()["state"] == "established"
    assert nonzero_drops(engine) == {"session_table_full": 1}


def test_full_table_refuses_udp_too_and_retransmitted_syn_still_passes() -> None:
    engine, flows = full_engine()
    dns = client_frame() / UDP(sport=44100, dport=53) / b"query"
    assert send(engine, dns) == []
    assert drops(engine)["session_table_full"] == 1
    assert session_of(engine, CLIENT4, 44100, "udp") is None
    # A SYN of a flow that has a session is not a new session.
    flows[0].to_real(flows[0].from_client("S", seq=1000))
    assert drops(engine)["session_table_full"] == 1


def test_room_comes_back_when_sessions_expire() -> None:
    engine, flows = full_engine()
    fifth = TcpFlow(engine, 44004)
    assert send(engine, fifth.from_client("S", seq=1)) == []

    # One session closes and expires: exactly one new one fits.
    flows[0].to_real(flows[0].from_client("R", seq=1001))
    engine.advance(10)
    assert len(engine.sessions()) == 3
    fifth.handshake(client_isn=1000)
    sixth = TcpFlow(engine, 44005)
    assert send(engine, sixth.from_client("S", seq=1)) == []
    assert drops(engine)["session_table_full"] == 2

    # All expire after 900 s of silence; the table takes four new ones again.
    engine.advance(900)
    assert engine.sessions() == []
    assert engine.stats()["total"]["sessions_expired"] == 5
    for cport in range(44010, 44014):
        TcpFlow(engine, cport).handshake()
    assert len(engine.sessions()) == 4
    assert drops(engine)["session_table_full"] == 2


def test_table_is_per_worker() -> None:
    # sessions_per_worker bounds each worker's table, not the node's.
    engine = make_engine(workers=2, sessions_per_worker=2)
    per_worker: dict[int, list[int]] = {0: [], 1: []}
    cport = 45000
    while min(len(v) for v in per_worker.values()) < 3:
        per_worker[engine.owner(CLIENT4, cport, VIP4, 80)].append(cport)
        cport += 1
    for worker in (0, 1):
        for cport in per_worker[worker][:2]:
            TcpFlow(engine, cport).syn()
    assert len(engine.sessions()) == 4
    for worker in (0, 1):
        third = per_worker[worker][2]
        assert send(engine, TcpFlow(engine, third).from_client("S", seq=1)) == []
        assert engine.stats()["workers"][worker]["drops"]["session_table_full"] == 1
    send_one(engine, TcpFlow(engine, per_worker[0][0]).from_client("S", seq=1000))
