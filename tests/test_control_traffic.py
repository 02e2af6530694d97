"""Control traffic in the engine harness: junk for the control side (UDP to an address
of port0's subnet that is no VIP) passes at most dataplane.control.rest_burst at once and
rest_rate_pps a second after, the others are dropped under `control_rate_limited`; ARP,
BGP to the port address and a health check's SYN-ACK go up however much junk came first.
docs/architecture.md, "Control traffic"."""

from __future__ import annotations

from typing import Any

import pytest
from scapy.layers.inet import TCP, UDP
from scapy.layers.l2 import ARP, Ether

from conftest import CLIENT_GW_MAC, client_frame, node_config
from dplb import ConfigError, Engine, parse_config

PORT0 = "10.0.1.1"  # port0's own address


def engine(**control: Any) -> Engine:
    return Engine(parse_config(node_config(control=control)))


def junk(i: int) -> bytes:
    return bytes(client_frame("192.0.2.9", "10.0.1.77") / UDP(sport=1024 + i, dport=9) / b"x")


def verdict(e: Engine, frame: bytes) -> str:
    result: str = e.trace(frame, "port0")["verdict"]
    return result


def test_junk_over_the_burst_is_dropped_and_counted_and_refills_with_time() -> None:
    e = engine(rest_rate_pps=10, rest_burst=5)
    verdicts = [verdict(e, junk(i)) for i in range(50)]
    assert verdicts == ["control"] * 5 + ["drop"] * 45
    assert e.stats()["total"]["drops"]["control_rate_limited"] == 45
    e.advance(1.0)  # 10 tokens, but the bucket holds 5
    assert [verdict(e, junk(i)) for i in range(6)] == ["control"] * 5 + ["drop"]


def test_arp_bgp_and_a_health_check_reply_pass_after_a_flood() -> None:
    e = engine(rest_rate_pps=10, rest_burst=5)
    for i in range(100):
        verdict(e, junk(i))
    arp = Ether(src=CLIENT_GW_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=1, hwsrc=CLIENT_GW_MAC, psrc="10.0.1.254", pdst=PORT0
    )
    bgp = client_frame("10.0.1.254", PORT0) / TCP(sport=179, dport=40000, flags="A")
    syn_ack = client_frame("10.0.1.20", PORT0) / TCP(sport=8080, dport=41000, flags="SA")
    for frame in (arp, bgp, syn_ack):
        assert verdict(e, bytes(frame)) == "control", frame.summary()
    # A SYN to the port address is the rest: held back like the junk.
    assert verdict(e, bytes(client_frame("10.0.1.20", PORT0) / TCP(dport=22, flags="S"))) == "drop"
    assert e.stats()["total"]["drops"]["control_rate_limited"] == 96


def test_rate_zero_is_no_limit() -> None:
    e = engine(rest_rate_pps=0)
    assert {verdict(e, junk(i)) for i in range(2000)} == {"control"}


@pytest.mark.parametrize(
    ("control", "field"),
    [({"rest_rate_pps": -1}, "rest_rate_pps"), ({"rest_burst": 0}, "rest_burst")],
)
def test_bad_control_values_are_refused_naming_the_field(
    control: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(node_config(control=control))
    paths = [path for path, _ in caught.value.errors]
    assert paths == [f"dataplane.control.{field}"], caught.value
