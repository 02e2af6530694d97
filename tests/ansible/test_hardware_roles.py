"""The hardware roles (hugepages, nic_binding) run against a fake sysfs tree with
ansible-playbook on localhost: a second run changes nothing, and bad inventory input
stops the play naming the host and the variable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"


def fake_tree(root: Path) -> None:
    pages = root / "sys/devices/system/node/node0/hugepages/hugepages-2048kB"
    pages.mkdir(parents=True)
    (pages / "nr_hugepages").write_text("0\n")
    (root / "sys/devices/system/node/node0/cpulist").write_text("0-3\n")
    nic = root / "sys/bus/pci/devices/0000:3b:00.0"
    (nic / "net/ens5").mkdir(parents=True)
    (nic / "net/ens5/address").write_text("52:54:00:12:34:56\n")
    (nic / "numa_node").write_text("0\n")
    (root / "sys/class/net/ens5").mkdir(parents=True)
    (root / "sys/class/net/ens5/device").symlink_to("../../../bus/pci/devices/0000:3b:00.0")
    (root / "sys/kernel/iommu_groups/7").mkdir(parents=True)
    (root / "etc/tmpfiles.d").mkdir(parents=True)
    (root / "etc/dplb").mkdir(parents=True)
    (root / "proc").mkdir()
    (root / "proc/cmdline").write_text("BOOT_IMAGE=/vmlinuz root=/dev/vda1\n")


def run_role(
    tmp_path: Path, role: str, variables: dict[str, object]
) -> subprocess.CompletedProcess[str]:
    play = tmp_path / "play.yml"
    play.write_text(
        f"- hosts: localhost\n  connection: local\n  gather_facts: false\n  roles: [{role}]\n"
    )
    extra = tmp_path / "vars.json"
    extra.write_text(json.dumps(variables))
    env = os.environ | {
        "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
        "ANSIBLE_STDOUT_CALLBACK": "default",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
    }
    return subprocess.run(
        [str(PLAYBOOK), "-i", "localhost,", str(play), "-e", f"@{extra}"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip


def recap(result: subprocess.CompletedProcess[str]) -> str:
    return next(line for line in result.stdout.splitlines() if line.startswith("localhost"))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    tree = tmp_path / "root"
    fake_tree(tree)
    return tree


def test_hugepages_reserves_pages_and_a_second_run_changes_nothing(
    tmp_path: Path, root: Path
) -> None:
    variables = {
        "hugepages_sysfs_root": str(root),
        "hugepages_2m_per_node": {"0": 512},
        "hugepages_1g_count": 4,
        "hugepages_grub_file": str(root / "grub-dplb.cfg"),
        "hugepages_manage_mounts": False,
    }
    first = run_role(tmp_path, "hugepages", variables)
    assert first.returncode == 0, first.stdout + first.stderr
    nr = root / "sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages"
    assert nr.read_text().strip() == "512"
    assert "hugepages=4" in (root / "grub-dplb.cfg").read_text()
    assert "reboot required" in first.stdout
    second = run_role(tmp_path, "hugepages", variables)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "changed=0" in recap(second), second.stdout


def test_hugepages_stops_on_a_numa_node_the_host_lacks(tmp_path: Path, root: Path) -> None:
    result = run_role(
        tmp_path, "hugepages",
        {"hugepages_sysfs_root": str(root), "hugepages_2m_per_node": {"1": 512},
         "hugepages_manage_mounts": False},
    )  # fmt: skip
    assert result.returncode != 0
    assert "localhost: hugepages_2m_per_node names NUMA node 1" in result.stdout
    nr = root / "sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages"
    assert nr.read_text().strip() == "0"


def test_nic_binding_stops_on_a_pci_address_the_host_lacks(tmp_path: Path, root: Path) -> None:
    result = run_role(
        tmp_path, "nic_binding",
        {"nic_binding_sysfs_root": str(root), "nic_binding_manage_unit": False,
         "nic_binding_nics": [{"pci": "0000:3b:00.0"}, {"pci": "0000:af:00.0"}]},
    )  # fmt: skip
    assert result.returncode != 0
    assert "localhost: nic_binding_nics names PCI address 0000:af:00.0" in result.stdout
    assert not (root / "sys/bus/pci/devices/0000:3b:00.0/driver_override").exists()


def test_nic_binding_records_the_nic_before_binding_it(tmp_path: Path, root: Path) -> None:
    result = run_role(
        tmp_path, "nic_binding",
        {"nic_binding_sysfs_root": str(root), "nic_binding_manage_unit": False,
         "nic_binding_nics": [{"interface": "ens5"}]},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    record = json.loads((root / "etc/dplb/nics.json").read_text())
    assert record == [{"pci": "0000:3b:00.0", "interface": "ens5", "mac": "52:54:00:12:34:56"}]
    dev = root / "sys/bus/pci/devices/0000:3b:00.0"
    assert (dev / "driver_override").read_text().strip() == "vfio-pci"
