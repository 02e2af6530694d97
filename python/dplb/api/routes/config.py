"""Config versions: the desired config (`GET`/`PUT /api/v1/config`), what this node did
with it (`/config/status`), past versions (list, show, diff two), and rollback, which
writes an old version again as the newest one. Token values are always redacted."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from dplb.api.context import NodeContext
from dplb.api.deps import Admin, NodeDep, Viewer
from dplb.api.errors import READ_ERRORS, WRITE_ERRORS, ApiError, write_responses
from dplb.api.models import ChangeResult, ConfigDiff, ConfigDocument, ConfigStatus, Rollback
from dplb.api.routes.node import config_status
from dplb.config import ConfigError, NodeConfig, parse_config
from dplb.config_diff import diff_configs, redact, restore_tokens, text_diff
from dplb.store import Desired, VersionInfo, VersionNotFound

router = APIRouter(prefix="/config", tags=["config"])


async def _version(node: NodeContext, version: int, where: str) -> Desired:
    try:
        return await node.store.read_version(version)
    except VersionNotFound:
        raise ApiError(404, [(where, f"no config version {version}")]) from None


async def _current(node: NodeContext) -> Desired:
    current = await node.store.read()
    if current is None:
        raise ApiError(503, [("(store)", "the store holds no config yet")])
    return current


def _document(desired: Desired) -> ConfigDocument:
    return ConfigDocument(
        info=desired.info,
        config=redact(desired.data) if desired.data is not None else None,
        problem=desired.problem,
    )


def _finish(result: ChangeResult, response: Response) -> ChangeResult:
    if result.status == "pending":
        response.status_code = 202
    return result


@router.get("", responses=READ_ERRORS)
async def get_config(_: Viewer, node: NodeDep) -> ConfigDocument:
    """The desired config as written, with its version."""
    return _document(await _current(node))


@router.put("", responses=write_responses(ChangeResult))
async def replace_config(
    body: NodeConfig,
    who: Admin,
    node: NodeDep,
    request: Request,
    response: Response,
    expected_version: Annotated[int | None, Query(ge=0)] = None,
) -> ChangeResult:
    """Replaces the whole desired config. With `expected_version`, only if that is still
    the current version (else 409): read, edit, write back without losing another's
    change."""
    data = restore_tokens(body.model_dump(mode="json", exclude_unset=True), node.reconciler.running)
    result = await node.writer.replace(
        who, request, data, "replace the config", expected_version=expected_version
    )
    return _finish(result, response)


@router.get("/status", responses=READ_ERRORS)
async def get_config_status(_: Viewer, node: NodeDep) -> ConfigStatus:
    """The version that runs, and what became of the last one the node looked at."""
    return await config_status(node)


@router.get("/versions", responses=READ_ERRORS)
async def list_config_versions(
    _: Viewer, node: NodeDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[VersionInfo]:
    """Past versions, newest first."""
    return await node.store.history(limit)


@router.get("/versions/{version}", responses={**READ_ERRORS, 404: WRITE_ERRORS[404]})
async def get_config_version(version: int, _: Viewer, node: NodeDep) -> ConfigDocument:
    return _document(await _version(node, version, "path.version"))


def _validated(desired: Desired) -> NodeConfig | dict[str, Any] | None:
    """Validated when it can be (so defaults compare equal), else as written."""
    if desired.data is None:
        return None
    try:
        return parse_config(desired.data)
    except ConfigError:
        return desired.data


@router.get("/diff", responses={**READ_ERRORS, 404: WRITE_ERRORS[404]})
async def diff_config_versions(
    _: Viewer,
    node: NodeDep,
    from_version: Annotated[int, Query(ge=1)],
    to_version: Annotated[int | None, Query(ge=1)] = None,
) -> ConfigDiff:
    """What changed from one version to another (default: to the current one)."""
    old = await _version(node, from_version, "query.from_version")
    new = (
        await _version(node, to_version, "query.to_version")
        if to_version is not None
        else await _current(node)
    )
    return ConfigDiff(
        from_version=old.version,
        to_version=new.version,
        changes=diff_configs(_validated(old), _validated(new)),
        text=text_diff(old.data, new.data, f"version {old.version}", f"version {new.version}"),
    )


def _current_tokens(node: NodeContext, current: Desired) -> list[dict[str, Any]]:
    """The tokens of the desired config when it is valid, else those the node runs."""
    cfg = _validated(current)
    tokens = cfg.api.tokens if isinstance(cfg, NodeConfig) else node.reconciler.running.api.tokens
    return [t.model_dump(mode="json", exclude_unset=True) for t in tokens]


@router.post("/rollback", responses=write_responses(ChangeResult))
async def rollback_config(
    body: Rollback, who: Admin, node: NodeDep, request: Request, response: Response
) -> ChangeResult:
    """Writes version `version` again, as a new version (history only grows), with the
    API tokens of now: a rollback restores services, never credentials (a token revoked
    since stays revoked, one added since stays)."""
    old = await _version(node, body.version, "body.version")
    if old.data is None:
        raise ApiError(422, [("body.version", f"version {body.version}: {old.problem}")])
    data = dict(old.data)
    api = data.get("api")
    data["api"] = {
        **(api if isinstance(api, dict) else {}),
        "tokens": _current_tokens(node, await _current(node)),
    }
    result = await node.writer.replace(who, request, data, f"roll back to version {body.version}")
    return _finish(result, response)
