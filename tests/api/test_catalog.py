from __future__ import annotations

import pytest

from tests.api.conftest import assert_error

pytestmark = pytest.mark.anyio


async def test_metrics_list_and_one(client):
    r = await client.get("/api/v1/metrics")
    metrics = {m["name"]: m for m in r.json()["metrics"]}
    assert {"revenue", "retention_rate", "repeat_purchase_rate_90d"} <= set(metrics)
    assert metrics["revenue"]["label"] == "Revenue" and metrics["revenue"]["description"]
    assert metrics["cancellation_rate"]["type"] == "ratio"
    one = (await client.get("/api/v1/metrics/gross_margin")).json()
    assert one["type"] == "derived"
    assert "product__category" in {d["name"] for d in one["dimensions"]}
    assert {"order_item", "product"} <= {e["name"] for e in one["entities"]}


async def test_unknown_metric_is_404_with_suggestion(client):
    err = assert_error(await client.get("/api/v1/metrics/revenu"), 404, "unknown_metric",
                       "Did you mean 'revenue'?")
    assert err["details"] == {"suggestion": "revenue"}


async def test_dimensions_and_entities(client):
    all_dims = {d["name"] for d in (await client.get("/api/v1/dimensions")).json()["dimensions"]}
    revenue_dims = (await client.get("/api/v1/dimensions?metrics=revenue")).json()["dimensions"]
    names = {d["name"]: d for d in revenue_dims}
    assert {"metric_time", "customer__country", "order__order_status"} <= set(names) <= all_dims
    assert names["metric_time"]["grains"] == ["day", "week", "month", "quarter", "year"]
    assert "product__category" not in names
    common = (await client.get("/api/v1/dimensions?metrics=revenue,gross_margin")).json()
    assert "product__category" not in {d["name"] for d in common["dimensions"]}
    ents = (await client.get("/api/v1/entities?metrics=revenue")).json()["entities"]
    assert {e["name"] for e in ents} == {"customer", "order"}
    assert_error(await client.get("/api/v1/dimensions?metrics=revenu"), 400, "unknown_metric",
                 "revenue")


async def test_saved_queries(client):
    listed = (await client.get("/api/v1/saved-queries")).json()["saved_queries"]
    assert {q["name"] for q in listed} >= {"executive_kpis_by_month", "cohort_retention",
                                           "revenue_by_country_by_month", "customer_segments"}
    one = (await client.get("/api/v1/saved-queries/customer_segments")).json()
    assert one["metrics"] == ["customers"]
    assert_error(await client.get("/api/v1/saved-queries/customer_segment"), 404,
                 "unknown_saved_query", "Did you mean 'customer_segments'?")


async def test_run_saved_query_with_extra_filter_and_limit(client):
    full = await client.post("/api/v1/saved-queries/revenue_by_country_by_month/query")
    assert full.status_code == 200, full.text
    rows = full.json()["data"]
    assert len({r["customer__country"] for r in rows}) > 3
    de = await client.post("/api/v1/saved-queries/revenue_by_country_by_month/query", json={
        "where": [{"dimension": "customer__country", "op": "=", "value": "DE"}], "limit": 5})
    de_rows = de.json()["data"]
    assert len(de_rows) == 5 and {r["customer__country"] for r in de_rows} == {"DE"}
    expected = [r for r in rows if r["customer__country"] == "DE"][:5]
    assert de_rows == expected
    via_query = await client.post("/api/v1/query", json={
        "saved_query": "revenue_by_country_by_month", "limit": 5,
        "where": ["{{ Dimension('customer__country') }} = 'DE'"]})
    assert via_query.json()["data"] == de_rows
    assert_error(await client.post("/api/v1/saved-queries/nope/query"), 404,
                 "unknown_saved_query")
    assert_error(await client.post("/api/v1/saved-queries/customer_segments/query",
                                   json={"metrics": ["revenue"]}), 400, "invalid_request")


async def test_dimension_values(client, raw):
    r = await client.get("/api/v1/dimension-values?dimension=customer__country&metrics=revenue")
    body = r.json()
    assert body["dimension"] == "customer__country"
    expected = sorted(c for (c,) in raw.execute(
        "select distinct country from raw.customers").fetchall())
    assert sorted(body["values"]) == expected
    status = (await client.get("/api/v1/dimension-values?dimension=order__order_status")).json()
    assert set(status["values"]) == {"placed", "shipped", "completed", "returned", "cancelled"}
    assert_error(await client.get("/api/v1/dimension-values?dimension=customer__countr"), 404,
                 "unknown_dimension", "Did you mean 'customer__country'?")
    assert_error(await client.get("/api/v1/dimension-values"), 400, "invalid_request",
                 "dimension")
    assert_error(await client.get("/api/v1/dimension-values?dimension=customer__country&limit=-1"),
                 400, "invalid_request")


async def test_openapi_and_docs(client):
    spec = (await client.get("/openapi.json")).json()
    assert {"/api/v1/query", "/api/v1/compile", "/api/v1/metrics", "/api/v1/metrics/{name}",
            "/api/v1/dimensions", "/api/v1/entities", "/api/v1/saved-queries",
            "/api/v1/dimension-values", "/health/live", "/health/ready"} <= set(spec["paths"])
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
