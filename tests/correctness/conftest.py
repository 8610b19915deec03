"""Fixtures of the correctness suite (the warehouse, service and raw fixtures live in
tests/conftest.py)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tally import errors
from tests.correctness.helpers import expected_rows


@pytest.fixture(scope="session")
def small_country(raw) -> str:
    """The country with the fewest months holding a valid order: months without any order
    exist there, the edge case of filtered queries."""
    rows = expected_rows(raw, """
        select customer__country as country,
               count(distinct date_trunc('month', order_date)) as months
        from enriched_orders group by 1 order by months, country limit 1""")
    country, months = rows[0]["country"], rows[0]["months"]
    assert months < 48, f"every country has orders in every month (fewest: {country}, {months})"
    return country


# The same suite through every transport: the core service, REST (Arrow IPC, so types are
# exact) and GraphQL (JSON rows, typed back with the result's column types). Each adapter
# answers `.query(QueryRequest)` with an object carrying `.table`, and raises the TallyError
# subclass of the error code the transport returned.

_ERRORS = {cls.code: cls for cls in vars(errors).values()
           if isinstance(cls, type) and issubclass(cls, errors.TallyError)
           and cls is not errors.NotFound}


def _raise(code: str, message: str):
    raise _ERRORS.get(code, errors.TallyError)(message)


class _SyncASGIClient:
    """In-process HTTP through httpx's ASGI transport, for the suite's synchronous tests."""

    def __init__(self, app) -> None:
        self.app = app

    def post(self, url: str, **kwargs):
        async def send():
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://tally.test") as c:
                return await c.post(url, **kwargs)
        return asyncio.run(send())


def _body(request) -> dict:
    return {"metrics": list(request.metrics), "group_by": list(request.group_by),
            "where": list(request.where), "order_by": list(request.order_by),
            "limit": request.limit, "saved_query": request.saved_query,
            "start": request.start.isoformat() if request.start else None,
            "end": request.end.isoformat() if request.end else None}


class _RestAdapter:
    def __init__(self, client) -> None:
        self.client = client

    def query(self, request):
        import io
        from types import SimpleNamespace

        import pyarrow as pa

        r = self.client.post("/api/v1/query", json=_body(request),
                             headers={"accept": "application/vnd.apache.arrow.stream"})
        if r.status_code != 200:
            _raise(r.json()["error"]["code"], r.json()["error"]["message"])
        return SimpleNamespace(table=pa.ipc.open_stream(io.BytesIO(r.content)).read_all())


class _GraphQLAdapter:
    QUERY = """query($metrics: [String!], $groupBy: [String!], $where: [String!],
                     $orderBy: [String!], $limit: Int, $start: String, $end: String) {
        query(metrics: $metrics, groupBy: $groupBy, where: $where, orderBy: $orderBy,
              limit: $limit, start: $start, end: $end) { columns { name type } rows } }"""

    def __init__(self, client) -> None:
        self.client = client

    def query(self, request):
        import datetime as dt
        import decimal
        from types import SimpleNamespace

        import pyarrow as pa

        b = _body(request)
        variables = {"metrics": b["metrics"], "groupBy": b["group_by"], "where": b["where"],
                     "orderBy": b["order_by"], "limit": b["limit"], "start": b["start"],
                     "end": b["end"]}
        body = self.client.post("/graphql", json={"query": self.QUERY,
                                                  "variables": variables}).json()
        if body.get("errors"):
            error = body["errors"][0]
            _raise(error.get("extensions", {}).get("code", ""), error["message"])
        result = body["data"]["query"]
        convert = {"decimal": lambda v: decimal.Decimal(repr(v)) if v is not None else None,
                   "date": lambda v: dt.date.fromisoformat(v) if v is not None else None}
        columns = [(c["name"], convert.get(c["type"], lambda v: v)) for c in result["columns"]]
        arrays = {name: pa.array([fn(row[name]) for row in result["rows"]])
                  for name, fn in columns}
        return SimpleNamespace(table=pa.table(arrays) if columns else pa.table({}))


def _core(warehouse):
    from tally.service import TallyService
    from tally.settings import Settings
    from tally.warehouse.duckdb import DuckDBWarehouse
    from tests.conftest import PROJECT_DIR

    settings = Settings(project_dir=PROJECT_DIR, manifest_path=warehouse.manifest_path)
    return TallyService(settings, warehouse=DuckDBWarehouse(warehouse.duckdb_path))


@pytest.fixture(scope="session")
def core_service(warehouse):
    """The core service itself, for the few tests that look beneath the transports."""
    return _core(warehouse)


def _postgres(pg) -> object:
    """The core service over the PostgreSQL copy of the warehouse (same raw data)."""
    from tally.service import TallyService
    from tally.settings import Settings
    from tally.warehouse.postgres import PostgresWarehouse
    from tests.conftest import PROJECT_DIR, postgres_or_skip

    settings = Settings(project_dir=PROJECT_DIR, manifest_path=pg.manifest_path,
                        target="postgres")
    return TallyService(settings, warehouse=PostgresWarehouse(
        **{**postgres_or_skip(), "dbname": pg.dbname}))


@pytest.fixture(scope="session", params=["core", "rest", "graphql", "postgres"])
def service(request, warehouse):
    """One service per transport, each with its own cache: REST and GraphQL results are
    computed through them, never served from another transport's cached rows. "postgres" is
    the core service on the second warehouse, the PostgreSQL build of the same raw data: the
    same hand SQL (over the DuckDB copy of raw.*) must give its numbers too."""
    from tally.api.app import create_app

    if request.param == "postgres":
        yield _postgres(request.getfixturevalue("pg_warehouse"))
        return
    core = _core(warehouse)
    if request.param == "core":
        yield core
        return
    client = _SyncASGIClient(create_app(core.settings, service=core))
    yield _RestAdapter(client) if request.param == "rest" else _GraphQLAdapter(client)
