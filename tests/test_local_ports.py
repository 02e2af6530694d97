"""Local (SNAT) ports, as a real sees them: the real knows a connection by (local
address, local port, its address, its port), so dplb pools ports per (local address,
real); a port stays busy toward a real that closed first for the real's TIME_WAIT
(`local_ports.real_time_wait`), counted from the close, and no longer; a connection the
client closed first, or a reset one, frees its port with its session; a restarted node
does not begin with the ports its previous run left in the reals' TIME_WAIT."""

from __future__ import annotations

import time
from typing import Any

from scapy.layers.inet import TCP

from conftest import (
    CLIENT_GW_MAC,
    REAL_MACS,
    VIP4,
    TcpFlow,
    drops,
    ip_layer,
    node_config,
    send,
)
from dplb import Engine

LOCAL4 = node_config()["dataplane"]["ports"][1]["local_addresses"][0][0]
REAL_A, REAL_B = "10.0.2.11", "10.0.2.12"
ONE_PORT = {"first": 40000, "last": 40000}


def web(*reals: str) -> list[dict[str, Any]]:
    return [
        {
            "vip": VIP4,
            "port": 80,
            "protocol": "tcp",
            "scheduler": "rr",
            "reals": [{"address": r, "port": 8080} for r in reals],
        }
    ]


def engine_of(
    reals: tuple[str, ...] = (REAL_A,), started_at_ns: int | None = None, **dataplane: Any
) -> Engine:
    engine = Engine(node_config(1, web(*reals), **dataplane), started_at_ns=started_at_ns)
    engine.set_neighbour("port0", "10.0.1.254", CLIENT_GW_MAC)
    for ip, mac in REAL_MACS.items():
        engine.set_neighbour("port1", ip, mac)
    return engine


def real_closes_first(flow: TcpFlow) -> None:
    """The real sends the first FIN (an HTTP server answering `Connection: close`); the
    client's FIN and the real's last ACK follow: the real is in TIME_WAIT."""
    flow.to_client(flow.from_real("FA", seq=5001, ack=1001))
    flow.to_real(flow.from_client("FA", seq=1001, ack=5002))
    flow.to_client(flow.from_real("A", seq=5002, ack=1002))


def client_closes_first(flow: TcpFlow) -> None:
    """The client sends the first FIN: the real closes passively (LAST_ACK, then CLOSED)
    and keeps no TIME_WAIT."""
    flow.to_real(flow.from_client("FA", seq=1001, ack=5001))
    flow.to_client(flow.from_real("FA", seq=5001, ack=1002))
    flow.to_real(flow.from_client("A", seq=1002, ack=5002))


def try_syn(engine: Engine, client_port: int) -> TcpFlow | None:
    """A new connection's SYN: its flow when it left toward a real, None when dropped."""
    flow = TcpFlow(engine, client_port)
    if send(engine, flow.from_client("S", seq=1000)) == []:
        return None
    flow.syn()  # the SYN's retransmission finds the session: learn its tuple
    return flow


def test_one_local_port_serves_two_reals_at_once() -> None:
    # 1 local address with 1 port, 2 reals: the real sees (laddr, lport, real, rport),
    # so the port can be in use toward both at the same time.
    engine = engine_of((REAL_A, REAL_B), local_ports=ONE_PORT)
    first, second = TcpFlow(engine, 50001), TcpFlow(engine, 50002)
    out_a, out_b = first.syn(), second.syn()
    assert (ip_layer(out_a).src, out_a[TCP].sport, ip_layer(out_a).dst) == (LOCAL4, 40000, REAL_A)
    assert (ip_layer(out_b).src, out_b[TCP].sport, ip_layer(out_b).dst) == (LOCAL4, 40000, REAL_B)
    assert drops(engine)["no_local_port"] == 0
    # Each real's SYN-ACK finds its own client.
    back_a = first.to_client(first.from_real("SA", seq=5000, ack=1001))
    back_b = second.to_client(second.from_real("SA", seq=7000, ack=1001))
    assert (back_a[TCP].dport, back_a[TCP].seq) == (50001, 5000)
    assert (back_b[TCP].dport, back_b[TCP].seq) == (50002, 7000)
    # Toward the same real the port is taken: a third connection to REAL_A has none.
    third = TcpFlow(engine, 50003)
    assert send(engine, third.from_client("S", seq=1000)) == []  # rr: REAL_A
    assert drops(engine)["no_local_port"] == 1


def test_a_port_toward_a_real_that_closed_first_rests_its_time_wait_then_is_reused() -> None:
    # The session's own time_wait is short (1 s): the port still rests toward the real
    # for real_time_wait (60 s) from the close, and not a second longer.
    engine = engine_of(
        local_ports={**ONE_PORT, "real_time_wait": 60}, timeouts={"tcp_time_wait": 1}
    )
    first = TcpFlow(engine, 50001)
    first.handshake()
    real_closes_first(first)  # the close: t = 0
    engine.advance(2)
    assert first.session() is None
    assert engine.local_addresses()[0]["ports_resting"] == 1

    assert try_syn(engine, 50002) is None
    engine.advance(57)  # t = 59
    assert try_syn(engine, 50003) is None
    assert drops(engine)["no_local_port"] == 2
    engine.advance(1)  # t = 60: the real's TIME_WAIT is over
    second = try_syn(engine, 50004)
    assert second is not None
    assert (second.local, second.local_port) == (LOCAL4, 40000)
    assert drops(engine)["no_local_port"] == 2
    laddr = engine.local_addresses()[0]
    assert (laddr["ports_in_use"], laddr["ports_resting"]) == (1, 0)


def test_the_hold_does_not_add_to_the_sessions_own_time_wait() -> None:
    # The session lingers in time_wait for 60 s itself: once it is gone, the real's
    # TIME_WAIT (60 s from the same close) is over too, and the port is free at once.
    engine = engine_of(local_ports=ONE_PORT)
    first = TcpFlow(engine, 50001)
    first.handshake()
    real_closes_first(first)
    engine.advance(60)
    assert first.session() is None
    second = try_syn(engine, 50002)
    assert second is not None and second.local_port == 40000


def test_a_client_first_close_frees_the_port_with_its_session() -> None:
    engine = engine_of(local_ports=ONE_PORT, timeouts={"tcp_time_wait": 1})
    first = TcpFlow(engine, 50001)
    first.handshake()
    client_closes_first(first)
    assert try_syn(engine, 50002) is None  # the session still holds it
    engine.advance(1)
    assert first.session() is None
    second = try_syn(engine, 50003)
    assert second is not None and second.local_port == 40000
    assert engine.local_addresses()[0]["ports_resting"] == 0


def test_a_reset_connection_leaves_no_hold() -> None:
    # The real closed first, then the client reset: the real drops its TIME_WAIT.
    engine = engine_of(local_ports=ONE_PORT, timeouts={"tcp_close": 1})
    first = TcpFlow(engine, 50001)
    first.handshake()
    first.to_client(first.from_real("FA", seq=5001, ack=1001))
    first.to_real(first.from_client("R", seq=1001))
    engine.advance(1)
    assert first.session() is None
    second = try_syn(engine, 50002)
    assert second is not None and second.local_port == 40000


def test_a_restarted_node_does_not_begin_with_the_ports_it_left_in_time_wait() -> None:
    # A first run: 100 connections in 10 s toward one real, each closed by the real
    # (each port in the real's TIME_WAIT for 60 s). The node restarts 1 s later with no
    # state: its first 100 connections toward that real take none of those ports.
    start = time.time_ns()
    before = engine_of(started_at_ns=start, timeouts={"tcp_time_wait": 1})
    left_in_time_wait = set()
    for i in range(100):
        flow = TcpFlow(before, 20000 + i)
        flow.handshake()
        real_closes_first(flow)
        left_in_time_wait.add(flow.local_port)
        before.advance(0.1)
    assert len(left_in_time_wait) == 100

    after = engine_of(started_at_ns=start + 11 * 10**9, timeouts={"tcp_time_wait": 1})
    taken = set()
    for i in range(100):
        flow = TcpFlow(after, 20000 + i)
        flow.handshake()
        taken.add(flow.local_port)
        after.advance(0.1)
    assert len(taken) == 100
    assert taken.isdisjoint(left_in_time_wait)


def test_local_address_use_is_reported() -> None:
    engine = engine_of(
        (REAL_A, REAL_B), local_ports={"first": 40000, "last": 40009}, timeouts={"tcp_time_wait": 1}
    )
    flows = [TcpFlow(engine, 50001 + i) for i in range(3)]  # rr: A, B, A
    for f in flows:
        f.handshake()
    laddr = next(a for a in engine.local_addresses() if a["address"] == LOCAL4)
    assert laddr["ports_per_real"] == 10
    assert (laddr["ports_in_use"], laddr["ports_resting"], laddr["ports_busiest_real"]) == (3, 0, 2)
    real_closes_first(flows[0])
    engine.advance(2)  # its session is gone, the real's TIME_WAIT is not
    laddr = next(a for a in engine.local_addresses() if a["address"] == LOCAL4)
    assert (laddr["ports_in_use"], laddr["ports_resting"], laddr["ports_busiest_real"]) == (2, 1, 2)
    engine.advance(60)
    laddr = next(a for a in engine.local_addresses() if a["address"] == LOCAL4)
    assert (laddr["ports_in_use"], laddr["ports_resting"], laddr["ports_busiest_real"]) == (2, 0, 1)
