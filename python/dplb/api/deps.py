"""Shared dependencies of the routes, as `Annotated` aliases: the node context, the
caller (`Viewer`: any valid token; `Admin`: a token with role admin), and the service
named by the path."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Path, Request, Security
from fastapi.security import HTTPAuthorizationCredentials

from dplb.api.auth import Principal, authenticate, bearer, forbidden
from dplb.api.context import NodeContext
from dplb.api.errors import ApiError
from dplb.config import (
    ADDRESS_JSON_SCHEMA,
    IPAddress,
    NodeConfig,
    RealSection,
    ServiceSection,
    parse_ip_address,
)
from dplb.config_diff import endpoint_id, service_id


def get_node(request: Request) -> NodeContext:
    node: NodeContext = request.app.state.node
    return node


NodeDep = Annotated[NodeContext, Depends(get_node)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]


def require_viewer(request: Request, node: NodeDep, credentials: Credentials) -> Principal:
    return authenticate(request, credentials, node.reconciler.running.api.tokens)


def require_admin(request: Request, node: NodeDep, credentials: Credentials) -> Principal:
    principal = authenticate(request, credentials, node.reconciler.running.api.tokens)
    if principal.role != "admin":
        raise forbidden(principal)
    return principal


Viewer = Annotated[Principal, Depends(require_viewer)]
Admin = Annotated[Principal, Depends(require_admin)]


def parse_address(text: str, where: str) -> IPAddress:
    """An address from a URL: `2001:db8::10` or `[2001:db8::10]` (colons may also be
    percent-encoded as %3A). Refused as the config refuses it (a zone, `%eth0`)."""
    bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        return parse_ip_address(bare)
    except ValueError as exc:
        reason = str(exc) if "zone" in str(exc) else f"'{text}' is not an IP address"
        raise ApiError(422, [(where, reason)]) from None


# An address in a path: `10.0.100.10`, `2001:db8::10`, `[2001:db8::10]` (parse_address).
AddressParam = Annotated[str, Path(json_schema_extra=ADDRESS_JSON_SCHEMA)]
PortParam = Annotated[int, Path(ge=1, le=65535)]
ProtocolParam = Annotated[Literal["tcp", "udp"], Path()]


@dataclass(frozen=True)
class ServiceKey:
    vip: IPAddress
    port: int
    protocol: str

    @property
    def id(self) -> str:
        return service_id(str(self.vip), self.port, self.protocol)

    def index_in(self, cfg: NodeConfig) -> int | None:
        for i, svc in enumerate(cfg.services):
            if (svc.vip, svc.port, svc.protocol) == (self.vip, self.port, self.protocol):
                return i
        return None

    def find(self, cfg: NodeConfig) -> tuple[int, ServiceSection]:
        """The service's index and config; 404 when there is none."""
        i = self.index_in(cfg)
        if i is None:
            raise ApiError(404, [("service", f"no service {self.id}")])
        return i, cfg.services[i]


def service_key(vip: AddressParam, port: PortParam, protocol: ProtocolParam) -> ServiceKey:
    return ServiceKey(parse_address(vip, "path.vip"), port, protocol)


@dataclass(frozen=True)
class RealKey:
    address: IPAddress
    port: int

    @property
    def id(self) -> str:
        return endpoint_id(str(self.address), self.port)

    def find(self, svc: ServiceSection, service: str) -> tuple[int, RealSection]:
        for j, real in enumerate(svc.reals):
            if (real.address, real.port) == (self.address, self.port):
                return j, real
        raise ApiError(404, [("real", f"no real {self.id} in service {service}")])


def real_key(address: AddressParam, real_port: PortParam) -> RealKey:
    return RealKey(parse_address(address, "path.address"), real_port)


ServiceKeyDep = Annotated[ServiceKey, Depends(service_key)]
RealKeyDep = Annotated[RealKey, Depends(real_key)]
