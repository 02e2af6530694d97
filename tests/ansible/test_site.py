"""site.yml against booted Debian 12 hosts (systemd-nspawn containers reached over SSH,
tests/ansible/containers.py). First as an etcd cluster alone: it converges, a second
run changes nothing, etcd answers from outside with every member healthy. Then the same
hosts become dplb nodes (net_af_packet on their data veths) behind a router namespace
running BIRD: converges, changes nothing the second time, every BGP session is up and
the VIP serves HTTP from a real server behind the nodes.

  router (BIRD, ECMP) ── front ── lb1 | lb2 | lb3 (etcd, BIRD, dplb) ── back ── rs
                                   └── br0 (SSH, etcd) ── hub: ansible-playbook, etcdctl"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from containers import REPO, Lab, lab

from dplb.demo.bgp_lab import BirdDaemon, concrete, kernel_nexthops

PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
ETCD_HOSTS = ["lb1", "lb2", "lb3"]
LINKS = [("p0", "front"), ("p1", "back")]  # each node's data ports
FRONT, BACK = "10.214.1", "10.214.2"  # the routers' side, the reals' side
ROUTER = f"{FRONT}.254"
REAL = f"{BACK}.200"
VIP = "10.214.100.10"
JOURNAL = "journalctl -u dplb -u bird -u etcd -n 40 --no-pager -o cat"
TOKEN = "ansible-test-admin-token-0123456789"

# Root only (containers, namespaces); as root the tools must be there: a missing one fails
# the tests (scripts/install-deps.sh installs them) instead of skipping them unseen.
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (systemd-nspawn, namespaces)")


@pytest.fixture(autouse=True)
def _tools_installed() -> None:
    missing = [t for t in ("debootstrap", "systemd-nspawn") if shutil.which(t) is None]
    assert not missing, f"{', '.join(missing)} not installed: run scripts/install-deps.sh"


def node_vars(number: int) -> dict[str, object]:
    """host_vars of node lbN: its ports on the lab's data veths, its router id."""
    return {
        "bird_router_id": f"{FRONT}.{10 + number}",
        "dplb_ports": [
            {"name": "port0", "device": "net_af_packet0,iface=p0",
             "address": f"{FRONT}.{10 + number}/24", "gateway": ROUTER,
             "kernel_interface": "port0"},
            {"name": "port1", "device": "net_af_packet1,iface=p1",
             "address": f"{BACK}.{10 + number}/24",
             "local_addresses": [[f"{BACK}.{100 + number}"]], "kernel_interface": "port1"},
        ],
    }  # fmt: skip


NODE_GROUP_VARS = {
    "nic_binding_driver": "none",  # af_packet on veths: nothing to bind
    "numa_pinning_enabled": False,
    "hugepages_manage_mounts": False,
    "dplb_memory": {"hugepages": False, "size_mb": 256},
    "dplb_workers": 1,
    "dplb_idle_sleep_us": 1000,  # a 2-core machine runs three nodes
    "dplb_sessions_per_worker": 65536,
    "dplb_cluster": "ansible-test",
    "bird_asn": 65001,
    "bird_peers": [{"name": "router1", "address": ROUTER, "asn": 65000}],
    "dplb_api_tokens": [{"name": "ansible", "token": TOKEN, "role": "admin"}],
    "dplb_services": [
        {"vip": VIP, "port": 80, "protocol": "tcp", "scheduler": "maglev", "nic": "port1",
         "reals": [{"address": REAL, "port": 8080}]},
    ],
}  # fmt: skip


def write_inventory(the_lab: Lab, path: Path, etcd: list[str], nodes: list[str]) -> Path:
    """An inventory as a user writes one: addresses, root over SSH with the lab's key."""
    hosts = {h.name: {"ansible_host": h.address} for h in the_lab.hosts if h.name in etcd}
    node_hosts = {
        h.name: {"ansible_host": h.address} | node_vars(n)
        for n, h in enumerate(the_lab.hosts, start=1)
        if h.name in nodes
    }
    inventory = {
        "all": {
            "vars": {
                "ansible_user": "root",
                "ansible_ssh_private_key_file": str(the_lab.key),
                "ansible_ssh_common_args": " ".join(the_lab.ssh_options()[2:]),
                "etcd_cluster_token": "dplb-test",
            },
            "children": {
                "etcd": {"hosts": hosts},
                "dplb_nodes": {"hosts": node_hosts, "vars": NODE_GROUP_VARS},
            },
        }
    }
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    return path


def site(the_lab: Lab, inventory: Path, wheels: Path, *args: str) -> str:
    """Runs site.yml from the lab's namespace; returns its output (fails on a failure)."""
    env = os.environ | {
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_STDOUT_CALLBACK": "default",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_PYTHON_INTERPRETER": "auto_silent",
    }
    result = the_lab.run(
        [str(PLAYBOOK), "-i", str(inventory), str(REPO / "ansible/site.yml"),
         "-e", json.dumps({"dplb_wheelhouse": str(wheels)}), *args,
         *os.environ.get("DPLB_TEST_ANSIBLE_ARGS", "").split()],
        check=False, env=env, timeout=900,
    )  # fmt: skip
    if result.returncode != 0:
        journals = "".join(
            f"--- {h.name}\n" + the_lab.ssh(h, JOURNAL, check=False).stdout for h in the_lab.hosts
        )
        raise AssertionError(result.stdout[-8000:] + result.stderr[-3000:] + journals)
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
    with lab(tmp_path_factory.mktemp("lab"), ETCD_HOSTS, LINKS) as the_lab:
        yield the_lab


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dplb's wheel and its dependencies', from the build `make build` left (pip wheel
    without build isolation reuses build/<wheel tag>: seconds, not a C++ rebuild)."""
    out = tmp_path_factory.mktemp("wheels")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-build-isolation", "-w", str(out),
         str(REPO)],
        check=True, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def router(hosts: Lab) -> Iterator[BirdDaemon]:
    """A router namespace on the front bridge running BIRD (ops/bird/router.conf, one
    session per node), and a real server on the back bridge."""
    netns = hosts.namespace("router")
    hosts.attach(netns, "eth0", "front", "router")
    subprocess.run(["ip", "-n", netns, "addr", "add", f"{ROUTER}/24", "dev", "eth0"], check=True)
    subprocess.run(["ip", "netns", "exec", netns, "sysctl", "-qw",
                    "net.ipv4.fib_multipath_hash_policy=1"], check=True)  # fmt: skip
    folder = hosts.work / "router"
    folder.mkdir()
    peers = "".join(
        f"protocol bgp {h.name} from dplb_nodes {{ neighbor {FRONT}.{10 + n} as 65001; }}\n"
        for n, h in enumerate(hosts.hosts, start=1)
    )
    config = folder / "bird.conf"
    config.write_text(
        concrete("router.conf", {
            "log syslog all;": f'log "{folder}/bird.log" all;',
            "router id 10.10.1.254;": f"router id {ROUTER};",
            "protocol bgp lb1 from dplb_nodes { neighbor 10.10.1.1 as 65001; }\n": peers,
            "protocol bgp lb2 from dplb_nodes { neighbor 10.10.1.2 as 65001; }\n": "",
        })
    )  # fmt: skip
    real = hosts.namespace("rs")
    hosts.attach(real, "eth0", "back", "rs")
    subprocess.run(["ip", "-n", real, "addr", "add", f"{REAL}/24", "dev", "eth0"], check=True)
    (folder / "www").mkdir()
    (folder / "www/index.html").write_text("served by rs\n")
    # Killed with the namespace's other processes by Lab.stop.
    subprocess.Popen(
        ["ip", "netns", "exec", real, sys.executable, "-m", "http.server", "8080",
         "--bind", REAL, "--directory", str(folder / "www")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    bird = BirdDaemon(netns, config, folder, "bird")
    bird.start()
    try:
        yield bird
    finally:
        bird.stop()


def converge_twice(the_lab: Lab, inventory: Path, wheels: Path) -> None:
    """site.yml converges, then a second run changes nothing on any host."""
    first = recap(site(the_lab, inventory, wheels))
    assert set(ETCD_HOSTS) <= set(first), first
    assert all(first[h]["failed"] == 0 and first[h]["unreachable"] == 0 for h in first), first
    second = recap(site(the_lab, inventory, wheels))
    assert {h: r["changed"] for h, r in second.items()} == dict.fromkeys(second, 0), second


def test_site_makes_an_etcd_cluster_and_a_second_run_changes_nothing(
    hosts: Lab, tmp_path: Path
) -> None:
    inventory = write_inventory(hosts, tmp_path / "hosts.yml", ETCD_HOSTS, [])
    empty = tmp_path / "no-wheels"  # no dplb node: build-wheel.yml has nothing to build
    empty.mkdir()
    converge_twice(hosts, inventory, empty)

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


def test_site_makes_the_hosts_dplb_nodes_behind_the_router(
    hosts: Lab, router: BirdDaemon, wheels: Path, tmp_path: Path
) -> None:
    inventory = write_inventory(hosts, tmp_path / "hosts.yml", ETCD_HOSTS, ETCD_HOSTS)
    converge_twice(hosts, inventory, wheels)
    for h in hosts.hosts:
        deadline = time.monotonic() + 60
        while not router.established(h.name):
            assert time.monotonic() < deadline, router.ask("show", "protocols", "all", h.name)
            time.sleep(1)
        bird = hosts.ssh(h, "birdc show protocols router1").stdout
        assert "Established" in bird, f"{h.name}: {bird}"
    deadline = time.monotonic() + 60
    while len(kernel_nexthops(router.netns, VIP)) < len(hosts.hosts):
        assert time.monotonic() < deadline, kernel_nexthops(router.netns, VIP)
        time.sleep(1)
    answers = [get(router.netns, f"http://{VIP}/") for _ in range(6)]
    assert all(a.stdout == "served by rs\n" for a in answers), answers


def get(netns: str, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", netns, "curl", "-sS", "-m", "5", url],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
