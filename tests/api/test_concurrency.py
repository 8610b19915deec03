"""50 concurrent identical cold requests cause exactly one warehouse execution."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from server.warehouse.duckdb import DuckDBWarehouse

pytestmark = pytest.mark.anyio


class SlowWarehouse(DuckDBWarehouse):
    """The real DuckDB warehouse, made slow: the one fault here that is hard to cause on
    demand with a small file. It widens the window in which the concurrent requests overlap."""

    def execute(self, sql, timeout_seconds=None):
        time.sleep(0.5)
        return super().execute(sql, timeout_seconds)


async def test_fifty_identical_cold_requests_run_the_warehouse_once(make_app, warehouse):
    app = make_app(query_workers=8)
    service = app.state.service
    service._warehouse = SlowWarehouse(warehouse.duckdb_path)
    body = {"metrics": ["revenue", "order_count"], "group_by": ["metric_time__month"]}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as client:
        responses = await asyncio.gather(
            *(client.post("/api/v1/query", json=body) for _ in range(50)))
    assert {r.status_code for r in responses} == {200}
    assert service.counters.executions == 1
    states = [r.headers["x-tally-cache"] for r in responses]
    assert states.count("miss") == 1
    assert states.count("shared") >= 1  # waited on the in-flight query, did not run its own
    assert states.count("miss") + states.count("shared") + states.count("hit") == 50
    assert len({r.json()["row_count"] for r in responses}) == 1
    assert len({str(r.json()["data"]) for r in responses}) == 1


async def test_the_event_loop_stays_free_while_queries_run(make_app, warehouse):
    app = make_app(query_workers=2)
    app.state.service._warehouse = SlowWarehouse(warehouse.duckdb_path)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as client:
        slow = asyncio.create_task(client.post("/api/v1/query", json={"metrics": ["revenue"]}))
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        live = await client.get("/health/live")
        assert live.status_code == 200
        assert time.perf_counter() - started < 0.3  # answered while the query sleeps 0.5 s
        assert (await slow).status_code == 200


async def test_query_timeout_is_a_clear_error(make_app):
    app = make_app(query_timeout_seconds=0.005)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as client:
        # A genuinely long query: the trailing window over every day, by day.
        r = await client.post("/api/v1/query", json={
            "metrics": ["revenue_trailing_30d", "cumulative_revenue", "revenue_mtd"],
            "group_by": ["metric_time__day"]})
    if r.status_code == 200:
        pytest.fail("the query finished within 5 ms; the timeout test needs a slower query")
    body = r.json()
    assert r.status_code == 504 and body["error"]["code"] == "query_timeout"
    assert "0.005 s" in body["error"]["message"]
