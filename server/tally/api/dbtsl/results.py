"""An asynchronous query as the dbt Semantic Layer's GraphQL `QueryResult`: its status, SQL and
error, and one page of its rows (1024 a page) as base64 Arrow IPC (`arrowResult`) or as pandas'
JSON (`jsonResult(orient, encoded)`), encoded only when the field is asked for."""

from __future__ import annotations

import base64
import json
import math

import pyarrow as pa
import strawberry
from strawberry.scalars import JSON

from tally.api.dbtsl import types as t
from tally.core.encoding import column_type, json_value, to_arrow_stream
from tally.errors import InvalidRequest
from tally.service.jobs import Job

PAGE_ROWS = 1024
_PANDAS_TYPES = {"integer": "integer", "float": "number", "decimal": "number",
                 "boolean": "boolean", "date": "datetime", "timestamp": "datetime"}


def total_pages(job: Job) -> int | None:
    if job.result is None:
        return None
    return max(1, math.ceil(job.result.table.num_rows / PAGE_ROWS))


def page_table(job: Job, page_num: int) -> pa.Table:
    assert job.result is not None
    pages = total_pages(job) or 1
    if not 1 <= page_num <= pages:
        raise InvalidRequest(
            f"Page {page_num} does not exist: query {job.id} has {pages} page(s) of "
            f"{PAGE_ROWS} rows (pageNum starts at 1)."
        )
    return job.result.table.slice((page_num - 1) * PAGE_ROWS, PAGE_ROWS)


@strawberry.type
class QueryResult:
    query_id: str
    status: t.QueryStatus
    sql: str | None
    error: str | None
    total_pages: int | None
    job: strawberry.Private[Job]
    page_num: strawberry.Private[int]

    @strawberry.field(description="This page of rows: a base64 Arrow IPC stream.")
    def arrow_result(self) -> str | None:
        if self.job.result is None:
            return None
        table = page_table(self.job, self.page_num)
        return base64.b64encode(to_arrow_stream(table)).decode("ascii")

    @strawberry.field(description="This page of rows as pandas' DataFrame.to_json(orient) "
                      "would write it; encoded: base64 of that text, else the JSON itself.")
    def json_result(
        self, orient: t.PandasJsonOrient = t.PandasJsonOrient.TABLE, encoded: bool = True
    ) -> JSON | None:
        if self.job.result is None:
            return None
        body = pandas_json(page_table(self.job, self.page_num), orient)
        if encoded:
            return base64.b64encode(json.dumps(body).encode()).decode("ascii")
        return body


def query_result(job: Job, page_num: int = 1) -> QueryResult:
    if page_num < 1:
        raise InvalidRequest(f"pageNum starts at 1, got {page_num}.")
    if job.result is not None:
        page_table(job, page_num)  # an out-of-range page is an error now, not a null field
    return QueryResult(
        query_id=job.id,
        status=t.QueryStatus[job.status.value],
        sql=job.sql,
        error=f"{job.error.code}: {job.error.message}" if job.error else None,
        total_pages=total_pages(job),
        job=job,
        page_num=page_num,
    )


def pandas_json(table: pa.Table, orient: t.PandasJsonOrient) -> object:
    """The shapes of pandas' DataFrame.to_json for each orient, over a default index."""
    names = table.column_names
    rows = [[json_value(v) for v in row.values()] for row in table.to_pylist()]
    if orient is t.PandasJsonOrient.RECORDS:
        return [dict(zip(names, r, strict=True)) for r in rows]
    if orient is t.PandasJsonOrient.VALUES:
        return rows
    if orient is t.PandasJsonOrient.SPLIT:
        return {"columns": names, "index": list(range(len(rows))), "data": rows}
    if orient is t.PandasJsonOrient.COLUMNS:
        return {n: {str(i): r[c] for i, r in enumerate(rows)} for c, n in enumerate(names)}
    if orient is t.PandasJsonOrient.INDEX:
        return {str(i): dict(zip(names, r, strict=True)) for i, r in enumerate(rows)}
    fields = [{"name": "index", "type": "integer"}] + [
        {"name": f.name, "type": _PANDAS_TYPES.get(column_type(f.type), "string")}
        for f in table.schema
    ]
    return {
        "schema": {"fields": fields, "primaryKey": ["index"], "pandas_version": "1.4.0"},
        "data": [{"index": i, **dict(zip(names, r, strict=True))} for i, r in enumerate(rows)],
    }
