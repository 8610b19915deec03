"""Asynchronous queries over REST, for long exports: POST /api/v1/queries starts one (202 with
its Location), GET /api/v1/queries/{id} says where it is, GET .../result gives the result in the
format asked for (Accept: any answer format of core/formats.py), DELETE cancels it. The same
jobs as the dbt Semantic Layer's GraphQL createQuery: run by the service as their caller, kept
for a while once done."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from tally.api.deps import CallerDep, ServiceDep
from tally.api.models import QueryBody, to_request
from tally.api.negotiation import negotiate, query_response, require_json_body
from tally.errors import QueryNotReady
from tally.service.jobs import Job

router = APIRouter(prefix="/api/v1/queries", tags=["asynchronous queries"])


def status_of(job: Job) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": job.id,
        "status": job.status.value,
        "sql": job.sql,
        "error": None,
        "row_count": job.result.table.num_rows if job.result is not None else None,
        "result": f"/api/v1/queries/{job.id}/result",
    }
    if job.error is not None:
        body["error"] = job.error.to_dict()["error"]
    return body


@router.post(
    "",
    status_code=202,
    summary="Start a query in the background (poll its Location)",
    dependencies=[Depends(require_json_body)],
    responses={202: {"description": "Started; Location names it"}},
)
async def create(body: QueryBody, svc: ServiceDep, caller: CallerDep) -> JSONResponse:
    job = svc.submit_query(to_request(body), caller)
    location = f"/api/v1/queries/{job.id}"
    return JSONResponse(status_of(job), status_code=202, headers={"Location": location})


@router.get("/{query_id}", summary="Where an asynchronous query is")
async def status(query_id: str, svc: ServiceDep, caller: CallerDep) -> dict[str, Any]:
    return status_of(svc.jobs.get(query_id, caller))


@router.get("/{query_id}/result", summary="The result of a finished asynchronous query")
async def result(
    query_id: str, request: Request, svc: ServiceDep, caller: CallerDep
) -> Response:
    fmt = negotiate(request)
    job = svc.jobs.get(query_id, caller)
    if job.error is not None:
        raise job.error
    if job.result is None:
        raise QueryNotReady(
            f"Query {job.id} is {job.status.value}; its result is ready when it is SUCCESSFUL "
            f"(GET /api/v1/queries/{job.id}).",
            status=job.status.value,
        )
    return await svc.run(query_response, request, job.result, fmt)


@router.delete("/{query_id}", summary="Cancel an asynchronous query")
async def cancel(query_id: str, svc: ServiceDep, caller: CallerDep) -> dict[str, Any]:
    return status_of(svc.jobs.cancel(query_id, caller))
