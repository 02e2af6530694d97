"""PROXY protocol v1/v2 (DESIGN section 5): dplb's header is the first bytes of the stream
toward the real, put as payload into the ACK that completes the handshake (so servers that
speak first get it too), and again into any client segment that starts the stream until
the real's ACK numbers cover it. Every later segment is shifted by the header length:
sequence numbers inbound, ACK numbers and SACK blocks outbound. A client that sends its
own PROXY header is refused, unless the service trusts it: then dplb's header carries the
addresses the client's names.

Besides field-by-field checks, `Receiver` plays each end's TCP receiver: it places every
byte it gets by sequence number and insists that a byte sent twice is the same byte, so a
wrong shift anywhere shows as a corrupt stream."""

from __future__ import annotations

import ipaddress
import struct
from typing import Any

import pytest
from scapy.layers.inet import ICMP, IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

from conftest import (
    CLIENT4,
    CLIENT6,
    PLAIN_PORT,
    VIP4,
    VIP6,
    TcpFlow,
    assert_checksums_valid,
    client_address_services,
    drops,
    ip_layer,
    make_engine,
    node_config,
    nonzero_drops,
    send,
    send_one,
)
from dplb import ConfigError, Engine
from dplb.engine import harness_mac

REAL4, REAL6 = "10.0.2.11", "2001:db8:2::11"
FAMILIES = {"ipv4": (CLIENT4, VIP4, REAL4), "ipv6": (CLIENT6, VIP6, REAL6)}
MODES = ["proxy-v1", "proxy-v2"]
CLIENT_ISN, REAL_ISN = 1000, 5000
START = CLIENT_ISN + 1  # the client's first byte
SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
LONGEST = {"proxy-v1": 104, "proxy-v2": 52}  # what a trusting service lowers the MSS by

REQUEST = b"GET /index.html HTTP/1.1\r\nHost: example.test\r\nAccept: */*\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world"
GREETING = b"220 mail.example.test ESMTP\r\n"


# -- expected headers, built independently of dplb -------------------------------------


def v1_header(src: str, sport: int, dst: str, dport: int) -> bytes:
    a, b = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    family = "TCP4" if a.version == 4 else "TCP6"
    return f"PROXY {family} {a.compressed} {b.compressed} {sport} {dport}\r\n".encode()


def v2_header(src: str, sport: int, dst: str, dport: int) -> bytes:
    a, b = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    body = a.packed + b.packed + struct.pack("!HH", sport, dport)
    family = 0x11 if a.version == 4 else 0x21
    return SIGNATURE + bytes([0x21, family]) + struct.pack("!H", len(body)) + body


def header_for(mode: str, src: str, sport: int, dst: str, dport: int) -> bytes:
    build = v1_header if mode in ("proxy-v1", "v1") else v2_header
    return build(src, sport, dst, dport)


def assert_header(mode: str, header: bytes, src: str, sport: int, dst: str, dport: int) -> None:
    """Every field of the header dplb wrote."""
    a, b = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if mode == "proxy-v1":
        text = header.decode("ascii")
        assert text.endswith("\r\n")
        assert text[:-2].split(" ") == [
            "PROXY",
            "TCP4" if a.version == 4 else "TCP6",
            a.compressed,
            b.compressed,
            str(sport),
            str(dport),
        ]
        assert len(header) <= 107
        return
    assert header[:12] == SIGNATURE, "signature"
    assert header[12] >> 4 == 2, "version"
    assert header[12] & 0x0F == 1, "command PROXY"
    assert header[13] >> 4 == (1 if a.version == 4 else 2), "address family"
    assert header[13] & 0x0F == 1, "transport STREAM"
    n = 4 if a.version == 4 else 16
    (length,) = struct.unpack("!H", header[14:16])
    assert length == 2 * n + 4 == len(header) - 16, "address length"
    assert ipaddress.ip_address(header[16 : 16 + n]) == a, "source address"
    assert ipaddress.ip_address(header[16 + n : 16 + 2 * n]) == b, "destination address"
    assert struct.unpack("!HH", header[16 + 2 * n : 20 + 2 * n]) == (sport, dport), "ports"


# -- the harness side ------------------------------------------------------------------


def services(mode: str, trust: bool = False) -> list[dict[str, Any]]:
    return client_address_services(mode, trust)


def counters(engine: Engine) -> dict[str, int]:
    total = engine.stats()["total"]
    return {k: v for k, v in total.items() if k.startswith("proxy_") and v}


def payload_of(pkt: Packet) -> bytes:
    """The TCP payload, as long as the IP header says."""
    tcp = pkt[TCP]
    l4 = int(pkt[IPv6].plen) if IPv6 in pkt else int(pkt[IP].len) - pkt[IP].ihl * 4
    return bytes(tcp.payload)[: l4 - tcp.dataofs * 4]


class Receiver:
    """One direction of a stream as its receiver sees it: bytes placed by sequence number
    from the stream's first one. A byte that comes again (a retransmission, a header sent
    twice) must be the same byte."""

    def __init__(self, first: int) -> None:
        self.first = first
        self.bytes: dict[int, int] = {}

    def take(self, segment: Packet) -> None:
        for i, byte in enumerate(payload_of(segment)):
            at = (segment[TCP].seq + i - self.first) % 2**32
            assert self.bytes.setdefault(at, byte) == byte, f"byte {at} differs when sent again"

    @property
    def stream(self) -> bytes:
        out = bytearray()
        while len(out) in self.bytes:
            out.append(self.bytes[len(out)])
        return bytes(out)

    @property
    def ack(self) -> int:
        return (self.first + len(self.stream)) % 2**32


class Conversation:
    """A flow with a receiver at each end: what the real reads, what the client reads."""

    def __init__(self, engine: Engine, flow: TcpFlow) -> None:
        self.engine = engine
        self.flow = flow
        self.real = Receiver(START)  # the real's view of the client's stream
        self.client = Receiver(REAL_ISN + 1)

    def client_sends(
        self, flags: str, offset: int, payload: bytes = b"", lost: bool = False
    ) -> Packet:
        """A client segment at START + offset acknowledging what the client read; `lost`:
        it leaves dplb but does not reach the real."""
        out = self.flow.to_real(
            self.flow.from_client(flags, seq=START + offset, ack=self.client.ack, payload=payload)
        )
        if not lost:
            self.real.take(out)
        return out

    def real_sends(self, flags: str, offset: int, payload: bytes = b"", **tcp: Any) -> Packet:
        frame = self.flow.from_real(
            flags, seq=REAL_ISN + 1 + offset, ack=self.real.ack, payload=payload
        )
        for field, value in tcp.items():
            frame[TCP].setfieldval(field, value)
        out = self.flow.to_client(frame)
        self.client.take(out)
        return out


def open_flow(
    engine: Engine, family: str, cport: int = 43210, vport: int = 80, mss: int = 1460
) -> tuple[Conversation, Packet]:
    """Client SYN -> real (unchanged: the MSS dplb cares about is the real's), real SYN-ACK
    -> client. Returns the conversation and the SYN-ACK as the client got it."""
    client, vip, _ = FAMILIES[family]
    flow = TcpFlow(engine, cport, client=client, vip=vip, vip_port=vport)
    syn = flow.from_client("S", seq=CLIENT_ISN)
    syn[TCP].options = [("MSS", mss), ("SAckOK", b""), ("WScale", 7)]
    port, out = send_one(engine, syn)
    assert port == 1
    assert out[TCP].options == Ether(bytes(syn))[TCP].options
    assert (out[TCP].seq, payload_of(out)) == (CLIENT_ISN, b"")
    flow.real, flow.real_port = ip_layer(out).dst, out[TCP].dport
    flow.local, flow.local_port = ip_layer(out).src, out[TCP].sport
    synack = flow.from_real("SA", seq=REAL_ISN, ack=START)
    synack[TCP].options = [("MSS", mss), ("SAckOK", b""), ("WScale", 7)]
    out = flow.to_client(synack)
    assert (out[TCP].seq, out[TCP].ack) == (REAL_ISN, START)
    assert out[TCP].options[1:] == Ether(bytes(synack))[TCP].options[1:]
    return Conversation(engine, flow), out


def own_header(mode: str, family: str, cport: int = 43210) -> bytes:
    client, vip, _ = FAMILIES[family]
    return header_for(mode, client, cport, vip, 80)


def sack_of(pkt: Packet) -> tuple[int, ...]:
    for kind, value in pkt[TCP].options:
        if kind == "SAck":
            return tuple(value)
    return ()


both_modes_and_families = pytest.mark.parametrize(
    ("mode", "family"), [(m, f) for m in MODES for f in FAMILIES]
)


# -- the header ------------------------------------------------------------------------


@both_modes_and_families
def test_header_goes_into_the_ack_that_completes_the_handshake(mode: str, family: str) -> None:
    engine = make_engine(services=services(mode))
    c, synack = open_flow(engine, family)
    header = own_header(mode, family)
    # The real's MSS reaches the client lowered by the header's length, so that the
    # segment that carries the header and the first data still fits the path MTU.
    assert synack[TCP].options[0] == ("MSS", 1460 - len(header))

    out = c.client_sends("A", 0)
    client, vip, _ = FAMILIES[family]
    assert payload_of(out) == header
    assert_header(mode, payload_of(out), client, 43210, vip, 80)
    assert (out[TCP].seq, out[TCP].ack, out[TCP].flags) == (START, REAL_ISN + 1, "A")
    assert out[TCP].dataofs == 5
    if family == "ipv4":
        assert out[IP].len == 40 + len(header)
    else:
        assert out[IPv6].plen == 20 + len(header)
    assert counters(engine) == {"proxy_header_sent": 1}
    assert c.flow.session()["state"] == "established"
    assert nonzero_drops(engine) == {}


@both_modes_and_families
def test_whole_connection_with_data_both_ways(mode: str, family: str) -> None:
    engine = make_engine(services=services(mode))
    c, _ = open_flow(engine, family)
    header = own_header(mode, family)
    n = len(header)

    c.client_sends("A", 0)  # the handshake ACK, with the header
    out = c.real_sends("A", 0)  # the real acknowledges the header: none of the client's bytes
    assert out[TCP].ack == START

    # The request in three segments; the second is lost on the way to the real.
    parts = [REQUEST[:20], REQUEST[20:40], REQUEST[40:]]
    out = c.client_sends("A", 0, parts[0])
    assert (out[TCP].seq, payload_of(out)) == (START + n, parts[0])
    out = c.client_sends("A", 20, parts[1], lost=True)
    assert out[TCP].seq == START + n + 20
    out = c.client_sends("PA", 40, parts[2])
    assert out[TCP].seq == START + n + 40
    # The real ACKs the first and SACKs the third: both in the client's numbers.
    out = c.real_sends(
        "A",
        0,
        options=[
            ("NOP", None),
            ("NOP", None),
            ("SAck", (START + n + 40, START + n + len(REQUEST))),
        ],
    )
    assert out[TCP].ack == START + 20
    assert sack_of(out) == (START + 40, START + len(REQUEST))
    # The client sends the hole again; the real has the whole request behind the header.
    out = c.client_sends("A", 20, parts[1])
    assert out[TCP].seq == START + n + 20
    assert c.real.stream == header + REQUEST

    # The response in two segments, acknowledging the request.
    out = c.real_sends("A", 0, RESPONSE[:30])
    assert (out[TCP].seq, out[TCP].ack) == (REAL_ISN + 1, START + len(REQUEST))
    out = c.real_sends("PA", 30, RESPONSE[30:])
    assert (out[TCP].seq, out[TCP].ack) == (REAL_ISN + 31, START + len(REQUEST))
    assert payload_of(out) == RESPONSE[30:]
    out = c.client_sends("A", len(REQUEST))
    assert (out[TCP].seq, out[TCP].ack) == (START + n + len(REQUEST), REAL_ISN + 1 + len(RESPONSE))

    # Close: the client's FIN, the real's FIN that acknowledges it, the last ACK.
    out = c.client_sends("FA", len(REQUEST))
    assert (out[TCP].seq, out[TCP].flags) == (START + n + len(REQUEST), "FA")
    fin = c.flow.from_real("FA", seq=REAL_ISN + 1 + len(RESPONSE), ack=c.real.ack + 1)
    out = c.flow.to_client(fin)
    assert out[TCP].ack == START + len(REQUEST) + 1
    out = c.flow.to_real(
        c.flow.from_client("A", seq=START + len(REQUEST) + 1, ack=REAL_ISN + 1 + len(RESPONSE) + 1)
    )
    assert (out[TCP].seq, out[TCP].ack) == (
        START + n + len(REQUEST) + 1,
        REAL_ISN + 1 + len(RESPONSE) + 1,
    )
    assert c.flow.session()["state"] == "time_wait"
    assert c.real.stream == header + REQUEST
    assert c.client.stream == RESPONSE
    assert counters(engine) == {"proxy_header_sent": 1}
    assert nonzero_drops(engine) == {}


@both_modes_and_families
def test_header_reaches_a_server_that_speaks_first(mode: str, family: str) -> None:
    # SMTP, FTP, MySQL: the client says nothing until it has the greeting. The header is
    # in the handshake ACK, so the server has it without a client byte.
    engine = make_engine(services=services(mode))
    c, _ = open_flow(engine, family)
    header = own_header(mode, family)
    out = c.client_sends("A", 0)
    assert payload_of(out) == header
    out = c.real_sends("PA", 0, GREETING)
    assert (out[TCP].ack, payload_of(out)) == (START, GREETING)
    out = c.client_sends("A", 0)  # the client acknowledges the greeting: nothing more
    assert (out[TCP].seq, out[TCP].ack, payload_of(out)) == (
        START + len(header),
        REAL_ISN + 1 + len(GREETING),
        b"",
    )
    out = c.client_sends("PA", 0, b"EHLO client.example.test\r\n")
    assert out[TCP].seq == START + len(header)
    assert c.real.stream == header + b"EHLO client.example.test\r\n"
    assert counters(engine) == {"proxy_header_sent": 1}


# -- SACK ------------------------------------------------------------------------------


def test_sack_blocks_move_with_other_options_around_them() -> None:
    engine = make_engine(services=services("proxy-v2"))
    c, _ = open_flow(engine, "ipv4")
    n = len(own_header("proxy-v2", "ipv4"))
    c.client_sends("A", 0)
    c.real_sends("A", 0)
    blocks = (START + n + 100, START + n + 200, START + n + 300, START + n + 400)
    options = [("NOP", None), ("NOP", None), ("Timestamp", (7, 9))]
    options += [("NOP", None), ("NOP", None), ("SAck", blocks)]
    out = c.real_sends("A", 0, options=options)
    assert out[TCP].ack == START
    assert sack_of(out) == (START + 100, START + 200, START + 300, START + 400)
    assert out[TCP].options[2] == ("Timestamp", (7, 9))
    assert out[TCP].dataofs == (20 + 12 + 20) // 4


@pytest.mark.parametrize("family", FAMILIES)
def test_header_sent_twice_and_the_dsack_of_it(family: str) -> None:
    # The client's request follows the handshake ACK before the real has acknowledged the
    # header: it carries the header again (dplb cannot know the first one arrived). The
    # real reads the stream once; its D-SACK of the duplicate header bytes means nothing to
    # the client and leaves as NOPs, a D-SACK that covers client bytes too keeps them.
    engine = make_engine(services=services("proxy-v1"))
    c, _ = open_flow(engine, family)
    header = own_header("proxy-v1", family)
    n = len(header)
    c.client_sends("A", 0)
    out = c.client_sends("PA", 0, REQUEST)
    assert (out[TCP].seq, payload_of(out)) == (START, header + REQUEST)
    assert c.real.stream == header + REQUEST
    assert counters(engine) == {"proxy_header_sent": 1, "proxy_header_resent": 1}

    dsack = [("NOP", None), ("NOP", None), ("SAck", (START, START + n))]
    out = c.real_sends("A", 0, options=dsack)
    assert out[TCP].ack == START + len(REQUEST)
    assert bytes(out[TCP])[20:32] == b"\x01" * 12  # two NOPs and the option, all NOPs
    assert sack_of(out) == ()

    with_more = [("SAck", (START, START + n, START + n + 500, START + n + 600)), ("NOP", None)]
    with_more.append(("NOP", None))
    out = c.real_sends("A", 0, options=with_more)
    assert bytes(out[TCP])[20:28] == b"\x01" * 8
    assert sack_of(out) == (START + 500, START + 600)

    data_too = [("NOP", None), ("NOP", None), ("SAck", (START, START + n + 10))]
    out = c.real_sends("A", 0, options=data_too)
    assert sack_of(out) == (START, START + 10)


# -- loss ------------------------------------------------------------------------------


@both_modes_and_families
def test_lost_header_goes_again_with_the_first_data(mode: str, family: str) -> None:
    engine = make_engine(services=services(mode))
    c, _ = open_flow(engine, family)
    header = own_header(mode, family)
    out = c.client_sends("A", 0, lost=True)  # the frame with the header is dropped
    assert payload_of(out) == header
    assert c.real.stream == b""
    out = c.client_sends("PA", 0, REQUEST)
    assert (out[TCP].seq, payload_of(out)) == (START, header + REQUEST)
    assert_header(mode, payload_of(out)[: len(header)], *own_endpoints(family))
    out = c.real_sends("PA", 0, RESPONSE)
    assert out[TCP].ack == START + len(REQUEST)
    out = c.client_sends("A", len(REQUEST))
    assert (out[TCP].seq, payload_of(out)) == (START + len(header) + len(REQUEST), b"")
    assert c.real.stream == header + REQUEST
    assert c.client.stream == RESPONSE
    assert counters(engine) == {"proxy_header_sent": 1, "proxy_header_resent": 1}


def own_endpoints(family: str) -> tuple[str, int, str, int]:
    client, vip, _ = FAMILIES[family]
    return client, 43210, vip, 80


@both_modes_and_families
def test_lost_header_goes_again_after_the_syn_ack_is_retransmitted(mode: str, family: str) -> None:
    # A server that speaks first waits in SYN_RECV for the lost ACK, sends its SYN-ACK
    # again, and the client's new ACK carries the header.
    engine = make_engine(services=services(mode))
    c, _ = open_flow(engine, family)
    header = own_header(mode, family)
    c.client_sends("A", 0, lost=True)
    again = c.flow.from_real("SA", seq=REAL_ISN, ack=START)
    again[TCP].options = [("MSS", 1460)]
    out = c.flow.to_client(again)
    assert (out[TCP].ack, out[TCP].options[0]) == (START, ("MSS", 1460 - len(header)))
    out = c.client_sends("A", 0)
    assert (out[TCP].seq, payload_of(out)) == (START, header)
    out = c.real_sends("PA", 0, GREETING)
    assert out[TCP].ack == START
    out = c.client_sends("A", 0)
    assert (out[TCP].seq, payload_of(out)) == (START + len(header), b"")
    assert c.real.stream == header
    assert counters(engine) == {"proxy_header_sent": 1, "proxy_header_resent": 1}


def test_an_ack_inside_the_header_acknowledges_nothing_of_the_clients() -> None:
    engine = make_engine(services=services("proxy-v1"))
    c, _ = open_flow(engine, "ipv4")
    header = own_header("proxy-v1", "ipv4")
    c.client_sends("A", 0, lost=True)
    part = c.flow.from_real("A", seq=REAL_ISN + 1, ack=START + 10)
    assert c.flow.to_client(part)[TCP].ack == START
    out = c.client_sends("PA", 0, REQUEST)  # still not covered: the header goes again
    assert payload_of(out) == header + REQUEST


def test_first_data_sent_again_after_the_header_was_acknowledged_is_only_shifted() -> None:
    engine = make_engine(services=services("proxy-v2"))
    c, _ = open_flow(engine, "ipv6")
    n = len(own_header("proxy-v2", "ipv6"))
    c.client_sends("A", 0)
    c.real_sends("A", 0)
    c.client_sends("PA", 0, REQUEST, lost=True)
    out = c.client_sends("PA", 0, REQUEST)
    assert (out[TCP].seq, payload_of(out)) == (START + n, REQUEST)
    assert counters(engine) == {"proxy_header_sent": 1}


def test_a_reset_at_the_streams_start_keeps_its_number() -> None:
    # Before the real acknowledged the header it may not have it: ISN + 1 is then exactly
    # what it expects, and if it has it, still inside its window.
    engine = make_engine(services=services("proxy-v1"))
    c, _ = open_flow(engine, "ipv4")
    c.client_sends("A", 0)
    out = c.flow.to_real(c.flow.from_client("R", seq=START))
    assert (out[TCP].seq, out[TCP].flags, payload_of(out)) == (START, "R", b"")


@both_modes_and_families
def test_a_full_sized_first_segment_fits_the_mtu(mode: str, family: str) -> None:
    # The client sizes its segments by the MSS it was told; the one that carries the
    # header as well is then exactly as large as the real's MTU allows.
    mss = 1460 if family == "ipv4" else 1440
    engine = make_engine(services=services(mode))
    c, synack = open_flow(engine, family, mss=mss)
    told = synack[TCP].options[0][1]
    c.client_sends("A", 0, lost=True)
    out = c.client_sends("PA", 0, b"x" * told)
    if family == "ipv4":
        assert out[IP].len == 1500
    else:
        assert 40 + out[IPv6].plen == 1500


# -- a client that sends its own PROXY header -------------------------------------------


@pytest.mark.parametrize(
    "theirs",
    [
        pytest.param(v1_header("203.0.113.9", 5555, "192.0.2.1", 443), id="v1"),
        pytest.param(v2_header("203.0.113.9", 5555, "192.0.2.1", 443), id="v2"),
    ],
)
@both_modes_and_families
def test_a_client_proxy_header_is_refused(mode: str, family: str, theirs: bytes) -> None:
    engine = make_engine(services=services(mode))
    c, _ = open_flow(engine, family)
    n = len(own_header(mode, family))
    c.client_sends("A", 0)
    c.real_sends("A", 0)
    first = c.flow.from_client("PA", seq=START, ack=REAL_ISN + 1, payload=theirs + REQUEST)

    # The segment becomes a RST toward the real, where its stream stands (after dplb's
    # header); nothing of it reaches the real.
    port, out = send_one(engine, first)
    assert port == 1
    assert (ip_layer(out).src, ip_layer(out).dst) == (c.flow.local, c.flow.real)
    assert (out[TCP].sport, out[TCP].dport) == (c.flow.local_port, c.flow.real_port)
    assert (out[TCP].flags, out[TCP].seq, out[TCP].dataofs) == ("R", START + n, 5)
    assert payload_of(out) == b""
    assert counters(engine) == {"proxy_header_sent": 1, "proxy_refused": 1}
    assert c.flow.session()["state"] == "close"

    # The client, unanswered, sends again: it gets a RST from the VIP at its ACK number.
    port, out = send_one(engine, first)
    client, vip, _ = FAMILIES[family]
    assert port == 0
    assert out.dst == "0a:00:00:00:01:fe"
    assert (ip_layer(out).src, ip_layer(out).dst) == (vip, client)
    assert (out[TCP].sport, out[TCP].dport) == (80, c.flow.client_port)
    assert (out[TCP].flags, out[TCP].seq) == ("R", REAL_ISN + 1)
    # A segment without ACK gets RST+ACK covering it (RFC 793).
    port, out = send_one(engine, c.flow.from_client("F", seq=START + 7))
    assert (port, out[TCP].flags, out[TCP].seq, out[TCP].ack) == (0, "RA", 0, START + 8)
    # A real that had not got the header answers the RST with a challenge ACK: it gets a
    # RST with the exact number.
    port, out = send_one(engine, c.flow.from_real("A", seq=REAL_ISN + 1, ack=START), 1)
    assert port == 1
    assert (ip_layer(out).src, out[TCP].sport) == (c.flow.local, c.flow.local_port)
    assert (out[TCP].flags, out[TCP].seq) == ("R", START)
    # Resets are not answered.
    assert send(engine, c.flow.from_client("R", seq=START)) == []
    assert nonzero_drops(engine) == {"refused_connection": 1}
    assert counters(engine) == {"proxy_header_sent": 1, "proxy_refused": 1}


def test_the_client_can_connect_again_after_a_refusal() -> None:
    engine = make_engine(services=services("proxy-v1"))
    c, _ = open_flow(engine, "ipv4")
    c.client_sends("A", 0)
    theirs = v1_header("203.0.113.9", 5555, "192.0.2.1", 443)
    send_one(engine, c.flow.from_client("PA", seq=START, ack=REAL_ISN + 1, payload=theirs))
    again, _ = open_flow(engine, "ipv4")  # same port: a new SYN replaces the closed session
    out = again.client_sends("A", 0)
    assert payload_of(out) == own_header("proxy-v1", "ipv4")


def test_a_proxy_header_is_only_data_for_other_services() -> None:
    engine = make_engine(services=services("proxy-v1"))
    c, _ = open_flow(engine, "ipv4", vport=PLAIN_PORT)
    c.client_sends("A", 0)
    theirs = v1_header("203.0.113.9", 5555, "192.0.2.1", 443)
    out = c.client_sends("PA", 0, theirs)
    assert (out[TCP].seq, payload_of(out)) == (START, theirs)
    assert counters(engine) == {}


# -- trusted clients: their header translated --------------------------------------------

NAMED = {
    "ipv4": ("203.0.113.9", 5555, "192.0.2.1", 443),
    # Long addresses: a v1 header of them is longer than dplb's v2 (a negative shift).
    "ipv6": (
        "2001:db8:aaaa:bbbb:cccc:dddd:eeee:9",
        5555,
        "2001:db8:aaaa:bbbb:cccc:dddd:eeee:1",
        443,
    ),
}


@pytest.mark.parametrize("named", NAMED)
@pytest.mark.parametrize("theirs_version", ["v1", "v2"])
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("mode", MODES)
def test_a_trusted_client_header_is_translated(
    mode: str, family: str, theirs_version: str, named: str
) -> None:
    engine = make_engine(services=services(mode, trust=True))
    c, synack = open_flow(engine, family)
    # How long dplb's header will be depends on the client's: the MSS is lowered by the
    # longest dplb writes.
    assert synack[TCP].options[0] == ("MSS", 1460 - LONGEST[mode])
    # The handshake ACK goes as it is: the client's first data decides.
    out = c.client_sends("A", 0)
    assert (out[TCP].seq, payload_of(out)) == (START, b"")

    theirs = header_for(theirs_version, *NAMED[named])
    ours = header_for(mode, *NAMED[named])
    out = c.client_sends("PA", 0, theirs + REQUEST)
    assert (out[TCP].seq, payload_of(out)) == (START, ours + REQUEST)
    assert_header(mode, ours, *NAMED[named])
    assert counters(engine) == {"proxy_header_sent": 1, "proxy_header_translated": 1}

    # The real acknowledges it all: the client sees all of its own bytes acknowledged.
    out = c.real_sends("PA", 0, RESPONSE)
    assert out[TCP].ack == START + len(theirs) + len(REQUEST)
    out = c.client_sends("A", len(theirs) + len(REQUEST))
    assert out[TCP].seq == START + len(ours) + len(REQUEST)
    out = c.client_sends("PA", len(theirs) + len(REQUEST), b"next")
    assert out[TCP].seq == START + len(ours) + len(REQUEST)
    assert c.real.stream == ours + REQUEST + b"next"
    assert nonzero_drops(engine) == {}


def test_a_trusted_client_header_sent_again_is_translated_again() -> None:
    engine = make_engine(services=services("proxy-v2", trust=True))
    c, _ = open_flow(engine, "ipv4")
    c.client_sends("A", 0)
    theirs = v1_header(*NAMED["ipv6"])
    ours = v2_header(*NAMED["ipv6"])
    c.client_sends("PA", 0, theirs + REQUEST, lost=True)
    out = c.client_sends("PA", 0, theirs + REQUEST)
    assert payload_of(out) == ours + REQUEST
    # (the client's next data lands right behind, though dplb's header is shorter)
    out = c.client_sends("PA", len(theirs) + len(REQUEST), b"more")
    assert out[TCP].seq == START + len(ours) + len(REQUEST)
    assert c.real.stream == ours + REQUEST + b"more"
    assert counters(engine) == {
        "proxy_header_sent": 1,
        "proxy_header_resent": 1,
        "proxy_header_translated": 1,
    }


UNKNOWN_V2 = SIGNATURE + b"\x21\x00\x00\x00"
LOCAL_V2 = SIGNATURE + b"\x20\x00\x00\x00"


@pytest.mark.parametrize(
    ("theirs", "ours_v1", "ours_v2"),
    [
        pytest.param(b"PROXY UNKNOWN\r\n", b"PROXY UNKNOWN\r\n", UNKNOWN_V2, id="v1-unknown"),
        pytest.param(
            b"PROXY UNKNOWN ::1 ::2 1 2\r\n", b"PROXY UNKNOWN\r\n", UNKNOWN_V2, id="v1-unknown-more"
        ),
        pytest.param(LOCAL_V2, b"PROXY UNKNOWN\r\n", LOCAL_V2, id="v2-local"),
        pytest.param(
            SIGNATURE + b"\x21\x12\x00\x0c" + bytes(12),
            b"PROXY UNKNOWN\r\n",
            UNKNOWN_V2,
            id="v2-udp",
        ),
        pytest.param(
            # the length grows by a 4-byte NOOP TLV (type 4, length 1, one byte)
            v2_header(*NAMED["ipv4"])[:15]
            + b"\x10"
            + v2_header(*NAMED["ipv4"])[16:]
            + b"\x04\x00\x01\x00",
            v1_header(*NAMED["ipv4"]),
            v2_header(*NAMED["ipv4"]),
            id="v2-with-a-tlv",
        ),
    ],
)
@pytest.mark.parametrize("mode", MODES)
def test_a_trusted_header_without_addresses(
    mode: str, theirs: bytes, ours_v1: bytes, ours_v2: bytes
) -> None:
    engine = make_engine(services=services(mode, trust=True))
    c, _ = open_flow(engine, "ipv4")
    c.client_sends("A", 0)
    out = c.client_sends("PA", 0, theirs + REQUEST)
    assert payload_of(out) == (ours_v1 if mode == "proxy-v1" else ours_v2) + REQUEST


@pytest.mark.parametrize("mode", MODES)
def test_a_trusted_service_gives_a_client_without_header_dplbs_own(mode: str) -> None:
    engine = make_engine(services=services(mode, trust=True))
    c, _ = open_flow(engine, "ipv6")
    c.client_sends("A", 0)
    out = c.client_sends("PA", 0, REQUEST)
    header = own_header(mode, "ipv6")
    assert (out[TCP].seq, payload_of(out)) == (START, header + REQUEST)
    out = c.real_sends("A", 0)
    assert out[TCP].ack == START + len(REQUEST)
    assert counters(engine) == {"proxy_header_sent": 1}


@pytest.mark.parametrize(
    "theirs",
    [
        pytest.param(b"PROXY TCP4 203.0.113.9 192.0.2.1 5555\r\n", id="v1-field-missing"),
        pytest.param(b"PROXY TCP4 2001:db8::9 192.0.2.1 5555 443\r\n", id="v1-wrong-family"),
        pytest.param(b"PROXY TCP4 203.0.113.9 192.0.2.1 5555 443", id="v1-cut-short"),
        pytest.param(b"PROXY TCP4 " + b"9" * 120 + b"\r\n", id="v1-too-long"),
        pytest.param(SIGNATURE + b"\x31\x11\x00\x0c" + bytes(12), id="v2-version-3"),
        pytest.param(SIGNATURE + b"\x21\x11\x00\x40" + bytes(12), id="v2-cut-short"),
    ],
)
def test_a_malformed_trusted_header_is_refused(theirs: bytes) -> None:
    engine = make_engine(services=services("proxy-v1", trust=True))
    c, _ = open_flow(engine, "ipv4")
    c.client_sends("A", 0)
    port, out = send_one(
        engine, c.flow.from_client("PA", seq=START, ack=REAL_ISN + 1, payload=theirs)
    )
    # Nothing was sent to the real yet: its stream stands at ISN + 1.
    assert (port, out[TCP].flags, out[TCP].seq, payload_of(out)) == (1, "R", START, b"")
    assert counters(engine) == {"proxy_invalid": 1}
    port, out = send_one(
        engine, c.flow.from_client("PA", seq=START, ack=REAL_ISN + 1, payload=b"x")
    )
    assert (port, out[TCP].flags) == (0, "R")


def test_trust_needs_a_proxy_protocol_service() -> None:
    config = node_config(services=services("toa", trust=True))
    with pytest.raises(ConfigError) as error:
        Engine(config)
    assert (
        "services[0].proxy_protocol_from_client",
        "trust needs client_address proxy-v1 or proxy-v2",
    ) in error.value.errors
    config["services"][0]["proxy_protocol_from_client"] = "sometimes"
    with pytest.raises(ConfigError) as error:
        Engine(config)
    assert error.value.errors[0][0] == "services[0].proxy_protocol_from_client"


# -- around the edges ------------------------------------------------------------------


def test_an_icmp_error_about_a_shifted_segment_quotes_the_clients_number() -> None:
    # A router on the real's side cannot forward a segment (fragmentation needed): the
    # client's stack matches the quoted sequence number against its own.
    engine = make_engine(services=services("proxy-v1"))
    c, _ = open_flow(engine, "ipv4")
    n = len(own_header("proxy-v1", "ipv4"))
    c.client_sends("A", 0)
    c.real_sends("A", 0)
    sent = c.client_sends("PA", 100, REQUEST)
    assert sent[TCP].seq == START + n + 100
    error = (
        Ether(src="0a:00:00:00:02:fe", dst=harness_mac(1))
        / IP(src="10.0.2.254", dst=c.flow.local)
        / ICMP(type=3, code=4, nexthopmtu=1400)
        / Raw(bytes(sent[IP]))
    )
    port, out = send_one(engine, Ether(bytes(error)), 1)
    assert port == 0
    quoted = IP(bytes(out[IP])[28:])
    assert (quoted.src, quoted.dst) == (CLIENT4, VIP4)
    assert quoted[TCP].seq == START + 100
    assert (quoted[TCP].sport, quoted[TCP].dport) == (c.flow.client_port, 80)
    stored = quoted[TCP].chksum
    del quoted[TCP].chksum
    assert IP(bytes(quoted))[TCP].chksum == stored, "the quoted TCP checksum"


def test_header_with_ethernet_padding() -> None:
    engine = make_engine(services=services("proxy-v1"))
    c, _ = open_flow(engine, "ipv4")
    header = own_header("proxy-v1", "ipv4")
    raw = bytes(c.flow.from_client("A", seq=START, ack=REAL_ISN + 1))
    ((port, out_raw),) = engine.process(raw + b"\x00" * 6, 0)  # padded to 60 bytes
    assert port == 1
    assert len(out_raw) == 54 + len(header)
    out = Ether(out_raw)
    assert_checksums_valid(out)
    assert payload_of(out) == header


def test_a_bad_checksum_stays_bad() -> None:
    engine = make_engine(services=services("proxy-v1"))
    c, _ = open_flow(engine, "ipv4")
    frame = Ether(bytes(c.flow.from_client("PA", seq=START, ack=REAL_ISN + 1, payload=b"odd")))
    frame[TCP].chksum ^= 0x0F0F
    ((_, out_raw),) = engine.process(bytes(frame), 0)
    out = Ether(out_raw)
    assert payload_of(out).endswith(b"\r\nodd")
    stored = out[TCP].chksum
    del out[TCP].chksum
    assert Ether(bytes(out))[TCP].chksum != stored


def test_the_header_is_written_by_the_owner_after_a_hand_over() -> None:
    engine = make_engine(workers=2, services=services("proxy-v2"))
    cport = next(p for p in range(40000, 40100) if engine.owner(CLIENT4, p, VIP4, 80) == 1)
    c, _ = open_flow(engine, "ipv4", cport=cport)
    out = c.flow.to_real(c.flow.from_client("A", seq=START, ack=REAL_ISN + 1), worker=0)
    assert payload_of(out) == own_header("proxy-v2", "ipv4", cport=cport)
    workers = engine.stats()["workers"]
    assert (workers[0]["proxy_header_sent"], workers[1]["proxy_header_sent"]) == (0, 1)
    assert drops(engine)["no_session"] == 0


# -- TCP Fast Open: a SYN that carries data ----------------------------------------------

TFO_COOKIE = ("TFO", (0x01020304, 0x05060708))


def open_fast_open_flow(
    engine: Engine, family: str, data: bytes, cport: int = 43210
) -> tuple[Conversation, Packet]:
    """A client SYN with data and a Fast Open cookie: returns the conversation once the
    real's SYN-ACK (which acknowledges the SYN only, having had no data) reached the
    client, and the SYN as it reached the real."""
    client, vip, _ = FAMILIES[family]
    flow = TcpFlow(engine, cport, client=client, vip=vip)
    syn = flow.from_client("S", seq=CLIENT_ISN, payload=data)
    syn[TCP].options = [("MSS", 1460), ("SAckOK", b""), TFO_COOKIE]
    port, out = send_one(engine, syn)
    assert port == 1
    flow.real, flow.real_port = ip_layer(out).dst, out[TCP].dport
    flow.local, flow.local_port = ip_layer(out).src, out[TCP].sport
    out_ack = flow.to_client(flow.from_real("SA", seq=REAL_ISN, ack=START))
    assert out_ack[TCP].ack == START
    return Conversation(engine, flow), out


@both_modes_and_families
def test_a_fast_open_syn_reaches_the_real_without_its_data(mode: str, family: str) -> None:
    engine = make_engine(services=services(mode))
    c, syn = open_fast_open_flow(engine, family, REQUEST)
    # Only the SYN: its number counts the SYN flag alone; the lengths follow.
    assert (syn[TCP].flags, syn[TCP].seq, payload_of(syn)) == ("S", CLIENT_ISN, b"")
    assert syn[TCP].options == [("MSS", 1460), ("SAckOK", b""), TFO_COOKIE]
    if family == "ipv4":
        assert syn[IP].len == 20 + syn[TCP].dataofs * 4
    else:
        assert syn[IPv6].plen == syn[TCP].dataofs * 4
    assert engine.stats()["total"]["syn_data_stripped"] == 1

    # The real acknowledged the SYN only: the client sends its data again with the ACK
    # that completes the handshake (as Linux does), and it arrives behind the header,
    # once; what follows is shifted by the header.
    header = own_header(mode, family)
    out = c.client_sends("PA", 0, REQUEST)
    assert (out[TCP].seq, payload_of(out)) == (START, header + REQUEST)
    out = c.real_sends("PA", 0, RESPONSE)
    assert out[TCP].ack == START + len(REQUEST)
    out = c.client_sends("PA", len(REQUEST), b"more")
    assert out[TCP].seq == START + len(header) + len(REQUEST)
    assert c.real.stream == header + REQUEST + b"more"
    assert c.client.stream == RESPONSE
    assert counters(engine) == {"proxy_header_sent": 1}
    assert nonzero_drops(engine) == {}


@pytest.mark.parametrize("family", FAMILIES)
def test_the_data_of_a_fast_open_syn_sent_again_after_a_bare_ack(family: str) -> None:
    engine = make_engine(services=services("proxy-v1"))
    c, _ = open_fast_open_flow(engine, family, REQUEST)
    header = own_header("proxy-v1", family)
    assert payload_of(c.client_sends("A", 0)) == header
    c.client_sends("PA", 0, REQUEST)  # before the real's ACK: the header again, in front
    out = c.real_sends("A", 0)
    assert out[TCP].ack == START + len(REQUEST)
    assert c.real.stream == header + REQUEST


@pytest.mark.parametrize("mode", MODES)
def test_a_proxy_line_in_syn_data_never_reaches_the_real(mode: str) -> None:
    engine = make_engine(services=services(mode))
    forged = v1_header("203.0.113.9", 5555, "192.0.2.1", 443) + REQUEST
    c, syn = open_fast_open_flow(engine, "ipv4", forged)
    assert payload_of(syn) == b""
    # Sent again after the handshake, it is refused as any client's own header is.
    port, out = send_one(
        engine, c.flow.from_client("PA", seq=START, ack=REAL_ISN + 1, payload=forged)
    )
    assert (port, out[TCP].flags, payload_of(out)) == (1, "R", b"")
    assert counters(engine) == {"proxy_refused": 1}
    assert c.flow.session()["state"] == "close"


def test_a_trusted_proxy_line_in_syn_data_is_translated_when_sent_again() -> None:
    engine = make_engine(services=services("proxy-v2", trust=True))
    theirs = v1_header(*NAMED["ipv4"])
    c, syn = open_fast_open_flow(engine, "ipv4", theirs + REQUEST)
    assert payload_of(syn) == b""
    out = c.client_sends("PA", 0, theirs + REQUEST)
    assert payload_of(out) == v2_header(*NAMED["ipv4"]) + REQUEST


# -- the client's stream past 4 GiB ------------------------------------------------------


def test_sack_blocks_after_the_clients_stream_wrapped_past_4_gib() -> None:
    # The client's ISN is just below 2^32: the header's numbers wrap at once. The real's
    # ACKs then go once around the 32-bit space, a window (under 1 GiB) at a time; a SACK
    # block whose raw numbers fall where the header was 4 GiB earlier is client data.
    engine = make_engine(services=services("proxy-v2"))
    isn = 2**32 - 10
    start = isn + 1
    flow = TcpFlow(engine, 43210)
    syn = flow.from_client("S", seq=isn)
    syn[TCP].options = [("MSS", 1460), ("SAckOK", b"")]
    _, out = send_one(engine, syn)
    flow.real, flow.real_port = ip_layer(out).dst, out[TCP].dport
    flow.local, flow.local_port = ip_layer(out).src, out[TCP].sport
    flow.to_client(flow.from_real("SA", seq=REAL_ISN, ack=start))
    header = own_header("proxy-v2", "ipv4")
    n = len(header)
    out = flow.to_real(flow.from_client("A", seq=start, ack=REAL_ISN + 1))
    assert payload_of(out) == header

    def real_acks(ack: int, sack: tuple[int, ...] = ()) -> Packet:
        frame = flow.from_real("A", seq=REAL_ISN + 1, ack=ack % 2**32)
        if sack:
            frame[TCP].options = [("NOP", None), ("NOP", None), ("SAck", sack)]
        return flow.to_client(frame)

    assert real_acks(start + n)[TCP].ack == start % 2**32
    around = 2**32 - 100 - n  # the real's ACKs from the header's end to 100 bytes short
    for k in range(1, 6):
        ack = start + n + around * k // 5
        assert real_acks(ack)[TCP].ack == (ack - n) % 2**32
    ack = start + n + around
    blocks = (ack + 105, ack + 205)  # raw: start + 5 and start + 105, modulo 2^32
    assert (blocks[0] - start) % 2**32 < n
    out = real_acks(ack, tuple(b % 2**32 for b in blocks))
    assert out[TCP].ack == (ack - n) % 2**32
    assert sack_of(out) == tuple((b - n) % 2**32 for b in blocks)


# -- resets in a shifted stream ------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_resets_are_checked_in_the_clients_own_numbers(mode: str) -> None:
    engine = make_engine(services=services(mode))
    c, _ = open_flow(engine, "ipv4")
    n = len(own_header(mode, "ipv4"))
    c.client_sends("A", 0)
    c.client_sends("PA", 0, REQUEST)
    c.real_sends("A", 0)
    # dplb checks a client's RST in the client's own numbers (toward the real they are
    # shifted by the header): before what the real acknowledged, or far beyond, it drops.
    assert send(engine, c.flow.from_client("R", seq=START - 1)) == []
    assert send(engine, c.flow.from_client("R", seq=START + 2**31)) == []
    assert nonzero_drops(engine) == {"tcp_rst_out_of_window": 2}
    assert c.flow.session()["state"] == "established"
    out = c.flow.to_real(c.flow.from_client("R", seq=START + len(REQUEST)))
    assert out[TCP].seq == START + n + len(REQUEST)
    assert c.flow.session()["state"] == "close"
