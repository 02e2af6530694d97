"""`dplb demo` (what `make demo` runs): a run killed with SIGKILL half-way leaves its
namespaces and processes behind; the next run removes them, shows live traffic, stops
on its own after `--duration`, and leaves nothing. (With this run's own prefix, so as
not to touch a demo someone runs on the same machine.)"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dplb.demo.lab import remove_stale, wait_until

from .helpers import namespaces_of, run_prefix

pytestmark = pytest.mark.e2e

PREFIX = run_prefix("e2e5")
DEMO = [sys.executable, "-m", "dplb.cli", "demo", "--prefix", PREFIX]


@pytest.fixture
def clean() -> Iterator[None]:
    """Whatever happens, no namespace of the demo (nor process in one), nor its work
    folder, outlives the test."""
    try:
        yield
    finally:
        remove_stale(PREFIX)
        shutil.rmtree(Path(tempfile.gettempdir()) / PREFIX, ignore_errors=True)


def test_demo_recovers_from_a_killed_run_and_cleans_up(clean: None, tmp_path: Path) -> None:
    log = tmp_path / "crashed.log"
    with log.open("wb") as out:
        crashed = subprocess.Popen(DEMO, stdout=out, stderr=subprocess.STDOUT)

    def traffic_shown() -> bool:
        assert crashed.poll() is None, "the first demo ended early:\n" + log.read_text()
        return "req/s" in log.read_text()

    try:
        wait_until(traffic_shown, 120, "the first demo's traffic")
    finally:
        crashed.send_signal(signal.SIGKILL)  # not os.kill: it may be reaped already
        crashed.wait()
    assert namespaces_of(PREFIX), "the killed demo should have left its namespaces"

    result = subprocess.run(
        [*DEMO, "--duration", "3", "--concurrency", "4"],
        capture_output=True,
        text=True,
        timeout=180,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "req/s" in result.stdout
    assert " 0 failed" in result.stdout
    assert "answered by: rs1" in result.stdout
    assert not namespaces_of(PREFIX)
    assert not (Path(tempfile.gettempdir()) / PREFIX).exists()


CLUSTER_PREFIX = run_prefix("e2e13")


@pytest.fixture
def clean_cluster() -> Iterator[None]:
    try:
        yield
    finally:
        remove_stale(CLUSTER_PREFIX)
        shutil.rmtree(Path(tempfile.gettempdir()) / CLUSTER_PREFIX, ignore_errors=True)


def test_the_cluster_demo_shows_two_nodes_on_one_config_serving_one_vip(
    clean_cluster: None,
) -> None:
    result = subprocess.run(
        [*DEMO[:-1], CLUSTER_PREFIX, "--cluster", "--duration", "3", "--concurrency", "4"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "via 10.10.1.1, 10.10.1.2" in out  # the router learnt the VIP from both
    assert "every live node runs it" in out
    assert "applied by " + f"{CLUSTER_PREFIX}-lb1, {CLUSTER_PREFIX}-lb2" in out
    assert " 0 failed" in out
    per_node = out.split("connections per node: ")[1].split()
    assert per_node[0] == "lb1" and int(per_node[1].rstrip(",")) > 0
    assert per_node[2] == "lb2" and int(per_node[3]) > 0
    assert not namespaces_of(CLUSTER_PREFIX)


def test_the_cluster_demo_with_sync_kills_lb1_and_the_long_lived_connections_go_on(
    clean_cluster: None,
) -> None:
    result = subprocess.run(
        [*DEMO[:-1], CLUSTER_PREFIX, "--cluster", "--sync", "--duration", "15",
         "--kill-after", "3", "--concurrency", "2"],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "lb1 killed" in out
    assert "long-lived: 200/200 alive at the end, errors {}" in out
    assert not namespaces_of(CLUSTER_PREFIX)
