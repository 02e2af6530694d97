"""Traffic through one node with one worker (so rr is exact): HTTP over an IPv4 and an
IPv6 VIP to three real servers, a 50 MB download, 1,000 short connections in a row, a
UDP service; and the node's own answers: ARP and ND for the VIPs, ping of a port address
through the exception path to the kernel; an ARP scan does not fill its neighbour table."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dplb.demo.lab import Lab, wait_until
from dplb.demo.topology import Topology

from .helpers import (
    UDP_PORT,
    client_tool,
    curl,
    delta,
    drops,
    load,
    node_tail,
    port_mac,
    run_prefix,
    running_lab,
    services_config,
)

pytestmark = pytest.mark.e2e

PREFIX = run_prefix("e2e1")
BLOB_SIZE = 50 * 1024 * 1024


def config(t: Topology) -> dict[str, Any]:
    return services_config(t, workers=1)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("files")
    (folder / "blob").write_bytes(os.urandom(BLOB_SIZE))
    return folder


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, files: Path) -> Iterator[Lab]:
    with running_lab(PREFIX, tmp_path_factory, config, udp_port=UDP_PORT, files=files) as lab:
        yield lab


def real_connections(lab: Lab, vip: str, port: int = 80) -> dict[str, int]:
    """Connections per real of one service, as the node counts them."""
    return {
        r["real"]: r["connections"]
        for r in lab.node.fresh_status()["reals"]
        if r["vip"] == vip and r["port"] == port
    }


def test_http_reaches_every_real_in_rr_order(lab: Lab) -> None:
    t = lab.topology
    before = real_connections(lab, t.vip4)
    result = load(lab, f"{t.vip4}:80", requests=300)
    assert result["errors"] == 0, result
    # What the clients saw: each real server named itself as often as the others.
    assert sorted(result["by_real"]) == ["rs1", "rs2", "rs3"]
    counts = result["by_real"].values()
    assert max(counts) - min(counts) <= 1, result["by_real"]
    # What the node counted agrees.
    moved = delta(real_connections(lab, t.vip4), before)
    assert sum(moved.values()) == 300
    assert max(moved.values()) - min(moved.values()) <= 1, moved


def test_real_server_sees_a_local_address_of_dplb(lab: Lab) -> None:
    t = lab.topology
    answer = curl(lab, f"http://{t.vip4}/")
    match = re.fullmatch(r"(rs\d) (\S+):(\d+)\n", answer)
    assert match, answer
    assert match[2] == t.local4(0)  # full-NAT: the real sees dplb's local address


def test_download_of_50_mb_arrives_byte_identical(lab: Lab, files: Path) -> None:
    sent = files / "blob"
    received = lab.workdir / "received-blob"
    curl(lab, f"http://{lab.topology.vip4}/files/blob", "-o", str(received))
    assert received.stat().st_size == BLOB_SIZE
    assert hashlib.sha256(received.read_bytes()).hexdigest() == (
        hashlib.sha256(sent.read_bytes()).hexdigest()
    )


def test_1000_short_connections_in_a_row_all_succeed(lab: Lab) -> None:
    result = load(lab, f"{lab.topology.vip4}:80", requests=1000)
    assert (result["ok"], result["errors"]) == (1000, 0), result


def test_udp_request_reply_service(lab: Lab) -> None:
    t = lab.topology
    answers = client_tool(lab, "udp", t.vip4, "53", "6")["answers"]
    # Each socket is a new flow: rr spreads them; each answer names its real, the
    # address it saw (dplb's local address) and echoes the payload.
    pattern = re.compile(rf"(rs\d) {re.escape(t.local4(0))}:\d+ ping (\d)")
    matches = [pattern.fullmatch(a or "") for a in answers]
    assert all(matches), answers
    assert [int(m[2]) for m in matches if m] == list(range(6))
    assert {m[1] for m in matches if m} == {"rs1", "rs2", "rs3"}


def test_ipv6_vip_end_to_end(lab: Lab) -> None:
    t = lab.topology
    answer = curl(lab, f"http://[{t.vip6}]/")
    assert re.fullmatch(rf"rs\d \[{re.escape(t.local6(0))}\]:\d+\n", answer), answer
    result = load(lab, f"[{t.vip6}]:80", requests=60)
    assert result["errors"] == 0, result
    assert result["by_real"] == {"rs1": 20, "rs2": 20, "rs3": 20}


def test_arp_and_nd_for_the_vips_are_answered_by_dplb(lab: Lab) -> None:
    t = lab.topology
    mac = port_mac(lab, "port0")
    replies_before = lab.node.fresh_status()["control"]
    arp = client_tool(lab, "arp", "eth0", t.vip4)
    assert arp["mac"] == mac, arp
    assert arp["ip"] == t.vip4
    nd = client_tool(lab, "nd", "eth0", t.client6, t.vip6)
    assert nd["mac"] == mac, nd
    assert nd["target"] == t.vip6
    replies_after = lab.node.fresh_status()["control"]
    assert replies_after["arp_replies"] > replies_before["arp_replies"]
    assert replies_after["nd_replies"] > replies_before["nd_replies"]


def test_ping_of_a_port_address_is_answered_through_the_kernel(lab: Lab) -> None:
    t = lab.topology
    before = lab.node.fresh_status()["control"]
    for address in (t.port0_4, t.port0_6):
        result = lab.client("ping", "-c", "3", "-i", "0.2", "-W", "5", address, check=False)
        assert result.returncode == 0, f"ping {address}:\n{result.stdout}\n{node_tail(lab)}"

    # Both ways through the exception path: requests to the TAP, replies back from it.
    def replies_counted() -> dict[str, int] | None:
        control: dict[str, int] = lab.node.status()["control"]
        return control if control["from_kernel"] >= before["from_kernel"] + 6 else None

    after = wait_until(replies_counted, 10, "the node to count the ping replies")
    assert after["to_kernel"] >= before["to_kernel"] + 6


def test_an_arp_scan_leaves_room_for_a_new_next_hop(lab: Lab) -> None:
    """6,000 ARP requests from made-up senders (more than the 4,096 neighbours the node
    keeps) take no neighbour slot: a client address the node has never seen, whose
    replies need a new neighbour entry, is then served as the others are."""
    t = lab.topology
    before = lab.node.fresh_status()["control"]
    client_tool(lab, "arpscan", "eth0", t.vip4, "6000")

    def scan_counted() -> dict[str, int] | None:
        control: dict[str, int] = lab.node.status()["control"]
        return (
            control
            if control["neighbours_ignored"] >= before["neighbours_ignored"] + 6000
            else None
        )

    after = wait_until(scan_counted, 20, "the node to count the scan's senders as ignored")
    assert after["neighbours_full"] == before["neighbours_full"]
    fresh = "10.10.1.77"
    lab.client("ip", "addr", "add", f"{fresh}/24", "dev", "eth0")
    try:
        assert curl(lab, f"http://{t.vip4}/", "--interface", fresh).startswith("rs")
    finally:
        lab.client("ip", "addr", "del", f"{fresh}/24", "dev", "eth0")


def test_nothing_was_dropped(lab: Lab) -> None:
    """Runs last: everything above was well-formed traffic with known neighbours."""
    status = lab.node.fresh_status()
    assert {k: v for k, v in drops(status).items() if v} == {}
    assert all(w["tx_dropped"] == 0 for w in status["workers"])
