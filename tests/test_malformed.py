"""Malformed frames (DESIGN section 3: parse, drop and count): each malformation is
dropped under its own reason and nothing else moves; random damage never crashes the
engine and every frame ends in exactly one of forwarded, control or a drop counter. Also
what is not malformed though unusual: 802.1Q tags, IPv4 options, DF, Ethernet padding,
eight IPv6 extension headers; and what belongs to the control path (ARP, other
addresses)."""

from __future__ import annotations

import random
from typing import Any

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_Router_Alert
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
)
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Packet, Raw

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
ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
ETH_VLAN = 0x8100


def eth(ether_type: int | None = None) -> Packet:
    """The client gateway's Ethernet header toward port0."""
    if ether_type is None:
        return Ether(src=CLIENT_GW_MAC, dst=PORT0_MAC)
    return Ether(src=CLIENT_GW_MAC, dst=PORT0_MAC, type=ether_type)


def ip4(**fields: Any) -> Packet:
    return IP(src=CLIENT4, dst=VIP4, ttl=64, **fields)


def ip6(**fields: Any) -> Packet:
    return IPv6(src=CLIENT6, dst=VIP6, hlim=64, **fields)


def syn(**fields: Any) -> Packet:
    return TCP(**({"sport": 40000, "dport": 80, "flags": "S", "seq": 1000} | fields))


def dns(**fields: Any) -> Packet:
    return UDP(**({"sport": 40000, "dport": 53} | fields))


def cut(frame: Packet, length: int) -> bytes:
    return bytes(frame)[:length]


def nine_dest_opts() -> Packet:
    chain = ip6()
    for _ in range(9):
        chain = chain / IPv6ExtHdrDestOpt()
    return chain


# (name, frame at the VIP, drop reason). Every malformation the parser recognises.
MALFORMED: list[tuple[str, bytes, str]] = [
    # -- truncated: L2, L3, L4
    ("l2_shorter_than_ethernet_header", cut(eth() / ip4() / syn(), 10), "truncated"),
    ("l2_vlan_tag_cut", cut(eth(ETH_VLAN) / Dot1Q(vlan=7) / ip4() / syn(), 16), "truncated"),
    ("l3_ipv4_header_cut", cut(eth() / ip4() / syn(), 14 + 19), "truncated"),
    (
        "l3_ipv4_header_cut_after_vlan",
        cut(eth() / Dot1Q(vlan=7) / ip4() / syn(), 18 + 12),
        "truncated",
    ),
    ("l3_ipv6_header_cut", cut(eth() / ip6() / syn(), 14 + 39), "truncated"),
    ("l4_tcp_header_cut", bytes(eth() / ip4(proto=6) / Raw(bytes(syn())[:19])), "truncated"),
    ("l4_udp_header_cut", bytes(eth() / ip4(proto=17) / Raw(bytes(dns())[:7])), "truncated"),
    ("l4_icmp_header_cut", bytes(eth() / ip4(proto=1) / Raw(b"\x08\x00\x00\x00")), "truncated"),
    ("l4_ipv6_tcp_header_cut", bytes(eth() / ip6(nh=6) / Raw(bytes(syn())[:10])), "truncated"),
    # -- bad_ip_version
    ("ipv4_ethertype_version_6", bytes(eth(ETH_IPV4) / ip6() / syn()), "bad_ip_version"),
    ("ipv4_ethertype_version_5", bytes(eth() / ip4(version=5) / syn()), "bad_ip_version"),
    ("ipv6_ethertype_version_4", bytes(eth(ETH_IPV6) / ip4() / syn()), "bad_ip_version"),
    # -- bad_ip_header_length
    ("ihl_4", bytes(eth() / ip4(ihl=4) / syn()), "bad_ip_header_length"),
    ("ihl_0", bytes(eth() / ip4(ihl=0) / syn()), "bad_ip_header_length"),
    ("ihl_beyond_frame", bytes(eth() / ip4(ihl=15, len=40) / syn()), "bad_ip_header_length"),
    # -- bad_ip_total_length
    ("ipv4_total_length_beyond_frame", bytes(eth() / ip4(len=41) / syn()), "bad_ip_total_length"),
    ("ipv4_total_length_below_header", bytes(eth() / ip4(len=19) / syn()), "bad_ip_total_length"),
    (
        "ipv4_total_length_below_options",
        bytes(eth() / ip4(options=[IPOption_Router_Alert()], len=22) / syn()),
        "bad_ip_total_length",
    ),
    (
        "ipv6_payload_length_beyond_frame",
        bytes(eth() / ip6(plen=21) / syn()),
        "bad_ip_total_length",
    ),
    # -- bad_l4_header
    ("tcp_data_offset_4", bytes(eth() / ip4() / syn(dataofs=4)), "bad_l4_header"),
    ("tcp_data_offset_0", bytes(eth() / ip4() / syn(dataofs=0)), "bad_l4_header"),
    ("tcp_data_offset_beyond_packet", bytes(eth() / ip4() / syn(dataofs=6)), "bad_l4_header"),
    (
        "tcp_data_offset_beyond_ip_length",  # the frame has the bytes, the IP length does not
        bytes(eth() / ip4(len=40) / syn(dataofs=6) / Raw(b"\x01" * 4)),
        "bad_l4_header",
    ),
    ("ipv6_tcp_data_offset_15", bytes(eth() / ip6() / syn(dataofs=15)), "bad_l4_header"),
    ("udp_length_7", bytes(eth() / ip4() / dns(len=7) / Raw(b"q")), "bad_l4_header"),
    ("udp_length_0", bytes(eth() / ip4() / dns(len=0) / Raw(b"q")), "bad_l4_header"),
    ("udp_length_beyond_packet", bytes(eth() / ip4() / dns(len=10) / Raw(b"q")), "bad_l4_header"),
    (
        "ipv6_udp_length_beyond_packet",
        bytes(eth() / ip6() / dns(len=100) / Raw(b"q")),
        "bad_l4_header",
    ),
    # -- bad_ipv6_extension
    (
        "ipv6_extension_length_past_packet",
        bytes(eth() / ip6(nh=0) / Raw(bytes([6, 5]) + bytes(6)) / syn()),
        "bad_ipv6_extension",
    ),
    (
        "ipv6_extension_header_cut",
        bytes(eth() / ip6(nh=60) / Raw(bytes([6, 0, 0, 0]))),
        "bad_ipv6_extension",
    ),
    (
        "ipv6_second_extension_past_packet",
        bytes(eth() / ip6() / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt(nh=6, len=3) / syn()),
        "bad_ipv6_extension",
    ),
    ("ipv6_nine_extension_headers", bytes(eth() / nine_dest_opts() / syn()), "bad_ipv6_extension"),
    # -- fragment
    ("ipv4_more_fragments", bytes(eth() / ip4(flags="MF") / syn()), "fragment"),
    ("ipv4_fragment_offset", bytes(eth() / ip4(frag=185) / syn()), "fragment"),
    ("ipv4_last_fragment_with_df", bytes(eth() / ip4(flags="DF", frag=1) / syn()), "fragment"),
    (
        "ipv6_fragment_header",
        bytes(eth() / ip6() / IPv6ExtHdrFragment(m=1, id=7) / syn()),
        "fragment",
    ),
    (
        "ipv6_fragment_after_hop_by_hop",
        bytes(eth() / ip6() / IPv6ExtHdrHopByHop() / IPv6ExtHdrFragment(offset=10, id=7) / syn()),
        "fragment",
    ),
]


def assert_only(engine: Engine, **expected: int) -> None:
    """The engine's totals are exactly `expected` for the named counters (drops by reason,
    or tx_packets / to_control / rx_packets), and zero for every other drop reason."""
    total = engine.stats()["total"]
    drops = total["drops"]
    want_drops = {r: expected.get(r, 0) for r in DROP_REASONS}
    assert drops == want_drops
    for key in ("rx_packets", "tx_packets", "to_control"):
        if key in expected:
            assert total[key] == expected[key], key


@pytest.mark.parametrize(
    ("frame", "reason"), [(f, r) for _, f, r in MALFORMED], ids=[n for n, _, _ in MALFORMED]
)
def test_malformed_frame_is_dropped_under_its_reason(
    engine: Engine, frame: bytes, reason: str
) -> None:
    assert engine.trace(frame)["verdict"] == "drop"
    assert engine.process(frame) == []
    assert_only(engine, **{reason: 2}, rx_packets=2, tx_packets=0, to_control=0)
    assert engine.sessions() == []


def test_every_drop_reason_of_the_parser_has_a_case() -> None:
    parser_reasons = {
        "truncated",
        "bad_ip_version",
        "bad_ip_header_length",
        "bad_ip_total_length",
        "bad_l4_header",
        "bad_ipv6_extension",
        "fragment",
    }
    assert parser_reasons <= set(DROP_REASONS)
    assert {r for _, _, r in MALFORMED} == parser_reasons


def test_drop_reasons_are_the_keys_of_the_drop_counters() -> None:
    engine = make_engine(workers=2)
    stats = engine.stats()
    assert list(DROP_REASONS) == list(stats["total"]["drops"])
    for worker in stats["workers"]:
        assert list(worker["drops"]) == list(DROP_REASONS)
    assert len(set(DROP_REASONS)) == len(DROP_REASONS)


# -- not malformed: forwarded ------------------------------------------------------------


def test_vlan_tagged_syn_is_forwarded_with_its_tag(engine: Engine) -> None:
    frame = eth() / Dot1Q(vlan=100, prio=3) / ip4() / syn()
    port, out = send_one(engine, frame)
    assert port == 1
    assert out[Ether].dst == REAL_MACS["10.0.2.11"]
    assert out[Ether].src == PORT1_MAC
    assert out[Ether].type == ETH_VLAN
    assert out[Dot1Q].vlan == 100
    assert out[Dot1Q].prio == 3
    assert out[Dot1Q].type == ETH_IPV4
    assert out[IP].src == "10.0.2.101"
    assert out[IP].dst == "10.0.2.11"
    assert out[IP].ttl == 63
    assert out[TCP].dport == 8080
    assert out[TCP].flags == "S"
    assert out[TCP].seq == 1000
    assert_only(engine, rx_packets=1, tx_packets=1)


def test_ipv4_options_are_forwarded_intact(engine: Engine) -> None:
    frame = eth() / ip4(options=[IPOption_Router_Alert()]) / syn()
    options = bytes(frame[IP])[20:24]
    port, out = send_one(engine, frame)
    assert port == 1
    assert out[IP].ihl == 6
    assert out[IP].len == 24 + 20
    assert bytes(out[IP])[20:24] == options
    assert out[IP].src == "10.0.2.101"
    assert out[IP].dst == "10.0.2.11"
    assert out[TCP].dport == 8080
    assert out[TCP].seq == 1000
    assert out[TCP].flags == "S"


def test_dont_fragment_is_not_a_fragment(engine: Engine) -> None:
    port, out = send_one(engine, eth() / ip4(flags="DF") / syn())
    assert port == 1
    assert out[IP].flags == "DF"
    assert out[IP].frag == 0
    assert out[TCP].dport == 8080


def test_ethernet_padding_is_not_a_bad_length(engine: Engine) -> None:
    raw = bytes(eth() / ip4() / syn()) + bytes(6)  # padded to 60 bytes, as on the wire
    port, out = send_one(engine, Ether(raw))
    assert port == 1
    assert out[IP].len == 40
    assert out[IP].dst == "10.0.2.11"
    assert out[TCP].dport == 8080
    assert out[TCP].flags == "S"


def test_eight_ipv6_extension_headers_are_forwarded(engine: Engine) -> None:
    chain = ip6()
    for _ in range(7):
        chain = chain / IPv6ExtHdrDestOpt()
    frame = eth() / chain / IPv6ExtHdrHopByHop() / syn()
    # Hop-by-hop not first is odd but legal to walk; eight headers is the limit.
    port, out = send_one(engine, frame)
    assert port == 1
    assert out[IPv6].src == "2001:db8:2::101"
    assert out[IPv6].dst == "2001:db8:2::11"
    assert out[IPv6].hlim == 63
    assert out[TCP].sport >= 1
    assert out[TCP].dport == 8080
    assert out[TCP].seq == 1000
    assert bytes(out[IPv6].payload)[: 8 * 8] == bytes(frame[IPv6].payload)[: 8 * 8]


# -- the control path --------------------------------------------------------------------


def test_arp_goes_to_control(engine: Engine) -> None:
    frame = Ether(src=CLIENT_GW_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(
        op="who-has", hwsrc=CLIENT_GW_MAC, psrc="10.0.1.254", pdst=VIP4
    )
    assert engine.trace(bytes(frame))["verdict"] == "control"
    assert send(engine, frame) == []
    assert_only(engine, rx_packets=2, tx_packets=0, to_control=2)


@pytest.mark.parametrize(
    "frame",
    [
        eth() / IP(src=CLIENT4, dst="10.0.1.1") / syn(dport=179),  # the port's own address (BGP)
        eth() / IP(src=CLIENT4, dst="10.0.100.99") / syn(),  # an address dplb does not serve
        eth() / ip4() / syn(dport=443),  # the VIP, a port with no service
        eth() / ip4() / UDP(sport=40000, dport=80),  # the VIP, tcp service only
        eth() / IPv6(src=CLIENT6, dst="2001:db8:1::1") / syn(dport=22),
        eth() / ip4(proto=47) / Raw(bytes(8)),  # GRE
    ],
    ids=[
        "port_address",
        "unknown_address",
        "vip_other_port",
        "vip_other_protocol",
        "ipv6_port_address",
        "gre",
    ],
)
def test_traffic_for_no_service_goes_to_control(engine: Engine, frame: Packet) -> None:
    assert engine.trace(bytes(frame))["verdict"] == "control"
    assert send(engine, frame) == []
    assert_only(engine, rx_packets=2, tx_packets=0, to_control=2)
    assert engine.sessions() == []


# -- fuzz --------------------------------------------------------------------------------


def open_sessions(engine: Engine) -> list[Packet]:
    """Opens a TCP/IPv4, a UDP and a TCP/IPv6 session; returns valid frames that hit them
    in both directions (and some that open new ones)."""
    frames: list[Packet] = []
    syn4 = client_frame() / syn()
    _, to_real = send_one(engine, syn4)
    laddr, lport = to_real[IP].src, to_real[TCP].sport
    synack4 = real_frame("10.0.2.11", laddr) / TCP(
        sport=8080, dport=lport, flags="SA", seq=9, ack=1001
    )
    send_one(engine, synack4, port=1)
    ack4 = client_frame() / syn(flags="A", seq=1001, ack=10) / Raw(b"GET / HTTP/1.0\r\n\r\n")
    send_one(engine, ack4)
    icmp4 = (
        real_frame("10.0.2.11", laddr) / ICMP(type=3, code=4, nexthopmtu=1400) / bytes(to_real[IP])
    )

    udp4 = client_frame() / dns() / Raw(b"query")
    _, udp_to_real = send_one(engine, udp4)
    udp_back = (
        real_frame("10.0.2.13", udp_to_real[IP].src)
        / UDP(sport=5353, dport=udp_to_real[UDP].sport)
        / b"ans"
    )

    syn6 = client_frame(CLIENT6, VIP6) / syn()
    _, to_real6 = send_one(engine, syn6)
    synack6 = real_frame("2001:db8:2::11", to_real6[IPv6].src) / TCP(
        sport=8080, dport=to_real6[TCP].sport, flags="SA", seq=9, ack=1001
    )
    _, to_client6 = send_one(engine, synack6, port=1)

    frames += [syn4, synack4, ack4, icmp4, udp4, udp_back, syn6, synack6]
    frames.append(eth() / Dot1Q(vlan=5) / ip4() / syn(sport=40001))
    frames.append(eth() / ip4(options=[IPOption_Router_Alert()]) / syn(sport=40002))
    frames.append(eth() / ip6() / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / syn(sport=40003))
    frames.append(eth() / ip6() / syn(flags="A", seq=1001, ack=10) / Raw(b"x" * 40))
    frames.append(
        Ether(src="0a:00:00:00:09:99", dst=PORT0_MAC)
        / IPv6(src="2001:db8:99::1", dst=VIP6)
        / ICMPv6DestUnreach(code=4)
        / bytes(to_client6[IPv6])
    )
    frames.append(Ether(src=CLIENT_GW_MAC, dst=PORT0_MAC) / ARP(psrc="10.0.1.254", pdst="10.0.1.1"))
    frames.append(eth() / ip4() / ICMP(type=8))
    return frames


def damage(rng: random.Random, raw: bytes) -> bytes:
    data = bytearray(raw)
    kind = rng.random()
    if kind < 0.3 or not data:
        return bytes(data[: rng.randrange(len(data) + 1)])
    flips = rng.randint(1, 6)
    for _ in range(flips):
        # Mostly in the headers, where a flip changes the parse.
        limit = min(len(data), 80) if rng.random() < 0.85 else len(data)
        i = rng.randrange(limit)
        if rng.random() < 0.3:
            data[i] = rng.randrange(256)
        else:
            data[i] ^= 1 << rng.randrange(8)
    if kind > 0.8:
        data = data[: rng.randrange(len(data) + 1)]
    return bytes(data)


def counters(engine: Engine) -> dict[str, int]:
    total = engine.stats()["total"]
    out = {
        k: total[k] for k in ("rx_packets", "tx_packets", "to_control", "handed_over", "handed_in")
    }
    out["drops"] = sum(total["drops"].values())
    return out


@pytest.mark.parametrize("workers", [1, 2])
def test_random_damage_never_crashes_and_every_frame_is_accounted_for(workers: int) -> None:
    engine = make_engine(workers=workers)
    seeds = [bytes(f) for f in open_sessions(engine)]
    rng = random.Random(20240 + workers)
    before = counters(engine)
    seen: dict[str, int] = {}
    frames = 3000
    for n in range(frames):
        raw = damage(rng, rng.choice(seeds))
        port = rng.randrange(2)
        worker = rng.randrange(workers) if rng.random() < 0.2 else None
        result = engine.trace(raw, port, worker)
        after = counters(engine)
        delta = {k: after[k] - before[k] for k in after}
        where = f"frame {n}: {raw.hex()} -> {result['verdict']}, {delta}"
        assert delta["rx_packets"] == 1, where
        assert delta["tx_packets"] + delta["to_control"] + delta["drops"] == 1, where
        assert delta["handed_over"] == delta["handed_in"] == len(result["workers"]) - 1, where
        verdict = result["verdict"]
        if verdict == "transmit":
            assert delta["tx_packets"] == 1 and len(result["sent"]) == 1, where
        elif verdict == "control":
            assert delta["to_control"] == 1 and result["sent"] == [], where
        else:
            assert verdict == "drop", where
            assert delta["drops"] == 1 and result["sent"] == [], where
        seen[verdict] = seen.get(verdict, 0) + 1
        before = after
    # The mix reached every outcome, so the loop tested more than one path.
    assert set(seen) == {"transmit", "control", "drop"}, seen
    total = engine.stats()["total"]
    assert total["rx_packets"] == total["tx_packets"] + total["to_control"] + sum(
        total["drops"].values()
    )
    assert total["handed_over"] == total["handed_in"]
    malformed = ("truncated", "bad_ip_header_length", "bad_ip_total_length", "bad_l4_header")
    assert all(total["drops"][r] > 0 for r in malformed), total["drops"]
