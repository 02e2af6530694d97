"""What the end-to-end tests do from inside the client namespace, as one script run with
`ip netns exec <client> python client_tools.py COMMAND ...`; each command prints one
JSON object.

  arp IFACE IP                 ARP request for IP; the MAC that answered
  arpscan IFACE IP COUNT       COUNT ARP requests for IP, each from another made-up sender
                               (address and MAC), as a scan or a spoofer sends them
  nd IFACE SRC IP              IPv6 neighbour solicitation for IP; the MAC that answered
  udp HOST PORT COUNT          COUNT datagrams from COUNT sockets; the answers
  flood IFACE DST_MAC ROUNDS   malformed frames at the VIPs, ROUNDS times each kind
                               (0: until SIGTERM)
  banner HOST PORT             to a server that speaks first (proxy_server.py --banner):
                               sends nothing until its banner came, then a line
  echo HOST PORT SIZE          SIZE random bytes to proxy_server.py --echo while reading
                               the echo; the sha256 of both ways and the server's answer
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import sys
import threading
import time
from typing import Any

from scapy.arch import get_if_hwaddr
from scapy.config import conf
from scapy.layers.inet import IP, TCP, UDP, IPOption_Router_Alert
from scapy.layers.inet6 import (
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
)
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Packet, Raw
from scapy.sendrecv import srp1
from scapy.utils6 import in6_getnsma, in6_getnsmac, in6_ptop

CLIENT4, CLIENT6 = "10.10.1.10", "fd00:10:1::10"
VIP4, VIP6 = "10.10.100.10", "fd00:10:100::10"


def arp(iface: str, ip: str) -> dict[str, Any]:
    request = Ether(dst="ff:ff:ff:ff:ff:ff", src=get_if_hwaddr(iface)) / ARP(
        op="who-has", hwsrc=get_if_hwaddr(iface), psrc=CLIENT4, pdst=ip
    )
    reply = srp1(request, iface=iface, timeout=2, retry=3, verbose=False)
    if reply is None or ARP not in reply:
        return {"mac": None}
    return {"mac": reply[ARP].hwsrc, "ip": reply[ARP].psrc, "op": int(reply[ARP].op)}


def arpscan(iface: str, ip: str, count: int) -> dict[str, Any]:
    sock = conf.L2socket(iface=iface)
    try:
        for i in range(count):
            mac = f"02:5c:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}"
            sender = f"10.30.{i >> 8 & 255}.{i & 255}"
            sock.send(
                Ether(dst="ff:ff:ff:ff:ff:ff", src=mac)
                / ARP(op="who-has", hwsrc=mac, psrc=sender, pdst=ip)
            )
            if i % 256 == 255:
                time.sleep(0.01)  # a scan's pace, not a flood of the control path
    finally:
        sock.close()
    return {"sent": count}


def nd(iface: str, src: str, ip: str) -> dict[str, Any]:
    mac = get_if_hwaddr(iface)
    solicited = in6_getnsma(socket.inet_pton(socket.AF_INET6, ip))
    request = (
        Ether(dst=in6_getnsmac(solicited), src=mac)
        / IPv6(src=src, dst=socket.inet_ntop(socket.AF_INET6, solicited), hlim=255)
        / ICMPv6ND_NS(tgt=ip)
        / ICMPv6NDOptSrcLLAddr(lladdr=mac)
    )
    reply = srp1(request, iface=iface, timeout=2, retry=3, verbose=False)
    if reply is None or ICMPv6ND_NA not in reply:
        return {"mac": None}
    return {"mac": reply[Ether].src, "target": in6_ptop(reply[ICMPv6ND_NA].tgt)}


def udp(host: str, port: int, count: int) -> dict[str, Any]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    answers = []
    for i in range(count):
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.settimeout(1.0)
            payload = f"ping {i}".encode()
            answer = None
            for _ in range(5):  # UDP: the first datagram may wait for a neighbour
                sock.sendto(payload, (host, port))
                try:
                    answer = sock.recv(65535).decode()
                    break
                except TimeoutError:
                    continue
            answers.append(answer)
    return {"answers": answers}


def malformed(src_mac: str, dst_mac: str) -> list[tuple[str, bytes]]:
    """(drop reason, frame) for each kind of damage the parser names (a subset of
    tests/test_malformed.py, addressed to this topology's VIPs)."""
    eth = Ether(dst=dst_mac, src=src_mac)

    def ip4(**fields: Any) -> Packet:
        return IP(src=CLIENT4, dst=VIP4, ttl=64, **fields)

    def ip6(**fields: Any) -> Packet:
        return IPv6(src=CLIENT6, dst=VIP6, hlim=64, **fields)

    def syn(**fields: Any) -> Packet:
        return TCP(**({"sport": 40000, "dport": 80, "flags": "S", "seq": 1000} | fields))

    def dns(**fields: Any) -> Packet:
        return UDP(**({"sport": 40000, "dport": 53} | fields))

    return [
        ("truncated", bytes(eth / ip4() / syn())[: 14 + 19]),
        ("truncated", bytes(eth / ip6() / syn())[: 14 + 39]),
        ("truncated", bytes(eth / ip4(proto=6) / Raw(bytes(syn())[:19]))),
        ("truncated", bytes(eth / ip4(proto=17) / Raw(bytes(dns())[:7]))),
        ("bad_ip_version", bytes(eth / ip4(version=5) / syn())),
        ("bad_ip_header_length", bytes(eth / ip4(ihl=4) / syn())),
        ("bad_ip_header_length", bytes(eth / ip4(ihl=15, len=40) / syn())),
        ("bad_ip_total_length", bytes(eth / ip4(len=41) / syn())),
        ("bad_ip_total_length", bytes(eth / ip4(len=19) / syn())),
        (
            "bad_ip_total_length",
            bytes(eth / ip4(options=[IPOption_Router_Alert()], len=22) / syn()),
        ),
        ("bad_ip_total_length", bytes(eth / ip6(plen=21) / syn())),
        ("bad_l4_header", bytes(eth / ip4() / syn(dataofs=4))),
        ("bad_l4_header", bytes(eth / ip4() / syn(dataofs=6))),
        ("bad_l4_header", bytes(eth / ip4() / dns(len=7) / Raw(b"q"))),
        ("bad_l4_header", bytes(eth / ip6() / dns(len=100) / Raw(b"q"))),
        ("bad_ipv6_extension", bytes(eth / ip6(nh=60) / Raw(bytes([6, 0, 0, 0])))),
        (
            "bad_ipv6_extension",
            bytes(eth / ip6() / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt(nh=6, len=3) / syn()),
        ),
        ("fragment", bytes(eth / ip4(flags="MF") / syn())),
        ("fragment", bytes(eth / ip4(frag=185) / syn())),
        ("fragment", bytes(eth / ip6() / IPv6ExtHdrFragment(m=1, id=7) / syn())),
    ]


def flood(iface: str, dst_mac: str, rounds: int) -> dict[str, Any]:
    """Sends every kind in turn, `rounds` times (0: until SIGTERM); prints `flooding`
    after the first round."""
    frames = malformed(get_if_hwaddr(iface), dst_mac)
    sent: dict[str, int] = {}
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sock = conf.L2socket(iface=iface)  # one raw AF_PACKET socket for all of them
    try:
        done = 0
        while not stop.is_set() and (rounds == 0 or done < rounds):
            for reason, frame in frames:
                sock.send(frame)
                sent[reason] = sent.get(reason, 0) + 1
            done += 1
            if done == 1:
                print("flooding", flush=True)
    finally:
        sock.close()
    return {"sent": sent}


def connect(host: str, port: int) -> tuple[socket.socket, dict[str, Any]]:
    sock = socket.create_connection((host, port), timeout=60)
    local = sock.getsockname()
    return sock, {"local": [local[0], local[1]]}


def read_line(sock: socket.socket) -> str:
    line = b""
    while not line.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        line += chunk
    return line.decode(errors="replace")


def banner(host: str, port: int) -> dict[str, Any]:
    """Waits for the server's banner before sending anything: whatever the server read
    before it came from dplb."""
    sock, result = connect(host, port)
    with sock:
        first = read_line(sock)
        result["banner"] = json.loads(first) if first else None
        sock.sendall(b"hello\n")
        result["reply"] = read_line(sock)
    return result


def echo(host: str, port: int, size: int) -> dict[str, Any]:
    """Sends an 8-byte length and `size` random bytes from one thread while this one reads
    the echo; then the server's closing JSON line."""
    sock, result = connect(host, port)
    sent = hashlib.sha256()
    failure: list[str] = []

    def send() -> None:
        try:
            sock.sendall(size.to_bytes(8, "big"))
            left = size
            while left:
                data = os.urandom(min(1 << 20, left))
                sent.update(data)
                sock.sendall(data)
                left -= len(data)
        except OSError as exc:
            failure.append(f"send: {exc}")

    sender = threading.Thread(target=send)
    with sock:
        sender.start()
        echoed = hashlib.sha256()
        got = 0
        start = b""  # shown when the echo falls short (an {"error": ...} line instead?)
        while got < size:
            data = sock.recv(min(1 << 20, size - got))
            if not data:
                break
            start += data[: 200 - len(start)]
            echoed.update(data)
            got += len(data)
        trailer = b""
        while chunk := sock.recv(65536):
            trailer += chunk
        sender.join()
    answer = trailer.decode(errors="replace")
    result |= {"sent_sha256": sent.hexdigest(), "echoed": got, "echo_sha256": echoed.hexdigest()}
    result |= {"server": json.loads(answer) if answer.strip() else None, "failure": failure}
    if got < size:
        result["echo_start"] = start.decode(errors="replace")
    return result


def main(argv: list[str]) -> int:
    command, args = argv[0], argv[1:]
    if command == "arp":
        result = arp(args[0], args[1])
    elif command == "arpscan":
        result = arpscan(args[0], args[1], int(args[2]))
    elif command == "nd":
        result = nd(args[0], args[1], args[2])
    elif command == "udp":
        result = udp(args[0], int(args[1]), int(args[2]))
    elif command == "flood":
        result = flood(args[0], args[1], int(args[2]))
    elif command == "banner":
        result = banner(args[0], int(args[1]))
    elif command == "echo":
        result = echo(args[0], int(args[1]), int(args[2]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
