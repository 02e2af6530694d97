"""TOA (DESIGN section 5): TCP option 254 with the client's port and address, 8 bytes for
IPv4 and 20 for IPv6, in the ACK that completes the handshake toward the real (and in
every later client segment until the real shows it is established, so that a lost ACK
does not lose the address). dplb grows those segments, whose size the real's MSS sets:
the real's SYN-ACK reaches the client with its MSS lowered by the option's length. With
no room in the option space the segment goes unchanged and `toa_no_room` counts it."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet

from conftest import (
    CLIENT4,
    CLIENT6,
    PLAIN_PORT,
    VIP4,
    VIP6,
    TcpFlow,
    assert_checksums_valid,
    client_address_services,
    ip_layer,
    make_engine,
    nonzero_drops,
    send_one,
)
from dplb import Engine

REAL4, REAL6 = "10.0.2.11", "2001:db8:2::11"
FAMILIES = {"ipv4": (CLIENT4, VIP4, REAL4), "ipv6": (CLIENT6, VIP6, REAL6)}
TOA_LENGTH = {"ipv4": 8, "ipv6": 20}
CLIENT_ISN, REAL_ISN = 1000, 5000

REQUEST = b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n"
GREETING = b"220 mail.example.test ESMTP\r\n"


def services(mode: str = "toa") -> list[dict[str, Any]]:
    return client_address_services(mode)


@pytest.fixture
def engine() -> Engine:
    return make_engine(services=services())


def counters(engine: Engine) -> dict[str, int]:
    total = engine.stats()["total"]
    return {k: total[k] for k in ("toa_inserted", "toa_no_room")}


def expected_toa(client: str, cport: int) -> bytes:
    address = ipaddress.ip_address(client).packed
    return bytes([254, 2 + 2 + len(address)]) + cport.to_bytes(2, "big") + address


def tcp_options_bytes(pkt: Packet) -> bytes:
    raw = bytes(pkt[TCP])
    return raw[20 : pkt[TCP].dataofs * 4]


def l4_length(pkt: Packet) -> int:
    """The TCP segment length the IP header gives."""
    if IPv6 in pkt:
        return int(pkt[IPv6].plen)
    return int(pkt[IP].len) - pkt[IP].ihl * 4


def open_flow(
    engine: Engine, family: str, cport: int = 43210, vport: int = 80, mss: int = 1460
) -> tuple[TcpFlow, Packet]:
    """Client SYN and real SYN-ACK through the engine; returns the flow and the SYN-ACK
    that reached the client. The SYN toward the real keeps the client's options."""
    client, vip, _ = FAMILIES[family]
    flow = TcpFlow(engine, cport, client=client, vip=vip, vip_port=vport)
    syn = flow.from_client("S", seq=CLIENT_ISN)
    syn[TCP].options = [("MSS", mss), ("SAckOK", b""), ("WScale", 7)]
    port, out = send_one(engine, syn)
    assert port == 1
    assert out[TCP].options == Ether(bytes(syn))[TCP].options
    flow.real, flow.real_port = ip_layer(out).dst, out[TCP].dport
    flow.local, flow.local_port = ip_layer(out).src, out[TCP].sport
    synack = flow.from_real("SA", seq=REAL_ISN, ack=CLIENT_ISN + 1)
    synack[TCP].options = [("MSS", mss), ("SAckOK", b""), ("WScale", 7)]
    out = flow.to_client(synack)
    # Only the MSS may change.
    assert out[TCP].options[1:] == Ether(bytes(synack))[TCP].options[1:]
    return flow, out


def assert_has_toa(out: Packet, flow: TcpFlow, family: str, behind: bytes = b"") -> None:
    """The segment carries TOA first among its options, then `behind` (what the client
    sent), field by field."""
    n = TOA_LENGTH[family]
    options = tcp_options_bytes(out)
    assert out[TCP].dataofs == 5 + (n + len(behind)) // 4
    assert options[0] == 254, "option kind"
    assert options[1] == n, "option length"
    assert int.from_bytes(options[2:4], "big") == flow.client_port, "client port"
    assert ipaddress.ip_address(options[4:n]) == ipaddress.ip_address(flow.client), "address"
    assert options[:n] == expected_toa(flow.client, flow.client_port)
    assert options[n:] == behind


@pytest.mark.parametrize("family", FAMILIES)
def test_toa_goes_into_the_ack_that_completes_the_handshake(engine: Engine, family: str) -> None:
    flow, synack = open_flow(engine, family)
    # The real's MSS reaches the client lowered by the option dplb will add; the other
    # options of the SYN-ACK are untouched.
    assert synack[TCP].options[0] == ("MSS", 1460 - TOA_LENGTH[family])
    assert counters(engine) == {"toa_inserted": 0, "toa_no_room": 0}

    out = flow.to_real(flow.from_client("A", seq=CLIENT_ISN + 1, ack=REAL_ISN + 1))
    assert_has_toa(out, flow, family)
    assert (out[TCP].seq, out[TCP].ack, out[TCP].flags) == (CLIENT_ISN + 1, REAL_ISN + 1, "A")
    assert len(out[TCP].payload) == 0
    assert l4_length(out) == 20 + TOA_LENGTH[family]
    assert counters(engine) == {"toa_inserted": 1, "toa_no_room": 0}
    assert flow.session()["state"] == "established"
    assert nonzero_drops(engine) == {}


@pytest.mark.parametrize("family", FAMILIES)
def test_toa_until_the_real_acknowledges_client_data(engine: Engine, family: str) -> None:
    flow, _ = open_flow(engine, family)
    flow.to_real(flow.from_client("A", seq=CLIENT_ISN + 1, ack=REAL_ISN + 1))
    # A bare ACK of ISN + 1 proves nothing (a SYN_RECV socket sends those too).
    out = flow.to_client(flow.from_real("A", seq=REAL_ISN + 1, ack=CLIENT_ISN + 1))
    assert tcp_options_bytes(out) == b""
    # The request may complete the real's handshake if the ACK was lost: it has TOA too.
    request = flow.from_client("PA", seq=CLIENT_ISN + 1, ack=REAL_ISN + 1, payload=REQUEST)
    out = flow.to_real(request)
    assert_has_toa(out, flow, family)
    assert bytes(out[TCP].payload) == REQUEST
    assert (out[TCP].seq, out[TCP].ack) == (CLIENT_ISN + 1, REAL_ISN + 1)
    assert l4_length(out) == 20 + TOA_LENGTH[family] + len(REQUEST)
    # The real acknowledges the request: it is established; TOA stops.
    after = CLIENT_ISN + 1 + len(REQUEST)
    out = flow.to_client(flow.from_real("A", seq=REAL_ISN + 1, ack=after))
    assert out[TCP].ack == after
    out = flow.to_real(flow.from_client("PA", seq=after, ack=REAL_ISN + 1, payload=b"more"))
    assert tcp_options_bytes(out) == b""
    assert bytes(out[TCP].payload) == b"more"
    assert counters(engine) == {"toa_inserted": 2, "toa_no_room": 0}


@pytest.mark.parametrize("family", FAMILIES)
def test_toa_stops_when_the_real_speaks_first(engine: Engine, family: str) -> None:
    flow, _ = open_flow(engine, family)
    flow.to_real(flow.from_client("A", seq=CLIENT_ISN + 1, ack=REAL_ISN + 1))
    out = flow.to_client(
        flow.from_real("PA", seq=REAL_ISN + 1, ack=CLIENT_ISN + 1, payload=GREETING)
    )
    assert bytes(out[TCP].payload) == GREETING
    out = flow.to_real(flow.from_client("A", seq=CLIENT_ISN + 1, ack=REAL_ISN + 1 + len(GREETING)))
    assert tcp_options_bytes(out) == b""
    assert counters(engine) == {"toa_inserted": 1, "toa_no_room": 0}


@pytest.mark.parametrize("family", FAMILIES)
def test_toa_again_when_the_handshake_ack_was_lost(engine: Engine, family: str) -> None:
    flow, _ = open_flow(engine, family)
    flow.to_real(flow.from_client("A", seq=CLIENT_ISN + 1, ack=REAL_ISN + 1))  # lost
    # The real, still in SYN_RECV, sends its SYN-ACK again; the client ACKs again.
    again = flow.from_real("SA", seq=REAL_ISN, ack=CLIENT_ISN + 1)
    again[TCP].options = [("MSS", 1460)]
    out = flow.to_client(again)
    assert out[TCP].options[0] == ("MSS", 1460 - TOA_LENGTH[family])
    out = flow.to_real(flow.from_client("A", seq=CLIENT_ISN + 1, ack=REAL_ISN + 1))
    assert_has_toa(out, flow, family)
    assert counters(engine) == {"toa_inserted": 2, "toa_no_room": 0}


@pytest.mark.parametrize("family", FAMILIES)
def test_toa_keeps_the_options_the_client_sent(engine: Engine, family: str) -> None:
    flow, _ = open_flow(engine, family)
    ack = flow.from_client("PA", seq=CLIENT_ISN + 1, ack=REAL_ISN + 1, payload=REQUEST)
    ack[TCP].options = [("NOP", None), ("NOP", None), ("Timestamp", (111, 222))]
    sent_options = tcp_options_bytes(Ether(bytes(ack)))
    assert len(sent_options) == 12
    out = flow.to_real(ack)
    assert_has_toa(out, flow, family, behind=sent_options)
    assert out[TCP].options[-1] == ("Timestamp", (111, 222))
    assert bytes(out[TCP].payload) == REQUEST


@pytest.mark.parametrize(
    ("family", "option_bytes", "fits"),
    [
        pytest.param("ipv4", 32, True, id="ipv4-32-bytes-of-options-fit"),
        pytest.param("ipv4", 36, False, id="ipv4-36-bytes-of-options-no-room"),
        pytest.param("ipv6", 20, True, id="ipv6-20-bytes-of-options-fit"),
        pytest.param("ipv6", 24, False, id="ipv6-24-bytes-of-options-no-room"),
    ],
)
def test_toa_needs_room_in_the_option_space(
    engine: Engine, family: str, option_bytes: int, fits: bool
) -> None:
    flow, _ = open_flow(engine, family)
    ack = flow.from_client("A", seq=CLIENT_ISN + 1, ack=REAL_ISN + 1)
    # Timestamps (12 bytes with their NOPs), SACK blocks (2 + 8 per block), NOPs to fill.
    options: list[tuple[str, object]] = [("NOP", None), ("NOP", None), ("Timestamp", (1, 2))]
    rest = option_bytes - 12
    blocks = (rest - 2) // 8
    if blocks > 0:
        edges = tuple(x for b in range(blocks) for x in (6000 + 100 * b, 6050 + 100 * b))
        options.append(("SAck", edges))
        rest -= 2 + 8 * blocks
    ack[TCP].options = options + [("NOP", None)] * rest
    sent = Ether(bytes(ack))
    assert len(tcp_options_bytes(sent)) == option_bytes
    out = flow.to_real(ack)
    if fits:
        assert_has_toa(out, flow, family, behind=tcp_options_bytes(sent))
        assert counters(engine) == {"toa_inserted": 1, "toa_no_room": 0}
        return
    # No room: the segment goes as it came (but for the full-NAT rewrite) and is counted.
    assert tcp_options_bytes(out) == tcp_options_bytes(sent)
    assert out[TCP].dataofs == sent[TCP].dataofs
    assert l4_length(out) == l4_length(sent)
    assert counters(engine) == {"toa_inserted": 0, "toa_no_room": 1}
    assert nonzero_drops(engine) == {}
    # The next segment with room carries it: the real is not established yet.
    out = flow.to_real(
        flow.from_client("PA", seq=CLIENT_ISN + 1, ack=REAL_ISN + 1, payload=REQUEST)
    )
    assert_has_toa(out, flow, family)
    assert counters(engine) == {"toa_inserted": 1, "toa_no_room": 1}


def test_toa_with_ethernet_padding(engine: Engine) -> None:
    # A 54-byte ACK arrives padded to the 60-byte Ethernet minimum; the padding is not
    # part of the IP packet and must not end up behind the grown segment.
    flow, _ = open_flow(engine, "ipv4")
    raw = bytes(flow.from_client("A", seq=CLIENT_ISN + 1, ack=REAL_ISN + 1))
    assert len(raw) == 54
    ((port, out_raw),) = engine.process(raw + b"\x00" * 6, 0)
    assert port == 1
    assert len(out_raw) == 54 + 8
    out = Ether(out_raw)
    assert_checksums_valid(out)
    assert_has_toa(out, flow, "ipv4")
    assert out[IP].len == 48


def test_full_sized_segment_with_toa_fits_the_mtu(engine: Engine) -> None:
    # The client sizes its segments by the MSS it was told: 1452 for a 1500-byte MTU.
    flow, synack = open_flow(engine, "ipv4")
    mss = synack[TCP].options[0][1]
    out = flow.to_real(
        flow.from_client("PA", seq=CLIENT_ISN + 1, ack=REAL_ISN + 1, payload=b"x" * mss)
    )
    assert_has_toa(out, flow, "ipv4")
    assert out[IP].len == 1500


def test_a_bad_checksum_stays_bad(engine: Engine) -> None:
    # dplb updates checksums incrementally: a corrupt segment is not made to look right.
    flow, _ = open_flow(engine, "ipv4")
    ack = Ether(bytes(flow.from_client("PA", seq=CLIENT_ISN + 1, ack=REAL_ISN + 1, payload=b"x")))
    ack[TCP].chksum ^= 0x1234
    ((_, out_raw),) = engine.process(bytes(ack), 0)
    out = Ether(out_raw)
    assert tcp_options_bytes(out)[:1] == b"\xfe"
    stored = out[TCP].chksum
    del out[TCP].chksum
    assert Ether(bytes(out))[TCP].chksum != stored


def test_synack_without_mss_is_left_alone(engine: Engine) -> None:
    client, vip, _ = FAMILIES["ipv4"]
    flow = TcpFlow(engine, 43211, client=client, vip=vip)
    flow.syn(CLIENT_ISN)
    synack = flow.from_real("SA", seq=REAL_ISN, ack=CLIENT_ISN + 1)
    synack[TCP].options = [("SAckOK", b""), ("NOP", None), ("WScale", 7)]
    out = flow.to_client(synack)
    assert out[TCP].options == Ether(bytes(synack))[TCP].options


def test_a_service_without_client_address_is_untouched(engine: Engine) -> None:
    flow, synack = open_flow(engine, "ipv4", vport=PLAIN_PORT)
    assert synack[TCP].options[0] == ("MSS", 1460)
    out = flow.to_real(flow.from_client("A", seq=CLIENT_ISN + 1, ack=REAL_ISN + 1))
    assert tcp_options_bytes(out) == b""
    assert counters(engine) == {"toa_inserted": 0, "toa_no_room": 0}


def test_toa_is_inserted_by_the_owner_after_a_hand_over() -> None:
    engine = make_engine(workers=2, services=services())
    client, vip, _ = FAMILIES["ipv4"]
    cport = next(p for p in range(40000, 40100) if engine.owner(client, p, vip, 80) == 1)
    flow, _ = open_flow(engine, "ipv4", cport=cport)
    handed_over = engine.stats()["workers"][0]["handed_over"]
    out = flow.to_real(flow.from_client("A", seq=CLIENT_ISN + 1, ack=REAL_ISN + 1), worker=0)
    assert_has_toa(out, flow, "ipv4")
    stats = engine.stats()["workers"]
    assert stats[0]["handed_over"] == handed_over + 1
    assert (stats[0]["toa_inserted"], stats[1]["toa_inserted"]) == (0, 1)


# -- TCP Fast Open ---------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_a_fast_open_syn_reaches_the_real_without_data_or_cookie(
    engine: Engine, family: str
) -> None:
    # A real that accepted the cookie would open the connection from the SYN, which has
    # no TOA, and hand the data to the application under dplb's address. So the SYN goes
    # without either (the cookie option becomes NOPs); the client sends its data again
    # after the handshake, where TOA is.
    client, vip, _ = FAMILIES[family]
    flow = TcpFlow(engine, 43210, client=client, vip=vip)
    syn = flow.from_client("S", seq=CLIENT_ISN, payload=REQUEST)
    syn[TCP].options = [("MSS", 1460), ("SAckOK", b""), ("TFO", (0x01020304, 0x05060708))]
    port, out = send_one(engine, syn)
    assert port == 1
    assert (out[TCP].flags, out[TCP].seq, bytes(out[TCP].payload)) == ("S", CLIENT_ISN, b"")
    assert l4_length(out) == out[TCP].dataofs * 4 == 20 + 4 + 2 + 10
    assert tcp_options_bytes(out) == bytes(tcp_options_bytes(Ether(bytes(syn)))[:6]) + b"\x01" * 10
    assert engine.stats()["total"]["syn_data_stripped"] == 1
    flow.real, flow.real_port = ip_layer(out).dst, out[TCP].dport
    flow.local, flow.local_port = ip_layer(out).src, out[TCP].sport
    flow.to_client(flow.from_real("SA", seq=REAL_ISN, ack=CLIENT_ISN + 1))
    out = flow.to_real(
        flow.from_client("PA", seq=CLIENT_ISN + 1, ack=REAL_ISN + 1, payload=REQUEST)
    )
    assert_has_toa(out, flow, family)
    assert (out[TCP].seq, bytes(out[TCP].payload)) == (CLIENT_ISN + 1, REQUEST)
    assert nonzero_drops(engine) == {}
