"""`create_app`: the FastAPI application of a node. Start-up (the lifespan) seeds the store
from the node config when it is empty, applies the desired config once, then keeps the
reconciler watching the store until shut-down."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

from dplb import __version__
from dplb.api.audit import AuditLog, AuditWrites
from dplb.api.auth import TokenFirst
from dplb.api.changes import ConfigWriter
from dplb.api.context import NodeContext
from dplb.api.errors import install_error_handlers
from dplb.api.origin import SameOriginWrites
from dplb.api.routes import (
    audit,
    bgp,
    cluster,
    config,
    fallback,
    node,
    reals,
    services,
    sessions,
    stats,
)
from dplb.api.routes import health_checks as health_checks_routes
from dplb.api.routes import sync as sync_routes
from dplb.bgp import RunningConfigServing, ServingSource, controller_for
from dplb.cluster.peers import PeerAddresses
from dplb.config import NodeConfig
from dplb.dataplane import Dataplane
from dplb.health import service_can_serve, start_health_checker
from dplb.metrics import metrics_router
from dplb.reconciler import Reconciler, seed_store
from dplb.store import FileStore, MemberInfo, Store, StoreUnavailable
from dplb.sync import SyncGatedServing, start_sync
from dplb.sync.manager import worker_local_addresses
from dplb.web import web_admin

API_PREFIX = "/api/v1"
log = logging.getLogger("dplb.api")


def operation_id(route: APIRoute) -> str:
    """Stable operation IDs: the route function's name (`list_services`), which clients
    generated from the OpenAPI document use as method names."""
    return route.name


def default_store(node_config: NodeConfig) -> Store:
    """The node config's store: the cluster's etcd, or a standalone node's file."""
    etcd = node_config.store.etcd
    if etcd is not None:
        from dplb.cluster.etcd_store import EtcdStore
        from dplb.cluster.layout import local_part

        return EtcdStore(
            etcd,
            cluster=node_config.node.cluster,
            node=node_config.node.name,
            local=local_part(node_config.model_dump(mode="json", exclude_unset=True)),
            keep_versions=node_config.store.keep_versions,
        )
    if node_config.store.file is None:
        raise ValueError("store: the API needs store.file (a standalone node) or store.etcd")
    return FileStore(node_config.store.file, keep=node_config.store.keep_versions)


def member_info(node_config: NodeConfig, dataplane: Dataplane) -> MemberInfo:
    """What this node tells the cluster about itself."""
    status = dataplane.status()
    listen = node_config.api.listen
    return MemberInfo(
        node=node_config.node.name,
        api=f"http://{listen}",
        workers=node_config.dataplane.workers,
        sync=node_config.sync.address if node_config.sync.enabled else None,
        local_addresses=sorted(
            {str(a) for p in node_config.dataplane.ports for w in p.local_addresses for a in w}
        ),
        worker_local_addresses=worker_local_addresses(node_config),
        version=__version__,
        started_at=status.started_at,
    )


async def start_config(store: Store, node_config: NodeConfig, reconciler: Reconciler) -> int:
    """Seeds an empty store and applies its config once; returns the version the
    reconciler watches after. A store that does not answer is no reason not to start:
    the node runs its node config and catches up when the store is back."""
    try:
        await seed_store(store, node_config)
        first = await store.read()
    except StoreUnavailable as exc:
        log.warning("the store is unavailable at start (%s): running the node config", exc)
        return 0
    if first is None:
        return 0
    await reconciler.reconcile(first)
    return first.version


def default_audit_path(node_config: NodeConfig, store: Store) -> Path | None:
    if node_config.api.audit_log is not None:
        return node_config.api.audit_log
    if isinstance(store, FileStore):
        return store.path.parent / "audit.jsonl"
    return None


def create_app(
    node_config: NodeConfig,
    dataplane: Dataplane,
    store: Store | None = None,
    *,
    audit_log: AuditLog | None = None,
    apply_timeout: float = 10.0,
) -> FastAPI:
    """The API of a node whose dataplane runs `node_config`. `store` defaults to the
    node config's store; the audit log to `api.audit_log`, else audit.jsonl beside the
    store's file. A change waits up to `apply_timeout` seconds for the reconciler."""
    the_store = store if store is not None else default_store(node_config)
    the_audit = audit_log or AuditLog(
        default_audit_path(node_config, the_store),
        max_bytes=node_config.api.audit_log_max_bytes,
        keep=node_config.api.audit_log_keep,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        reconciler = Reconciler(the_store, dataplane)
        after = await start_config(the_store, node_config, reconciler)
        await the_store.join(member_info(node_config, dataplane))
        app.state.node = NodeContext(
            node_config=node_config,
            store=the_store,
            dataplane=dataplane,
            reconciler=reconciler,
            audit=the_audit,
            writer=ConfigWriter(the_store, reconciler, the_audit, apply_timeout),
        )
        task = asyncio.create_task(reconciler.run(after=after), name="dplb-reconciler")
        health = start_health_checker(app)  # dplb.health: per-NIC checks of the reals
        # BGP (issue 12): BIRD announces what can serve (the health checker's verdict),
        # the node's local addresses and, as backups, the cluster peers'.
        peers = PeerAddresses(
            the_store, node_config.node.name, keep_synced=node_config.sync.enabled
        )
        peers.start()
        # Session sync (issue 13): peers from the members; no VIP announced before the
        # node holds its peers' sessions.
        app.state.sync = await start_sync(node_config, the_store, dataplane)
        serving: ServingSource = RunningConfigServing(
            lambda: reconciler.running,
            dataplane,
            can_serve=(lambda key: service_can_serve(app, key)) if health is not None else None,
            subscribe=health.state.subscribe if health is not None else None,
        )
        if app.state.sync is not None:
            serving = SyncGatedServing(serving, app.state.sync)
        app.state.bgp = controller_for(
            node_config, lambda: reconciler.running, dataplane, serving=serving, peers=peers
        )
        if app.state.bgp is not None:
            await app.state.bgp.start()
        try:
            yield
        finally:
            if app.state.bgp is not None:
                await app.state.bgp.stop()
            await peers.stop()
            if app.state.sync is not None:
                await app.state.sync.stop()
            if health is not None:
                await health.stop()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await the_store.leave()
            close = getattr(the_store, "close", None)  # the etcd store's channels
            if close is not None:
                await close()

    app = FastAPI(
        title="dplb",
        version=__version__,
        summary="Management API of a dplb node: services, reals, sessions, stats, config",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
    )
    install_error_handlers(app)
    api = APIRouter(prefix=API_PREFIX)
    api.include_router(node.public_router)
    for module in (services, reals, sessions, stats, node, config, audit, cluster, bgp):
        api.include_router(module.router)
    api.include_router(health_checks_routes.router)
    api.include_router(sync_routes.router)
    api.include_router(fallback.router)  # last: what no route above takes
    app.include_router(api)
    app.include_router(metrics_router)  # GET /metrics, for Prometheus (no token)
    # Outermost last: writes from another site's page are refused (dplb.api.origin says
    # why); then each write is audited with the status it got; the token comes first.
    public = frozenset({f"{API_PREFIX}/health", f"{API_PREFIX}/openapi.json", f"{API_PREFIX}/docs"})
    app.add_middleware(TokenFirst, prefix=API_PREFIX, public=public)
    app.add_middleware(AuditWrites, audit=the_audit, prefix=API_PREFIX)
    app.add_middleware(SameOriginWrites)
    # The web admin at `/`: mounted last, it answers only what no route above does.
    app.mount("/", web_admin(), name="web")
    return app
