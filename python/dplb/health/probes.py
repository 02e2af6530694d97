"""One health check of one real, on asyncio: TCP connect, HTTP/HTTPS request, UDP
datagram. Each socket may be bound to a kernel interface (SO_BINDTODEVICE) so that the
check leaves by the port its service reaches the real by. A check answers with a
`ProbeResult`: passed or not, and a short word for what happened."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import ssl
import struct
from dataclasses import dataclass

from dplb.config import HealthCheckSection


@dataclass(frozen=True)
class ProbeTarget:
    address: str
    port: int
    family: int  # socket.AF_INET or AF_INET6
    device: str | None  # the kernel interface the check leaves by, or None (unbound)


@dataclass(frozen=True)
class ProbeResult:
    passed: bool
    result: str  # "pass", "timeout", "refused", "unreachable", "status 503", ...


_ERRNO_WORDS = {
    errno.ECONNREFUSED: "refused",
    errno.ECONNRESET: "reset",
    errno.EHOSTUNREACH: "unreachable",
    errno.ENETUNREACH: "unreachable",
    errno.ENETDOWN: "link down",
    errno.ETIMEDOUT: "timeout",
}


def _word(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ssl.SSLError):
        return "tls error"
    if isinstance(exc, OSError) and exc.errno in _ERRNO_WORDS:
        return _ERRNO_WORDS[exc.errno]
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return type(exc).__name__


def _socket(target: ProbeTarget, kind: int) -> socket.socket:
    sock = socket.socket(target.family, kind)
    try:
        sock.setblocking(False)
        if target.device:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, target.device.encode())
        if kind == socket.SOCK_STREAM:
            # No TIME_WAIT left behind by thousands of checks: close with a reset.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except BaseException:
        sock.close()
        raise
    return sock


async def _connect(target: ProbeTarget) -> socket.socket:
    loop = asyncio.get_running_loop()
    sock = _socket(target, socket.SOCK_STREAM)
    try:
        await loop.sock_connect(sock, (target.address, target.port))
    except BaseException:
        sock.close()
        raise
    return sock


async def tcp_check(target: ProbeTarget) -> ProbeResult:
    sock = await _connect(target)
    sock.close()
    return ProbeResult(True, "pass")


def _request(check: HealthCheckSection, target: ProbeTarget) -> bytes:
    if check.host is not None:
        host = check.host
    elif target.family == socket.AF_INET6:
        host = f"[{target.address}]:{target.port}"
    else:
        host = f"{target.address}:{target.port}"
    return (
        f"{check.method} {check.path} HTTP/1.1\r\nHost: {host}\r\n"
        "User-Agent: dplb-health\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    ).encode()


_MAX_RESPONSE = 64 * 1024


async def http_check(check: HealthCheckSection, target: ProbeTarget, tls: bool) -> ProbeResult:
    sock = await _connect(target)
    context: ssl.SSLContext | None = None
    if tls:
        # A check tests that the real serves, not who it is: no certificate checks
        # (reals usually carry certificates for the VIP's name, not their address).
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    server_hostname = (check.host or target.address) if tls else None
    reader, writer = await asyncio.open_connection(
        sock=sock, ssl=context, server_hostname=server_hostname
    )
    try:
        writer.write(_request(check, target))
        await writer.drain()
        data = b""
        while len(data) < _MAX_RESPONSE:
            chunk = await reader.read(_MAX_RESPONSE - len(data))
            if not chunk:
                break
            data += chunk
            if check.expect_body is None and b"\r\n" in data:
                break  # the status line is all we need
            if check.expect_body is not None and check.expect_body.encode() in data:
                break
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    status_line = data.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/"):
        return ProbeResult(False, "not http")
    try:
        status = int(status_line[1])
    except ValueError:
        return ProbeResult(False, "not http")
    if status not in check.expect_status:
        return ProbeResult(False, f"status {status}")
    if check.expect_body is not None:
        _, _, body = data.partition(b"\r\n\r\n")
        if check.expect_body.encode() not in body:
            return ProbeResult(False, "body mismatch")
    return ProbeResult(True, "pass")


async def udp_check(check: HealthCheckSection, target: ProbeTarget) -> ProbeResult:
    """Sends `check.send` to the real from a connected UDP socket: an ICMP port
    unreachable comes back as ECONNREFUSED on that socket. `reply`: a datagram must
    come back (holding expect_body if set) within the timeout; `no_unreachable`: the
    timeout passing without an unreachable is a pass."""
    loop = asyncio.get_running_loop()
    sock = _socket(target, socket.SOCK_DGRAM)
    try:
        sock.connect((target.address, target.port))
        await loop.sock_sendall(sock, check.send.encode())
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, 65535), check.timeout * 0.9)
        except TimeoutError:
            if check.udp_expect == "no_unreachable":
                return ProbeResult(True, "pass")
            return ProbeResult(False, "no reply")
        if check.expect_body is not None and check.expect_body.encode() not in data:
            return ProbeResult(False, "body mismatch")
        return ProbeResult(True, "pass")
    finally:
        sock.close()


async def run_check(check_type: str, check: HealthCheckSection, target: ProbeTarget) -> ProbeResult:
    """One check within `check.timeout`; never raises (but for cancellation)."""
    try:
        async with asyncio.timeout(check.timeout):
            if check_type == "tcp":
                return await tcp_check(target)
            if check_type in ("http", "https"):
                return await http_check(check, target, tls=check_type == "https")
            if check_type == "udp":
                return await udp_check(check, target)
    except (OSError, TimeoutError, ssl.SSLError, ValueError) as exc:
        return ProbeResult(False, _word(exc))
    return ProbeResult(True, "pass")
