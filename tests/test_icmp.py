"""ICMP errors about a session (DESIGN section 3): translated like the session's own
packets, the quoted packet included, so each end sees an error about the packet exactly
as IT sent it. The real's side: outer laddr -> real, quoted real:rport -> laddr:lport. The
client's side: outer VIP -> client, quoted client:cport -> VIP:vport. Every checksum is
recomputed, the quoted ones too. Errors about no session are dropped and counted; ICMP
that is not an error goes to the control path."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoRequest,
    ICMPv6PacketTooBig,
    ICMPv6TimeExceeded,
    IPv6,
    in6_chksum,
)
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw
from scapy.utils import checksum

from conftest import (
    CLIENT4,
    CLIENT6,
    CLIENT_GW_MAC,
    REAL_MACS,
    VIP4,
    VIP6,
    client_frame,
    make_engine,
    real_frame,
    send,
    send_one,
)
from dplb import DROP_REASONS, Engine
from dplb.engine import harness_mac

PORT0_MAC = harness_mac(0)
PORT1_MAC = harness_mac(1)
ROUTER4 = "203.0.113.1"  # a router on the client's side of the network
ROUTER6 = "2001:db8:99::1"
ROUTER_REAL_SIDE_MAC = "0a:00:00:00:02:fe"
ROUTER_REAL_SIDE4 = "10.0.2.254"
ROUTER_REAL_SIDE6 = "2001:db8:2::fe"
CLIENT_SEQ = 1000
REAL_SEQ = 5000


@dataclass
class Conversation:
    """A session as both ends and dplb see it: what each end sent and what left dplb."""

    client: str
    cport: int
    vip: str
    vport: int
    laddr: str
    lport: int
    real: str
    rport: int
    from_client: Packet  # the client's packet, as it sent it
    to_real: Packet  # that packet as it left dplb
    from_real: Packet  # the real's reply, as it sent it
    to_client: Packet  # that reply as it left dplb

    @property
    def ipv6(self) -> bool:
        return ":" in self.vip


def l3(pkt: Packet) -> Packet:
    return pkt[IPv6] if IPv6 in pkt else pkt[IP]


def open_tcp(
    engine: Engine, client: str = CLIENT4, vip: str = VIP4, cport: int = 40000
) -> Conversation:
    """Client SYN -> real, real SYN-ACK -> client."""
    syn = Ether(
        bytes(client_frame(client, vip) / TCP(sport=cport, dport=80, flags="S", seq=CLIENT_SEQ))
    )
    port, to_real = send_one(engine, syn)
    assert port == 1
    laddr, real = l3(to_real).src, l3(to_real).dst
    lport, rport = to_real[TCP].sport, to_real[TCP].dport
    synack = Ether(
        bytes(
            real_frame(real, laddr)
            / TCP(sport=rport, dport=lport, flags="SA", seq=REAL_SEQ, ack=CLIENT_SEQ + 1)
        )
    )
    port, to_client = send_one(engine, synack, port=1)
    assert port == 0
    assert to_client[TCP].sport == 80 and to_client[TCP].dport == cport
    return Conversation(
        client, cport, vip, 80, laddr, lport, real, rport, syn, to_real, synack, to_client
    )


def open_udp(engine: Engine, cport: int = 41000) -> Conversation:
    """Client datagram -> real, real's answer -> client."""
    query = Ether(bytes(client_frame() / UDP(sport=cport, dport=53) / Raw(b"query?")))
    port, to_real = send_one(engine, query)
    assert port == 1
    laddr, real = to_real[IP].src, to_real[IP].dst
    lport, rport = to_real[UDP].sport, to_real[UDP].dport
    answer = Ether(bytes(real_frame(real, laddr) / UDP(sport=rport, dport=lport) / Raw(b"answer")))
    port, to_client = send_one(engine, answer, port=1)
    assert port == 0
    return Conversation(
        CLIENT4, cport, VIP4, 53, laddr, lport, real, rport, query, to_real, answer, to_client
    )


def quote(pkt: Packet, length: int | None) -> bytes:
    """The IP packet in `pkt` as an ICMP error quotes it: whole, or its first `length` bytes."""
    raw = bytes(l3(pkt))
    return raw if length is None else raw[:length]


def quoted_in(out: Packet) -> bytes:
    """The quoted packet of an ICMP/ICMPv6 error, read off the outer header's lengths."""
    if IPv6 in out:
        raw = bytes(out[IPv6])
        return raw[48 : 40 + out[IPv6].plen]
    raw = bytes(out[IP])
    return raw[out[IP].ihl * 4 + 8 : out[IP].len]


def assert_outer_icmp_checksum(out: Packet) -> None:
    if IPv6 in out:
        raw = bytearray(bytes(out[IPv6])[40 : 40 + out[IPv6].plen])
        stored = int.from_bytes(raw[2:4], "big")
        raw[2:4] = b"\x00\x00"
        assert in6_chksum(58, out[IPv6], bytes(raw)) == stored, "ICMPv6 checksum"
    else:
        raw = bytearray(bytes(out[IP])[out[IP].ihl * 4 : out[IP].len])
        stored = int.from_bytes(raw[2:4], "big")
        raw[2:4] = b"\x00\x00"
        assert checksum(bytes(raw)) == stored, "ICMP checksum"


def assert_quoted_ipv4_header_checksum(inner: bytes) -> None:
    header = bytearray(inner[: (inner[0] & 0x0F) * 4])
    stored = int.from_bytes(header[10:12], "big")
    header[10:12] = b"\x00\x00"
    assert checksum(bytes(header)) == stored, "quoted IPv4 header checksum"


def assert_quoted_l4_checksum(inner: bytes, ipv6: bool) -> None:
    """For a wholly quoted packet: its TCP/UDP checksum, recomputed on it, is what it says."""
    pkt = IPv6(inner) if ipv6 else IP(inner)
    layer = pkt[TCP] if TCP in pkt else pkt[UDP]
    stored = layer.chksum
    del layer.chksum
    again = IPv6(bytes(pkt)) if ipv6 else IP(bytes(pkt))
    assert (again[TCP] if TCP in again else again[UDP]).chksum == stored, "quoted L4 checksum"


def assert_no_drops(engine: Engine, **expected: int) -> None:
    total = engine.stats()["total"]
    want = {r: expected.get(r, 0) for r in DROP_REASONS}
    assert total["drops"] == want


def ports_and_seq(inner: bytes, l4_offset: int) -> tuple[int, int, int]:
    """Source port, destination port and (TCP) sequence number of a quoted packet, read
    from its first 8 L4 bytes (scapy will not dissect a TCP header cut at 8 bytes)."""
    l4 = inner[l4_offset : l4_offset + 8]
    return (
        int.from_bytes(l4[0:2], "big"),
        int.from_bytes(l4[2:4], "big"),
        int.from_bytes(l4[4:8], "big"),
    )


def l4_bytes(pkt: Packet) -> bytes:
    """The L4 header and payload of an IP packet (whole or quoted)."""
    layer = pkt[TCP] if TCP in pkt else pkt[UDP]
    return bytes(layer)


# -- (a) the real's side reports: the client gets it about its own packet ---------------

ERRORS_V4 = [
    pytest.param(3, 4, 1400, id="fragmentation_needed"),
    pytest.param(3, 1, 0, id="host_unreachable"),
    pytest.param(11, 0, 0, id="time_exceeded"),
]
QUOTES_V4 = [
    pytest.param(28, id="header_and_8_bytes"),
    pytest.param(None, id="whole_packet"),
]


def icmp4(type_: int, code: int, mtu: int) -> Packet:
    if type_ == 3 and code == 4:
        return ICMP(type=type_, code=code, nexthopmtu=mtu)
    return ICMP(type=type_, code=code)


@pytest.mark.parametrize("quote_len", QUOTES_V4)
@pytest.mark.parametrize(("type_", "code", "mtu"), ERRORS_V4)
def test_error_from_real_side_reaches_client_about_its_own_packet(
    engine: Engine, type_: int, code: int, mtu: int, quote_len: int | None
) -> None:
    c = open_tcp(engine)
    quoted = quote(c.to_real, quote_len)
    error = (
        Ether(src=ROUTER_REAL_SIDE_MAC, dst=PORT1_MAC)
        / IP(src=ROUTER_REAL_SIDE4, dst=c.laddr, ttl=64)
        / icmp4(type_, code, mtu)
        / Raw(quoted)
    )
    error = Ether(bytes(error))
    port, out = send_one(engine, error, port=1)

    assert port == 0
    assert out[Ether].dst == CLIENT_GW_MAC
    assert out[Ether].src == PORT0_MAC
    assert out[IP].src == VIP4
    assert out[IP].dst == CLIENT4
    assert out[IP].ttl == 63
    assert out[IP].proto == 1
    assert out[IP].len == error[IP].len
    assert out[ICMP].type == type_
    assert out[ICMP].code == code
    if mtu:
        assert out[ICMP].nexthopmtu == mtu
    assert_outer_icmp_checksum(out)

    inner = quoted_in(out)
    assert len(inner) == len(quoted)
    assert_quoted_ipv4_header_checksum(inner)
    ip = IP(inner)
    assert ip.src == CLIENT4
    assert ip.dst == VIP4
    assert ip.proto == 6
    assert ip.len == c.to_real[IP].len
    assert ip.id == c.to_real[IP].id
    assert ip.ttl == c.to_real[IP].ttl
    client_tcp = l4_bytes(c.from_client)
    assert inner[20:28] == client_tcp[:8]  # sport, dport, seq: what the client's stack matches
    assert ports_and_seq(inner, 20) == (c.cport, 80, CLIENT_SEQ)
    if quote_len is None:
        assert inner[20:] == client_tcp  # the client's TCP header, checksum and all
        assert_quoted_l4_checksum(inner, ipv6=False)

    total = engine.stats()["total"]
    assert total["icmp_translated"] == 1
    assert_no_drops(engine)


# -- (b) the client's side reports: the real gets it about its own packet ---------------


@pytest.mark.parametrize("quote_len", QUOTES_V4)
@pytest.mark.parametrize(("type_", "code", "mtu"), ERRORS_V4)
def test_error_from_client_side_reaches_real_about_its_own_packet(
    engine: Engine, type_: int, code: int, mtu: int, quote_len: int | None
) -> None:
    c = open_tcp(engine)
    quoted = quote(c.to_client, quote_len)
    error = (
        Ether(src=CLIENT_GW_MAC, dst=PORT0_MAC)
        / IP(src=ROUTER4, dst=VIP4, ttl=250)
        / icmp4(type_, code, mtu)
        / Raw(quoted)
    )
    error = Ether(bytes(error))
    port, out = send_one(engine, error, port=0)

    assert port == 1
    assert out[Ether].dst == REAL_MACS[c.real]
    assert out[Ether].src == PORT1_MAC
    assert out[IP].src == c.laddr
    assert out[IP].dst == c.real
    assert out[IP].ttl == 249
    assert out[IP].len == error[IP].len
    assert out[ICMP].type == type_
    assert out[ICMP].code == code
    if mtu:
        assert out[ICMP].nexthopmtu == mtu
    assert_outer_icmp_checksum(out)

    inner = quoted_in(out)
    assert len(inner) == len(quoted)
    assert_quoted_ipv4_header_checksum(inner)
    ip = IP(inner)
    # The packet as the REAL sent it: real:rport -> laddr:lport.
    assert ip.src == c.real
    assert ip.dst == c.laddr
    assert ip.proto == 6
    real_tcp = l4_bytes(c.from_real)
    assert inner[20:28] == real_tcp[:8]
    assert ports_and_seq(inner, 20) == (c.rport, c.lport, REAL_SEQ)
    assert c.rport == 8080
    if quote_len is None:
        assert inner[20:] == real_tcp
        assert_quoted_l4_checksum(inner, ipv6=False)
    assert engine.stats()["total"]["icmp_translated"] == 1
    assert_no_drops(engine)


# -- a UDP session ----------------------------------------------------------------------


def test_port_unreachable_about_a_udp_session_reaches_client(engine: Engine) -> None:
    c = open_udp(engine)
    error = real_frame(c.real, c.laddr) / ICMP(type=3, code=3) / Raw(quote(c.to_real, None))
    port, out = send_one(engine, error, port=1)
    assert port == 0
    assert out[Ether].dst == CLIENT_GW_MAC
    assert out[IP].src == VIP4
    assert out[IP].dst == CLIENT4
    assert out[ICMP].type == 3
    assert out[ICMP].code == 3
    assert_outer_icmp_checksum(out)
    inner = quoted_in(out)
    assert_quoted_ipv4_header_checksum(inner)
    ip = IP(inner)
    assert ip.src == CLIENT4
    assert ip.dst == VIP4
    assert ip[UDP].sport == c.cport
    assert ip[UDP].dport == 53
    assert bytes(ip[UDP].payload) == b"query?"
    assert inner[20:] == l4_bytes(c.from_client)
    assert_quoted_l4_checksum(inner, ipv6=False)


def test_quoted_udp_without_checksum_keeps_none(engine: Engine) -> None:
    query = client_frame() / UDP(sport=41001, dport=53, chksum=0) / Raw(b"no checksum")
    port, to_real = send_one(engine, query)
    assert to_real[UDP].chksum == 0
    error = (
        real_frame(to_real[IP].dst, to_real[IP].src)
        / ICMP(type=3, code=3)
        / Raw(bytes(to_real[IP]))
    )
    port, out = send_one(engine, error, port=1)
    assert port == 0
    assert_outer_icmp_checksum(out)
    inner = quoted_in(out)
    assert_quoted_ipv4_header_checksum(inner)
    assert IP(inner).src == CLIENT4
    assert ports_and_seq(inner, 20)[:2] == (41001, 53)
    assert inner[26:28] == b"\x00\x00"  # IPv4 UDP checksum 0 means none: not made up


def test_error_from_client_side_about_a_udp_session_reaches_real(engine: Engine) -> None:
    c = open_udp(engine)
    error = (
        Ether(src=CLIENT_GW_MAC, dst=PORT0_MAC)
        / IP(src=ROUTER4, dst=VIP4)
        / ICMP(type=11, code=0)
        / Raw(quote(c.to_client, None))
    )
    port, out = send_one(engine, error)
    assert port == 1
    assert out[IP].src == c.laddr
    assert out[IP].dst == c.real
    inner = quoted_in(out)
    assert_quoted_ipv4_header_checksum(inner)
    ip = IP(inner)
    assert (ip.src, ip[UDP].sport) == (c.real, c.rport)
    assert (ip.dst, ip[UDP].dport) == (c.laddr, c.lport)
    assert inner[20:] == l4_bytes(c.from_real)
    assert_quoted_l4_checksum(inner, ipv6=False)


# -- (c) IPv6 ---------------------------------------------------------------------------

QUOTES_V6 = [
    pytest.param(48, id="header_and_8_bytes"),
    pytest.param(None, id="whole_packet"),
]
ERRORS_V6 = [
    pytest.param(ICMPv6PacketTooBig(mtu=1280), id="packet_too_big"),
    pytest.param(ICMPv6DestUnreach(code=3), id="address_unreachable"),
    pytest.param(ICMPv6TimeExceeded(code=0), id="time_exceeded"),
]


@pytest.mark.parametrize("quote_len", QUOTES_V6)
@pytest.mark.parametrize("icmp", ERRORS_V6)
def test_icmpv6_error_from_real_side_reaches_client(
    engine: Engine, icmp: Packet, quote_len: int | None
) -> None:
    c = open_tcp(engine, CLIENT6, VIP6)
    quoted = quote(c.to_real, quote_len)
    error = (
        Ether(src=ROUTER_REAL_SIDE_MAC, dst=PORT1_MAC)
        / IPv6(src=ROUTER_REAL_SIDE6, dst=c.laddr, hlim=64)
        / icmp.copy()
        / Raw(quoted)
    )
    error = Ether(bytes(error))
    port, out = send_one(engine, error, port=1)

    assert port == 0
    assert out[Ether].dst == CLIENT_GW_MAC
    assert out[Ether].src == PORT0_MAC
    assert out[IPv6].src == VIP6
    assert out[IPv6].dst == CLIENT6
    assert out[IPv6].hlim == 63
    assert out[IPv6].nh == 58
    assert out[IPv6].plen == error[IPv6].plen
    assert bytes(out[IPv6])[40:42] == bytes(icmp)[:2]  # type, code
    if isinstance(icmp, ICMPv6PacketTooBig):
        assert out[ICMPv6PacketTooBig].mtu == 1280
    assert_outer_icmp_checksum(out)

    inner = quoted_in(out)
    assert len(inner) == len(quoted)
    ip = IPv6(inner)
    assert ip.src == CLIENT6
    assert ip.dst == VIP6
    assert ip.nh == 6
    assert ip.plen == c.to_real[IPv6].plen
    client_tcp = l4_bytes(c.from_client)
    assert inner[40:48] == client_tcp[:8]
    assert ports_and_seq(inner, 40) == (c.cport, 80, CLIENT_SEQ)
    if quote_len is None:
        assert inner[40:] == client_tcp
        assert_quoted_l4_checksum(inner, ipv6=True)
    assert engine.stats()["total"]["icmp_translated"] == 1
    assert_no_drops(engine)


@pytest.mark.parametrize("quote_len", QUOTES_V6)
@pytest.mark.parametrize("icmp", ERRORS_V6)
def test_icmpv6_error_from_client_side_reaches_real(
    engine: Engine, icmp: Packet, quote_len: int | None
) -> None:
    c = open_tcp(engine, CLIENT6, VIP6)
    quoted = quote(c.to_client, quote_len)
    error = Ether(
        bytes(
            Ether(src=CLIENT_GW_MAC, dst=PORT0_MAC)
            / IPv6(src=ROUTER6, dst=VIP6, hlim=64)
            / icmp.copy()
            / Raw(quoted)
        )
    )
    port, out = send_one(engine, error, port=0)

    assert port == 1
    assert out[Ether].dst == REAL_MACS[c.real]
    assert out[Ether].src == PORT1_MAC
    assert out[IPv6].src == c.laddr
    assert out[IPv6].dst == c.real
    assert out[IPv6].hlim == 63
    assert bytes(out[IPv6])[40:42] == bytes(icmp)[:2]
    assert_outer_icmp_checksum(out)

    inner = quoted_in(out)
    assert len(inner) == len(quoted)
    ip = IPv6(inner)
    assert ip.src == c.real
    assert ip.dst == c.laddr
    real_tcp = l4_bytes(c.from_real)
    assert inner[40:48] == real_tcp[:8]
    assert ports_and_seq(inner, 40) == (c.rport, c.lport, REAL_SEQ)
    if quote_len is None:
        assert inner[40:] == real_tcp
        assert_quoted_l4_checksum(inner, ipv6=True)
    assert_no_drops(engine)


# -- (d) errors about no session --------------------------------------------------------


def error_from_real_side(inner: Packet, icmp: Packet | None = None) -> Packet:
    ipv6 = IPv6 in inner
    outer = (
        IPv6(src=ROUTER_REAL_SIDE6, dst=inner[IPv6].src)
        if ipv6
        else IP(src=ROUTER_REAL_SIDE4, dst=inner[IP].src)
    )
    if icmp is None:
        icmp = ICMPv6DestUnreach(code=1) if ipv6 else ICMP(type=3, code=1)
    return Ether(src=ROUTER_REAL_SIDE_MAC, dst=PORT1_MAC) / outer / icmp / Raw(bytes(inner))


def error_from_client_side(inner: Packet) -> Packet:
    return (
        Ether(src=CLIENT_GW_MAC, dst=PORT0_MAC)
        / IP(src=ROUTER4, dst=inner[IP].src)
        / ICMP(type=3, code=1)
        / Raw(bytes(inner))
    )


NO_SESSION = [
    pytest.param(
        error_from_real_side(IP(src="10.0.2.101", dst="10.0.2.11") / TCP(sport=40001, dport=8080)),
        id="tcp_from_real_side",
    ),
    pytest.param(
        error_from_real_side(IP(src="10.0.2.101", dst="10.0.2.13") / UDP(sport=40001, dport=5353)),
        id="udp_from_real_side",
    ),
    pytest.param(
        error_from_real_side(
            IPv6(src="2001:db8:2::101", dst="2001:db8:2::11") / TCP(sport=40001, dport=8080)
        ),
        id="ipv6_tcp_from_real_side",
    ),
    pytest.param(
        error_from_client_side(IP(src=VIP4, dst=CLIENT4) / TCP(sport=80, dport=55555, flags="SA")),
        id="tcp_from_client_side",
    ),
    pytest.param(
        error_from_real_side(IP(src="10.0.2.101", dst="10.0.2.11") / ICMP(type=8)),
        id="quotes_icmp",
    ),
    pytest.param(
        error_from_real_side(IP(src="10.0.2.101", dst="10.0.2.11", proto=6) / Raw(b"\x9c\x40\x1f")),
        id="quoted_tcp_shorter_than_8_bytes",
    ),
    pytest.param(
        error_from_real_side(IP(src="10.0.2.101", dst="10.0.2.11", ihl=4) / TCP(dport=8080)),
        id="quoted_header_malformed",
    ),
]


@pytest.mark.parametrize("error", NO_SESSION)
def test_error_about_no_session_is_dropped(engine: Engine, error: Packet) -> None:
    port = 0 if error[Ether].src == CLIENT_GW_MAC else 1
    assert send(engine, error, port=port) == []
    assert_no_drops(engine, icmp_no_session=1)
    total = engine.stats()["total"]
    assert total["tx_packets"] == 0
    assert total["to_control"] == 0
    assert total["icmp_translated"] == 0


def test_error_about_another_port_of_a_session_is_dropped(engine: Engine) -> None:
    c = open_tcp(engine)
    inner = IP(src=c.laddr, dst=c.real) / TCP(sport=c.lport + 1, dport=c.rport)
    assert send(engine, error_from_real_side(inner), port=1) == []
    assert_no_drops(engine, icmp_no_session=1)


def test_error_about_an_expired_session_is_dropped(engine: Engine) -> None:
    c = open_tcp(engine)
    error = error_from_real_side(Ether(bytes(c.to_real))[IP])
    engine.advance(24 * 3600)
    assert engine.sessions() == []
    assert send(engine, error, port=1) == []
    assert_no_drops(engine, icmp_no_session=1)


def test_error_whose_ttl_would_reach_zero_is_dropped(engine: Engine) -> None:
    c = open_tcp(engine)
    error = error_from_real_side(Ether(bytes(c.to_real))[IP])
    error[IP].ttl = 1
    assert send(engine, error, port=1) == []
    assert_no_drops(engine, ttl_exceeded=1)


def test_error_about_the_nodes_own_traffic_goes_to_control(engine: Engine) -> None:
    # The port address talks BGP and answers health checks: not a session of dplb's.
    inner = IP(src="10.0.1.1", dst="10.0.1.254") / TCP(sport=179, dport=40000)
    error = (
        Ether(src=CLIENT_GW_MAC, dst=PORT0_MAC)
        / IP(src=ROUTER4, dst="10.0.1.1")
        / ICMP(type=3, code=4, nexthopmtu=1300)
        / Raw(bytes(inner))
    )
    assert engine.trace(bytes(error))["verdict"] == "control"
    assert_no_drops(engine)
    assert engine.stats()["total"]["to_control"] == 1


# -- (e) ICMP that is not an error ------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(client_frame() / ICMP(type=8, id=7, seq=1) / Raw(b"ping"), id="echo_request"),
        pytest.param(
            client_frame(CLIENT6, VIP6) / ICMPv6EchoRequest(id=7, seq=1) / Raw(b"ping"),
            id="icmpv6_echo_request",
        ),
    ],
)
def test_echo_request_to_the_vip_goes_to_control(engine: Engine, frame: Packet) -> None:
    assert engine.trace(bytes(frame))["verdict"] == "control"
    assert send(engine, frame) == []
    total = engine.stats()["total"]
    assert total["to_control"] == 2
    assert total["tx_packets"] == 0
    assert total["icmp_translated"] == 0
    assert_no_drops(engine)


# -- more workers: the error reaches the session's owner --------------------------------


def test_error_arriving_at_another_worker_is_handed_to_the_owner() -> None:
    engine = make_engine(workers=2)
    c = open_tcp(engine)
    owner = next(s["worker"] for s in engine.sessions())
    other = 1 - owner
    error = Ether(
        bytes(
            real_frame(c.real, c.laddr)
            / ICMP(type=3, code=4, nexthopmtu=1400)
            / Raw(quote(c.to_real, None))
        )
    )
    before = engine.stats()["workers"]
    result = engine.trace(bytes(error), 1, other)
    assert result["workers"] == [other, owner]
    assert result["verdict"] == "transmit"
    [(port, raw)] = result["sent"]
    assert port == 0
    out = Ether(raw)
    assert out[IP].src == VIP4
    assert out[IP].dst == CLIENT4
    inner = quoted_in(out)
    assert IP(inner).src == CLIENT4
    assert inner[20:] == l4_bytes(c.from_client)
    stats = engine.stats()["workers"]
    assert stats[other]["handed_over"] == before[other]["handed_over"] + 1
    assert stats[owner]["handed_in"] == before[owner]["handed_in"] + 1
    assert stats[owner]["icmp_translated"] == 1
    assert stats[other]["icmp_translated"] == 0
