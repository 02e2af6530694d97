"""The web admin's cluster page against a real cluster (three-member etcd, two
`dplb harness-api` nodes): both nodes in sync on the desired version, a config written
into etcd that one node cannot run shown as refused with its field, a killed node shown
as gone; live, without reloading the page."""

from __future__ import annotations

import json
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from cluster.etcd_cluster import EtcdCluster
from cluster.nodes import ClusterNode

from .test_web_admin import sign_in

if TYPE_CHECKING:
    from playwright.sync_api import Page


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[EtcdCluster, list[ClusterNode]]]:
    etcd = EtcdCluster(tmp_path / "etcd")
    nodes: list[ClusterNode] = []
    try:
        etcd.start()
        a = ClusterNode("lb1", "web", etcd.endpoints, tmp_path)
        b = ClusterNode("lb2", "web", etcd.endpoints, tmp_path)
        b.config["dataplane"]["max_services"] = 3  # a fourth service does not fit on lb2
        b.config_path.write_text(json.dumps(b.config))
        nodes = [a.start(), b.start()]
        yield etcd, nodes
    finally:
        for n in nodes:
            n.stop(signal.SIGKILL)
        etcd.stop()
        shutil.rmtree(tmp_path / "etcd", ignore_errors=True)


def test_the_cluster_page_shows_drift_refusals_and_gone_nodes_live(
    page: Page, cluster: tuple[EtcdCluster, list[ClusterNode]]
) -> None:
    from playwright.sync_api import expect

    _, (a, b) = cluster
    base = a.url.removesuffix("/api/v1")
    sign_in(page, base)
    page.click("nav.main a[data-nav=cluster]")
    rows = page.locator("table.nodes tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator("tr[data-node=lb1] .badge")).to_have_text("in sync")
    expect(page.locator("tr[data-node=lb2] .badge")).to_have_text("in sync")
    expect(page.locator("[data-stat=store] .value")).to_have_text("up")
    expect(page.locator("[data-stat=sync]")).to_contain_text("Off on this node")

    r = a.http.post(
        "/services?wait=applied",
        json={"vip": "10.0.100.20", "port": 443, "reals": [{"address": "10.0.2.11", "port": 8443}]},
    )
    assert r.status_code == 201, r.text
    version = r.json()["version"]
    expect(page.locator("[data-stat=desired]")).to_have_text(f"v{version}")
    expect(page.locator("tr[data-node=lb1] .badge")).to_have_text("in sync")
    expect(page.locator("tr[data-node=lb2] .badge")).to_have_text("refused")
    refusal = page.locator(".refusal[data-node=lb2]")
    expect(refusal).to_contain_text(f"refused version {version}")
    expect(refusal.locator("li")).to_contain_text(
        "services: 4 services, more than max_services (3)"
    )

    b.stop(signal.SIGKILL)
    expect(page.locator("tr[data-node=lb2] .badge")).to_have_text("gone", timeout=20_000)
    expect(page.locator("tr[data-node=lb2] td").nth(8)).to_have_text("not running")
