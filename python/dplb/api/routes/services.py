"""Services: `/api/v1/services` and `/api/v1/services/{vip}/{port}/{protocol}`. An IPv6
VIP goes in the path as it is (`/services/2001:db8::10/80/tcp`) or in brackets.
Deleting a service drains it: its established sessions go on until they end."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from dplb.api.context import NodeContext
from dplb.api.deps import Admin, NodeDep, ServiceKey, ServiceKeyDep, Viewer
from dplb.api.errors import READ_ERRORS, WRITE_ERRORS, ApiError, write_responses
from dplb.api.models import ChangeResult, Service, ServiceChange, ServicePatch
from dplb.config import NodeConfig, ServiceSection

router = APIRouter(prefix="/services", tags=["services"])


async def service_change(
    node: NodeContext,
    result: ChangeResult,
    key: ServiceKey,
    response: Response,
    created: bool = False,
) -> ServiceChange:
    """The change's result with the service as it now stands in the desired config."""
    cfg = await node.writer.desired()
    i = key.index_in(cfg)
    if result.status == "pending":
        response.status_code = 202
    elif created and result.status == "applied":
        response.status_code = 201
    return ServiceChange(
        **dict(result), service=Service.of(cfg.services[i]) if i is not None else None
    )


@router.get("", responses=READ_ERRORS)
async def list_services(_: Viewer, node: NodeDep) -> list[Service]:
    """Every service of the desired config, with its reals."""
    cfg = await node.writer.desired()
    return [Service.of(s) for s in cfg.services]


@router.post("", status_code=201, responses=write_responses(ServiceChange))
async def create_service(
    body: ServiceSection, who: Admin, node: NodeDep, request: Request, response: Response
) -> ServiceChange:
    key = ServiceKey(body.vip, body.port, body.protocol)

    def edit(data: dict[str, Any], cfg: NodeConfig) -> str:
        if key.index_in(cfg) is not None:
            raise ApiError(409, [("body", f"service {key.id} exists")])
        data["services"] = [
            *data.get("services", []),
            body.model_dump(mode="json", exclude_unset=True),
        ]
        return f"create service {key.id}"

    result = await node.writer.edit(who, request, edit)
    return await service_change(node, result, key, response, created=True)


@router.get("/{vip}/{port}/{protocol}", responses={**READ_ERRORS, 404: WRITE_ERRORS[404]})
async def get_service(key: ServiceKeyDep, _: Viewer, node: NodeDep) -> Service:
    cfg = await node.writer.desired()
    return Service.of(key.find(cfg)[1])


@router.put("/{vip}/{port}/{protocol}", responses=write_responses(ServiceChange, creates=True))
async def replace_service(
    key: ServiceKeyDep,
    body: ServiceSection,
    who: Admin,
    node: NodeDep,
    request: Request,
    response: Response,
) -> ServiceChange:
    """Replaces the service's whole config; creates it if there is none (201)."""
    if (body.vip, body.port, body.protocol) != (key.vip, key.port, key.protocol):
        raise ApiError(422, [("body", f"names another service than the path ({key.id})")])
    created = False

    def edit(data: dict[str, Any], cfg: NodeConfig) -> str:
        nonlocal created
        new = body.model_dump(mode="json", exclude_unset=True)
        i = key.index_in(cfg)
        if i is None:
            created = True
            data["services"] = [*data.get("services", []), new]
            return f"create service {key.id}"
        data["services"][i] = new
        return f"replace service {key.id}"

    result = await node.writer.edit(who, request, edit)
    return await service_change(node, result, key, response, created=created)


@router.patch("/{vip}/{port}/{protocol}", responses=write_responses(ServiceChange))
async def update_service(
    key: ServiceKeyDep,
    body: ServicePatch,
    who: Admin,
    node: NodeDep,
    request: Request,
    response: Response,
) -> ServiceChange:
    """Changes the fields given; `reals`, when given, replaces the list."""
    fields = body.model_dump(mode="json", exclude_unset=True)

    def edit(data: dict[str, Any], cfg: NodeConfig) -> str:
        i, _ = key.find(cfg)
        data["services"][i].update(fields)
        return f"update service {key.id}: {', '.join(fields) or 'nothing'}"

    result = await node.writer.edit(who, request, edit)
    return await service_change(node, result, key, response)


@router.delete("/{vip}/{port}/{protocol}", responses=write_responses(ServiceChange))
async def delete_service(
    key: ServiceKeyDep, who: Admin, node: NodeDep, request: Request, response: Response
) -> ServiceChange:
    """Removes the service: no new sessions; established ones finish (drain)."""
    removed: list[ServiceSection] = []

    def edit(data: dict[str, Any], cfg: NodeConfig) -> str:
        i, svc = key.find(cfg)
        removed.append(svc)
        del data["services"][i]
        return f"delete service {key.id}"

    result = await node.writer.edit(who, request, edit)
    if result.status == "pending":
        response.status_code = 202
    return ServiceChange(**dict(result), service=Service.of(removed[0]))
