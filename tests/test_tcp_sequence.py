"""Sequence checks of TCP sessions (in the spirit of RFC 5961 and Linux conntrack's
tcp_in_window): a blind attacker who knows a client's address and port, but not where its
streams stand, can neither reset its connection nor move it to another real. A RST closes
a session only at the number its receiver stands at; inside the receiver's window it goes
through without changing the session (the receiver answers with a challenge ACK); outside
it is dropped and counted (`tcp_rst_out_of_window`). A SYN on a live session goes to its
real (which answers with a challenge ACK) and changes nothing."""

from __future__ import annotations

import pytest
from scapy.layers.inet import TCP

from conftest import TcpFlow, ip_layer, make_engine, nonzero_drops, send, send_one
from dplb import Engine

CLIENT_ISN, REAL_ISN = 1000, 5000
WINDOW = 8192  # scapy's default window, in every SYN and segment below


def state(flow: TcpFlow) -> str | None:
    session = flow.session()
    return None if session is None else session["state"]


def where(flow: TcpFlow) -> tuple[str, int, str, int]:
    """The real and local address:port of the flow's session."""
    session = flow.session()
    assert session is not None
    return (*session["real"], *session["local"])


def assert_works(flow: TcpFlow, client_seq: int, real_seq: int) -> None:
    """Data goes through both ways, each side's numbers where they stood."""
    out = flow.to_real(flow.from_client("PA", seq=client_seq, ack=real_seq, payload=b"ping"))
    assert (out[TCP].seq, bytes(out[TCP].payload)) == (client_seq, b"ping")
    out = flow.to_client(flow.from_real("PA", seq=real_seq, ack=client_seq + 4, payload=b"pong"))
    assert (out[TCP].seq, out[TCP].ack, bytes(out[TCP].payload)) == (
        real_seq,
        client_seq + 4,
        b"pong",
    )
    assert state(flow) == "established"


@pytest.mark.parametrize("flags", ["R", "RA"])
def test_a_blind_reset_from_the_client_side_is_dropped(engine: Engine, flags: str) -> None:
    flow = TcpFlow(engine, 40010)
    flow.handshake(CLIENT_ISN, REAL_ISN)
    # Before what the real acknowledged, or beyond the window the real announced.
    wrong = [0, CLIENT_ISN, CLIENT_ISN + 1 + WINDOW + 1, CLIENT_ISN + 2**31, 2**32 - 1]
    for seq in wrong:
        assert send(engine, flow.from_client(flags, seq=seq, ack=REAL_ISN + 1)) == []
    assert nonzero_drops(engine) == {"tcp_rst_out_of_window": len(wrong)}
    assert state(flow) == "established"
    assert_works(flow, CLIENT_ISN + 1, REAL_ISN + 1)


def test_a_blind_reset_from_the_real_side_is_dropped(engine: Engine) -> None:
    flow = TcpFlow(engine, 40011)
    flow.handshake(CLIENT_ISN, REAL_ISN)
    for seq in (0, REAL_ISN, REAL_ISN + 1 + WINDOW + 1):
        assert send(engine, flow.from_real("R", seq=seq), 1) == []
    assert nonzero_drops(engine) == {"tcp_rst_out_of_window": 3}
    assert_works(flow, CLIENT_ISN + 1, REAL_ISN + 1)


def test_a_reset_inside_the_window_goes_through_and_changes_nothing(engine: Engine) -> None:
    # The receiver decides: a RST not at its next number gets a challenge ACK back.
    flow = TcpFlow(engine, 40012)
    flow.handshake(CLIENT_ISN, REAL_ISN)
    out = flow.to_real(flow.from_client("R", seq=CLIENT_ISN + 500))
    assert (out[TCP].flags, out[TCP].seq) == ("R", CLIENT_ISN + 500)
    assert state(flow) == "established"
    challenge = flow.to_client(flow.from_real("A", seq=REAL_ISN + 1, ack=CLIENT_ISN + 1))
    assert challenge[TCP].ack == CLIENT_ISN + 1
    assert_works(flow, CLIENT_ISN + 1, REAL_ISN + 1)
    assert nonzero_drops(engine) == {}


@pytest.mark.parametrize("side", ["client", "real"])
def test_a_reset_at_the_senders_next_number_closes_the_session(engine: Engine, side: str) -> None:
    flow = TcpFlow(engine, 40013)
    flow.handshake(CLIENT_ISN, REAL_ISN)
    flow.to_real(flow.from_client("PA", seq=CLIENT_ISN + 1, ack=REAL_ISN + 1, payload=b"abc"))
    if side == "client":
        out = flow.to_real(flow.from_client("RA", seq=CLIENT_ISN + 4, ack=REAL_ISN + 1))
    else:
        out = flow.to_client(flow.from_real("RA", seq=REAL_ISN + 1, ack=CLIENT_ISN + 4))
    assert out[TCP].flags == "RA"
    assert state(flow) == "close"
    assert nonzero_drops(engine) == {}


def test_a_reset_at_the_receivers_last_ack_closes_the_session(engine: Engine) -> None:
    # The client's data is in flight, not yet acknowledged: a reset made from the real's
    # last ACK (as a stack without the socket answers) is exactly where the real stands.
    flow = TcpFlow(engine, 40014)
    flow.handshake(CLIENT_ISN, REAL_ISN)
    flow.to_real(flow.from_client("PA", seq=CLIENT_ISN + 1, ack=REAL_ISN + 1, payload=b"abc"))
    flow.to_real(flow.from_client("R", seq=CLIENT_ISN + 1))
    assert state(flow) == "close"


def test_a_blind_reset_then_a_syn_does_not_move_the_connection() -> None:
    engine = make_engine()  # rr over two reals: a new session would go to the other one
    flow = TcpFlow(engine, 40020)
    flow.handshake(CLIENT_ISN, REAL_ISN)
    before = where(flow)
    assert send(engine, flow.from_client("R", seq=CLIENT_ISN + 2**31)) == []
    out = flow.to_real(flow.from_client("S", seq=777_777))
    assert (out[TCP].flags, out[TCP].seq) == ("S", 777_777)
    assert where(flow) == before
    assert state(flow) == "established"
    total = engine.stats()["total"]
    assert (total["sessions_created"], total["sessions_expired"]) == (1, 0)
    assert_works(flow, CLIENT_ISN + 1, REAL_ISN + 1)


@pytest.mark.parametrize("live", ["syn_recv", "established", "fin_wait"])
def test_a_syn_on_a_live_session_goes_to_its_real(engine: Engine, live: str) -> None:
    flow = TcpFlow(engine, 40021)
    flow.syn(CLIENT_ISN)
    flow.to_client(flow.from_real("SA", seq=REAL_ISN, ack=CLIENT_ISN + 1))
    if live != "syn_recv":
        flow.to_real(flow.from_client("A", seq=CLIENT_ISN + 1, ack=REAL_ISN + 1))
    if live == "fin_wait":
        flow.to_real(flow.from_client("FA", seq=CLIENT_ISN + 1, ack=REAL_ISN + 1))
    before = where(flow)
    flow.to_real(flow.from_client("S", seq=123))
    assert (where(flow), state(flow)) == (before, live)
    # The real's challenge ACK reaches the client; the session tracked nothing new.
    flow.to_client(flow.from_real("A", seq=REAL_ISN + 1, ack=CLIENT_ISN + 1))
    assert engine.stats()["total"]["sessions_created"] == 1


@pytest.mark.parametrize("closed", ["time_wait", "close"])
def test_a_syn_with_ttl_1_changes_nothing(engine: Engine, closed: str) -> None:
    flow = TcpFlow(engine, 40022)
    flow.handshake(CLIENT_ISN, REAL_ISN)
    assert send(engine, flow.from_client("S", seq=1, ttl=1)) == []
    assert state(flow) == "established"
    if closed == "time_wait":
        flow.to_real(flow.from_client("FA", seq=CLIENT_ISN + 1, ack=REAL_ISN + 1))
        flow.to_client(flow.from_real("FA", seq=REAL_ISN + 1, ack=CLIENT_ISN + 2))
    else:
        flow.to_real(flow.from_client("R", seq=CLIENT_ISN + 1))
    before = where(flow)
    assert send(engine, flow.from_client("S", seq=1, ttl=1)) == []
    assert (state(flow), where(flow)) == (closed, before)
    assert nonzero_drops(engine) == {"ttl_exceeded": 2}
    assert engine.stats()["total"]["sessions_expired"] == 0
    # A SYN that may go on starts a new connection, as after any real close.
    out_port, out = send_one(engine, flow.from_client("S", seq=1))
    assert (out_port, out[TCP].seq) == (1, 1)
    assert where(flow) != before
    assert state(flow) == "syn_sent"


def test_a_syn_after_a_reset_that_counted_starts_a_new_connection(engine: Engine) -> None:
    flow = TcpFlow(engine, 40023)
    flow.handshake(CLIENT_ISN, REAL_ISN)
    flow.to_client(flow.from_real("R", seq=REAL_ISN + 1))
    assert state(flow) == "close"
    out_port, out = send_one(engine, flow.from_client("S", seq=90_000))
    assert (out_port, out[TCP].seq) == (1, 90_000)
    total = engine.stats()["total"]
    assert (total["sessions_created"], total["sessions_expired"]) == (2, 1)


def test_a_fin_outside_the_window_does_not_end_the_session(engine: Engine) -> None:
    flow = TcpFlow(engine, 40024)
    flow.handshake(CLIENT_ISN, REAL_ISN)
    flow.to_real(flow.from_client("FA", seq=CLIENT_ISN + 2**31, ack=REAL_ISN + 1))
    flow.to_client(flow.from_real("FA", seq=REAL_ISN + 2**31, ack=CLIENT_ISN + 1))
    assert state(flow) == "established"
    assert_works(flow, CLIENT_ISN + 1, REAL_ISN + 1)
    # The real ones do.
    flow.to_real(flow.from_client("FA", seq=CLIENT_ISN + 5, ack=REAL_ISN + 5))
    assert state(flow) == "fin_wait"
    flow.to_client(flow.from_real("FA", seq=REAL_ISN + 5, ack=CLIENT_ISN + 6))
    assert state(flow) == "time_wait"


def test_a_closed_port_resets_the_syn(engine: Engine) -> None:
    # RFC 793 SYN-SENT: a RST counts when it acknowledges the SYN.
    flow = TcpFlow(engine, 40025)
    flow.syn(CLIENT_ISN)
    assert send(engine, flow.from_real("RA", seq=0, ack=CLIENT_ISN + 7), 1) == []
    assert send(engine, flow.from_real("R", seq=0), 1) == []
    assert state(flow) == "syn_sent"
    out = flow.to_client(flow.from_real("RA", seq=0, ack=CLIENT_ISN + 1))
    assert (out[TCP].flags, out[TCP].ack) == ("RA", CLIENT_ISN + 1)
    assert state(flow) == "close"
    assert nonzero_drops(engine) == {"tcp_rst_out_of_window": 2}


def test_the_window_scale_of_both_syns_counts(engine: Engine) -> None:
    flow = TcpFlow(engine, 40026)
    syn = flow.from_client("S", seq=CLIENT_ISN)
    syn[TCP].options = [("WScale", 7)]
    _, out = send_one(engine, syn)
    flow.real, flow.real_port = ip_layer(out).dst, out[TCP].dport
    flow.local, flow.local_port = ip_layer(out).src, out[TCP].sport
    synack = flow.from_real("SA", seq=REAL_ISN, ack=CLIENT_ISN + 1)
    synack[TCP].options = [("WScale", 7)]
    synack[TCP].window = 100  # a SYN's window is never scaled
    flow.to_client(synack)
    assert send(engine, flow.from_client("R", seq=CLIENT_ISN + 1 + 1000)) == []
    flow.to_real(flow.from_client("A", seq=CLIENT_ISN + 1, ack=REAL_ISN + 1))
    ack = flow.from_real("A", seq=REAL_ISN + 1, ack=CLIENT_ISN + 1)
    ack[TCP].window = 100  # 100 << 7 = 12,800 bytes
    flow.to_client(ack)
    flow.to_real(flow.from_client("R", seq=CLIENT_ISN + 1 + 12_000))  # inside: through
    assert send(engine, flow.from_client("R", seq=CLIENT_ISN + 1 + 13_000)) == []
    assert state(flow) == "established"
    assert nonzero_drops(engine) == {"tcp_rst_out_of_window": 2}


def test_numbers_that_wrap_past_2_to_the_32(engine: Engine) -> None:
    isn, real_isn = 2**32 - 3, 2**32 - 2
    start, real_start = isn + 1, real_isn + 1  # both below 2^32
    flow = TcpFlow(engine, 40027)
    flow.syn(isn)
    flow.to_client(flow.from_real("SA", seq=real_isn, ack=start))
    flow.to_real(flow.from_client("A", seq=start, ack=real_start))
    data = b"x" * 10  # the client's stream crosses zero
    flow.to_real(flow.from_client("PA", seq=start, ack=real_start, payload=data))
    flow.to_client(flow.from_real("A", seq=real_start, ack=(isn + 11) % 2**32))
    assert send(engine, flow.from_client("R", seq=isn - 100)) == []
    assert send(engine, flow.from_client("R", seq=(isn + 11 + WINDOW + 1) % 2**32)) == []
    assert state(flow) == "established"
    flow.to_real(flow.from_client("R", seq=(isn + 11) % 2**32))
    assert state(flow) == "close"
    assert nonzero_drops(engine) == {"tcp_rst_out_of_window": 2}
