"""The cache as HTTP callers see it: ETags per representation, the SQL of each request, one
cache outcome per request (REST and Prometheus agree), and access contexts that never share
cached rows, over REST, GraphQL and dimension values."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.assertions import prometheus_sample
from tests.support.clients import asgi_client
from tests.support.waiting import eventually
from tests.support.warehouses import HeldWarehouse

pytestmark = pytest.mark.anyio

BY_COUNTRY = {"metrics": ["revenue"], "group_by": ["customer__country"]}
BY_REVENUE = {**BY_COUNTRY, "order_by": ["-revenue"]}


async def test_requests_differing_only_in_order_share_an_entry_not_an_etag(client):
    by_revenue = await client.post("/api/v1/query", json=BY_REVENUE)
    by_country = await client.post(
        "/api/v1/query", json=BY_COUNTRY, headers={"if-none-match": by_revenue.headers["etag"]})
    # One entry (a hit) but another representation: not a 304 for rows in another order.
    assert by_country.status_code == 200 and by_country.headers["x-tally-cache"] == "hit"
    assert by_country.headers["etag"] != by_revenue.headers["etag"]
    countries = [r["customer__country"] for r in by_country.json()["data"]]
    revenues = [r["revenue"] for r in by_revenue.json()["data"]]
    assert countries == sorted(countries) and revenues == sorted(revenues, reverse=True)
    assert countries != [r["customer__country"] for r in by_revenue.json()["data"]]
    same = await client.post(
        "/api/v1/query", json=BY_COUNTRY, headers={"if-none-match": by_country.headers["etag"]})
    assert same.status_code == 304


async def test_column_order_is_part_of_the_representation(client):
    a = await client.post("/api/v1/query", json={"metrics": ["revenue", "order_count"]})
    b = await client.post("/api/v1/query", json={"metrics": ["order_count", "revenue"]},
                          headers={"if-none-match": a.headers["etag"]})
    assert b.status_code == 200 and b.headers["x-tally-cache"] == "hit"
    assert [c["name"] for c in b.json()["columns"]] == ["order_count", "revenue"]
    assert b.headers["etag"] != a.headers["etag"]


async def test_a_hit_sorted_for_another_order_returns_its_own_sql(make_app):
    # What each request's SQL is when it runs by itself (a miss, in a fresh app).
    alone = {}
    for name, body in (("country", BY_COUNTRY), ("revenue", BY_REVENUE)):
        async with asgi_client(make_app()) as c:
            r = await c.post("/api/v1/query", json=body)
            assert r.headers["x-tally-cache"] == "miss"
            alone[name] = r.json()["sql"]
    assert alone["country"] != alone["revenue"]
    async with asgi_client(make_app()) as c:
        first = await c.post("/api/v1/query", json=BY_REVENUE)
        hit = await c.post("/api/v1/query", json=BY_COUNTRY)
        graphql = await c.post("/graphql", json={"query": """{ query(metrics: ["revenue"],
            groupBy: ["customer__country"]) { sql cache { hit } } }"""})
    assert first.json()["sql"] == alone["revenue"]
    assert hit.headers["x-tally-cache"] == "hit" and hit.json()["sql"] == alone["country"]
    assert graphql.json()["data"]["query"] == {"sql": alone["country"], "cache": {"hit": True}}


async def test_every_request_counts_exactly_one_cache_outcome(make_app, warehouse):
    # The herd's query (it alone asks for order_count) is held until the nine others have
    # joined it: each of them must count as shared, however slowly they arrive.
    held = HeldWarehouse(warehouse.duckdb_path, marker="order_count")
    app = make_app(held)
    stats_now = app.state.service.cache.stats
    herd = {"metrics": ["order_count"], "group_by": ["metric_time__year"]}
    async with asgi_client(app) as c:
        states = [(await c.post("/api/v1/query", json=BY_COUNTRY)).headers["x-tally-cache"],
                  (await c.post("/api/v1/query", json=BY_COUNTRY)).headers["x-tally-cache"],
                  (await c.post("/api/v1/query", json=BY_REVENUE)).headers["x-tally-cache"]]
        herd_requests = asyncio.gather(*(c.post("/api/v1/query", json=herd) for _ in range(10)))
        await eventually(lambda: stats_now.shared == 9)
        held.release()
        responses = await herd_requests
        states += [r.headers["x-tally-cache"] for r in responses]
        failed = await c.post("/api/v1/query", json={"metrics": ["revenue"],
                                                     "group_by": ["metric_time__year"],
                                                     "order_by": ["-revenue"], "limit": 1,
                                                     "where": ["{{ Metric('nope') }} > 1"]})
        stats = (await c.get("/api/v1/cache")).json()
        text = (await c.get("/metrics")).text
    assert failed.status_code == 400
    assert states[:3] == ["miss", "hit", "hit"]
    assert sorted(states[3:]) == ["miss"] + ["shared"] * 9
    # 14 requests reached the cache (the failed one missed it, then failed to compile).
    assert (stats["hits"], stats["misses"], stats["shared"]) == (2, 3, 9)
    assert prometheus_sample(text, "tally_cache_hits_total") == 2
    assert prometheus_sample(text, "tally_cache_misses_total") == 3
    assert prometheus_sample(text, "tally_cache_shared_total") == 9
    assert app.state.service.counters.executions == 2


class AccessFromHeader:
    """Test-only stand-in for authentication: sets the caller's access context from a header,
    the way a real authentication middleware would (request.state.access_context)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            tenant = dict(scope.get("headers") or []).get(b"x-test-tenant")
            if tenant:
                scope.setdefault("state", {})["access_context"] = {"tenant": tenant.decode()}
        await self.app(scope, receive, send)


async def test_access_contexts_never_share_cached_rows(make_app):
    app = make_app()
    app.add_middleware(AccessFromHeader)
    service = app.state.service

    def as_(tenant: str | None) -> dict:
        return {"x-test-tenant": tenant} if tenant else {}

    gql = {"query": '{ query(metrics: ["revenue"], groupBy: ["customer__country"]) '
                    "{ rowCount cache { hit } } }"}
    values = "/api/v1/dimension-values?dimension=customer__country&metrics=revenue"
    async with asgi_client(app) as c:

        async def rest(tenant):
            r = await c.post("/api/v1/query", json=BY_COUNTRY, headers=as_(tenant))
            assert r.status_code == 200
            return r.headers["x-tally-cache"]

        async def graphql(tenant):
            r = await c.post("/graphql", json=gql, headers=as_(tenant))
            return "hit" if r.json()["data"]["query"]["cache"]["hit"] else "miss"

        async def dimension_values(tenant):
            r = await c.get(values, headers=as_(tenant))
            assert r.status_code == 200
            return r.headers["x-tally-cache"]

        assert [await rest("acme"), await rest("globex"), await rest(None)] == ["miss"] * 3
        assert await rest("acme") == "hit"
        assert await graphql("acme") == "hit"  # same question, same caller, other transport
        assert await graphql("initech") == "miss"
        assert await graphql("initech") == "hit"
        assert [await dimension_values("acme"), await dimension_values("globex")] == [
            "hit", "hit"]  # the same query as BY_COUNTRY, within each caller's context
        assert await dimension_values("umbrella") == "miss"
        assert await dimension_values("umbrella") == "hit"
    assert service.counters.executions == 5  # acme, globex, anonymous, initech, umbrella
