"""Health, Prometheus metrics and cache control."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from server.api.deps import run_blocking, service
from server.core.errors import TallyError

router = APIRouter(tags=["operations"])


@router.get("/health/live", summary="The process is up")
async def live() -> dict:
    return {"status": "ok"}


@router.get("/health/ready", summary="The engine is built and the warehouse answers")
async def ready(request: Request) -> JSONResponse:
    svc = service(request)
    try:
        await run_blocking(request, svc.ready)
    except TallyError as e:
        return JSONResponse({**e.to_dict(), "status": "unavailable"}, status_code=503)
    return JSONResponse(
        {
            "status": "ready",
            "manifest_version": svc.manifest_version,
            "data_version": svc.data_version.current(),
        }
    )


@router.get("/metrics", include_in_schema=False)
async def prometheus(request: Request) -> Response:
    return Response(
        request.app.state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
    )


@router.post("/api/v1/cache/invalidate", summary="Forget every cached result")
async def invalidate(request: Request) -> dict:
    svc = service(request)
    version = await run_blocking(request, svc.invalidate_cache)
    return {"invalidated": True, "data_version": version}


@router.get("/api/v1/cache", summary="Cache statistics")
async def cache_stats(request: Request) -> dict:
    svc = service(request)
    s = svc.cache.stats
    return {
        "entries": len(svc.cache),
        "bytes": svc.cache.current_bytes,
        "max_bytes": svc.cache.max_bytes,
        "hits": s.hits,
        "misses": s.misses,
        "evictions": s.evictions,
        "expirations": s.expirations,
        "compiled_sql_hits": svc.compiler.sql_cache_hits,
        "warehouse_executions": svc.counters.executions,
    }
