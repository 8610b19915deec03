"""The catalog: metrics, dimensions, entities, dimension values."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from tally.api.deps import CallerDep, ServiceDep
from tally.api.negotiation import negotiate, values_response
from tally.core.request import split_csv
from tally.errors import InvalidRequest

router = APIRouter(prefix="/api/v1", tags=["catalog"])


def _metrics_param(metrics: str | None) -> tuple[str, ...]:
    return tuple(m.lower() for m in split_csv([metrics] if metrics else []))


@router.get("/metrics", summary="List metrics")
async def list_metrics(svc: ServiceDep, caller: CallerDep) -> dict:
    metrics = await svc.run(svc.list_metrics, caller)
    return {"metrics": [asdict(m) for m in metrics]}


@router.get("/metrics/{name}", summary="One metric, with the dimensions it can be grouped by")
async def get_metric(name: str, svc: ServiceDep, caller: CallerDep) -> dict:
    metric = await svc.run(svc.get_metric, name, caller)
    dims = await svc.run(svc.list_dimensions, (metric.name,), caller)
    entities = await svc.run(svc.list_entities, (metric.name,), caller)
    return {
        **asdict(metric),
        "dimensions": [asdict(d) for d in dims],
        "entities": [asdict(e) for e in entities],
    }


@router.get("/dimensions", summary="Dimensions (those common to `metrics` when given)")
async def list_dimensions(
    svc: ServiceDep, caller: CallerDep, metrics: str | None = Query(None)
) -> dict:
    dims = await svc.run(svc.list_dimensions, _metrics_param(metrics), caller)
    return {"dimensions": [asdict(d) for d in dims]}


@router.get("/entities", summary="Entities (those of `metrics` when given)")
async def list_entities(
    svc: ServiceDep, caller: CallerDep, metrics: str | None = Query(None)
) -> dict:
    ents = await svc.run(svc.list_entities, _metrics_param(metrics), caller)
    return {"entities": [asdict(e) for e in ents]}


@router.get("/dimension-values", summary="Distinct values of a dimension")
async def dimension_values(
    request: Request,
    svc: ServiceDep,
    caller: CallerDep,
    dimension: str = Query(..., examples=["<entity>__<dimension>"]),
    metrics: str | None = Query(None, description="restrict to values these metrics reach"),
    limit: int | None = Query(None, ge=0, le=100_000),
    start: str | None = None,
    end: str | None = None,
) -> Response:
    name = dimension.strip().lower()
    if not name:
        raise InvalidRequest("dimension must not be empty.")
    fmt = negotiate(request)
    _, response = await svc.dimension_values_async(
        name,
        _metrics_param(metrics),
        limit=limit,
        start=start,
        end=end,
        caller=caller,
        finish=lambda result: values_response(request, result, fmt, name),
    )
    return response
