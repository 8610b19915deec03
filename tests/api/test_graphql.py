from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio


async def gql(client, query: str, **variables):
    r = await client.post("/graphql", json={"query": query, "variables": variables})
    assert r.status_code == 200, r.text
    return r.json()


async def test_catalog(client):
    body = await gql(client, """{
        metrics { name label description type dimensions { name type grains } }
        dimensions(metrics: ["revenue"]) { name label description }
        entities { name type }
        savedQueries { name metrics groupBy }
    }""")
    assert "errors" not in body
    metrics = {m["name"]: m for m in body["data"]["metrics"]}
    assert metrics["revenue"]["label"] == "Revenue" and metrics["revenue"]["description"]
    dims = {d["name"]: d for d in metrics["revenue"]["dimensions"]}
    assert dims["metric_time"]["type"] == "time" and "month" in dims["metric_time"]["grains"]
    assert "customer__country" in {d["name"] for d in body["data"]["dimensions"]}
    assert {"customer", "order", "product"} <= {e["name"] for e in body["data"]["entities"]}
    assert "cohort_retention" in {q["name"] for q in body["data"]["savedQueries"]}


async def test_query_matches_rest(client):
    body = await gql(client, """query($m: [String!], $g: [String!]) {
        query(metrics: $m, groupBy: $g, orderBy: ["metric_time__year"]) {
            columns { name type } rows rowCount sql cache { hit ageSeconds }
            timing { compileMs executeMs totalMs } } }""",
                     m=["revenue", "order_count"], g=["metric_time__year"])
    result = body["data"]["query"]
    rest = (await client.post("/api/v1/query", json={
        "metrics": ["revenue", "order_count"], "group_by": ["metric_time__year"]})).json()
    assert result["columns"] == rest["columns"]
    assert result["rows"] == rest["data"]
    assert result["rowCount"] == 4 and "SELECT" in result["sql"]
    assert result["cache"]["hit"] is False and rest["cache"]["hit"] is True  # same cache


async def test_structured_filters(client):
    body = await gql(client, """{ query(metrics: ["order_count"], groupBy: ["customer__country"],
        filters: [{dimension: "customer__country", op: "in", values: ["US", "DE"]}]) { rows } }""")
    assert {r["customer__country"] for r in body["data"]["query"]["rows"]} == {"US", "DE"}


@pytest.mark.parametrize(
    "query,code",
    [
        ('{ query(metrics: ["revenu"]) { rowCount } }', "unknown_metric"),
        ('{ query(metrics: ["revenue"], groupBy: ["customer__countr"]) { rowCount } }',
         "unknown_dimension"),
        ('{ query(metrics: ["revenue"], groupBy: ["metric_time__hour"]) { rowCount } }',
         "invalid_grain"),
        ('{ query(metrics: ["revenue"], where: ["1=1; drop table x"]) { rowCount } }',
         "invalid_filter"),
        ('{ query(metrics: ["revenue"], limit: -5) { rowCount } }', "invalid_request"),
        ('{ query(metrics: ["revenue"], filters: [{dimension: "customer__country", op: "~"}])'
         " { rowCount } }", "invalid_filter"),
        ('{ metric(name: "revenu") { name } }', "unknown_metric"),
    ],
)
async def test_errors_carry_the_rest_codes(client, query, code):
    body = await gql(client, query)
    assert body["data"] is None
    error = body["errors"][0]
    assert error["extensions"]["code"] == code
    assert 400 <= error["extensions"]["status"] < 500
    assert "Traceback" not in error["message"]


async def test_graphiql_in_the_browser(client):
    r = await client.get("/graphql", headers={"accept": "text/html"})
    assert r.status_code == 200 and "graphiql" in r.text.lower()
