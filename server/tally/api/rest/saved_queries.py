"""Saved queries: list, describe, run by name (with extra filters and a limit)."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import Response

from tally.api.deps import CallerDep, ServiceDep
from tally.api.models import SavedQueryBody, to_request
from tally.api.negotiation import negotiate, query_response, require_json_body

router = APIRouter(prefix="/api/v1/saved-queries", tags=["saved queries"])


@router.get("", summary="List saved queries")
async def list_saved_queries(svc: ServiceDep, caller: CallerDep) -> dict:
    queries = await svc.run(svc.list_saved_queries, caller)
    return {"saved_queries": [asdict(q) for q in queries]}


@router.get("/{name}", summary="One saved query")
async def get_saved_query(name: str, svc: ServiceDep, caller: CallerDep) -> dict:
    return asdict(await svc.run(svc.get_saved_query, name, caller))


@router.post(
    "/{name}/query",
    summary="Run a saved query, optionally with more filters",
    dependencies=[Depends(require_json_body)],
)
async def run_saved_query(
    name: str,
    request: Request,
    svc: ServiceDep,
    caller: CallerDep,
    body: SavedQueryBody | None = Body(None),
) -> Response:
    fmt = negotiate(request)
    saved = await svc.run(svc.get_saved_query, name, caller)
    query = to_request(body or SavedQueryBody(), saved_query=saved.name)
    _, response = await svc.query_async(
        query, caller, lambda result: query_response(request, result, fmt)
    )
    return response
