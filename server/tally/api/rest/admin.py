"""Health, Prometheus metrics and cache control. Health and cache control run on the small
operations pool, never queued behind queries; the cache routes are admin routes (see
the admin scope)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from tally.api.deps import ServiceDep, check_metrics_scrape, require_scope, run_operational
from tally.errors import TallyError

router = APIRouter(tags=["operations"])
admin = [Depends(require_scope("admin"))]


@router.get("/health/live", summary="The process is up")
async def live() -> dict:
    return {"status": "ok"}


@router.get("/health/ready", summary="The engine is built and the warehouse answers")
async def ready(request: Request, svc: ServiceDep) -> JSONResponse:
    def check() -> dict:
        svc.ready()
        return {
            "status": "ready",
            "manifest_version": svc.manifest_version,
            "data_version": svc.data_version.current(),
            "cache": svc.cache_health(),
        }

    try:
        body = await run_operational(request, check)
    except TallyError as e:
        return JSONResponse({**e.to_dict(), "status": "unavailable"}, status_code=503)
    return JSONResponse(body)


@router.get("/metrics", include_in_schema=False)
async def prometheus(request: Request, svc: ServiceDep) -> Response:
    check_metrics_scrape(request)
    return Response(
        svc.telemetry.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
    )


@router.post("/api/v1/cache/invalidate", summary="Forget every cached result", dependencies=admin)
async def invalidate(request: Request, svc: ServiceDep) -> dict:
    version = await run_operational(request, svc.invalidate_cache)
    return {"invalidated": True, "data_version": version}


@router.get("/api/v1/cache", summary="Cache statistics", dependencies=admin)
async def cache_stats(request: Request, svc: ServiceDep) -> dict:
    return await run_operational(request, svc.cache_stats)
