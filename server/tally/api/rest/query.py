"""POST /api/v1/query and /api/v1/compile: parse, call the service, encode."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from tally.api.deps import CallerDep, ServiceDep
from tally.api.direct import DirectBodyRoute
from tally.api.models import QueryBody, to_request
from tally.api.negotiation import negotiate, query_response, require_json_body
from tally.core import formats

router = APIRouter(prefix="/api/v1", tags=["query"])
# POST /query, the path of every cached answer: a valid body skips FastAPI's dependency solving.
hot = APIRouter(prefix="/api/v1", tags=["query"], route_class=DirectBodyRoute)

_FORMATS_DOC = {
    200: {
        "description": "The result",
        "content": {f.media_type: {} for f in formats.answers()},
    },
    304: {"description": "Not modified (If-None-Match matched the ETag)"},
    400: {"description": "The caller's mistake (error shape)"},
}


@hot.post(
    "/query",
    responses=_FORMATS_DOC,
    summary="Run a metric query",
    dependencies=[Depends(require_json_body)],
)
async def post_query(
    body: QueryBody, request: Request, svc: ServiceDep, caller: CallerDep
) -> Response:
    fmt = negotiate(request)
    _, response = await svc.query_async(
        to_request(body), caller, lambda result: query_response(request, result, fmt)
    )
    return response


@router.post(
    "/compile",
    summary="Compile a metric query to SQL without running it",
    dependencies=[Depends(require_json_body)],
)
async def post_compile(body: QueryBody, svc: ServiceDep, caller: CallerDep) -> dict:
    query = to_request(body)

    def compile_() -> dict:
        compiled = svc.compile(query, caller)
        rollup = compiled.rollup.as_dict() if compiled.rollup else {"used": None, "misses": []}
        return {"sql": compiled.sql, "manifest_version": svc.manifest_version, "rollup": rollup}

    return await svc.run(compile_)
