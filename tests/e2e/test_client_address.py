"""Client addresses for the reals (DESIGN section 5) through the real node, judged by real
parsers: HAProxy (`accept-proxy`) and nginx (`proxy_protocol`) answer with the client
address and port they took from dplb's PROXY header, v1 and v2, over IPv4 and IPv6; a
server that speaks first gets the header before the client has sent a byte; 20 MB each
way through a PROXY service arrive byte-identical; and for TOA, a capture on the real
server's side shows option 254 with the client's port and address in the ACK that
completes the handshake, while the connection works as any other."""

from __future__ import annotations

import ipaddress
import re
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6

from conftest import assert_checksums_valid
from dplb.demo.lab import Lab, totals
from dplb.demo.topology import Topology

from .helpers import client_tool, curl, delta, drops, run_prefix, running_lab
from .judges import (
    capture,
    handshake_ack,
    start_haproxy,
    start_nginx,
    start_proxy_server,
    tcp_options,
)

pytestmark = pytest.mark.e2e

PREFIX = run_prefix("e2e6")

# The reals' ports: HAProxy on rs1, nginx on rs2, proxy_server.py and the demo's HTTP
# server on rs3.
HAPROXY_PORT, NGINX_PORT, BANNER_PORT, ECHO_PORT, HTTP_PORT = 8081, 8082, 9001, 9002, 8080

# One service per (what, client_address) on each VIP: VIP port, mode, real, real's port.
ROUTES: dict[str, tuple[int, str, int, int]] = {
    "haproxy-v1": (1081, "proxy-v1", 0, HAPROXY_PORT),
    "haproxy-v2": (2081, "proxy-v2", 0, HAPROXY_PORT),
    "nginx-v1": (1082, "proxy-v1", 1, NGINX_PORT),
    "nginx-v2": (2082, "proxy-v2", 1, NGINX_PORT),
    "haproxy-none": (81, "none", 0, HAPROXY_PORT),
    "nginx-none": (82, "none", 1, NGINX_PORT),
    "banner-v1": (1091, "proxy-v1", 2, BANNER_PORT),
    "banner-v2": (2091, "proxy-v2", 2, BANNER_PORT),
    "echo-v1": (1092, "proxy-v1", 2, ECHO_PORT),
    "echo-v2": (2092, "proxy-v2", 2, ECHO_PORT),
    "toa": (3080, "toa", 2, HTTP_PORT),
}
FAMILIES = ["ipv4", "ipv6"]
TOA_LENGTH = {"ipv4": 8, "ipv6": 20}
TRANSFER = 20 * 1024 * 1024


def config(t: Topology) -> dict[str, Any]:
    services = []
    for port, mode, real, real_port in ROUTES.values():
        for vip, address in ((t.vip4, t.real4(real)), (t.vip6, t.real6(real))):
            services.append(
                {
                    "vip": vip,
                    "port": port,
                    "protocol": "tcp",
                    "scheduler": "rr",
                    "client_address": mode,
                    "reals": [{"address": address, "port": real_port}],
                }
            )
    return t.node_config(workers=1, services=services)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    missing = [tool for tool in ("haproxy", "nginx", "tcpdump") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: run scripts/install-deps.sh as root")
    with running_lab(PREFIX, tmp_path_factory, config, http_port=HTTP_PORT) as lab:
        t = lab.topology
        start_haproxy(lab, t.real_ns(0), HAPROXY_PORT)
        start_nginx(lab, t.real_ns(1), NGINX_PORT)
        start_proxy_server(lab, t.real_ns(2), BANNER_PORT, ECHO_PORT)
        yield lab


def addresses(t: Topology, family: str) -> tuple[str, str, str]:
    """The client's address, the VIP and dplb's local address (worker 0) of a family."""
    if family == "ipv4":
        return t.client4, t.vip4, t.local4(0)
    return t.client6, t.vip6, t.local6(0)


def host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def request(lab: Lab, route: str, family: str) -> tuple[str, int]:
    """One HTTP request through a route's service: the body, and the client's port."""
    _, vip, _ = addresses(lab.topology, family)
    out = curl(lab, f"http://{host(vip)}:{ROUTES[route][0]}/", "-w", r"\n%{local_port}")
    body, _, port = out.rpartition("\n")
    return body, int(port)


# -- HAProxy and nginx as judges -------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("version", ["v1", "v2"])
def test_haproxy_sees_the_client_address(lab: Lab, version: str, family: str) -> None:
    client, vip, _ = addresses(lab.topology, family)
    route = f"haproxy-{version}"
    body, port = request(lab, route, family)
    # HAProxy's src/dst are what the PROXY header named (it refuses a connection whose
    # header it cannot parse): the client's address and port, the VIP and its port.
    assert body == f"haproxy {client} {port} {vip} {ROUTES[route][0]}\n"


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("version", ["v1", "v2"])
def test_nginx_sees_the_client_address(lab: Lab, version: str, family: str) -> None:
    client, vip, local = addresses(lab.topology, family)
    route = f"nginx-{version}"
    body, port = request(lab, route, family)
    # $proxy_protocol_* from the header; $remote_addr is the connection's own peer:
    # dplb's local address (full-NAT).
    assert body == f"nginx {client} {port} {vip} {ROUTES[route][0]} {local}\n"


@pytest.mark.parametrize("judge", ["haproxy", "nginx"])
def test_judges_refuse_a_connection_without_a_header(lab: Lab, judge: str) -> None:
    """What makes them judges: without dplb's header (a service with client_address
    none) the same request gets no answer."""
    t = lab.topology
    url = f"http://{t.vip4}:{ROUTES[f'{judge}-none'][0]}/"
    result = lab.client("curl", "-sS", "--fail", "-m", "20", url, check=False)
    # 52: empty reply, 56: reset; either way the judge closed without answering.
    assert result.returncode in (52, 56), (result.returncode, result.stdout, result.stderr)


# -- proxy_server.py: a server that speaks first, and 20 MB each way -------------------


def expected_header(
    version: str, family: str, client: str, port: int, vip: str, vip_port: int
) -> dict[str, Any]:
    header = {
        "version": int(version[1]),
        "family": "TCP4" if family == "ipv4" else "TCP6",
        "src": client,
        "sport": port,
        "dst": vip,
        "dport": vip_port,
    }
    if version == "v2":  # 16 fixed bytes, two addresses and two ports, no TLV
        n = 4 if family == "ipv4" else 16
        header |= {"tlvs": 0, "length": 16 + 2 * n + 4}
    else:
        text = f"PROXY {header['family']} {client} {vip} {port} {vip_port}\r\n"
        header["length"] = len(text)
    return header


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("version", ["v1", "v2"])
def test_server_first_gets_the_header_before_any_client_byte(
    lab: Lab, version: str, family: str
) -> None:
    client, vip, local = addresses(lab.topology, family)
    vip_port = ROUTES[f"banner-{version}"][0]
    # The client sends nothing until the banner came: all the server read before it was
    # dplb's header, complete and nothing after it (the ACK that completed the
    # handshake carried it; no client segment could have).
    result = client_tool(lab, "banner", vip, str(vip_port))
    banner = result["banner"]
    assert banner is not None and "error" not in banner, result
    port = result["local"][1]
    assert banner["header"] == expected_header(version, family, client, port, vip, vip_port)
    assert banner["early_bytes"] == 0
    assert banner["peer"] == local
    # Then the client's own bytes follow the header, shifted and intact.
    assert result["reply"] == "echo hello\n"


@pytest.mark.parametrize(("version", "family"), [("v2", "ipv4"), ("v1", "ipv6")])
def test_20_mb_each_way_through_a_proxy_service_arrive_byte_identical(
    lab: Lab, version: str, family: str
) -> None:
    client, vip, _ = addresses(lab.topology, family)
    vip_port = ROUTES[f"echo-{version}"][0]
    result = client_tool(lab, "echo", vip, str(vip_port), str(TRANSFER))
    assert result["failure"] == [], result
    server = result["server"]
    assert server is not None and "error" not in server, result
    assert server["header"] == expected_header(
        version, family, client, result["local"][1], vip, vip_port
    )
    # Upload: what the server hashed after the header is what the client sent.
    assert (server["received"], server["sha256"]) == (TRANSFER, result["sent_sha256"])
    # Download: the echo the client read is the same bytes again.
    assert (result["echoed"], result["echo_sha256"]) == (TRANSFER, result["sent_sha256"])


# -- TOA: option 254 in the ACK that completes the handshake ---------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_toa_option_in_the_handshake_ack_names_the_client(lab: Lab, family: str) -> None:
    t = lab.topology
    client, _, local = addresses(t, family)
    with capture(lab, t.real_ns(2), f"toa-{family}", f"tcp port {HTTP_PORT}") as frames:
        body, port = request(lab, "toa", family)
        ack = frames.wait_for(lambda f: handshake_ack(f, HTTP_PORT), "the handshake's ACK")
    # The connection works as any other (Linux ignores the unknown option); the real
    # server saw dplb's local address as its peer.
    assert re.fullmatch(rf"rs3 {re.escape(host(local))}:\d+\n", body), body

    ip = ack[IP] if family == "ipv4" else ack[IPv6]
    assert (ip.src, ack[TCP].flags) == (local, "A")
    # Checksums the real's kernel accepts (else a later segment would have completed
    # the handshake, and the option would have gone unread).
    assert_checksums_valid(ack)
    toa = [value for kind, value in tcp_options(ack[TCP]) if kind == 254]
    assert len(toa) == 1, tcp_options(ack[TCP])
    assert 2 + len(toa[0]) == TOA_LENGTH[family]
    assert int.from_bytes(toa[0][:2], "big") == port
    assert ipaddress.ip_address(toa[0][2:]) == ipaddress.ip_address(client)


# -- what the node counted -------------------------------------------------------------


def test_counters_count_each_header_and_option(lab: Lab) -> None:
    def counters() -> dict[str, int]:
        counted = totals(lab.node.fresh_status())
        del counted["drops"]
        return counted

    before = counters()
    request(lab, "haproxy-v1", "ipv4")
    request(lab, "nginx-v2", "ipv6")
    request(lab, "toa", "ipv4")
    moved = delta(counters(), before)
    assert moved.get("proxy_header_sent") == 2, moved
    assert moved.get("toa_inserted", 0) >= 1, moved
    for quiet in ("toa_no_room", "proxy_refused", "proxy_invalid", "proxy_header_translated"):
        assert quiet not in moved, moved


def test_nothing_was_dropped(lab: Lab) -> None:
    """Runs last: everything above was well-formed traffic with known neighbours."""
    status = lab.node.fresh_status()
    assert {k: v for k, v in drops(status).items() if v} == {}
    assert all(w["tx_dropped"] == 0 for w in status["workers"])
