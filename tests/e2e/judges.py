"""Real servers that judge what dplb tells them about the client (DESIGN section 5):
HAProxy with `accept-proxy` and nginx with `proxy_protocol`, each answering HTTP with the
client address it took from the PROXY header; proxy_server.py, which parses the header
itself; and a packet capture on a real server's side (tcpdump) with a reader of TCP
options, for TOA. Each runs in a real-server namespace as a process of the lab, with its
config in the lab's folder, so the lab's close() stops it."""

from __future__ import annotations

import struct
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from scapy.error import Scapy_Exception
from scapy.layers.inet import TCP
from scapy.packet import Packet
from scapy.utils import rdpcap

from dplb.demo.lab import Lab, NamespaceProcess, wait_until
from dplb.demo.topology import netns_exec

T = TypeVar("T")

PROXY_SERVER = Path(__file__).with_name("proxy_server.py")

# What each judge answers: the address and port the PROXY header named, the VIP and port
# it names as the destination, then the peer of the TCP connection (dplb's local address).
HAPROXY_CONFIG = """\
global
    log stderr format short local0 notice
    maxconn 256
defaults
    log global
    mode http
    option httplog
    timeout connect 5s
    timeout client 20s
    timeout server 20s
frontend judge
    bind :::{port} v4v6 accept-proxy
    http-request return status 200 content-type text/plain lf-string \
"haproxy %[src] %[src_port] %[dst] %[dst_port]\\n"
"""

NGINX_CONFIG = """\
worker_processes 1;
pid {folder}/nginx.pid;
error_log stderr notice;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    default_type text/plain;
    server {{
        listen {port} proxy_protocol;
        listen [::]:{port} proxy_protocol;
        location / {{
            return 200 "nginx $proxy_protocol_addr $proxy_protocol_port \
$proxy_protocol_server_addr $proxy_protocol_server_port $remote_addr\\n";
        }}
    }}
}}
"""


def listening(ns: str, port: int) -> int:
    """How many TCP sockets listen on `port` in `ns`."""
    out = netns_exec(ns, "ss", "-Hltn", f"sport = :{port}").stdout
    return len(out.splitlines())


def wait_listening(proc: NamespaceProcess, port: int, sockets: int = 1) -> None:
    def ready() -> bool:
        if not proc.running():
            raise RuntimeError(f"{proc.argv[0]} in {proc.ns} exited:\n{proc.output()[-2000:]}")
        return listening(proc.ns, port) >= sockets

    wait_until(ready, 30, f"{proc.argv[0]} to listen on port {port} in {proc.ns}")


def start_haproxy(lab: Lab, ns: str, port: int) -> NamespaceProcess:
    config = lab.workdir / "haproxy.cfg"
    config.write_text(HAPROXY_CONFIG.format(port=port))
    proc = lab.spawn(ns, ["haproxy", "-db", "-f", str(config)], "haproxy")
    wait_listening(proc, port)
    return proc


def start_nginx(lab: Lab, ns: str, port: int) -> NamespaceProcess:
    folder = lab.workdir / "nginx"
    folder.mkdir(exist_ok=True)
    config = folder / "nginx.conf"
    config.write_text(NGINX_CONFIG.format(folder=folder, port=port))
    argv = ["nginx", "-p", str(folder), "-c", str(config), "-e", "stderr", "-g", "daemon off;"]
    proc = lab.spawn(ns, argv, "nginx")
    wait_listening(proc, port, sockets=2)
    return proc


def start_proxy_server(lab: Lab, ns: str, banner_port: int, echo_port: int) -> NamespaceProcess:
    argv = [sys.executable, str(PROXY_SERVER), "--banner", str(banner_port)]
    proc = lab.spawn(ns, [*argv, "--echo", str(echo_port)], "proxy-server")
    proc.wait_for_output(r"^ready$", 30)
    return proc


class Capture:
    """The frames tcpdump wrote so far (-U: each as it comes)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def frames(self) -> list[Packet]:
        try:
            return list(rdpcap(str(self.path)))
        except (OSError, EOFError, struct.error, Scapy_Exception):
            return []  # not written yet, or a record half-way

    def wait_for(self, find: Callable[[list[Packet]], T | None], what: str) -> T:
        return wait_until(lambda: find(self.frames()), 10, f"{what} in {self.path.name}")


@contextmanager
def capture(lab: Lab, ns: str, name: str, bpf: str) -> Iterator[Capture]:
    """tcpdump on eth0 of `ns` while the block runs."""
    path = lab.workdir / f"{name}.pcap"
    # --immediate-mode: each frame handed over as it comes, not by the buffer-full;
    # -U: written as it comes; -Z root: write where root can (the lab's folder).
    argv = ["tcpdump", "-i", "eth0", "-n", "--immediate-mode", "-U", "-Z", "root"]
    proc = lab.spawn(ns, [*argv, "-w", str(path), bpf], name)
    proc.wait_for_output(r"listening on eth0", 30)
    try:
        yield Capture(path)
    finally:
        proc.stop(timeout=10)


def handshake_ack(frames: list[Packet], real_port: int) -> Packet | None:
    """The first segment toward the real that acknowledges its SYN-ACK: the ACK that
    completes the handshake."""
    synack = None
    for frame in frames:
        tcp = frame[TCP]
        if tcp.sport == real_port and tcp.flags == "SA":
            synack = tcp
        elif (
            synack is not None
            and (tcp.sport, tcp.dport) == (synack.dport, synack.sport)
            and tcp.ack == (synack.seq + 1) % 2**32
        ):
            return frame
    return None


def tcp_options(tcp: TCP) -> list[tuple[int, bytes]]:
    """(kind, value) of each option, read from the header's bytes (not scapy's view of
    options it knows)."""
    raw = bytes(tcp)[20 : tcp.dataofs * 4]
    options = []
    i = 0
    while i < len(raw):
        kind = raw[i]
        if kind == 0:  # end of options
            break
        if kind == 1:  # NOP
            i += 1
            continue
        assert i + 1 < len(raw), f"option {kind} cut off: {raw.hex()}"
        length = raw[i + 1]
        assert 2 <= length <= len(raw) - i, f"option {kind} length {length}: {raw.hex()}"
        options.append((kind, raw[i + 2 : i + length]))
        i += length
    return options
