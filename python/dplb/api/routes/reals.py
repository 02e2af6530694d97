"""The reals of a service: `/api/v1/services/{vip}/{port}/{protocol}/reals` and
`.../reals/{address}/{real_port}`. Setting weight 0, disabling (`quiesce`) or deleting a
real quiesces it: no new sessions, established ones finish."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from dplb.api.auth import Principal
from dplb.api.context import NodeContext
from dplb.api.deps import Admin, NodeDep, RealKey, RealKeyDep, ServiceKey, ServiceKeyDep, Viewer
from dplb.api.errors import READ_ERRORS, WRITE_ERRORS, ApiError, write_responses
from dplb.api.models import ChangeResult, Real, RealChange, RealPatch
from dplb.api.routes.health_checks import real_health, request_checker
from dplb.config import NodeConfig, RealSection

router = APIRouter(prefix="/services/{vip}/{port}/{protocol}/reals", tags=["reals"])

REAL_PATH = "/{address}/{real_port}"


async def real_change(
    node: NodeContext,
    result: ChangeResult,
    service: ServiceKey,
    real: RealKey,
    response: Response,
    created: bool = False,
) -> RealChange:
    cfg = await node.writer.desired()
    current: Real | None = None
    i = service.index_in(cfg)
    if i is not None:
        svc = cfg.services[i]
        for r in svc.reals:
            if (r.address, r.port) == (real.address, real.port):
                current = Real.of(svc, r)
    if result.status == "pending":
        response.status_code = 202
    elif created and result.status == "applied":
        response.status_code = 201
    return RealChange(**dict(result), real=current)


@router.get("", responses={**READ_ERRORS, 404: WRITE_ERRORS[404]})
async def list_reals(
    service: ServiceKeyDep, _: Viewer, node: NodeDep, request: Request
) -> list[Real]:
    """The reals of the service, each with what this node's health checks found."""
    cfg = await node.writer.desired()
    svc = service.find(cfg)[1]
    checker = request_checker(request)
    return [Real.of(svc, r, real_health(checker, svc, r)) for r in svc.reals]


@router.post("", status_code=201, responses=write_responses(RealChange))
async def create_real(
    service: ServiceKeyDep,
    body: RealSection,
    who: Admin,
    node: NodeDep,
    request: Request,
    response: Response,
) -> RealChange:
    real = RealKey(body.address, body.port)

    def edit(data: dict[str, Any], cfg: NodeConfig) -> str:
        i, svc = service.find(cfg)
        if any((r.address, r.port) == (real.address, real.port) for r in svc.reals):
            raise ApiError(409, [("body", f"real {real.id} exists in service {service.id}")])
        entry = data["services"][i]
        entry["reals"] = [*entry.get("reals", []), body.model_dump(mode="json", exclude_unset=True)]
        return f"add real {real.id} to service {service.id}"

    result = await node.writer.edit(who, request, edit)
    return await real_change(node, result, service, real, response, created=True)


@router.get(REAL_PATH, responses={**READ_ERRORS, 404: WRITE_ERRORS[404]})
async def get_real(
    service: ServiceKeyDep, real: RealKeyDep, _: Viewer, node: NodeDep, request: Request
) -> Real:
    cfg = await node.writer.desired()
    svc = service.find(cfg)[1]
    r = real.find(svc, service.id)[1]
    return Real.of(svc, r, real_health(request_checker(request), svc, r))


async def _set_real(
    service: ServiceKey,
    real: RealKey,
    fields: dict[str, Any],
    who: Principal,
    node: NodeContext,
    request: Request,
    response: Response,
    verb: str,
) -> RealChange:
    def edit(data: dict[str, Any], cfg: NodeConfig) -> str:
        i, svc = service.find(cfg)
        j, _ = real.find(svc, service.id)
        data["services"][i]["reals"][j].update(fields)
        return f"{verb} real {real.id} of service {service.id}"

    result = await node.writer.edit(who, request, edit)
    return await real_change(node, result, service, real, response)


@router.patch(REAL_PATH, responses=write_responses(RealChange))
async def update_real(
    service: ServiceKeyDep,
    real: RealKeyDep,
    body: RealPatch,
    who: Admin,
    node: NodeDep,
    request: Request,
    response: Response,
) -> RealChange:
    """Sets the real's weight (0 quiesces it) and/or whether it is enabled."""
    fields = body.model_dump(exclude_unset=True)
    verb = "set " + ", ".join(f"{k}={v}" for k, v in fields.items()) if fields else "touch"
    return await _set_real(service, real, fields, who, node, request, response, verb)


@router.post(REAL_PATH + "/quiesce", responses=write_responses(RealChange))
async def quiesce_real(
    service: ServiceKeyDep,
    real: RealKeyDep,
    who: Admin,
    node: NodeDep,
    request: Request,
    response: Response,
) -> RealChange:
    """No new sessions to the real; its established sessions finish. Its weight is kept
    for when it is enabled again."""
    return await _set_real(
        service, real, {"enabled": False}, who, node, request, response, "quiesce"
    )


@router.post(REAL_PATH + "/enable", responses=write_responses(RealChange))
async def enable_real(
    service: ServiceKeyDep,
    real: RealKeyDep,
    who: Admin,
    node: NodeDep,
    request: Request,
    response: Response,
) -> RealChange:
    return await _set_real(service, real, {"enabled": True}, who, node, request, response, "enable")


@router.delete(REAL_PATH, responses=write_responses(RealChange))
async def delete_real(
    service: ServiceKeyDep,
    real: RealKeyDep,
    who: Admin,
    node: NodeDep,
    request: Request,
    response: Response,
) -> RealChange:
    """Removes the real: it gets no new sessions; established ones finish."""
    removed: list[Real] = []

    def edit(data: dict[str, Any], cfg: NodeConfig) -> str:
        i, svc = service.find(cfg)
        j, r = real.find(svc, service.id)
        removed.append(Real.of(svc, r))
        del data["services"][i]["reals"][j]
        return f"delete real {real.id} of service {service.id}"

    result = await node.writer.edit(who, request, edit)
    if result.status == "pending":
        response.status_code = 202
    return RealChange(**dict(result), real=removed[0])
