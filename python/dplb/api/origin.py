"""Cross-site request forgery: the API authenticates with a bearer token that a client
sends itself (the web admin keeps it in sessionStorage and adds it to each fetch); a
browser never attaches it to a request on its own, as it would a cookie, so a page on
another site cannot make a signed-in browser write. As a second guard, `SameOriginWrites`
refuses any write (POST, PUT, PATCH, DELETE) whose `Origin` header is present and names
another host than the request's own `Host`: browsers send Origin on every cross-origin
request and on every same-origin write; `dplb ctl`, curl and scripts send none. A reverse
proxy in front of the API must pass the browser's Host on (nginx: `proxy_set_header Host
$host`); forwarded-host headers are not trusted, as anyone can send them."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def origin_host(origin: str) -> str | None:
    """`http://lb1:8080` -> `lb1:8080` (lower case); None for `null` or anything that is
    not an http(s) origin."""
    try:
        parts = urlsplit(origin)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return parts.netloc.lower()


def cross_origin(origin: str, host: str) -> bool:
    """Whether a request with these `Origin` and `Host` headers comes from another site."""
    named = origin_host(origin)
    return named is None or named != host.lower()


class SameOriginWrites:
    """ASGI middleware: 403 for a write whose Origin is another host than the request's."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        headers = {k: v for k, v in scope["headers"] if k in (b"origin", b"host")}
        origin = headers.get(b"origin")
        if origin is None or not cross_origin(
            origin.decode("latin-1"), headers.get(b"host", b"").decode("latin-1")
        ):
            await self.app(scope, receive, send)
            return
        reason = (
            f"a write from another origin ({origin.decode('latin-1')}) is refused: "
            "use the web admin served by this node, or a client that sends no Origin"
        )
        body = json.dumps({"errors": [{"path": "header.origin", "reason": reason}]}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 403,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
