"""`dplb demo --harness`: the engine without DPDK, namespaces or root: one TCP
connection and a burst of clients through the real engine (the harness), printed as a
conversation, then the counters."""

from __future__ import annotations

import random
import sys
from typing import Any

from dplb.engine import Engine

GATEWAY_MAC = "0a:00:00:00:01:fe"
REALS = {
    "10.0.2.11": "0a:00:00:00:02:11",
    "10.0.2.12": "0a:00:00:00:02:12",
    "10.0.2.13": "0a:00:00:00:02:13",
}

CONFIG: dict[str, Any] = {
    "node": {"name": "demo", "cluster": "demo"},
    "dataplane": {
        "workers": 2,
        "sessions_per_worker": 65536,
        "ports": [
            {
                "name": "port0",
                "device": "harness",
                "address": "10.0.1.1/24",
                "gateway": "10.0.1.254",
            },
            {
                "name": "port1",
                "device": "harness",
                "address": "10.0.2.1/24",
                "local_addresses": [["10.0.2.101"], ["10.0.2.102"]],
            },
        ],
    },
    "services": [
        {
            "vip": "10.0.100.10",
            "port": 80,
            "protocol": "tcp",
            "scheduler": "maglev",
            "reals": [{"address": ip, "port": 8080} for ip in REALS],
        }
    ],
}


def main() -> int:
    try:
        from scapy.layers.inet import IP, TCP
        from scapy.layers.l2 import Ether
    except ImportError:
        print("the demo needs scapy: make demo installs it", file=sys.stderr)
        return 1

    engine = Engine(CONFIG)
    engine.set_neighbour("port0", "10.0.1.254", GATEWAY_MAC)
    for ip, mac in REALS.items():
        engine.set_neighbour("port1", ip, mac)

    def show(direction: str, frame: bytes) -> Any:
        pkt = Ether(frame)
        ip, tcp = pkt[IP], pkt[TCP]
        print(f"  {direction:<24} {ip.src}:{tcp.sport} -> {ip.dst}:{tcp.dport}  [{tcp.flags}]")
        return pkt

    print("dplb engine demo: full-NAT of one TCP connection (2 workers, software steering)\n")
    client = Ether(src=GATEWAY_MAC, dst=engine.port_mac("port0")) / IP(
        src="198.51.100.7", dst="10.0.100.10"
    )
    syn = client / TCP(sport=40000, dport=80, flags="S", seq=100)
    show("client -> dplb", bytes(syn))
    [(_, out)] = engine.process(bytes(syn), "port0")
    to_real = show("dplb -> real", out)
    real_ip, laddr, lport = to_real[IP].dst, to_real[IP].src, to_real[TCP].sport
    reply = (
        Ether(src=REALS[real_ip], dst=engine.port_mac("port1"))
        / IP(src=real_ip, dst=laddr)
        / TCP(sport=8080, dport=lport, flags="SA", seq=500, ack=101)
    )
    show("real -> dplb", bytes(reply))
    [(_, back)] = engine.process(bytes(reply), "port1")
    show("dplb -> client", back)

    print("\n1,000 more clients, then two minutes of idle time:")
    rng = random.Random(7)
    for i in range(1000):
        src = f"198.51.{100 + i // 250}.{1 + i % 250}"
        frame = Ether(src=GATEWAY_MAC, dst=engine.port_mac("port0")) / IP(
            src=src, dst="10.0.100.10"
        )
        engine.process(
            bytes(frame / TCP(sport=rng.randint(1024, 65535), dport=80, flags="S")), "port0"
        )
    stats = engine.stats()
    for w, ws in enumerate(stats["workers"]):
        print(
            f"  worker {w}: {ws['sessions']:>5} sessions, rx {ws['rx_packets']:>5}, "
            f"tx {ws['tx_packets']:>5}, handed over {ws['handed_over']}"
        )
    for real in stats["reals"]:
        print(f"  real {real['real'][0]}:{real['real'][1]}: {real['connections']} connections")
    engine.advance(120)
    print(f"  after 120 s: {len(engine.sessions())} sessions (SYN timeout 30 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
