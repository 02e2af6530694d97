"""Two workers with software steering (af_packet has no rte_flow, and its kernel fanout
spreads flows with its own hash, not dplb's): both workers hold sessions, packets that
arrive at the wrong worker are handed to the owner, and none is lost to a wrong table."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from dplb.demo.lab import Lab, totals
from dplb.demo.topology import Topology

from .helpers import (
    UDP_PORT,
    client_tool,
    delta,
    drops,
    load,
    run_prefix,
    running_lab,
    services_config,
)

pytestmark = pytest.mark.e2e

PREFIX = run_prefix("e2e2")


def config(t: Topology) -> dict[str, Any]:
    return services_config(t, workers=2)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with running_lab(PREFIX, tmp_path_factory, config, udp_port=UDP_PORT) as lab:
        yield lab


def test_both_workers_hold_sessions_and_hand_over_without_loss(lab: Lab) -> None:
    t = lab.topology
    targets = (f"{t.vip4}:80", f"[{t.vip6}]:80")
    before = lab.node.fresh_status()
    assert [p["steering"] for p in before["ports"]] == ["software", "software"]

    result = load(lab, *targets, requests=600, concurrency=4)

    assert (result["ok"], result["errors"]) == (600, 0), result
    after = lab.node.fresh_status()
    created = [
        a["sessions_created"] - b["sessions_created"]
        for a, b in zip(after["workers"], before["workers"], strict=True)
    ]
    # Each connection is one session in exactly one table; both tables got some.
    assert sum(created) == 600, created
    assert all(n > 0 for n in created), created
    assert all(w["sessions"] > 0 for w in after["workers"])  # closed ones wait out TIME_WAIT
    # Packets did land on the wrong worker, and went on to the owner.
    moved = delta(totals(after), totals(before))
    assert moved.get("handed_over", 0) > 0 and moved.get("handed_in", 0) > 0, moved
    # ... and none was lost: no drop of any reason, no full ring, no full TX queue.
    assert delta(drops(after), drops(before)) == {}
    assert [(w["handover_dropped"], w["tx_dropped"]) for w in after["workers"]] == [(0, 0), (0, 0)]


def test_udp_flows_across_workers(lab: Lab) -> None:
    t = lab.topology
    before = lab.node.fresh_status()
    answers = client_tool(lab, "udp", t.vip4, "53", "24")["answers"]
    pattern = re.compile(r"rs\d (10\.10\.2\.10[12]):\d+ ping (\d+)")
    matches = [pattern.fullmatch(a or "") for a in answers]
    assert all(matches), answers
    # Each worker takes its own local address: flows owned by both workers came back.
    assert {m[1] for m in matches if m} == {t.local4(0), t.local4(1)}
    after = lab.node.fresh_status()
    assert delta(drops(after), drops(before)) == {}
