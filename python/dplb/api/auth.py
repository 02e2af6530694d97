"""Bearer tokens from the node config (`api.tokens`), each with a role: `viewer` reads,
`admin` also writes. Tokens are compared in constant time and never logged; what the
API records of a caller is the token's name.

`TokenFirst` checks the token (and the role a write needs) before anything else of the
request is looked at: a caller without a valid token learns nothing from the API, not
even whether a path or a body would be valid (401 before 422)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Literal

from fastapi import Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Receive, Scope, Send

from dplb.api.errors import ApiError, error_response
from dplb.config import TokenEntry

Role = Literal["viewer", "admin"]

bearer = HTTPBearer(
    auto_error=False,
    description="A token of the node config's `api.tokens`; its role says what it may do.",
)


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role


def _unauthorized(reason: str) -> ApiError:
    return ApiError(401, [("(auth)", reason)], headers={"WWW-Authenticate": "Bearer"})


def match_token(given: str, tokens: list[TokenEntry]) -> TokenEntry | None:
    """The entry whose token is `given`. Every entry is compared, in constant time and
    on digests of equal length, so the time taken tells nothing about which token came
    close, nor how long the tokens are."""
    given_digest = hashlib.sha256(given.encode()).digest()
    found: TokenEntry | None = None
    for entry in tokens:
        digest = hashlib.sha256(entry.token.encode()).digest()
        if hmac.compare_digest(given_digest, digest) and found is None:
            found = entry
    return found


def principal_of(authorization: str | None, tokens: list[TokenEntry]) -> Principal:
    """The caller named by an `Authorization` header; raises ApiError 401."""
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise _unauthorized("a bearer token is needed (Authorization: Bearer TOKEN)")
    entry = match_token(given.strip(), tokens)
    if entry is None:
        raise _unauthorized("the token is not valid")
    return Principal(entry.name, entry.role)


def authenticate(
    request: Request, credentials: HTTPAuthorizationCredentials | None, tokens: list[TokenEntry]
) -> Principal:
    """The caller (already known when `TokenFirst` let the request through)."""
    known = getattr(request.state, "principal", None)
    if isinstance(known, Principal):
        return known
    header = f"Bearer {credentials.credentials}" if credentials is not None else None
    principal = principal_of(header, tokens)
    request.state.principal = principal
    return principal


def forbidden(principal: Principal) -> ApiError:
    return ApiError(
        403, [("(auth)", f"token '{principal.name}' has role {principal.role}; admin is needed")]
    )


WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class TokenFirst:
    """ASGI middleware over the API (`prefix`): a request without a valid token is
    answered 401, a write with a viewer's token 403, before routing, path, query or body
    are looked at. `public` paths (health, the OpenAPI document, its docs page) and
    OPTIONS need no token. The caller goes into the request's state (`principal`)."""

    def __init__(self, app: ASGIApp, prefix: str, public: frozenset[str]) -> None:
        self.app = app
        self.prefix = prefix
        self.public = public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope["method"] == "OPTIONS"
            or not (path == self.prefix or path.startswith(self.prefix + "/"))
            or path in self.public
        ):
            await self.app(scope, receive, send)
            return
        tokens = scope["app"].state.node.reconciler.running.api.tokens
        header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        try:
            principal = principal_of(header.decode("latin-1") if header else None, tokens)
            scope.setdefault("state", {})["principal"] = principal
            if scope["method"] in WRITE_METHODS and principal.role != "admin":
                raise forbidden(principal)
        except ApiError as exc:
            await error_response(exc, scope)(scope, receive, send)
            return
        await self.app(scope, receive, send)
