"""Booted Debian 12 hosts for the roles' tests: a debootstrap rootfs cached under
/var/cache/dplb-test (keyed by its package list), one overlay per container, systemd
booted by systemd-nspawn, a veth into a bridge in a namespace of the test's own, sshd
with the test's key authorised for root. Ansible and the checks run inside that
namespace and reach the hosts over SSH, as they reach real ones."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("DPLB_TEST_CACHE", "/var/cache/dplb-test"))
MIRROR = os.environ.get("DPLB_TEST_MIRROR", "http://deb.debian.org/debian")
SUITE = "bookworm"
# What a host needs to be managed by Ansible over SSH; the roles' own packages come from
# their defaults (etcd_packages, bird_packages, dplb_runtime_packages), so the roles'
# apt tasks find them installed and the hosts need no mirror.
BASE_PACKAGES = [
    "systemd", "systemd-sysv", "dbus", "openssh-server", "python3", "python3-apt", "sudo",
    "iproute2", "iputils-ping",
]  # fmt: skip
DEVICES = ["/dev/net/tun", "/dev/vhost-net"]  # dplb's exception path (TAP, virtio-user)
ROLE_PACKAGES = {
    "etcd": "etcd_packages",
    "bird": "bird_packages",
    "dplb": "dplb_runtime_packages",
}


# nspawn given a namespace (--network-namespace-path) leaves /sys/class/net showing the
# host's interfaces; DPDK's net_af_packet and dplb read the ports' state there. This unit
# puts the container's own network sysfs in its place, as a real host has it.
SYSFS_NET_UNIT = """[Unit]
Description=sysfs of the container's own network namespace (tests/ansible/containers.py)
DefaultDependencies=no
Before=sysinit.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'mkdir -p /run/sysfs-net && mount -t sysfs sysfs /run/sysfs-net && \\
  mount --bind /run/sysfs-net/class/net /sys/class/net && \\
  mount --bind /run/sysfs-net/devices/virtual/net /sys/devices/virtual/net'
"""


def role_packages() -> list[str]:
    out: list[str] = []
    for role, variable in ROLE_PACKAGES.items():
        defaults = yaml.safe_load((REPO / "roles" / role / "defaults/main.yml").read_text())
        out += defaults[variable]
    return out


def rootfs(packages: Sequence[str] | None = None) -> Path:
    """The cached rootfs for these packages, built by debootstrap the first time
    (about 3 minutes); a lock keeps two runs from building it at once."""
    wanted = sorted(set(packages if packages is not None else BASE_PACKAGES + role_packages()))
    key = hashlib.sha256(f"{SUITE} {MIRROR} {' '.join(wanted)}".encode()).hexdigest()[:16]
    CACHE.mkdir(parents=True, exist_ok=True)
    done = CACHE / f"rootfs-{key}"
    with open(CACHE / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.is_dir():
            return done
        work = CACHE / f"rootfs-{key}.tmp"
        shutil.rmtree(work, ignore_errors=True)
        subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(wanted)}",
             SUITE, str(work), MIRROR],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        subprocess.run(["chroot", str(work), "apt-get", "clean"], check=True)
        (work / "etc/machine-id").write_text("")
        (work / "packages").write_text("\n".join(wanted) + "\n")
        work.rename(done)
        return done


def run(cmd: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), check=True, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload, no-any-return]


@dataclass
class Host:
    name: str
    address: str
    netns: str
    root: Path
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None


@dataclass
class Lab:
    """A bridge in namespace `hub` (address .1) and the hosts on it; the controller's
    commands run in `hub` (Lab.run)."""

    prefix: str
    work: Path
    key: Path
    base: Path
    subnet: str = "10.213.0"
    hosts: list[Host] = field(default_factory=list)
    bridges: list[str] = field(default_factory=lambda: ["br0"])
    namespaces: list[str] = field(default_factory=list)

    @property
    def hub(self) -> str:
        return f"{self.prefix}hub"

    def run(
        self, cmd: Sequence[str], check: bool = True, timeout: float = 600, **kwargs: object
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # type: ignore[call-overload, no-any-return]
            ["ip", "netns", "exec", self.hub, *cmd],
            check=check, capture_output=True, text=True, timeout=timeout, **kwargs,
        )  # fmt: skip

    def ssh(self, host: Host, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(
            ["ssh", *self.ssh_options(), f"root@{host.address}", command], check=check, timeout=60
        )

    def ssh_options(self) -> list[str]:
        return ["-i", str(self.key), "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=3",
                "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"]  # fmt: skip

    def start(self) -> None:
        run(["ip", "netns", "add", self.hub])
        run(["ip", "-n", self.hub, "link", "set", "lo", "up"])
        run(["ip", "-n", self.hub, "link", "add", "br0", "type", "bridge"])
        run(["ip", "-n", self.hub, "addr", "add", f"{self.subnet}.1/24", "dev", "br0"])
        run(["ip", "-n", self.hub, "link", "set", "br0", "up"])
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key)])

    def namespace(self, name: str) -> str:
        """A namespace of the lab's (a router, a real server), removed by stop()."""
        netns = f"{self.prefix}{name}"
        run(["ip", "netns", "add", netns])
        self.namespaces.append(netns)
        run(["ip", "-n", netns, "link", "set", "lo", "up"])
        return netns

    def attach(self, netns: str, ifname: str, bridge: str, peer: str) -> None:
        """A veth from `ifname` in `netns` to `peer` on the hub's `bridge` (made on first
        use), offloads off on both ends as on a real wire."""
        if bridge not in self.bridges:
            run(["ip", "-n", self.hub, "link", "add", bridge, "type", "bridge"])
            run(["ip", "-n", self.hub, "link", "set", bridge, "up"])
            self.bridges.append(bridge)
        run(["ip", "-n", self.hub, "link", "add", peer, "type", "veth",
             "peer", "name", ifname, "netns", netns])  # fmt: skip
        run(["ip", "-n", self.hub, "link", "set", peer, "master", bridge])
        for ns, dev in ((self.hub, peer), (netns, ifname)):
            subprocess.run(
                ["ip", "netns", "exec", ns, "ethtool", "-K", dev,
                 "tx", "off", "rx", "off", "tso", "off", "gso", "off", "gro", "off"],
                capture_output=True, check=False,
            )  # fmt: skip
            run(["ip", "-n", ns, "link", "set", dev, "up"])

    def add_host(self, name: str, number: int, links: Sequence[tuple[str, str]] = ()) -> Host:
        """Boots one more host (address .<10+number>, and an interface on the hub's
        bridge per (interface, bridge) of `links`); returns once sshd answers."""
        host = Host(name, f"{self.subnet}.{10 + number}", f"{self.prefix}{name}",
                    self.work / name / "merged")  # fmt: skip
        self.hosts.append(host)
        layers = self.work / name
        for d in ("upper", "work", "merged"):
            (layers / d).mkdir(parents=True)
        run(["mount", "-t", "overlay", "overlay", "-o",
             f"lowerdir={self.base},upperdir={layers / 'upper'},workdir={layers / 'work'}",
             str(host.root)])  # fmt: skip
        (host.root / "etc/hostname").write_text(name + "\n")
        (host.root / "etc/hosts").write_text(f"127.0.0.1 localhost\n{host.address} {name}\n")
        (host.root / "etc/machine-id").write_text(uuid.uuid4().hex + "\n")
        units = host.root / "etc/systemd/system"
        (units / "dplb-test-sysfs-net.service").write_text(SYSFS_NET_UNIT)
        (units / "sysinit.target.wants").mkdir(exist_ok=True)
        (units / "sysinit.target.wants/dplb-test-sysfs-net.service").symlink_to(
            "../dplb-test-sysfs-net.service"
        )
        ssh_dir = host.root / "root/.ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        (ssh_dir / "authorized_keys").write_text(Path(f"{self.key}.pub").read_text())
        (ssh_dir / "authorized_keys").chmod(0o600)
        run(["ip", "netns", "add", host.netns])
        run(["ip", "-n", self.hub, "link", "add", name, "type", "veth",
             "peer", "name", "eth0", "netns", host.netns])  # fmt: skip
        run(["ip", "-n", self.hub, "link", "set", name, "master", "br0", "up"])
        run(["ip", "-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "eth0"])
        run(["ip", "-n", host.netns, "link", "set", "eth0", "up"])
        run(["ip", "-n", host.netns, "link", "set", "lo", "up"])
        for ifname, bridge in links:
            self.attach(host.netns, ifname, bridge, f"{name}-{ifname}")
        host.log = layers / "console.log"
        with open(host.log, "wb") as log:
            host.process = subprocess.Popen(
                ["systemd-nspawn", "--register=no", "--keep-unit", "--boot", "--quiet",
                 f"--machine={self.prefix}{name}", f"--hostname={name}", "-D", str(host.root),
                 f"--network-namespace-path=/run/netns/{host.netns}",
                 # A real host's root has every capability (BIRD keeps CAP_NET_ADMIN,
                 # dplb makes TAP interfaces): nspawn's default set is smaller.
                 "--capability=all", *(f"--bind={d}" for d in DEVICES if Path(d).exists())],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.wait_ssh(host)
        return host

    def wait_ssh(self, host: Host, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert host.process is not None
            if host.process.poll() is not None:
                raise RuntimeError(f"{host.name}: systemd-nspawn exited: {self.console(host)}")
            if self.ssh(host, "systemctl is-system-running --wait", check=False).returncode in (
                0,
                1,
            ):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{host.name}: no SSH after {timeout}s: {self.console(host)}")
            time.sleep(1)

    def console(self, host: Host) -> str:
        return host.log.read_text(errors="replace")[-3000:] if host.log else ""

    def stop(self) -> None:
        """Powers every host off (SIGTERM makes nspawn halt the container), kills what
        does not stop, then removes mounts, namespaces and links; never raises."""
        for host in self.hosts:
            if host.process and host.process.poll() is None:
                host.process.terminate()
        for host in self.hosts:
            if host.process:
                try:
                    host.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(host.process.pid, signal.SIGKILL)
                    host.process.wait(timeout=30)
            subprocess.run(["umount", "-l", str(host.root)], capture_output=True, check=False)
        for netns in [*self.namespaces, *(h.netns for h in self.hosts), self.hub]:
            pids = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True)
            for pid in pids.stdout.split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", netns], capture_output=True, check=False)
        shutil.rmtree(self.work, ignore_errors=True)


@contextlib.contextmanager
def lab(work: Path, names: Sequence[str], links: Sequence[tuple[str, str]] = ()) -> Iterator[Lab]:
    """Hosts `names` booted on one bridge (and `links` each); everything removed on the
    way out."""
    prefix = f"dt{os.getpid() % 100000}"
    the_lab = Lab(prefix=prefix, work=work, key=work / "id_ed25519", base=rootfs())
    work.mkdir(parents=True, exist_ok=True)
    try:
        the_lab.start()
        for number, name in enumerate(names, start=1):
            the_lab.add_host(name, number, links)
        yield the_lab
    finally:
        the_lab.stop()
