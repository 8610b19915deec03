"""The catalog: metrics, dimensions, entities, dimension values."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from server.api.deps import access_context, run_blocking, service
from server.api.negotiation import negotiate, values_response
from server.api.rest.query import run_query
from server.core.errors import InvalidRequest
from server.core.request import split_csv
from server.core.results import values_only

router = APIRouter(prefix="/api/v1", tags=["catalog"])


def _metrics_param(metrics: str | None) -> tuple[str, ...]:
    return tuple(m.lower() for m in split_csv([metrics] if metrics else []))


@router.get("/metrics", summary="List metrics")
async def list_metrics(request: Request) -> dict:
    metrics = await run_blocking(request, service(request).list_metrics)
    return {"metrics": [asdict(m) for m in metrics]}


@router.get("/metrics/{name}", summary="One metric, with the dimensions it can be grouped by")
async def get_metric(name: str, request: Request) -> dict:
    svc = service(request)
    metric = await run_blocking(request, svc.get_metric, name)
    dims = await run_blocking(request, svc.list_dimensions, (metric.name,))
    entities = await run_blocking(request, svc.list_entities, (metric.name,))
    return {
        **asdict(metric),
        "dimensions": [asdict(d) for d in dims],
        "entities": [asdict(e) for e in entities],
    }


@router.get("/dimensions", summary="Dimensions (those common to `metrics` when given)")
async def list_dimensions(request: Request, metrics: str | None = Query(None)) -> dict:
    dims = await run_blocking(request, service(request).list_dimensions, _metrics_param(metrics))
    return {"dimensions": [asdict(d) for d in dims]}


@router.get("/entities", summary="Entities (those of `metrics` when given)")
async def list_entities(request: Request, metrics: str | None = Query(None)) -> dict:
    ents = await run_blocking(request, service(request).list_entities, _metrics_param(metrics))
    return {"entities": [asdict(e) for e in ents]}


@router.get("/dimension-values", summary="Distinct values of a dimension")
async def dimension_values(
    request: Request,
    dimension: str = Query(..., examples=["customer__country"]),
    metrics: str | None = Query(None, description="restrict to values these metrics reach"),
    limit: int | None = Query(None, ge=0, le=100_000),
    start: str | None = None,
    end: str | None = None,
) -> Response:
    name = dimension.strip().lower()
    if not name:
        raise InvalidRequest("dimension must not be empty.")
    fmt = negotiate(request)
    svc = service(request)
    query = await run_blocking(
        request,
        svc.dimension_values_request,
        name,
        _metrics_param(metrics),
        limit,
        start,
        end,
        access_context(request),
    )
    return await run_query(
        request, query, lambda result: values_response(request, values_only(result), fmt, name)
    )
