"""Attack class: one caller holding the threads everyone shares.

A structured `in` filter of 100,000 values took 42 s (rollup routing parsed each filter about
ten times), and four such bodies from one key pushed another tenant's fresh query from 0.01 s to
31 s, because the per-caller concurrency limit (8) equalled the query pool (8). Now a filter's
values and the filters' bytes are bounded before anything parses them (a clear 400), each filter
is parsed once, large filters are parsed off the event loop, and a quarter of the pool is kept
for other callers whatever the per-caller limit says; uncached queries and exports count
against it too."""

from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid

import pytest

from tally.core.caller import Caller
from tally.core.request import QueryRequest
from tally.errors import InvalidFilter
from tally.service.limits import Limits, TooManyRequests
from tally.warehouse.duckdb import DuckDBWarehouse

COUNTRIES = {"dimension": "customer__country", "op": "in"}


def _many(n: int) -> dict:
    return {**COUNTRIES, "values": [f"C{i:05d}" for i in range(n)]}


@pytest.mark.parametrize("where", [_many(1001), _many(1000) | {"values": ["x" * 70] * 1000}],
                         ids=["values", "bytes"])
def test_oversized_filters_are_a_clear_400_on_every_http_protocol(client, secured, where):
    token = secured.keys["admin"]
    r = client.query({"metrics": ["revenue"], "where": [where]}, token)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_filter"
    assert "TALLY_MAX_FILTER_" in r.json()["error"]["message"]
    g = client.graphql("""query($f: [Filter!]) { query(metrics: ["revenue"], filters: $f) {
        rows } }""", token, f=[where]).json()
    assert g.get("errors") and "TALLY_MAX_FILTER_" in g["errors"][0]["message"], g


def test_the_bounds_are_settings(client_with, secured):
    client = client_with(max_filter_values=5)
    r = client.query({"metrics": ["revenue"], "where": [_many(6)]}, secured.keys["admin"])
    assert r.status_code == 400 and "at most 5 are allowed" in r.json()["error"]["message"]
    ok = client.query({"metrics": ["revenue"], "where": [_many(5)]}, secured.keys["admin"])
    assert ok.status_code == 200, ok.text


def test_a_filter_is_parsed_once_per_request(session_services, monkeypatch):
    """Access control, the cache key, rollup routing (per candidate rollup) and the compiler all
    read the filter; sqlglot parses it once."""
    import tally.core.filters as filters

    parsed: list[str] = []
    real = filters._parse_expression

    def counting(body, clause, dialect, *tokens):
        parsed.append(clause)
        return real(body, clause, dialect, *tokens)

    monkeypatch.setattr(filters, "_parse_expression", counting)
    svc = session_services.service(cache_enabled=False)
    tenant = Caller.of("test", subject="tenant")
    where = {**COUNTRIES, "values": [f"{uuid.uuid4()}" for _ in range(499)] + ["C00499"]}
    started = time.perf_counter()
    svc.query(QueryRequest.create(metrics=["revenue"], group_by=["metric_time__month"],
                                  where=[where]), tenant)
    elapsed = time.perf_counter() - started
    assert len([c for c in parsed if "C00499" in c]) == 1, len(parsed)
    assert elapsed < 10  # generous; was ~1 s per parse x 10 parses at this size before


class GatedWarehouse(DuckDBWarehouse):
    """The real warehouse, except that queries with a LIMIT of 1000 or more wait for a gate:
    a slow query on demand, without a slow machine."""

    def __init__(self, path, gate: threading.Event) -> None:
        super().__init__(path)
        self.gate = gate

    def execute(self, sql, timeout_seconds=None):
        if re.search(r"LIMIT 100\d\b", sql):
            self.gate.wait(30)
        return super().execute(sql, timeout_seconds)


def test_one_caller_cannot_hold_the_whole_query_pool(session_services, warehouse):
    """Pool of 4, per-caller limit 8 (as configured before: equal to or above the pool): the
    caller gets 3 threads, its 4th query is a 429 at once, and another caller's query runs while
    the first caller's three are stuck."""
    gate = threading.Event()
    svc = session_services.service(GatedWarehouse(warehouse.duckdb_path, gate), query_workers=4,
                                   max_concurrent_per_caller=8, cache_enabled=True)
    hog, other = Caller.of("test", subject="hog"), Caller.of("test", subject="other")

    async def scenario():
        slow = [asyncio.create_task(svc.query_async(QueryRequest.create(
            metrics=["revenue"], group_by=["metric_time__day"], limit=1000 + i), hog))
            for i in range(4)]
        await asyncio.sleep(0.5)
        done = [t for t in slow if t.done()]
        assert len(done) == 1 and isinstance(done[0].exception(), TooManyRequests)
        started = time.perf_counter()
        result, _ = await asyncio.wait_for(svc.query_async(QueryRequest.create(
            metrics=["revenue"], group_by=["metric_time__year"]), other), 20)
        assert result.table.num_rows > 0 and time.perf_counter() - started < 10
        gate.set()
        await asyncio.gather(*slow, return_exceptions=True)

    asyncio.run(scenario())


def test_uncached_queries_and_exports_count_against_the_limit(session_services, warehouse):
    svc = session_services.service(query_workers=4, max_concurrent_per_caller=1)
    caller = Caller.of("test", subject="exporter")
    request = QueryRequest.create(metrics=["revenue"], group_by=["metric_time__day"])
    export = svc.export(request, caller)  # holds the caller's one slot until closed
    with pytest.raises(TooManyRequests):
        svc.query(request, caller, use_cache=False)
    with pytest.raises(TooManyRequests):
        svc.export(request, caller)
    export.close()
    assert svc.query(request, caller, use_cache=False).table.num_rows > 0
    svc.export(request, caller).close()


def test_the_pool_keeps_a_quarter_for_others():
    clock = time.monotonic
    assert Limits(0, 8, clock, pool_size=8).max_concurrent == 6
    assert Limits(0, 0, clock, pool_size=8).max_concurrent == 6  # "no limit" still keeps it
    assert Limits(0, 2, clock, pool_size=8).max_concurrent == 2
    assert Limits(0, 8, clock, pool_size=1).max_concurrent == 1
    assert Limits(0, 8, clock, pool_size=2).max_concurrent == 1


def test_filter_bound_is_checked_before_any_parse(monkeypatch, session_services):
    import tally.core.filters as filters

    monkeypatch.setattr(filters, "_parse_expression",
                        lambda *a: pytest.fail("parsed an oversized filter"))
    svc = session_services.service()
    with pytest.raises(InvalidFilter, match="TALLY_MAX_FILTER_VALUES"):
        svc.query(QueryRequest.create(metrics=["revenue"], where=[_many(100_000)]),
                  Caller.of("test", subject="big"))
