#!/usr/bin/env python3
"""Writes the libFuzzer seed corpus of cpp/fuzz/ (frames built with scapy): one folder per
target under --out. packet_parser: frames as they come off the wire, well-formed and
damaged. engine: conversations in engine_fuzz.cpp's op encoding (header comment there).

Run: .venv/bin/python scripts/fuzz_seeds.py --out build/fuzz/seeds"""

from __future__ import annotations

import argparse
import struct
from pathlib import Path

from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, TCPerror
from scapy.layers.inet6 import (
    ICMPv6PacketTooBig,
    IPerror6,
    IPv6,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Raw

PORT0 = "02:00:00:00:00:01"
PORT1 = "02:00:00:00:00:02"
GATEWAY = "0a:00:00:00:01:fe"
REAL = "0a:00:00:00:02:11"
VIP = "10.0.100.10"
VIP6 = "2001:db8:100::10"
CLIENT = "198.51.100.7"
CLIENT6 = "2001:db8:7::7"

SYN, ACK, FIN, RST, PSH = 0x02, 0x10, 0x01, 0x04, 0x08


def parser_seeds() -> dict[str, bytes]:
    to_vip = Ether(dst=PORT0, src=GATEWAY)
    quoted = IPerror(src="10.0.2.101", dst="10.0.2.11") / TCPerror(sport=1024, dport=8080)
    frames = {
        "tcp_syn": to_vip / IP(src=CLIENT, dst=VIP) / TCP(sport=40001, dport=80, flags="S"),
        "tcp_options": to_vip
        / IP(src=CLIENT, dst=VIP, options=b"\x01\x01\x01\x00")
        / TCP(
            sport=40001,
            dport=80,
            flags="S",
            options=[("MSS", 1460), ("WScale", 7), ("SAckOK", b"")],
        ),
        "tcp_data": to_vip
        / IP(src=CLIENT, dst=VIP)
        / TCP(sport=40001, dport=80, flags="PA")
        / Raw(b"GET /"),
        "udp": to_vip / IP(src=CLIENT, dst=VIP) / UDP(sport=40001, dport=53) / Raw(b"query"),
        "vlan_udp": to_vip / Dot1Q(vlan=7) / IP(src=CLIENT, dst=VIP) / UDP(sport=1, dport=53),
        "ipv4_fragment": to_vip
        / IP(src=CLIENT, dst=VIP, flags="MF", frag=0)
        / UDP(sport=1, dport=53),
        "ipv4_later_fragment": to_vip / IP(src=CLIENT, dst=VIP, frag=3, proto=17) / Raw(b"x" * 16),
        "icmp_error": Ether(dst=PORT1, src=REAL)
        / IP(src="10.0.2.11", dst="10.0.2.101")
        / ICMP(type=3, code=4)
        / quoted,
        "ipv6_tcp": to_vip / IPv6(src=CLIENT6, dst=VIP6) / TCP(sport=40001, dport=80, flags="S"),
        "ipv6_extensions": to_vip
        / IPv6(src=CLIENT6, dst=VIP6)
        / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrRouting()
        / TCP(sport=40001, dport=80, flags="S"),
        "ipv6_fragment": to_vip
        / IPv6(src=CLIENT6, dst=VIP6)
        / IPv6ExtHdrFragment(m=1)
        / UDP(sport=1, dport=53),
        "icmpv6_too_big": Ether(dst=PORT1, src=REAL)
        / IPv6(src="2001:db8:2::11", dst="2001:db8:2::101")
        / ICMPv6PacketTooBig(mtu=1280)
        / IPerror6(src="2001:db8:2::101", dst="2001:db8:2::11")
        / TCPerror(sport=1024, dport=8080),
        "arp": Ether(dst="ff:ff:ff:ff:ff:ff", src=GATEWAY)
        / ARP(pdst="10.0.1.1", psrc="10.0.1.254"),
    }
    out = {name: bytes(f) for name, f in frames.items()}
    out["truncated_ipv4"] = out["tcp_syn"][:30]
    out["truncated_tcp"] = out["tcp_syn"][:40]
    bad_ihl = bytearray(out["tcp_syn"])
    bad_ihl[14] = 0x44
    out["bad_ihl"] = bytes(bad_ihl)
    return out


def raw_op(frame: bytes, port: int) -> bytes:
    """Op 0: a raw frame on `port` (at most 511 bytes)."""
    frame = frame[:511]
    op = 0 | (port << 3) | (0x10 if len(frame) >= 256 else 0)
    return bytes([op, len(frame) & 0xFF]) + frame


def client_op(service: int, cport: int, flags: int, seq: int, ack: int, payload: int = 0) -> bytes:
    return bytes([3, service, cport, flags]) + struct.pack(">II", seq, ack) + bytes([payload])


def real_op(which: int, lport: int, flags: int, seq: int, ack: int, payload: int = 0) -> bytes:
    return bytes([4, which, lport, flags]) + struct.pack(">II", seq, ack) + bytes([payload])


def clock_op(ticks: int, seconds: bool = False) -> bytes:
    return bytes([5 | (8 if seconds else 0)]) + struct.pack(">H", ticks)


def config_op(variant: int) -> bytes:
    return bytes([6]) + struct.pack(">H", variant)


def conversation(service: int, which: int) -> bytes:
    """A whole TCP connection through `service`, the real answering as worker/family
    `which` (both workers are tried: the flow's owner depends on its hash)."""
    c, r = 100, 5000
    ops = [
        client_op(service, 1, SYN, c, 0),
        real_op(which, 0, SYN | ACK, r, c + 1),
        client_op(service, 1, ACK, c + 1, r + 1),
        client_op(service, 1, PSH | ACK, c + 1, r + 1, 20),
        real_op(which, 0, PSH | ACK, r + 1, c + 21, 30),
        client_op(service, 1, FIN | ACK, c + 21, r + 31),
        real_op(which, 0, FIN | ACK, r + 31, c + 22),
        client_op(service, 1, ACK, c + 22, r + 32),
        clock_op(300),
    ]
    return b"".join(ops)


def engine_seeds(frames: dict[str, bytes]) -> dict[str, bytes]:
    seeds: dict[str, bytes] = {}
    for service, name in ((0, "plain"), (1, "toa"), (2, "proxy"), (4, "ipv6")):
        for which in (0, 1) if service != 4 else (2, 3):
            seeds[f"conversation_{name}_w{which}"] = conversation(service, which)
    seeds["udp_flow"] = (
        client_op(3, 5, 0, 0, 0, 10) + real_op(4, 0, 0, 0, 0, 10) + clock_op(10, True)
    )
    seeds["reset_by_real"] = (
        client_op(0, 2, SYN, 1, 0) + real_op(0, 0, RST | ACK, 0, 2) + real_op(1, 0, RST, 0, 2)
    )
    seeds["syn_flood_then_expiry"] = (
        b"".join(client_op(0, p, SYN, p, 0) for p in range(120))
        + clock_op(40, True)
        + client_op(1, 200, SYN, 1, 0)
    )
    seeds["config_changes"] = (
        client_op(0, 3, SYN, 1, 0)
        + config_op(0x2000)
        + client_op(0, 3, ACK, 2, 1)
        + config_op(0x1C07)
        + client_op(2, 4, SYN, 1, 0)
        + config_op(0)
    )
    seeds["neighbours"] = (
        client_op(0, 6, SYN, 1, 0) + bytes([7, 2, 7, 5]) + client_op(0, 6, ACK, 2, 1)
    )
    seeds["raw_frames"] = b"".join(raw_op(f, i % 2) for i, f in enumerate(frames.values()))
    return seeds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args()
    frames = parser_seeds()
    for target, seeds in (("packet_parser", frames), ("engine", engine_seeds(frames))):
        folder = args.out / target
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in seeds.items():
            (folder / name).write_bytes(data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
