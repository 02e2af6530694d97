"""site.yml against booted Debian 12 hosts (systemd-nspawn containers reached over SSH,
tests/ansible/containers.py): it converges, a second run changes nothing on any host,
and the etcd cluster it made answers from outside with every member healthy."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from containers import REPO, Lab, lab

PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
ETCD_HOSTS = ["lb1", "lb2", "lb3"]

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not (shutil.which("debootstrap") and shutil.which("systemd-nspawn")),
    reason="needs root, debootstrap and systemd-nspawn (scripts/install-deps.sh)",
)


def write_inventory(the_lab: Lab, path: Path, etcd: list[str]) -> Path:
    """An inventory as a user writes one: addresses, root over SSH with the lab's key."""
    hosts = {h.name: {"ansible_host": h.address} for h in the_lab.hosts if h.name in etcd}
    inventory = {
        "all": {
            "vars": {
                "ansible_user": "root",
                "ansible_ssh_private_key_file": str(the_lab.key),
                "ansible_ssh_common_args": " ".join(the_lab.ssh_options()[2:]),
                "etcd_cluster_token": "dplb-test",
            },
            "children": {"etcd": {"hosts": hosts}, "dplb_nodes": {"hosts": {}}},
        }
    }
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    return path


def site(the_lab: Lab, inventory: Path, *args: str) -> str:
    """Runs site.yml from the lab's namespace; returns its output (fails on a failure)."""
    env = os.environ | {
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_STDOUT_CALLBACK": "default",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_PYTHON_INTERPRETER": "auto_silent",
    }
    wheels = inventory.parent / "wheels"
    wheels.mkdir(exist_ok=True)
    result = the_lab.run(
        [str(PLAYBOOK), "-i", str(inventory), str(REPO / "ansible/site.yml"),
         "-e", json.dumps({"dplb_wheelhouse": str(wheels)}), *args],
        check=False, env=env, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-3000:]
    return result.stdout


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP as {host: {ok: n, changed: n, ...}}."""
    tail = output.split("PLAY RECAP", 1)[1]
    out: dict[str, dict[str, int]] = {}
    for line in tail.splitlines():
        m = re.match(r"^(\S+)\s+:\s+(.*)$", line)
        if m:
            out[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    return out


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with lab(tmp_path_factory.mktemp("lab"), ETCD_HOSTS) as the_lab:
        yield the_lab


def test_site_converges_and_a_second_run_changes_nothing(hosts: Lab, tmp_path: Path) -> None:
    inventory = write_inventory(hosts, tmp_path / "hosts.yml", ETCD_HOSTS)
    first = recap(site(hosts, inventory))
    assert set(ETCD_HOSTS) <= set(first), first
    assert all(first[h]["failed"] == 0 and first[h]["unreachable"] == 0 for h in first), first
    second = recap(site(hosts, inventory))
    assert {h: r["changed"] for h, r in second.items()} == dict.fromkeys(second, 0), second

    endpoints = ",".join(f"http://{h.address}:2379" for h in hosts.hosts)
    health = hosts.run(["etcdctl", "--endpoints", endpoints, "endpoint", "health"], check=False)
    assert health.returncode == 0, health.stdout + health.stderr
    assert health.stdout.count("is healthy") + health.stderr.count("is healthy") == 3, (
        health.stdout + health.stderr
    )
    members = hosts.run(["etcdctl", "--endpoints", endpoints, "member", "list", "-w", "json"])
    listed = json.loads(members.stdout)["members"]
    assert sorted(m["name"] for m in listed) == ETCD_HOSTS
    assert sorted(u for m in listed for u in m["clientURLs"]) == sorted(
        f"http://{h.address}:2379" for h in hosts.hosts
    )
