"""The etcd store over TLS with client certificates, and with etcd's own users: a real
etcd started with certificates made by openssl for the test, and one with `auth enable`.
Wrong credentials answer with what was refused, not a stack trace."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dplb.cluster.etcd_store import EtcdStore
from dplb.config import EtcdSection
from dplb.store import StoreUnavailable

from .etcd_cluster import ETCD, ETCDCTL, free_ports
from .test_etcd_store import LOCAL, config, service


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_certs(folder: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate it signed."""
    p = {
        n: folder / f"{n}"
        for n in ("ca.key", "ca.pem", "server.key", "server.pem", "client.key", "client.pem")
    }
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=dplb-test-ca",
            "-keyout", str(p["ca.key"]), "-out", str(p["ca.pem"]))  # fmt: skip
    for name, extra in (
        ("server", "subjectAltName=IP:127.0.0.1"),
        ("client", "extendedKeyUsage=clientAuth"),
    ):
        ext = folder / f"{name}.ext"
        ext.write_text(extra + "\n")
        csr = folder / f"{name}.csr"
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                "-keyout", str(p[f"{name}.key"]), "-out", str(csr))  # fmt: skip
        openssl("x509", "-req", "-in", str(csr), "-CA", str(p["ca.pem"]),
                "-CAkey", str(p["ca.key"]), "-CAcreateserial", "-days", "2",
                "-extfile", str(ext), "-out", str(p[f"{name}.pem"]))  # fmt: skip
    return p


class SingleEtcd:
    def __init__(self, folder: Path, scheme: str, extra: list[str]) -> None:
        self.client, peer = free_ports(2)
        self.url = f"{scheme}://127.0.0.1:{self.client}"
        with open(folder / "etcd.log", "ab") as log:
            self.proc = subprocess.Popen(
                [
                    ETCD, "--name", "s0", "--data-dir", str(folder / "data"),
                    "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
                    "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                    "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                    "--initial-cluster", f"s0=http://127.0.0.1:{peer}", *extra,
                ],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def etcdctl(self, *args: str) -> str:
        for _ in range(100):
            r = subprocess.run(
                [ETCDCTL, "--endpoints", self.url, *args], capture_output=True, text=True
            )
            if r.returncode == 0:
                return r.stdout
            time.sleep(0.1)  # etcd is starting: ask again
        raise RuntimeError(r.stderr)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def roundtrip(section: EtcdSection) -> Any:
    async def go() -> Any:
        s = EtcdStore(section, cluster="sec", node="lb1", local=LOCAL)
        try:
            await s.write(config(service(1)), author="a")
            d = await s.read()
            return d.data["services"] if d and d.data else None
        finally:
            await s.close()

    return asyncio.run(go())


@pytest.fixture
def tls_etcd(tmp_path: Path) -> Iterator[tuple[SingleEtcd, dict[str, Path]]]:
    certs = make_certs(tmp_path)
    etcd = SingleEtcd(
        tmp_path,
        "https",
        [
            "--cert-file", str(certs["server.pem"]), "--key-file", str(certs["server.key"]),
            "--trusted-ca-file", str(certs["ca.pem"]), "--client-cert-auth",
        ],
    )  # fmt: skip
    try:
        etcd.etcdctl(
            "--cacert", str(certs["ca.pem"]), "--cert", str(certs["client.pem"]),
            "--key", str(certs["client.key"]), "endpoint", "health",
        )  # fmt: skip
        yield etcd, certs
    finally:
        etcd.stop()


def test_tls_with_a_client_certificate(tls_etcd: tuple[SingleEtcd, dict[str, Path]]) -> None:
    etcd, certs = tls_etcd
    section = EtcdSection(
        endpoints=[etcd.url],
        ca_file=certs["ca.pem"],
        cert_file=certs["client.pem"],
        key_file=certs["client.key"],
    )
    assert roundtrip(section) == [service(1)]


def test_tls_without_the_client_certificate_is_unavailable_saying_why(
    tls_etcd: tuple[SingleEtcd, dict[str, Path]],
) -> None:
    etcd, certs = tls_etcd
    section = EtcdSection(endpoints=[etcd.url], ca_file=certs["ca.pem"], timeout=2.0)
    with pytest.raises(StoreUnavailable, match=r"etcd is unavailable .*127\.0\.0\.1"):
        roundtrip(section)


def test_etcd_users_right_and_wrong_password(tmp_path: Path) -> None:
    etcd = SingleEtcd(tmp_path, "http", [])
    try:
        etcd.etcdctl("user", "add", "root:rootpw")
        etcd.etcdctl("auth", "enable")
        good = EtcdSection(endpoints=[etcd.url], user="root", password="rootpw")
        assert roundtrip(good) == [service(1)]
        bad = EtcdSection(endpoints=[etcd.url], user="root", password="nope")
        with pytest.raises(StoreUnavailable, match=r"etcd refused store\.etcd\.user 'root'"):
            roundtrip(bad)
    finally:
        etcd.stop()
