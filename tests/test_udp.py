"""UDP through full-NAT: a request rewritten toward the real, the reply translated back to
the client, checksums (including IPv4's "no checksum" zero) and the udp timeout."""

from __future__ import annotations

from ipaddress import ip_address

import pytest
from scapy.layers.inet import UDP
from scapy.packet import Packet
from scapy.utils import checksum

from conftest import (
    CLIENT4,
    CLIENT6,
    CLIENT_GW_MAC,
    REAL_MACS,
    VIP4,
    VIP6,
    client_frame,
    drops,
    ip_layer,
    make_engine,
    node_config,
    nonzero_drops,
    real_frame,
    send,
    send_one,
    session_of,
    ttl_of,
)
from dplb import Engine

LOCAL4, LOCAL6 = node_config()["dataplane"]["ports"][1]["local_addresses"][0]
QUERY = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x04test\x00\x00\x01\x00\x01"
ANSWER = QUERY[:2] + b"\x81\x80" + QUERY[4:] + b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x0e\x10\x00\x04"


def udp_services() -> list[dict[str, object]]:
    """The default services plus a UDP service on the IPv6 VIP."""
    services = node_config()["services"]
    services.append(
        {
            "vip": VIP6,
            "port": 53,
            "protocol": "udp",
            "scheduler": "rr",
            "reals": [{"address": "2001:db8:2::12", "port": 5353}],
        }
    )
    return services


# family -> (client, VIP, real, local address)
FAMILIES = {
    "ipv4": (CLIENT4, VIP4, "10.0.2.13", LOCAL4),
    "ipv6": (CLIENT6, VIP6, "2001:db8:2::12", LOCAL6),
}


@pytest.fixture
def udp_engine() -> Engine:
    return make_engine(services=udp_services())


def request(client: str, vip: str, sport: int = 33333, payload: bytes = QUERY) -> Packet:
    frame: Packet = client_frame(client, vip) / UDP(sport=sport, dport=53) / payload
    return frame


@pytest.mark.parametrize("family", FAMILIES)
def test_request_and_reply(udp_engine: Engine, family: str) -> None:
    engine = udp_engine
    client, vip, real, local = FAMILIES[family]

    # Request in -> toward the real from a local address and port.
    out_port, out = send_one(engine, request(client, vip))
    assert out_port == 1
    ip = ip_layer(out)
    assert (out.src, out.dst) == (engine.port_mac("port1"), REAL_MACS[real])
    assert (ip.src, ip.dst) == (local, real)
    assert ttl_of(out) == 63
    udp = out[UDP]
    assert udp.dport == 5353
    assert 1024 <= udp.sport <= 65535
    assert udp.len == 8 + len(QUERY)
    assert udp.chksum != 0  # recomputed and checked by send()
    assert bytes(udp.payload) == QUERY
    lport = udp.sport
    session = session_of(engine, client, 33333, "udp")
    assert session is not None
    assert session["local"] == (local, lport)
    assert session["real"] == (real, 5353)
    assert session["state"] == "none"
    assert session["expires_in"] == pytest.approx(300)

    # Reply from the real to the local address -> to the client from VIP:53.
    reply = real_frame(real, local) / UDP(sport=5353, dport=lport) / ANSWER
    out_port, out = send_one(engine, reply, 1)
    assert out_port == 0
    ip = ip_layer(out)
    assert (out.src, out.dst) == (engine.port_mac("port0"), CLIENT_GW_MAC)
    assert (ip.src, ip.dst) == (vip, client)
    assert ttl_of(out) == 63
    udp = out[UDP]
    assert (udp.sport, udp.dport) == (53, 33333)
    assert udp.len == 8 + len(ANSWER)
    assert bytes(udp.payload) == ANSWER

    # A second request from the same client port uses the same session and local port.
    _, out = send_one(engine, request(client, vip, payload=b"again"))
    assert (ip_layer(out).src, out[UDP].sport) == (local, lport)
    assert bytes(out[UDP].payload) == b"again"
    session = session_of(engine, client, 33333, "udp")
    assert session is not None
    sizes_in = len(request(client, vip)) + len(request(client, vip, payload=b"again"))
    assert (session["bytes_in"], session["bytes_out"]) == (sizes_in, len(reply))
    assert len(engine.sessions()) == 1
    assert nonzero_drops(engine) == {}


@pytest.mark.parametrize("family", FAMILIES)
def test_session_expires_after_udp_timeout(udp_engine: Engine, family: str) -> None:
    engine = udp_engine
    client, vip, real, local = FAMILIES[family]
    _, out = send_one(engine, request(client, vip))
    lport = out[UDP].sport
    engine.advance(200)
    # The reply refreshes the session.
    send_one(engine, real_frame(real, local) / UDP(sport=5353, dport=lport) / ANSWER, 1)
    engine.advance(299)
    assert session_of(engine, client, 33333, "udp") is not None
    engine.advance(1)
    assert session_of(engine, client, 33333, "udp") is None
    assert engine.stats()["total"]["sessions_expired"] == 1
    # A late reply finds no session; a new request starts a new one.
    reply = real_frame(real, local) / UDP(sport=5353, dport=lport) / ANSWER
    assert send(engine, reply, 1) == []
    assert drops(engine)["no_session"] == 1
    send_one(engine, request(client, vip))
    assert engine.stats()["total"]["sessions_created"] == 2


def test_udp_service_timeout_override() -> None:
    services = node_config()["services"]
    services[1]["timeouts"] = {"udp": 15}
    engine = make_engine(services=services)
    send_one(engine, request(CLIENT4, VIP4))
    engine.advance(14)
    assert session_of(engine, CLIENT4, 33333, "udp") is not None
    engine.advance(1)
    assert session_of(engine, CLIENT4, 33333, "udp") is None


def test_ipv4_zero_checksum_stays_zero(engine: Engine) -> None:
    frame = client_frame() / UDP(sport=33334, dport=53, chksum=0) / QUERY
    _, out = send_one(engine, frame)
    assert out[UDP].chksum == 0
    assert bytes(out[UDP].payload) == QUERY
    lport = out[UDP].sport
    reply = real_frame("10.0.2.13", LOCAL4) / UDP(sport=5353, dport=lport, chksum=0) / ANSWER
    _, out = send_one(engine, reply, 1)
    assert out[UDP].chksum == 0
    assert (out[UDP].sport, out[UDP].dport) == (53, 33334)
    assert bytes(out[UDP].payload) == ANSWER


def test_checksum_that_computes_to_zero_is_sent_as_ffff() -> None:
    # RFC 768: a computed UDP checksum of zero is sent as all ones, since zero on IPv4
    # means "no checksum". Choose the payload so the rewritten datagram sums to zero.
    engine = make_engine(local_ports={"first": 20000, "last": 20000})
    pseudo_and_udp = (
        ip_address(LOCAL4).packed
        + ip_address("10.0.2.13").packed
        + b"\x00\x11\x00\x0a"  # zero, protocol 17, UDP length 10
        + (20000).to_bytes(2, "big")
        + (5353).to_bytes(2, "big")
        + b"\x00\x0a\x00\x00"  # length 10, checksum 0
        + b"\x00\x00"  # the payload word, to be chosen
    )
    word = checksum(pseudo_and_udp)  # the complement of the sum without the word
    payload = word.to_bytes(2, "big")
    _, out = send_one(engine, client_frame() / UDP(sport=33335, dport=53) / payload)
    assert out[UDP].sport == 20000
    assert out[UDP].chksum == 0xFFFF


def test_udp_to_a_port_with_no_service_goes_to_control(engine: Engine) -> None:
    frame = client_frame() / UDP(sport=33336, dport=54) / QUERY
    result = engine.trace(bytes(frame))
    assert result["verdict"] == "control"
    assert result["sent"] == []
    assert engine.sessions() == []
    assert engine.stats()["total"]["to_control"] == 1
