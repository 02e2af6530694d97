"""The health checker drives the VIP's announcement (BGP lab: a BIRD router with kernel
ECMP in front of two real nodes, TCP checks of each real twice a second): when every real
of the service stops listening, both nodes say it cannot serve and the router loses the
VIP; when one real listens again, both announce it again and it answers the client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dplb.demo.bgp_lab import VIP, VIP_PORT, BgpLab, running_lab
from dplb.demo.lab import wait_until

from .helpers import namespaces_of, run_prefix

pytestmark = pytest.mark.e2e

PREFIX = run_prefix("e2e14")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BgpLab]:
    with running_lab(PREFIX, tmp_path_factory.mktemp(PREFIX), health_checks=True) as the_lab:
        yield the_lab
    assert not namespaces_of(PREFIX), f"namespaces left behind: {namespaces_of(PREFIX)}"


def can_serve(lab: BgpLab) -> list[bool]:
    out = []
    for node in lab.nodes:
        view = node.api("GET", "/health-checks")
        out += [s["can_serve"] for s in view["services"] if s["vip"] == VIP]
    return out


def test_all_reals_down_withdraws_the_vip_and_one_back_announces_it(lab: BgpLab) -> None:
    assert lab.nexthops() == ["10.10.1.1", "10.10.1.2"]
    assert can_serve(lab) == [True, True]
    for server in lab.servers:
        server.stop(timeout=5)
    wait_until(lambda: can_serve(lab) == [False, False], 60, "both nodes to see no real up")
    wait_until(lambda: lab.nexthops() == [] or None, 60, "the VIP withdrawn at the router")
    lab.servers[1].start()  # rs2 listens again
    wait_until(lambda: can_serve(lab) == [True, True], 60, "rs2 back up on both nodes")
    wait_until(
        lambda: lab.nexthops() == ["10.10.1.1", "10.10.1.2"] or None,
        60,
        "the VIP announced again by both nodes",
    )
    answers = {
        lab.client("curl", "-sS", "-m", "10", f"http://{VIP}:{VIP_PORT}/").stdout.split()[0]
        for _ in range(6)
    }
    assert answers == {"rs2"}
