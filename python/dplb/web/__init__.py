"""The web admin: static pages (plain JavaScript modules, no build step) that the node's
API app serves at `/` and that talk to `/api/v1` with the token the operator signs in
with. `web_admin()` is the ASGI app to mount, after every API route."""

from __future__ import annotations

from pathlib import Path

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).parent / "static"

# The pages load nothing from elsewhere and run no inline script: a script injected into
# a page through data (a name, an error message) would not run, so it could not read
# the token from sessionStorage. Every response is revalidated, so an upgraded node
# serves its new pages at once.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class WebAdmin(StaticFiles):
    """The static files, with `index.html` at `/` and the headers above."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        return response


def web_admin() -> WebAdmin:
    return WebAdmin(directory=STATIC_DIR, html=True)
