"""A real server for the PROXY protocol end-to-end tests, run inside a real-server
namespace: it parses the PROXY header (v1 or v2) itself, strictly, before anything else,
and answers with what it found as one JSON line.

    python proxy_server.py --banner PORT --echo PORT

`--banner`: a server that speaks first. After the header it checks that no other byte
is waiting, sends `{"header": ..., "peer": ..., "early_bytes": 0}`, and only then reads
one line from the client, which it answers `echo <line>`.

`--echo`: after the header, an 8-byte big-endian length N, then N bytes that it echoes
as they come and hashes; then `{"header": ..., "received": N, "sha256": ...}`.

A header that breaks the spec is answered `{"error": "..."}` and the connection closed.
Both listen dual stack (one IPv6 socket that also takes IPv4); `ready` once they do."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import ipaddress
import json
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any

V1_PREFIX = b"PROXY "
V1_MAX = 107  # the spec's limit for a v1 line, CRLF included
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
TIMEOUT = 60.0


class ProxyError(ValueError):
    pass


def read_exact(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ProxyError(f"connection closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def parse_port(text: str) -> int:
    if not text.isdigit() or (len(text) > 1 and text[0] == "0") or int(text) > 65535:
        raise ProxyError(f"bad port {text!r}")
    return int(text)


def parse_address(text: str, version: int) -> str:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise ProxyError(f"bad address {text!r}") from None
    if address.version != version:
        raise ProxyError(f"{text!r} is not IPv{version}")
    if address.compressed != text:
        raise ProxyError(f"{text!r} is not in canonical form ({address.compressed})")
    return text


def read_v1(conn: socket.socket) -> dict[str, Any]:
    """The rest of a v1 line (its first 6 bytes, `PROXY `, were read), byte by byte so as
    not to read past it."""
    line = V1_PREFIX
    while not line.endswith(b"\r\n"):
        if len(line) >= V1_MAX:
            raise ProxyError(f"v1 line longer than {V1_MAX} bytes: {line!r}")
        line += read_exact(conn, 1)
    try:
        fields = line[:-2].decode("ascii").split(" ")
    except UnicodeDecodeError:
        raise ProxyError(f"v1 line is not ASCII: {line!r}") from None
    if len(fields) != 6 or fields[1] not in ("TCP4", "TCP6") or b"\n" in line[:-2]:
        raise ProxyError(f"v1 line is not PROXY TCP4|TCP6 SRC DST SPORT DPORT: {line!r}")
    version = 4 if fields[1] == "TCP4" else 6
    return {
        "version": 1,
        "family": fields[1],
        "src": parse_address(fields[2], version),
        "dst": parse_address(fields[3], version),
        "sport": parse_port(fields[4]),
        "dport": parse_port(fields[5]),
        "length": len(line),
    }


def read_v2(conn: socket.socket, start: bytes) -> dict[str, Any]:
    fixed = start + read_exact(conn, 16 - len(start))
    if fixed[:12] != V2_SIGNATURE:
        raise ProxyError(f"bad v2 signature: {fixed[:12]!r}")
    if fixed[12] != 0x21:
        raise ProxyError(f"v2 version/command {fixed[12]:#04x} is not 0x21 (v2, PROXY)")
    family = fixed[13]
    if family not in (0x11, 0x21):
        raise ProxyError(f"v2 family/transport {family:#04x} is not TCP over IPv4/IPv6")
    length = int.from_bytes(fixed[14:16], "big")
    n = 4 if family == 0x11 else 16
    if length < 2 * n + 4:
        raise ProxyError(f"v2 length {length} is too short for the addresses")
    body = read_exact(conn, length)
    tlvs = body[2 * n + 4 :]
    count = 0
    while tlvs:  # TLVs must fill the rest exactly
        if len(tlvs) < 3 or len(tlvs) < 3 + int.from_bytes(tlvs[1:3], "big"):
            raise ProxyError(f"v2 TLV runs past the header: {tlvs!r}")
        tlvs = tlvs[3 + int.from_bytes(tlvs[1:3], "big") :]
        count += 1
    return {
        "version": 2,
        "family": "TCP4" if family == 0x11 else "TCP6",
        "src": str(ipaddress.ip_address(body[:n])),
        "dst": str(ipaddress.ip_address(body[n : 2 * n])),
        "sport": int.from_bytes(body[2 * n : 2 * n + 2], "big"),
        "dport": int.from_bytes(body[2 * n + 2 : 2 * n + 4], "big"),
        "tlvs": count,
        "length": 16 + length,
    }


def read_proxy_header(conn: socket.socket) -> dict[str, Any]:
    """The header at the start of the stream, read to its last byte and no further."""
    start = read_exact(conn, 6)
    if start == V1_PREFIX:
        return read_v1(conn)
    if start == V2_SIGNATURE[:6]:
        return read_v2(conn, start)
    raise ProxyError(f"the stream does not start with a PROXY header: {start!r}")


def peer_text(address: tuple[Any, ...]) -> str:
    return str(address[0]).removeprefix("::ffff:")


def send_json(conn: socket.socket, answer: dict[str, Any]) -> None:
    conn.sendall(json.dumps(answer).encode() + b"\n")


def banner(conn: socket.socket, peer: str) -> None:
    header = read_proxy_header(conn)
    conn.setblocking(False)  # with a timeout, Python's recv would wait for data first
    try:
        early = len(conn.recv(65536, socket.MSG_PEEK))
    except BlockingIOError:
        early = 0
    finally:
        conn.settimeout(TIMEOUT)
    send_json(conn, {"header": header, "peer": peer, "early_bytes": early})
    line = b""
    while not line.endswith(b"\n"):
        line += read_exact(conn, 1)
    conn.sendall(b"echo " + line)


def echo(conn: socket.socket, peer: str) -> None:
    header = read_proxy_header(conn)
    size = int.from_bytes(read_exact(conn, 8), "big")
    digest = hashlib.sha256()
    remaining = size
    while remaining:
        data = conn.recv(min(1 << 16, remaining))
        if not data:
            raise ProxyError(f"connection closed with {remaining} of {size} bytes to come")
        digest.update(data)
        conn.sendall(data)
        remaining -= len(data)
    answer = {"header": header, "peer": peer, "received": size, "sha256": digest.hexdigest()}
    send_json(conn, answer)


def handle(handler: Callable[[socket.socket, str], None], conn: socket.socket, peer: str) -> None:
    with conn:
        try:
            handler(conn, peer)
        except (ProxyError, OSError) as exc:
            print(f"{handler.__name__} from {peer}: {exc}", file=sys.stderr, flush=True)
            with contextlib.suppress(OSError):
                send_json(conn, {"error": str(exc)})


def serve(port: int, handler: Callable[[socket.socket, str], None]) -> None:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind(("::", port))
    sock.listen(64)

    def accept() -> None:
        while True:
            conn, address = sock.accept()
            conn.settimeout(TIMEOUT)
            args = (handler, conn, peer_text(address))
            threading.Thread(target=handle, args=args, daemon=True).start()

    threading.Thread(target=accept, name=f"{handler.__name__}-{port}", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--banner", type=int, required=True, help="server-first port")
    parser.add_argument("--echo", type=int, required=True, help="echo port")
    args = parser.parse_args(argv)
    serve(args.banner, banner)
    serve(args.echo, echo)
    print("ready", flush=True)
    threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
