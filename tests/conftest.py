"""Shared fixtures for the engine harness tests: one topology (a client side behind a
gateway, a real-server side with local addresses per worker) and scapy helpers that
check every checksum of every frame that leaves."""

from __future__ import annotations

from typing import Any

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet

from dplb import Engine

# Fixtures of the management tests (node, client): tests/api_helpers.py.
pytest_plugins = ["api_helpers"]

CLIENT_GW_MAC = "0a:00:00:00:01:fe"
REAL_MACS = {
    "10.0.2.11": "0a:00:00:00:02:11",
    "10.0.2.12": "0a:00:00:00:02:12",
    "10.0.2.13": "0a:00:00:00:02:13",
    "2001:db8:2::11": "0a:00:00:00:62:11",
    "2001:db8:2::12": "0a:00:00:00:62:12",
}
CLIENT4 = "198.51.100.7"
CLIENT6 = "2001:db8:77::7"
VIP4 = "10.0.100.10"
VIP6 = "2001:db8:100::10"
CA_REAL4, CA_REAL6 = "10.0.2.11", "2001:db8:2::11"  # the client-address tests' reals
PLAIN_PORT = 81  # a service of the same VIP without client_address


def node_config(
    workers: int = 1, services: list[dict[str, Any]] | None = None, **dataplane: Any
) -> dict[str, Any]:
    """The harness topology as a node config (DESIGN section 9 shape)."""
    laddrs = [[f"10.0.2.{101 + w}", f"2001:db8:2::{101 + w}"] for w in range(workers)]
    if services is None:
        services = [
            {
                "vip": VIP4,
                "port": 80,
                "protocol": "tcp",
                "scheduler": "rr",
                "reals": [
                    {"address": "10.0.2.11", "port": 8080},
                    {"address": "10.0.2.12", "port": 8080},
                ],
            },
            {
                "vip": VIP4,
                "port": 53,
                "protocol": "udp",
                "scheduler": "rr",
                "reals": [{"address": "10.0.2.13", "port": 5353}],
            },
            {
                "vip": VIP6,
                "port": 80,
                "protocol": "tcp",
                "scheduler": "maglev",
                "reals": [{"address": "2001:db8:2::11", "port": 8080}],
            },
        ]
    return {
        "node": {"name": "harness", "cluster": "test"},
        "dataplane": {
            "workers": workers,
            "sessions_per_worker": dataplane.pop("sessions_per_worker", 1024),
            "ports": [
                {
                    "name": "port0",
                    "device": "net_null0",
                    "address": ["10.0.1.1/24", "2001:db8:1::1/64"],
                    "gateway": ["10.0.1.254", "2001:db8:1::fe"],
                },
                {
                    "name": "port1",
                    "device": "net_null1",
                    "address": ["10.0.2.1/24", "2001:db8:2::1/64"],
                    "local_addresses": laddrs,
                },
            ],
            **dataplane,
        },
        "services": services,
    }


def client_address_services(mode: str, trust: bool = False) -> list[dict[str, Any]]:
    """Services for the client-address tests: port 80 of both VIPs with `client_address:
    mode` to one real each, and PLAIN_PORT of the IPv4 VIP without it."""
    extra = {"proxy_protocol_from_client": "trust"} if trust else {}
    with_mode = [
        {
            "vip": vip,
            "port": 80,
            "scheduler": "rr",
            "client_address": mode,
            "reals": [{"address": real, "port": 8080}],
            **extra,
        }
        for vip, real in ((VIP4, CA_REAL4), (VIP6, CA_REAL6))
    ]
    plain = {
        "vip": VIP4,
        "port": PLAIN_PORT,
        "scheduler": "rr",
        "reals": [{"address": CA_REAL4, "port": 8080}],
    }
    return [*with_mode, plain]


def make_engine(
    workers: int = 1, services: list[dict[str, Any]] | None = None, **dataplane: Any
) -> Engine:
    engine = Engine(node_config(workers, services, **dataplane))
    engine.set_neighbour("port0", "10.0.1.254", CLIENT_GW_MAC)
    engine.set_neighbour("port0", "2001:db8:1::fe", CLIENT_GW_MAC)
    for ip, mac in REAL_MACS.items():
        engine.set_neighbour("port1", ip, mac)
    return engine


@pytest.fixture
def engine() -> Engine:
    return make_engine()


def assert_checksums_valid(frame: Packet) -> None:
    """Recomputes every checksum scapy knows in the frame and compares."""
    rebuilt = frame.copy()
    for layer_type in (IP, TCP, UDP, ICMP):
        layer = rebuilt.getlayer(layer_type)
        while layer is not None:
            if getattr(layer, "chksum", None) is not None and not (
                layer_type is UDP and layer.chksum == 0
            ):
                del layer.chksum
            layer = layer.payload.getlayer(layer_type) if layer.payload else None
    for layer_type in ("ICMPv6DestUnreach", "ICMPv6PacketTooBig", "ICMPv6TimeExceeded"):
        layer = rebuilt.getlayer(layer_type)
        if layer is not None:
            del layer.cksum
    again = Ether(bytes(rebuilt))
    assert bytes(again) == bytes(frame), "a checksum in the frame is wrong:\n" + frame.show2(
        dump=True
    )


def send(
    engine: Engine, frame: Packet, port: int | str = 0, worker: int | None = None
) -> list[tuple[int, Packet]]:
    """Processes a scapy frame; returns what leaves, parsed, each checksum checked."""
    out = []
    for out_port, raw in engine.process(bytes(frame), port, worker):
        pkt = Ether(raw)
        assert_checksums_valid(pkt)
        out.append((out_port, pkt))
    return out


def send_one(
    engine: Engine, frame: Packet, port: int | str = 0, worker: int | None = None
) -> tuple[int, Packet]:
    out = send(engine, frame, port, worker)
    assert len(out) == 1, (
        f"expected one frame out, got {len(out)}; stats: {engine.stats()['total']}"
    )
    return out[0]


def client_frame(src: str = CLIENT4, dst: str = VIP4) -> Packet:
    ip: Packet = IPv6(src=src, dst=dst, hlim=64) if ":" in dst else IP(src=src, dst=dst, ttl=64)
    return Ether(src=CLIENT_GW_MAC, dst="02:00:00:00:00:01") / ip


def real_frame(src: str, dst: str) -> Packet:
    ip: Packet = IPv6(src=src, dst=dst, hlim=64) if ":" in dst else IP(src=src, dst=dst, ttl=64)
    return Ether(src=REAL_MACS[src], dst="02:00:00:00:00:02") / ip


# -- helpers for connection-level tests ----------------------------------------------


def ip_layer(frame: Packet) -> Packet:
    """The IPv4 or IPv6 layer of a frame."""
    layer: Packet = frame[IPv6] if IPv6 in frame else frame[IP]
    return layer


def ttl_of(frame: Packet) -> int:
    ip = ip_layer(frame)
    return int(ip.hlim if isinstance(ip, IPv6) else ip.ttl)


def drops(engine: Engine) -> dict[str, int]:
    """Drop counters summed over the workers."""
    counters: dict[str, int] = engine.stats()["total"]["drops"]
    return counters


def nonzero_drops(engine: Engine) -> dict[str, int]:
    return {reason: n for reason, n in drops(engine).items() if n}


def session_of(
    engine: Engine, client: str, client_port: int, protocol: str = "tcp"
) -> dict[str, Any] | None:
    """The session of the client's flow, or None."""
    for s in engine.sessions():
        if s["client"] == (client, client_port) and s["protocol"] == protocol:
            return s
    return None


class TcpFlow:
    """One client connection through a VIP: builds its frames in both directions and,
    once its SYN went through, knows the real and the local address:port it got."""

    def __init__(
        self,
        engine: Engine,
        client_port: int,
        client: str = CLIENT4,
        vip: str = VIP4,
        vip_port: int = 80,
    ) -> None:
        self.engine = engine
        self.client = client
        self.client_port = client_port
        self.vip = vip
        self.vip_port = vip_port
        self.real = ""
        self.real_port = 0
        self.local = ""
        self.local_port = 0

    def from_client(
        self, flags: str, seq: int = 0, ack: int = 0, payload: bytes = b"", ttl: int = 64
    ) -> Packet:
        frame = client_frame(self.client, self.vip) / TCP(
            sport=self.client_port, dport=self.vip_port, flags=flags, seq=seq, ack=ack
        )
        ip_layer(frame).setfieldval("hlim" if ":" in self.vip else "ttl", ttl)
        return frame / payload if payload else frame

    def from_real(
        self, flags: str, seq: int = 0, ack: int = 0, payload: bytes = b"", ttl: int = 64
    ) -> Packet:
        assert self.real, "the flow has no real yet: send its SYN first"
        frame = real_frame(self.real, self.local) / TCP(
            sport=self.real_port, dport=self.local_port, flags=flags, seq=seq, ack=ack
        )
        ip_layer(frame).setfieldval("hlim" if ":" in self.local else "ttl", ttl)
        return frame / payload if payload else frame

    def syn(self, seq: int = 1000, worker: int | None = None) -> Packet:
        """Sends the client SYN; returns the frame that left toward the real."""
        out_port, out = send_one(self.engine, self.from_client("S", seq=seq), 0, worker)
        assert out_port == 1, "the SYN should leave on the real-server side"
        ip = ip_layer(out)
        self.real, self.real_port = ip.dst, out[TCP].dport
        self.local, self.local_port = ip.src, out[TCP].sport
        return out

    def handshake(self, client_isn: int = 1000, real_isn: int = 5000) -> None:
        """SYN, SYN-ACK, ACK through the engine; the session is established."""
        self.syn(client_isn)
        send_one(self.engine, self.from_real("SA", seq=real_isn, ack=client_isn + 1), 1)
        send_one(self.engine, self.from_client("A", seq=client_isn + 1, ack=real_isn + 1))

    def to_real(self, frame: Packet, worker: int | None = None) -> Packet:
        """Sends a client frame; asserts it left toward this flow's real."""
        out_port, out = send_one(self.engine, frame, 0, worker)
        assert out_port == 1
        assert (ip_layer(out).dst, out[TCP].dport) == (self.real, self.real_port)
        assert (ip_layer(out).src, out[TCP].sport) == (self.local, self.local_port)
        return out

    def to_client(self, frame: Packet, worker: int | None = None) -> Packet:
        """Sends a real's frame; asserts it left toward this flow's client from the VIP."""
        out_port, out = send_one(self.engine, frame, 1, worker)
        assert out_port == 0
        assert (ip_layer(out).src, out[TCP].sport) == (self.vip, self.vip_port)
        assert (ip_layer(out).dst, out[TCP].dport) == (self.client, self.client_port)
        return out

    def session(self) -> dict[str, Any] | None:
        return session_of(self.engine, self.client, self.client_port)
