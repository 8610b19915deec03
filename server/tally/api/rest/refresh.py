"""Refresh, monitors and query history over REST (admin scope): a thin adapter over the
refresh runtime (tally.refresh.runtime), which calls the one service."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tally.api.deps import require_scope
from tally.refresh.runtime import RefreshRuntime

router = APIRouter(tags=["operations"])
_SELECTOR = re.compile(r"^[A-Za-z0-9_.:+*@/,=][A-Za-z0-9_.:+*@/,=-]*$")
admin = [Depends(require_scope("admin"))]


class RefreshBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    build: bool = Field(True, description="Run dbt build + parse and swap in first; false: "
                        "the new data is already in place (invalidate, warm, monitor only).")
    select: list[str] = Field(default_factory=list, description="dbt --select")
    exclude: list[str] = Field(default_factory=list, description="dbt --exclude")
    full_refresh: bool = False
    vars: dict[str, Any] | None = Field(None, description="dbt --vars")

    @field_validator("select", "exclude")
    @classmethod
    def _selectors(cls, values: list[str]) -> list[str]:
        # dbt node selectors only: nothing dbt could read as another option.
        for value in values:
            if not _SELECTOR.match(value):
                raise ValueError(f"not a dbt selector: {value[:80]!r}")
        return values


def runtime_of(request: Request) -> RefreshRuntime:
    """The app's runtime (started with the server); made on first use for an app run without
    lifespan events (in-process tests)."""
    state = request.app.state
    if getattr(state, "refresh", None) is None:
        state.refresh = RefreshRuntime(state.service)
    return state.refresh


# Not in the OpenAPI schema: it runs dbt, and tools that walk the schema (fuzzers, generated
# clients) must never start builds; docs/operations.md, "After every build", documents it.
@router.post("/api/v1/refresh", summary="Build, swap in, invalidate, warm, run the monitors",
             dependencies=admin, include_in_schema=False)  # fmt: skip
async def refresh(request: Request, body: RefreshBody | None = None) -> JSONResponse:
    body = body or RefreshBody()
    dbt_args = [*(a for s in body.select for a in ("--select", s)),
                *(a for e in body.exclude for a in ("--exclude", e)),
                *(["--full-refresh"] if body.full_refresh else [])]  # fmt: skip
    vars_arg = json.dumps(body.vars) if body.vars else None
    runtime = runtime_of(request)
    report = await asyncio.to_thread(runtime.refresh, body.build, dbt_args, vars_arg)
    if report.ok:
        return JSONResponse(report.to_dict())
    code = "build_failed" if report.stages and report.stages[-1].name == "build" \
        else "refresh_failed"  # fmt: skip
    # Nothing served changed; the body says what dbt said. A 502: a part tally depends on
    # (dbt, the warehouse) failed, not the caller's request.
    return JSONResponse({"error": {"code": code, "message": report.error or code},
                         "refresh": report.to_dict()}, status_code=502)  # fmt: skip


@router.get("/api/v1/monitors", summary="Each monitor's latest result", dependencies=admin)
async def monitors(request: Request, run: bool = False) -> dict:
    runtime = runtime_of(request)
    if run or runtime.monitors.last_run is None:
        await asyncio.to_thread(runtime.monitors.run)
    results = runtime.monitors.results
    return {
        "last_run": runtime.monitors.last_run,
        "alerting": sum(r.status == "alert" for r in results),
        "monitors": [r.to_dict() for r in results],
    }


@router.get("/api/v1/query-history", summary="The slowest or most frequent query shapes",
            dependencies=admin)  # fmt: skip
async def query_history(
    request: Request,
    order: Literal["frequent", "slow"] = "frequent",
    limit: int = Query(20, ge=1, le=1000),
    hours: float | None = Query(None, gt=0, le=24 * 7,
                                description="only shapes seen in the last N hours (hourly "
                                "counts are kept 7 days)"),
) -> dict:
    history = runtime_of(request).history
    shapes = [] if history is None else await asyncio.to_thread(history.shapes, order, limit,
                                                                  hours)  # fmt: skip
    return {"order": order, "shapes": [s.to_dict() for s in shapes]}
