"""Bearer tokens from the node config (`api.tokens`), each with a role: `viewer` reads,
`admin` also writes. Tokens are compared in constant time and never logged; what the
API records of a caller is the token's name."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Literal

from fastapi import Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from dplb.api.errors import ApiError
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


def authenticate(
    request: Request, credentials: HTTPAuthorizationCredentials | None, tokens: list[TokenEntry]
) -> Principal:
    if credentials is None:
        raise _unauthorized("a bearer token is needed (Authorization: Bearer TOKEN)")
    entry = match_token(credentials.credentials, tokens)
    if entry is None:
        raise _unauthorized("the token is not valid")
    principal = Principal(entry.name, entry.role)
    request.state.principal = principal
    return principal


def forbidden(principal: Principal) -> ApiError:
    return ApiError(
        403, [("(auth)", f"token '{principal.name}' has role {principal.role}; admin is needed")]
    )
