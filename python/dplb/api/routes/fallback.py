"""What answers a request under /api/v1 that no route takes: OPTIONS with the methods the
path has (`Allow`), 405 with them for another method, 404 for a path the API does not
have, each as an error body. Without it the web admin, mounted at `/`, would answer
these with its own (HTML, GET-only) view of the path."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request, Response
from starlette.routing import compile_path

from dplb.api.errors import ApiError

router = APIRouter()

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def allowed_methods(request: Request) -> set[str]:
    """The methods the OpenAPI document gives the request's path (every API route is in
    it), read once per app."""
    table: list[tuple[re.Pattern[str], set[str]]] | None = getattr(
        request.app.state, "api_methods", None
    )
    if table is None:
        table = [
            (compile_path(path)[0], {m.upper() for m in ops if m.upper() in ALL_METHODS})
            for path, ops in request.app.openapi()["paths"].items()
        ]
        request.app.state.api_methods = table
    methods: set[str] = set()
    for regex, route_methods in table:
        if regex.match(request.url.path):
            methods |= route_methods
    return methods


@router.api_route("/{rest:path}", methods=ALL_METHODS, include_in_schema=False)
def api_fallback(rest: str, request: Request) -> Response:
    methods = allowed_methods(request)
    if not methods:
        raise ApiError(404, [("(request)", f"the API has no {request.url.path}")])
    allow = ", ".join(sorted(methods | {"OPTIONS"}))
    if request.method == "OPTIONS":
        return Response(status_code=204, headers={"Allow": allow})
    raise ApiError(
        405,
        [("(request)", f"{request.method} is not one of the methods of this path ({allow})")],
        headers={"Allow": allow},
    )
