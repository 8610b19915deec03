"""Saved queries: list, describe, run by name (with extra filters and a limit)."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import Response

from server.api.deps import access_context, run_blocking, service
from server.api.models import SavedQueryBody, to_request
from server.api.negotiation import negotiate, query_response, require_json_body
from server.api.rest.query import run_query

router = APIRouter(prefix="/api/v1/saved-queries", tags=["saved queries"])


@router.get("", summary="List saved queries")
async def list_saved_queries(request: Request) -> dict:
    queries = await run_blocking(request, service(request).list_saved_queries)
    return {"saved_queries": [asdict(q) for q in queries]}


@router.get("/{name}", summary="One saved query")
async def get_saved_query(name: str, request: Request) -> dict:
    return asdict(await run_blocking(request, service(request).get_saved_query, name))


@router.post(
    "/{name}/query",
    summary="Run a saved query, optionally with more filters",
    dependencies=[Depends(require_json_body)],
)
async def run_saved_query(
    name: str, request: Request, body: SavedQueryBody | None = Body(None)
) -> Response:
    fmt = negotiate(request)
    svc = service(request)
    saved = await run_blocking(request, svc.get_saved_query, name)
    query = to_request(
        body or SavedQueryBody(),
        svc.warehouse.dialect,
        saved_query=saved.name,
        access_context=access_context(request),
    )
    return await run_query(request, query, lambda result: query_response(request, result, fmt))
