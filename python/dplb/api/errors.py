"""Errors as clients see them: JSON naming the field and the reason,
`{"errors": [{"path": "services[0].reals[1].weight", "reason": "..."}]}`, and for
anything unexpected `{"error": "internal error"}` with status 500: never a stack trace."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from dplb.api.audit import note
from dplb.config import ConfigError
from dplb.store import StoreError, StoreUnavailable

log = logging.getLogger("dplb.api")


class ApiError(Exception):
    """An HTTP error with the fields it concerns; `extra` adds keys to the body."""

    def __init__(
        self,
        status: int,
        errors: list[tuple[str, str]],
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__("; ".join(f"{p}: {r}" for p, r in errors))
        self.status = status
        self.errors = errors
        self.headers = headers
        self.extra = extra or {}


def not_found(path: str, reason: str) -> ApiError:
    return ApiError(404, [(path, reason)])


def error_body(errors: list[tuple[str, str]], **extra: Any) -> dict[str, Any]:
    return {"errors": [{"path": p, "reason": r} for p, r in errors], **extra}


def loc_path(loc: tuple[int | str, ...] | list[int | str]) -> str:
    """("body", "reals", 1, "weight") -> "body.reals[1].weight"."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(request)"


def error_response(exc: ApiError, scope: Scope) -> JSONResponse:
    """The answer to `exc`; its errors also go into the request's audit line."""
    note(scope, errors=exc.errors)
    return JSONResponse(
        error_body(exc.errors, **exc.extra), status_code=exc.status, headers=exc.headers
    )


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc, request.scope)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [(loc_path(e["loc"]), str(e["msg"])) for e in exc.errors()]
    return error_response(ApiError(422, errors), request.scope)


async def _config_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ConfigError)
    return error_response(ApiError(422, exc.errors), request.scope)


# What FastAPI says of a JSON body it cannot decode (not UTF-8).
_UNDECODABLE_BODY = "There was an error parsing the body"


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == _UNDECODABLE_BODY:
        # A body that is not UTF-8 is a body that is not valid: 422 at `body`, as for
        # any other (documented), not an undocumented 400.
        error = ApiError(422, [("body", "not JSON: the body is not valid UTF-8")])
    else:
        error = ApiError(
            exc.status_code,
            [("(request)", str(exc.detail))],
            headers=getattr(exc, "headers", None),
        )
    return error_response(error, request.scope)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # The trace goes to the node's log, never to the client.
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"error": "internal error"}, status_code=500)


async def _store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    return error_response(
        ApiError(503, [("(store)", f"{exc}; nothing was written: try again when it is back")]),
        request.scope,
    )


async def _store_error(request: Request, exc: Exception) -> JSONResponse:
    return error_response(ApiError(503, [("(store)", str(exc))]), request.scope)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StoreUnavailable, _store_unavailable)
    app.add_exception_handler(StoreError, _store_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ConfigError, _config_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)


def _described(description: str) -> dict[str, Any]:
    from dplb.api.models import ErrorBody

    return {"model": ErrorBody, "description": description}


# The errors every authenticated route may answer, for the OpenAPI document.
READ_ERRORS: dict[int | str, dict[str, Any]] = {
    401: _described("No token, or not a valid one"),
    422: _described("A parameter is not valid: each error names its field"),
}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **READ_ERRORS,
    403: _described("The token's role is not admin"),
    404: _described("No such service, real or session"),
    409: _described("Conflicts with what exists, or the desired config changed meanwhile"),
    422: _described("The change would make the config invalid: every error with its field"),
}


def write_responses(result: type, *, creates: bool = False) -> dict[int | str, dict[str, Any]]:
    """The answers of a route that changes the config, for the OpenAPI document: its
    result when applied (the route's own status), 202 while pending, 201 when a route
    that may create (PUT) did, and WRITE_ERRORS."""
    out: dict[int | str, dict[str, Any]] = {
        **WRITE_ERRORS,
        202: {
            "model": result,
            "description": "Written, not applied yet: see /api/v1/config/status",
        },
    }
    if creates:
        out[201] = {"model": result, "description": "Created, and applied"}
    return out
