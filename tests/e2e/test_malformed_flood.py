"""A flood of malformed frames at the VIPs (truncated, bad version, bad IHL, bad lengths,
bad TCP/UDP headers, bad IPv6 extension chains, fragments), sent from the client
namespace through a raw socket while HTTP clients run: the clients keep being served,
during the flood and after it, and the drop counters name each reason.

IPv4 fragments never reach dplb on af_packet ports: DPDK's af_packet PMD joins a kernel
fanout group with PACKET_FANOUT_FLAG_DEFRAG, so the kernel holds them for reassembly.
They are sent all the same; `fragment` is counted for the IPv6 ones."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from dplb.demo.lab import Lab, python_module, wait_until
from dplb.demo.topology import Topology

from .helpers import (
    CLIENT_TOOLS,
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

PREFIX = run_prefix("e2e3")


def config(t: Topology) -> dict[str, Any]:
    return services_config(t, workers=2)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with running_lab(PREFIX, tmp_path_factory, config) as lab:
        yield lab


def counts(output: str) -> list[dict[str, Any]]:
    """The load generator's lines so far (running totals, each with its time)."""
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_flood_of_malformed_frames_does_not_stop_service(lab: Lab) -> None:
    t = lab.topology
    before = lab.node.fresh_status()
    clients = lab.spawn(
        t.client_ns,
        python_module(
            "dplb.demo.load",
            *("--target", f"{t.vip4}:80", "--target", f"[{t.vip6}]:80"),
            *("--concurrency", "4", "--interval", "0.1"),
        ),
        "clients",
    )
    wait_until(
        lambda: any(c["ok"] > 0 for c in counts(clients.output())),
        30,
        "the HTTP clients to get answers",
    )

    flood = lab.spawn(
        t.client_ns,
        [sys.executable, str(CLIENT_TOOLS), "flood", "eth0", port_mac(lab, "port0"), "0"],
        "flood",
    )
    flood.wait_for_output(r"^flooding$", 60)

    # During: clients keep getting answers (1,000 more) while the flood goes on.
    at_start = counts(clients.output())[-1]["ok"]
    wait_until(
        lambda: counts(clients.output())[-1]["ok"] >= at_start + 1000,
        60,
        "1,000 answers during the flood",
    )
    assert flood.running(), flood.output()
    assert flood.stop() == 0
    sent = json.loads(flood.output().splitlines()[-1])["sent"]
    assert clients.stop() == 0
    final = counts(clients.output())[-1]
    assert final["errors"] == 0, f"{final}\n{node_tail(lab)}"

    # After: a fresh round of clients is served in full.
    result = load(lab, f"{t.vip4}:80", f"[{t.vip6}]:80", requests=200, concurrency=4)
    assert (result["ok"], result["errors"]) == (200, 0), result
    assert lab.node.running()

    # Each malformation counted under its own name, and nothing else dropped.
    moved = delta(drops(lab.node.fresh_status()), drops(before))
    assert set(moved) == set(sent), (moved, sent)
    assert all(moved[reason] > 0 for reason in sent), moved
