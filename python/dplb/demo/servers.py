"""A real server of the demo topology, run inside a real-server namespace: HTTP that
answers with the server's name and the client address it saw, and a UDP echo that does
the same; both dual stack (one IPv6 socket with IPV6_V6ONLY off also takes IPv4).

    python -m dplb.demo.servers --name rs1 --http 8080 --udp 5353 [--keep-alive 8081] [--root DIR]

`GET /` answers `rs1 10.10.2.101:40312` (name, then the peer as the server saw it: with
full-NAT, a local address of dplb); `GET /files/NAME` sends NAME from `--root`. Prints
`ready` once the sockets listen. `--keep-alive PORT` serves the same answer over HTTP/1.1
with keep-alive, for long-lived connections (dplb.demo.longlived)."""

from __future__ import annotations

import argparse
import shutil
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def peer_text(address: tuple[str, int] | tuple[str, int, int, int]) -> str:
    host, port = address[0], address[1]
    if host.startswith("::ffff:"):
        host = host.removeprefix("::ffff:")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class DualStackHTTPServer(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True
    request_queue_size = 256

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def make_handler(
    name: str, root: Path | None, keep_alive: bool = False
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.0: one request per connection, the server closes first. With keep_alive,
        # HTTP/1.1: the connection stays open for the next request (long-lived clients).
        server_version = f"dplb-demo-{name}"
        protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"
        # The head and the body are two writes: without TCP_NODELAY the body waits for
        # the head's ACK (a delayed ACK: 40 ms) on every keep-alive request.
        disable_nagle_algorithm = keep_alive

        def do_GET(self) -> None:
            if self.path.startswith("/files/") and root is not None:
                self._send_file(self.path.removeprefix("/files/"))
                return
            body = f"{name} {peer_text(self.client_address)}\n".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _send_file(self, file_name: str) -> None:
            assert root is not None
            path = root / file_name
            if "/" in file_name or not path.is_file():
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(path.stat().st_size))
            self.end_headers()
            with path.open("rb") as f:
                shutil.copyfileobj(f, self.wfile, 1 << 20)

        def log_message(self, format: str, *args: object) -> None:
            pass  # thousands of requests a second: no access log

    return Handler


def udp_echo(name: str, port: int) -> None:
    """Answers each datagram with `<name> <peer> <payload>`."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind(("::", port))

    def serve() -> None:
        while True:
            data, peer = sock.recvfrom(65535)
            sock.sendto(f"{name} {peer_text(peer)} ".encode() + data, peer)

    threading.Thread(target=serve, name="udp-echo", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--http", type=int, default=8080, help="HTTP port (0: none)")
    parser.add_argument("--udp", type=int, default=0, help="UDP echo port (0: none)")
    parser.add_argument(
        "--keep-alive", type=int, default=0, help="HTTP/1.1 keep-alive port (0: none)"
    )
    parser.add_argument("--root", type=Path, help="folder served under /files/")
    args = parser.parse_args(argv)
    if args.udp:
        udp_echo(args.name, args.udp)
    if args.keep_alive:
        keep = DualStackHTTPServer(("::", args.keep_alive), make_handler(args.name, None, True))
        threading.Thread(target=keep.serve_forever, name="keep-alive", daemon=True).start()
    server = None
    if args.http:
        server = DualStackHTTPServer(("::", args.http), make_handler(args.name, args.root))
    print("ready", flush=True)
    if server is not None:
        server.serve_forever()
    else:
        threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
