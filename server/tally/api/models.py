"""HTTP request bodies. Shapes only (for the OpenAPI schema): every value is validated once,
by QueryRequest.create, which also turns structured filters into the request model's own."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tally.core.request import QueryRequest


class StructuredFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dimension: str = Field(examples=["<entity>__<dimension>"])
    op: str = Field(
        "=",
        examples=["in"],
        description="=, !=, in, not_in, >, >=, <, <=, between, is_null, is_not_null, contains",
    )
    value: Any = None
    values: list[Any] | None = None
    grain: str | None = Field(None, description="for metric_time: day, week, month...")


class QueryBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "metrics": ["<metric>", "<another metric>"],
                    "group_by": ["metric_time__month", "<entity>__<dimension>"],
                    "where": [
                        {"dimension": "<entity>__<dimension>", "op": "in", "values": ["a", "b"]}
                    ],
                    "order_by": ["-<metric>"],
                    "limit": 100,
                }
            ]
        },
    )
    metrics: list[str] = Field(default_factory=list)
    group_by: list[str] = Field(default_factory=list)
    where: list[str | StructuredFilter] = Field(
        default_factory=list,
        description="MetricFlow where clauses (\"{{ Dimension('<entity>__<dimension>') }} = 'x'\") "
        "or structured filters",
    )
    order_by: list[str] = Field(default_factory=list, description="'-' prefix for descending")
    limit: Any = Field(None, description="most rows to return (0 or more)")
    saved_query: str | None = None
    start: str | None = Field(None, description="first metric_time to include (ISO date)")
    end: str | None = Field(None, description="last metric_time to include (ISO date)")


class SavedQueryBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    where: list[str | StructuredFilter] = Field(default_factory=list)
    order_by: list[str] = Field(default_factory=list)
    limit: Any = None
    start: str | None = None
    end: str | None = None


def to_request(
    body: QueryBody | SavedQueryBody, saved_query: str | None = None
) -> QueryRequest:
    return QueryRequest.create(
        metrics=getattr(body, "metrics", None),
        group_by=getattr(body, "group_by", None),
        where=[w if isinstance(w, str) else w.model_dump(exclude_none=True) for w in body.where],
        order_by=body.order_by,
        limit=body.limit,
        saved_query=saved_query or getattr(body, "saved_query", None),
        start=body.start,
        end=body.end,
    )
