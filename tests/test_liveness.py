"""Data-plane liveness: how the node judges from the runtime's counters that it is alive
(loops turning, ports receiving), and what `/api/v1/health` answers for each verdict
(ok and degraded: 200; failed: 503, with the reasons)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from api_helpers import API, VIEWER, Node, api_client
from dplb.dataplane.models import Liveness, LivenessTracker


def port(name: str = "port0", rx: int = 0, missed: int = 0, link: bool = True) -> dict[str, Any]:
    return {"name": name, "rx_packets": rx, "rx_missed": missed, "rx_nombuf": 0, "link_up": link}


def worker(age_s: float = 0.0001) -> dict[str, Any]:
    return {"last_poll_age_ns": int(age_s * 1e9)}


CONTROL = {"last_loop_age_ns": 20_000}


def test_turning_loops_and_receiving_ports_are_ok() -> None:
    t = LivenessTracker()
    t.observe([port(rx=10), port("port1", rx=5)], [worker(), worker()], CONTROL, 100.0)
    live = t.observe([port(rx=20), port("port1", rx=5)], [worker(), worker()], CONTROL, 101.0)
    assert (live.state, live.reasons) == ("ok", [])
    assert [(p.receiving, p.rx_idle_seconds) for p in live.ports] == [(True, 0.0), (True, 1.0)]


def test_a_stuck_worker_or_control_lcore_fails_the_data_plane() -> None:
    live = LivenessTracker().observe([port()], [worker(), worker(2.5)], CONTROL, 1.0)
    assert (live.state, live.reasons) == ("failed", ["worker 1: has not polled for 2.5 s"])
    assert live.worker_poll_age_seconds[1] == 2.5
    live = LivenessTracker().observe([port()], [worker()], {"last_loop_age_ns": 3 * 10**9}, 1.0)
    assert (live.state, live.reasons) == ("failed", ["control lcore: has not turned for 3.0 s"])


def test_a_port_that_drops_at_the_nic_and_receives_nothing_fails_until_it_receives() -> None:
    t = LivenessTracker()
    t.observe([port(rx=100, missed=0)], [worker()], CONTROL, 1.0)
    live = t.observe([port(rx=100, missed=7)], [worker()], CONTROL, 2.0)
    assert live.state == "failed"
    assert live.reasons == [
        "port port0: receives nothing while the NIC drops frames (rx_missed 7, rx_nombuf 0)"
    ]
    # Still stuck when nothing moves at all between two reads.
    assert t.observe([port(rx=100, missed=7)], [worker()], CONTROL, 3.0).state == "failed"
    # Receiving again: alive.
    assert t.observe([port(rx=101, missed=9)], [worker()], CONTROL, 4.0).state == "ok"
    # A quiet port (nothing received, nothing dropped) is not a failure.
    live = t.observe([port(rx=101, missed=9)], [worker()], CONTROL, 70.0)
    assert (live.state, live.ports[0].rx_idle_seconds) == ("ok", 66.0)


def test_a_link_down_degrades() -> None:
    live = LivenessTracker().observe([port(link=False)], [worker()], CONTROL, 1.0)
    assert (live.state, live.reasons) == ("degraded", ["port port0: link down"])


@pytest.mark.parametrize(
    ("liveness", "code"),
    [
        (Liveness(), 200),
        (Liveness(state="degraded", reasons=["port port0: link down"]), 200),
        (Liveness(state="failed", reasons=["worker 1: has not polled for 2.5 s"]), 503),
    ],
)
def test_health_answers_the_verdict_and_fails_with_503(
    tmp_path: Path, liveness: Liveness, code: int
) -> None:
    node = Node(tmp_path)
    node.dataplane.liveness = lambda: liveness  # type: ignore[method-assign]
    with api_client(node) as client:
        r = client.get(f"{API}/health")
    assert (r.status_code, r.json()) == (
        code,
        {"status": liveness.state, "reasons": liveness.reasons},
    )


def test_the_harness_is_alive(tmp_path: Path) -> None:
    with api_client(Node(tmp_path, workers=2)) as client:
        status = client.get(f"{API}/node", headers=VIEWER).json()["dataplane"]["liveness"]
    assert status["state"] == "ok"
    assert status["worker_poll_age_seconds"] == [0.0, 0.0]
