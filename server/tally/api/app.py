"""The HTTP app factory: one function builds the ASGI app, its middleware, routers and
handlers. The whole server (MCP, Flight SQL, the refresh runtime) is assembled by the
composition root, tally.server."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware

from tally.api import dashboards, errors
from tally.api.dbtsl.schema import semantic_layer_router
from tally.api.graphql.schema import graphql_router
from tally.api.limits import BodyLimitMiddleware
from tally.api.observability import Metrics, RequestMiddleware
from tally.api.preauth import AuthenticateFirst
from tally.api.rest import admin, catalog, embed, exports, queries, query, refresh, saved_queries
from tally.api.slow_clients import BodyTimeoutMiddleware
from tally.service import TallyService
from tally.settings import Settings

log = logging.getLogger("tally")

Stop = Callable[[], None]
# Started with the app (in its lifespan), each returning its stop function, called in reverse
# order when the app stops, before the service shuts down.
Hook = Callable[[FastAPI], Stop]


def create_api(
    settings: Settings | None = None,
    service: TallyService | None = None,
    warm: bool = True,
    hooks: Sequence[Hook] = (),
) -> FastAPI:
    """The HTTP app: REST, GraphQL and the dbt Semantic Layer's GraphQL API over `service`.
    `hooks` start what runs beside it (the composition root, tally.server, passes the refresh
    runtime and the other transports' servers); MCP is mounted by the root too."""
    settings = settings or (service.settings if service else Settings())
    service = service or TallyService(settings)

    # Health checks and cache control: never queued behind queries (which run in the
    # service's own pool). Created with the app (not in the lifespan) so in-process tests,
    # which send no lifespan events, have it too.
    operations = ThreadPoolExecutor(2, thread_name_prefix="tally-ops")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if warm:
            try:  # build the engine once at start-up; /health/ready says if it failed
                log.info("engine ready: manifest %s", service.manifest_version)
            except Exception as e:
                log.warning("engine not ready at start-up: %s", e)
        stops = [hook(app) for hook in hooks]
        try:
            yield
        finally:
            for stop in reversed(stops):
                stop()
            # The grace period is over: stop what still runs on the warehouse, so shutdown
            # does not wait for a long query's own timeout.
            operations.shutdown(wait=True, cancel_futures=True)
            service.shutdown()

    app = FastAPI(
        title="tally",
        version="0.1.0",
        description="Metrics API: query the semantic layer over REST (JSON, CSV, Arrow IPC) "
        "and GraphQL (/graphql).",
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.settings = settings
    app.state.metrics = service.telemetry.part("http", Metrics)
    app.state.operations_executor = operations
    app.state.refresh = None  # the refresh runtime, started with the server (lifespan)
    errors.install(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(BodyTimeoutMiddleware, seconds=settings.body_timeout_seconds)
    # Large results travel compressed; small ones (most cache hits) are not worth the CPU.
    # Bodies from 64 KiB up are compressed in a thread, not on the event loop.
    app.add_middleware(
        GZipMiddleware, minimum_size=16_384, compresslevel=6, thread_minimum_size=65_536
    )
    # Before a body is read: authenticated from the headers (a refused caller holds nothing).
    app.add_middleware(AuthenticateFirst, service=service)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
            # authorization: an embedded dashboard sends its embed token from the host page
            allow_headers=["content-type", "accept", "if-none-match", "x-request-id",
                           "authorization"],
            expose_headers=["etag", "x-tally-cache", "x-tally-cache-age", "x-request-id",
                            "server-timing"],
        )
    app.add_middleware(
        RequestMiddleware, metrics=app.state.metrics, telemetry=service.telemetry
    )
    for router in (query.hot, query.router, queries.router, catalog.router, saved_queries.router,
                   admin.router, embed.router, dashboards.router, refresh.router,
                   exports.router):  # fmt: skip
        app.include_router(router)
    app.openapi = lambda: errors.openapi_schema(app)  # type: ignore[method-assign]
    app.include_router(graphql_router(), prefix="/graphql", include_in_schema=False)
    # The dbt Semantic Layer's GraphQL API, for its existing clients (SDK, BI connectors).
    app.include_router(semantic_layer_router(), prefix="/api/graphql", include_in_schema=False)
    return app
