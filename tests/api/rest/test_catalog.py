from __future__ import annotations

import pytest

from tests.support.assertions import assert_error

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


async def test_names_in_any_case_and_one_code_for_unknown_metrics(client):
    upper = await client.get("/api/v1/metrics/REVENUE")
    assert upper.status_code == 200 and upper.json()["name"] == "revenue"
    assert (await client.get("/api/v1/metrics/Gross_Margin")).json()["type"] == "derived"
    saved = await client.get("/api/v1/saved-queries/Customer_Segments")
    assert saved.status_code == 200 and saved.json()["name"] == "customer_segments"
    run = await client.post("/api/v1/saved-queries/REVENUE_BY_COUNTRY_BY_MONTH/query",
                            json={"limit": 2})
    assert run.status_code == 200 and run.json()["row_count"] == 2
    # Unknown: 404 on a resource route, 400 in a query body; the same code either way.
    resource = assert_error(await client.get("/api/v1/metrics/REVENU"), 404, "unknown_metric",
                            "Did you mean 'revenue'?")
    body = assert_error(await client.post("/api/v1/query", json={"metrics": ["REVENU"]}), 400,
                        "unknown_metric", "Did you mean 'revenue'?")
    assert resource["details"] == body["details"] == {"suggestion": "revenue"}


VALUES = "/api/v1/dimension-values?dimension=customer__country&metrics=revenue"


async def test_dimension_values_carry_the_query_metadata(client, raw, caplog):
    import json
    import logging

    caplog.set_level(logging.INFO, logger="tally.query")
    first = await client.get(VALUES)
    assert first.status_code == 200
    body = first.json()
    expected = sorted(c for (c,) in raw.execute(
        "select distinct country from raw.customers").fetchall())
    assert body["values"] == expected  # sorted as the group-by sorts them
    assert body["row_count"] == len(expected)
    assert set(body["timing_ms"]) == {"compile", "execute", "total"}
    assert body["cache"] == {"hit": False, "age_seconds": 0.0}
    assert first.headers["x-tally-cache"] == "miss"
    assert first.headers["cache-control"] == "private, max-age=300"
    assert first.headers["etag"].startswith('W/"')
    second = await client.get(VALUES)
    assert second.headers["x-tally-cache"] == "hit" and second.json()["cache"]["hit"] is True
    assert second.json()["values"] == body["values"]
    assert second.headers["etag"] == first.headers["etag"]
    unchanged = await client.get(VALUES, headers={"if-none-match": first.headers["etag"]})
    assert unchanged.status_code == 304 and unchanged.content == b""
    records = [json.loads(r.getMessage()) for r in caplog.records if r.name == "tally.query"]
    assert [(r["transport"], r["cache"], r["group_by"]) for r in records] == [
        ("rest", state, ["customer__country"]) for state in ("miss", "hit", "hit")]

    csv = await client.get(VALUES, headers={"accept": "text/csv"})
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert csv.headers["etag"] != first.headers["etag"] and csv.headers["x-tally-cache"] == "hit"
    lines = csv.text.strip().splitlines()
    assert lines[0] == '"customer__country"'
    assert [line.strip('"') for line in lines[1:]] == expected


async def test_saved_query_in_csv_and_arrow_agrees_with_json(client):
    import csv as csv_module
    import decimal
    import io
    import json

    import pyarrow as pa

    path = "/api/v1/saved-queries/revenue_by_country_by_month/query"
    body = {"where": [{"dimension": "customer__country", "op": "in", "values": ["DE", "US"]}]}
    as_json = await client.post(path, json=body)
    as_csv = await client.post(path, json=body, headers={"accept": "text/csv"})
    as_arrow = await client.post(path, json=body,
                                 headers={"accept": "application/vnd.apache.arrow.stream"})
    assert as_json.status_code == as_csv.status_code == as_arrow.status_code == 200
    assert as_arrow.headers["content-type"] == "application/vnd.apache.arrow.stream"
    assert [as_csv.headers["x-tally-cache"], as_arrow.headers["x-tally-cache"]] == ["hit", "hit"]
    result = json.loads(as_json.text, parse_float=decimal.Decimal)
    names = [c["name"] for c in result["columns"]]
    assert names == ["metric_time__month", "customer__country", "revenue", "completed_orders"]
    rows = [tuple(r[n] for n in names) for r in result["data"]]
    assert len(rows) > 24 and {r[1] for r in rows} == {"DE", "US"}

    table = pa.ipc.open_stream(io.BytesIO(as_arrow.content)).read_all()
    assert table.column_names == names
    assert pa.types.is_date(table.schema.field("metric_time__month").type)
    assert pa.types.is_decimal(table.schema.field("revenue").type)
    arrow_rows = [(m.isoformat(), c, r, n) for m, c, r, n in zip(
        *(table.column(n).to_pylist() for n in names), strict=True)]
    assert arrow_rows == rows  # exact decimals on both sides

    reader = csv_module.reader(io.StringIO(as_csv.text))
    assert next(reader) == names
    csv_rows = [(m, c, decimal.Decimal(r), int(n)) for m, c, r, n in reader]
    assert csv_rows == rows
