"""POST /api/v1/query and /api/v1/compile."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from server.api.deps import access_context, executor, request_id, run_blocking, service
from server.api.models import QueryBody, to_request
from server.api.negotiation import negotiate, query_response, require_json_body
from server.api.observability import log_query
from server.core.errors import TallyError
from server.core.request import QueryRequest
from server.core.results import QueryResult

router = APIRouter(prefix="/api/v1", tags=["query"])

_FORMATS_DOC = {
    200: {
        "description": "The result",
        "content": {
            "application/json": {},
            "text/csv": {},
            "application/vnd.apache.arrow.stream": {},
        },
    },
    304: {"description": "Not modified (If-None-Match matched the ETag)"},
    400: {"description": "The caller's mistake (error shape)"},
}


async def run_query(
    request: Request,
    query: QueryRequest,
    respond: Callable[[QueryResult], Response],
    transport: str = "rest",
) -> Response:
    """Run a query through the service and answer with `respond(result)`, which the service
    calls on the event loop for a small hit and in a worker thread otherwise."""
    svc = service(request)
    try:
        result, response = await svc.query_async(query, executor(request), respond)
    except TallyError as e:
        log_query(request_id(request), transport, query, error=e)
        raise
    log_query(request_id(request), transport, query, result=result)
    assert response is not None
    return response


@router.post(
    "/query",
    responses=_FORMATS_DOC,
    summary="Run a metric query",
    dependencies=[Depends(require_json_body)],
)
async def post_query(body: QueryBody, request: Request) -> Response:
    fmt = negotiate(request)
    svc = service(request)
    query = to_request(body, svc.warehouse.dialect, access_context=access_context(request))
    return await run_query(request, query, lambda result: query_response(request, result, fmt))


@router.post(
    "/compile",
    summary="Compile a metric query to SQL without running it",
    dependencies=[Depends(require_json_body)],
)
async def post_compile(body: QueryBody, request: Request) -> dict:
    svc = service(request)
    query = to_request(body, svc.warehouse.dialect, access_context=access_context(request))

    def compile_() -> dict:
        return {"sql": svc.compile(query).sql, "manifest_version": svc.manifest_version}

    return await run_blocking(request, compile_)
