"""The node's lock files (`dplb run`): one node per name and per device; a second start
says who holds what; a clean stop removes its files; a crashed node's files are removed
by the next start; kernel-interface devices are per network namespace."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

import pytest

import dplb.node as node
from dplb.config import NodeConfig
from dplb.node import NodeError, NodeLock


@pytest.fixture(autouse=True)
def lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(node, "LOCK_DIR", tmp_path)
    return tmp_path


def config(name: str = "lb1", iface: str = "p0") -> NodeConfig:
    raw: dict[str, Any] = {
        "node": {"name": name},
        "dataplane": {
            "ports": [
                {
                    "name": "port0",
                    "device": f"net_af_packet0,iface={iface}",
                    "address": "10.0.1.1/24",
                }
            ]
        },
    }
    return NodeConfig.model_validate(raw)


def test_second_node_of_the_same_name_is_refused_and_told_who_holds_it(
    lock_dir: Path,
) -> None:
    first = NodeLock(config())
    with pytest.raises(NodeError, match=rf"node lb1 is already in use by dplb pid {os.getpid()}"):
        NodeLock(config())
    first.release()
    assert list(lock_dir.iterdir()) == []  # a clean stop leaves no file
    NodeLock(config()).release()


def test_a_device_is_refused_to_a_second_node(lock_dir: Path) -> None:
    first = NodeLock(config("lb1"))
    with pytest.raises(NodeError, match=r"device net_af_packet0,iface=p0 \(port port0\)"):
        NodeLock(config("lb2"))
    # The refused node let go of what it had taken (its name) on the way out.
    assert not (lock_dir / "node-lb2.lock").exists()
    first.release()


def test_the_device_lock_names_the_network_namespace(lock_dir: Path) -> None:
    lock = NodeLock(config())
    netns = os.stat("/proc/self/ns/net").st_ino
    names = sorted(p.name for p in lock_dir.iterdir())
    assert names == [f"device-net_af_packet0_iface_p0_netns{netns}.lock", "node-lb1.lock"]
    lock.release()


def test_files_of_a_crashed_node_are_removed_by_the_next_start(lock_dir: Path) -> None:
    (lock_dir / "node-gone.lock").write_text("dplb pid 999999\n")  # nobody holds it
    held = lock_dir / "node-other.lock"
    with held.open("a+") as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a running node's
        lock = NodeLock(config())
        assert not (lock_dir / "node-gone.lock").exists()
        assert held.exists()
        lock.release()
