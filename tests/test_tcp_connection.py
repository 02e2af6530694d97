"""A whole TCP connection through full-NAT, as a conversation: what the client sends, what
leaves toward the real, what the real answers, what leaves toward the client; the
session's state and expiry along the way (DESIGN sections 3 and 5)."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from conftest import (
    CLIENT4,
    CLIENT6,
    CLIENT_GW_MAC,
    REAL_MACS,
    VIP4,
    VIP6,
    TcpFlow,
    drops,
    ip_layer,
    make_engine,
    node_config,
    nonzero_drops,
    send,
    send_one,
    ttl_of,
)
from dplb import Engine

# Worker 0's local addresses on the real-server side, as the harness topology has them.
LOCAL4, LOCAL6 = node_config()["dataplane"]["ports"][1]["local_addresses"][0]
# family -> (client, VIP, the service's reals, the worker's local address of that family)
FAMILIES = {
    "ipv4": (CLIENT4, VIP4, {"10.0.2.11", "10.0.2.12"}, LOCAL4),
    "ipv6": (CLIENT6, VIP6, {"2001:db8:2::11"}, LOCAL6),
}

REQUEST = b"GET /index.html HTTP/1.1\r\nHost: example.test\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"


def state(flow: TcpFlow) -> str | None:
    session = flow.session()
    return None if session is None else session["state"]


@pytest.mark.parametrize("family", FAMILIES)
def test_whole_connection_through_full_nat(engine: Engine, family: str) -> None:
    client, vip, reals, local = FAMILIES[family]
    cport = 43210
    flow = TcpFlow(engine, cport, client=client, vip=vip)

    # Client SYN in -> SYN toward the real, from the worker's local address and a port
    # it allocated, to real:8080; nothing else of the segment changes.
    syn = flow.from_client("S", seq=1000)
    syn[TCP].options = [("MSS", 1460), ("WScale", 7), ("SAckOK", b"")]
    out_port, out = send_one(engine, syn)
    assert out_port == 1
    ip = ip_layer(out)
    assert out.src == engine.port_mac("port1")
    assert ip.dst in reals
    assert out.dst == REAL_MACS[ip.dst]
    assert ip.src == local
    assert ttl_of(out) == 63
    tcp = out[TCP]
    assert tcp.dport == 8080
    assert 1024 <= tcp.sport <= 65535
    assert tcp.flags == "S"
    assert (tcp.seq, tcp.ack) == (1000, 0)
    assert tcp.options == Ether(bytes(syn))[TCP].options  # options untouched
    assert ("MSS", 1460) in tcp.options
    real, lport = ip.dst, tcp.sport
    flow.real, flow.real_port, flow.local, flow.local_port = real, 8080, local, lport
    (session,) = engine.sessions()
    assert session["client"] == (client, cport)
    assert session["vip"] == (vip, 80)
    assert session["local"] == (local, lport)
    assert session["real"] == (real, 8080)
    assert session["state"] == "syn_sent"

    # Real SYN-ACK to the local address -> SYN-ACK to the client, from VIP:80.
    out_port, out = send_one(engine, flow.from_real("SA", seq=7000, ack=1001), 1)
    assert out_port == 0
    ip = ip_layer(out)
    assert (out.src, out.dst) == (engine.port_mac("port0"), CLIENT_GW_MAC)
    assert (ip.src, ip.dst) == (vip, client)
    assert ttl_of(out) == 63
    tcp = out[TCP]
    assert (tcp.sport, tcp.dport) == (80, cport)
    assert tcp.flags == "SA"
    assert (tcp.seq, tcp.ack) == (7000, 1001)
    assert state(flow) == "syn_recv"

    # Client ACK completes the handshake.
    out = flow.to_real(flow.from_client("A", seq=1001, ack=7001))
    assert out[TCP].flags == "A"
    assert (out[TCP].seq, out[TCP].ack) == (1001, 7001)
    assert state(flow) == "established"

    # Data both ways: payload bytes, seq and ack unchanged.
    out = flow.to_real(flow.from_client("PA", seq=1001, ack=7001, payload=REQUEST))
    assert bytes(out[TCP].payload) == REQUEST
    assert (out[TCP].seq, out[TCP].ack, out[TCP].flags) == (1001, 7001, "PA")
    assert ttl_of(out) == 63
    out = flow.to_client(flow.from_real("PA", seq=7001, ack=1001 + len(REQUEST), payload=RESPONSE))
    assert bytes(out[TCP].payload) == RESPONSE
    assert (out[TCP].seq, out[TCP].ack, out[TCP].flags) == (7001, 1001 + len(REQUEST), "PA")
    assert out.dst == CLIENT_GW_MAC
    assert ttl_of(out) == 63
    assert state(flow) == "established"

    # The client closes first: FIN in -> fin_wait; the real's FIN -> time_wait.
    client_fin_seq = 1001 + len(REQUEST)
    real_fin_seq = 7001 + len(RESPONSE)
    out = flow.to_real(flow.from_client("FA", seq=client_fin_seq, ack=real_fin_seq))
    assert out[TCP].flags == "FA"
    assert (out[TCP].seq, out[TCP].ack) == (client_fin_seq, real_fin_seq)
    assert state(flow) == "fin_wait"
    out = flow.to_client(flow.from_real("FA", seq=real_fin_seq, ack=client_fin_seq + 1))
    assert out[TCP].flags == "FA"
    assert (out[TCP].seq, out[TCP].ack) == (real_fin_seq, client_fin_seq + 1)
    assert state(flow) == "time_wait"
    out = flow.to_real(flow.from_client("A", seq=client_fin_seq + 1, ack=real_fin_seq + 1))
    assert out[TCP].flags == "A"
    session = flow.session()
    assert session is not None
    assert session["state"] == "time_wait"
    assert session["expires_in"] == pytest.approx(60)
    # Five packets came from the client, three from the real; the session's byte counts
    # agree with the real's counters.
    (counters,) = [
        r for r in engine.stats()["reals"] if r["vip"] == (vip, 80) and r["real"] == (real, 8080)
    ]
    assert (counters["packets_in"], counters["packets_out"]) == (5, 3)
    assert (counters["connections"], counters["active"]) == (1, 1)
    assert (session["bytes_in"], session["bytes_out"]) == (
        counters["bytes_in"],
        counters["bytes_out"],
    )
    assert session["bytes_in"] > 5 * 54

    # The session lives out tcp_time_wait (60 s), then it is gone.
    engine.advance(59)
    assert state(flow) == "time_wait"
    engine.advance(1)
    assert engine.sessions() == []
    total = engine.stats()["total"]
    assert total["sessions_created"] == 1
    assert total["sessions_expired"] == 1
    assert total["rx_packets"] == total["tx_packets"] == 8
    assert nonzero_drops(engine) == {}

    # Its tuple is forgotten: the real's late ACK finds no session.
    assert send(engine, flow.from_real("A", seq=real_fin_seq + 1, ack=client_fin_seq + 1), 1) == []
    assert drops(engine)["no_session"] == 1


def test_real_closes_first(engine: Engine) -> None:
    flow = TcpFlow(engine, 40001)
    flow.handshake(client_isn=100, real_isn=900)
    out = flow.to_client(flow.from_real("FA", seq=901, ack=101))
    assert out[TCP].flags == "FA"
    assert state(flow) == "fin_wait"
    out = flow.to_real(flow.from_client("FA", seq=101, ack=902))
    assert out[TCP].flags == "FA"
    assert state(flow) == "time_wait"


def test_half_closed_session_expires_after_tcp_fin(engine: Engine) -> None:
    flow = TcpFlow(engine, 40002)
    flow.handshake()
    flow.to_real(flow.from_client("FA", seq=1001, ack=5001))
    assert state(flow) == "fin_wait"
    engine.advance(119)
    assert state(flow) == "fin_wait"
    engine.advance(1)
    assert flow.session() is None


def test_reset_closes_the_session_after_tcp_close(engine: Engine) -> None:
    flow = TcpFlow(engine, 40003)
    flow.handshake()
    out = flow.to_client(flow.from_real("R", seq=5001))
    assert out[TCP].flags == "R"
    assert state(flow) == "close"
    engine.advance(9)
    assert state(flow) == "close"
    engine.advance(1)
    assert flow.session() is None
    assert engine.stats()["total"]["sessions_expired"] == 1


# -- local ports ---------------------------------------------------------------------


# How ports are pooled per real, held and reused: test_local_ports.py.


def test_local_ports_come_from_the_configured_range() -> None:
    engine = make_engine(local_ports={"first": 30000, "last": 30003})
    ports: dict[str, set[int]] = {}
    for cport in range(41000, 41008):  # rr over the service's two reals
        flow = TcpFlow(engine, cport)
        flow.syn()
        ports.setdefault(flow.real, set()).add(flow.local_port)
    # The range toward each real (the real sees local address, port, itself, its port).
    assert ports == {
        "10.0.2.11": {30000, 30001, 30002, 30003},
        "10.0.2.12": {30000, 30001, 30002, 30003},
    }
    assert send(engine, TcpFlow(engine, 41008).from_client("S")) == []
    assert drops(engine)["no_local_port"] == 1


# -- packets with no session ---------------------------------------------------------


@pytest.mark.parametrize("flags", ["A", "R", "RA", "PA", "FA", "F", "SA"])
def test_non_syn_without_session_is_dropped(engine: Engine, flags: str) -> None:
    flow = TcpFlow(engine, 40100)
    payload = b"data" if "P" in flags else b""
    assert send(engine, flow.from_client(flags, seq=1, ack=1, payload=payload)) == []
    assert nonzero_drops(engine) == {"no_session": 1}
    assert engine.sessions() == []
    assert engine.stats()["total"]["sessions_created"] == 0


def test_packet_from_a_real_without_session_is_dropped(engine: Engine) -> None:
    flow = TcpFlow(engine, 40101)
    flow.real, flow.real_port, flow.local, flow.local_port = "10.0.2.11", 8080, LOCAL4, 1024
    assert send(engine, flow.from_real("SA", seq=1, ack=1), 1) == []
    assert send(engine, flow.from_real("A", seq=1, ack=1), 1) == []
    assert nonzero_drops(engine) == {"no_session": 2}


# -- timeouts ------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_syn_only_session_expires_after_tcp_syn(engine: Engine, family: str) -> None:
    client, vip, _, _ = FAMILIES[family]
    flow = TcpFlow(engine, 40200, client=client, vip=vip)
    flow.syn()
    assert flow.session()["expires_in"] == pytest.approx(30)
    engine.advance(29)
    assert state(flow) == "syn_sent"
    engine.advance(1)
    assert flow.session() is None
    assert engine.stats()["total"]["sessions_expired"] == 1
    # The handshake's second half finds nothing any more.
    assert send(engine, flow.from_real("SA", seq=5000, ack=1001), 1) == []
    assert drops(engine)["no_session"] == 1


def test_syn_recv_session_expires_after_tcp_syn(engine: Engine) -> None:
    flow = TcpFlow(engine, 40201)
    flow.syn()
    engine.advance(20)
    flow.to_client(flow.from_real("SA", seq=5000, ack=1001))
    assert state(flow) == "syn_recv"
    engine.advance(29)
    assert state(flow) == "syn_recv"
    engine.advance(1)
    assert flow.session() is None


def test_established_session_expires_after_tcp_established(engine: Engine) -> None:
    flow = TcpFlow(engine, 40202)
    flow.handshake()
    engine.advance(899)
    assert state(flow) == "established"
    # Still forwards after 899 s of silence...
    flow.to_real(flow.from_client("PA", seq=1001, ack=5001, payload=b"ping"))
    engine.advance(899)
    assert state(flow) == "established"
    # ... and is gone 900 s after its last packet.
    engine.advance(1)
    assert flow.session() is None
    assert send(engine, flow.from_client("PA", seq=1005, ack=5001, payload=b"late")) == []
    assert drops(engine)["no_session"] == 1


def test_traffic_in_either_direction_refreshes_the_timeout(engine: Engine) -> None:
    flow = TcpFlow(engine, 40203)
    flow.handshake()
    engine.advance(600)
    flow.to_real(flow.from_client("PA", seq=1001, ack=5001, payload=b"a"))
    engine.advance(600)  # 1200 s since the handshake, 600 since the last packet
    flow.to_client(flow.from_real("PA", seq=5001, ack=1002, payload=b"b"))
    engine.advance(600)
    flow.to_real(flow.from_client("A", seq=1002, ack=5002))
    engine.advance(899)
    assert state(flow) == "established"
    engine.advance(1)
    assert flow.session() is None


def test_service_timeouts_override_the_defaults() -> None:
    services = node_config()["services"]
    services[0]["timeouts"] = {"tcp_syn": 5, "tcp_established": 20, "tcp_time_wait": 3}
    engine = make_engine(services=services)

    syn_only = TcpFlow(engine, 40300)
    syn_only.syn()
    done = TcpFlow(engine, 40301)
    done.handshake()
    idle = TcpFlow(engine, 40302)
    idle.handshake()
    other = TcpFlow(engine, 40303, client=CLIENT6, vip=VIP6)  # a service with no overrides
    other.syn()
    assert syn_only.session()["expires_in"] == pytest.approx(5)
    assert idle.session()["expires_in"] == pytest.approx(20)

    done.to_real(done.from_client("FA", seq=1001, ack=5001))
    done.to_client(done.from_real("FA", seq=5001, ack=1002))
    assert state(done) == "time_wait"
    engine.advance(3)
    assert done.session() is None
    engine.advance(2)
    assert syn_only.session() is None
    assert state(idle) == "established"
    engine.advance(15)
    assert idle.session() is None
    assert state(other) == "syn_sent"  # the default tcp_syn of 30 s
    engine.advance(10)
    assert other.session() is None


def test_dataplane_timeouts_set_the_defaults() -> None:
    engine = make_engine(timeouts={"tcp_syn": 7})
    flow = TcpFlow(engine, 40400)
    flow.syn()
    engine.advance(6)
    assert state(flow) == "syn_sent"
    engine.advance(1)
    assert flow.session() is None


def test_updated_timeouts_apply_to_new_sessions(engine: Engine) -> None:
    before = TcpFlow(engine, 40500)
    before.syn()
    config = node_config()
    config["services"][0]["timeouts"] = {"tcp_syn": 5}
    engine.update(config)
    after = TcpFlow(engine, 40501)
    after.syn()
    engine.advance(5)
    assert after.session() is None
    assert state(before) == "syn_sent"  # a session keeps the timeouts it began with
    engine.advance(25)
    assert before.session() is None


# -- TTL -----------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_ttl_1_from_client_is_dropped(engine: Engine, family: str) -> None:
    client, vip, _, _ = FAMILIES[family]
    flow = TcpFlow(engine, 40600, client=client, vip=vip)
    assert send(engine, flow.from_client("S", seq=1, ttl=1)) == []
    assert nonzero_drops(engine) == {"ttl_exceeded": 1}
    assert engine.sessions() == []
    # TTL 2 goes through, leaving with TTL 1.
    out = flow.syn()
    assert ttl_of(out) == 63
    out = flow.to_real(flow.from_client("S", seq=1000, ttl=2))
    assert ttl_of(out) == 1


@pytest.mark.parametrize("family", FAMILIES)
def test_ttl_1_from_real_is_dropped(engine: Engine, family: str) -> None:
    client, vip, _, _ = FAMILIES[family]
    flow = TcpFlow(engine, 40601, client=client, vip=vip)
    flow.handshake()
    assert send(engine, flow.from_real("PA", seq=5001, ack=1001, payload=b"x", ttl=1), 1) == []
    assert nonzero_drops(engine) == {"ttl_exceeded": 1}
    out = flow.to_client(flow.from_real("PA", seq=5001, ack=1001, payload=b"x", ttl=2))
    assert ttl_of(out) == 1
    assert bytes(out[TCP].payload) == b"x"


# -- port reuse by the client --------------------------------------------------------


def test_new_syn_on_time_wait_session_starts_a_new_session(engine: Engine) -> None:
    old = TcpFlow(engine, 40700)
    old.handshake()
    old.to_real(old.from_client("FA", seq=1001, ack=5001))
    old.to_client(old.from_real("FA", seq=5001, ack=1002))
    assert state(old) == "time_wait"

    new = TcpFlow(engine, 40700)
    out = new.syn(seq=900_000)
    assert out[TCP].flags == "S"
    assert out[TCP].seq == 900_000
    (session,) = engine.sessions()
    assert session["state"] == "syn_sent"
    assert session["local"] == (new.local, new.local_port)
    # A new local port: the old one rests for the reuse delay.
    assert new.local_port != old.local_port
    total = engine.stats()["total"]
    assert (total["sessions_created"], total["sessions_expired"]) == (2, 1)

    # The new connection works; the old local tuple is forgotten.
    new.to_client(new.from_real("SA", seq=123, ack=900_001))
    new.to_real(new.from_client("A", seq=900_001, ack=124))
    assert state(new) == "established"
    assert send(engine, old.from_real("A", seq=5002, ack=1002), 1) == []
    assert nonzero_drops(engine) == {"no_session": 1}


def test_syn_retransmit_keeps_the_session(engine: Engine) -> None:
    flow = TcpFlow(engine, 40701)
    flow.syn()
    again = flow.to_real(flow.from_client("S", seq=1000))
    assert again[TCP].seq == 1000
    assert len(engine.sessions()) == 1
    assert engine.stats()["total"]["sessions_created"] == 1


def test_syn_on_an_established_session_does_not_replace_it(engine: Engine) -> None:
    flow = TcpFlow(engine, 40702)
    flow.handshake()
    flow.to_real(flow.from_client("S", seq=777))
    assert state(flow) == "established"
    assert engine.stats()["total"]["sessions_created"] == 1


def test_payload_is_forwarded_byte_for_byte(engine: Engine) -> None:
    flow = TcpFlow(engine, 40800)
    flow.handshake()
    blob = bytes(range(256)) * 5
    out = flow.to_real(flow.from_client("PA", seq=1001, ack=5001, payload=blob))
    assert bytes(out[Raw]) == blob
    out = flow.to_client(flow.from_real("PA", seq=5001, ack=1001 + len(blob), payload=blob[::-1]))
    assert bytes(out[Raw]) == blob[::-1]


def test_ecn_setup_syn_opens_a_session(engine: Engine) -> None:
    # SYN with ECE and CWR (RFC 3168) is still a connection request.
    flow = TcpFlow(engine, 40900)
    _, out = send_one(engine, flow.from_client("SEC", seq=1000))
    assert out[TCP].flags == "SEC"
    assert state(flow) == "syn_sent"


def test_tcp_checksum_that_computes_to_zero() -> None:
    # The rewritten segment sums to all ones, so its checksum is 0x0000; an incremental
    # update must give the same as a full computation (not 0xffff).
    engine = make_engine(local_ports={"first": 20000, "last": 20000})
    expected = IP(src=LOCAL4, dst="10.0.2.11") / TCP(
        sport=20000, dport=8080, flags="S", seq=1000, window=8192
    )
    word = Ether(bytes(Ether() / expected / b"\x00\x00"))[TCP].chksum
    flow = TcpFlow(engine, 41000)
    _, out = send_one(engine, flow.from_client("S", seq=1000, payload=word.to_bytes(2, "big")))
    assert (ip_layer(out).dst, out[TCP].sport) == ("10.0.2.11", 20000)
    assert out[TCP].chksum == 0
