"""The node's life: a bad config is refused with its field path before anything starts;
a second node with the same config refuses to start and says who holds what; SIGTERM
stops a node cleanly: exit 0, its kernel interfaces and its nftables table gone, its
lock files and DPDK's runtime folder removed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from dplb.demo.lab import Lab, NodeProcess
from dplb.node import LOCK_DIR, NFT_TABLE

from .helpers import curl, namespaces_of, run_prefix

pytestmark = pytest.mark.e2e

PREFIX = run_prefix("e2e4")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The topology and the real servers; each test starts its own node."""
    lab = Lab(PREFIX, tmp_path_factory.mktemp(PREFIX))
    try:
        lab.topology.create()
        lab.start_servers()
        yield lab
    finally:
        lab.close()
    assert not namespaces_of(PREFIX)


@pytest.fixture
def node(lab: Lab, tmp_path: Path) -> Iterator[NodeProcess]:
    """A node of this test (stopped, killed if need be, when the test ends)."""
    node = NodeProcess(lab.topology, lab.topology.node_config(workers=2), tmp_path)
    try:
        yield node
    finally:
        node.stop(timeout=30)


def in_node_ns(
    lab: Lab, *argv: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", lab.topology.node_ns, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def link_exists(lab: Lab, name: str) -> bool:
    return in_node_ns(lab, "ip", "link", "show", name).returncode == 0


def nft_table_exists(lab: Lab) -> bool:
    return in_node_ns(lab, "nft", "list", "table", "netdev", NFT_TABLE).returncode == 0


def test_second_node_is_refused_and_sigterm_stops_cleanly(lab: Lab, node: NodeProcess) -> None:
    node.start()
    node.wait_running()
    assert link_exists(lab, "k0") and link_exists(lab, "k1")
    assert nft_table_exists(lab)
    assert curl(lab, f"http://{lab.topology.vip4}/").startswith("rs")

    # A second node with the same config: refused, saying who holds it; the first one
    # goes on serving.
    second = in_node_ns(
        lab, sys.executable, "-m", "dplb.cli", "run", "--config", str(node.config_path)
    )
    assert second.returncode == 1
    assert "running" not in second.stdout
    assert f"node {lab.topology.node_ns} is already in use by dplb pid {node.pid}" in (
        second.stderr
    ), second.stderr
    assert curl(lab, f"http://{lab.topology.vip4}/").startswith("rs")
    name = lab.topology.node_ns
    assert (LOCK_DIR / f"node-{name}.lock").exists()
    eal_dir = Path("/var/run/dpdk") / f"dplb-{node.config['node']['name']}"
    assert eal_dir.is_dir()  # DPDK's runtime folder of this node

    # SIGTERM: a clean stop.
    assert node.stop(sig=signal.SIGTERM) == 0, node.output()
    assert "dplb: stopping" in node.output()
    assert not link_exists(lab, "k0") and not link_exists(lab, "k1")
    assert not nft_table_exists(lab)
    assert not (LOCK_DIR / f"node-{name}.lock").exists()
    assert not eal_dir.exists()
    assert node.status()["running"] is False


def test_config_error_is_reported_with_its_path_before_anything_starts(
    lab: Lab, tmp_path: Path
) -> None:
    config = lab.topology.node_config(workers=2)
    config["services"][0]["reals"][1]["weight"] = -5
    config["services"][0]["port"] = 70000
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    run_dir = tmp_path / "run"
    status = tmp_path / "status.json"

    result = in_node_ns(
        lab,
        *(sys.executable, "-m", "dplb.cli", "run", "--config", str(bad)),
        *("--status-file", str(status)),
        env={**os.environ, "DPLB_RUN_DIR": str(run_dir)},
    )

    assert result.returncode == 1
    assert "services[0].reals[1].weight" in result.stderr, result.stderr
    assert "services[0].port" in result.stderr, result.stderr
    # Nothing started: no lock taken, no kernel interface, no nftables table, no status.
    assert "running" not in result.stdout
    assert not run_dir.exists()
    assert not link_exists(lab, "k0")
    assert not nft_table_exists(lab)
    assert not status.exists()
