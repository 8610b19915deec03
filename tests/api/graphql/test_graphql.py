from __future__ import annotations

import pytest

from tests.support.assertions import assert_error

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


@pytest.mark.parametrize(
    "body,code,needle",
    [
        ({"query": "{ metrics { name "}, "graphql_parse_error", "Syntax Error"),
        ({"query": "{ nope }"}, "graphql_validation_error", "Cannot query field 'nope'"),
        ({"query": '{ query(metrics: ["revenue"], limit: "ten") { rowCount } }'},
         "graphql_validation_error", "Int cannot represent"),
        ({"query": '{ query(metrics: ["revenue"], colour: "red") { rowCount } }'},
         "graphql_validation_error", "colour"),
        ({"query": 'query($l: Int) { query(metrics: ["revenue"], limit: $l) { rowCount } }',
          "variables": {"l": "ten"}}, "graphql_validation_error", "$l"),
        ({"query": "query($m: [String!]!) { query(metrics: $m) { rowCount } }"},
         "graphql_validation_error", "$m"),
    ],
)
async def test_graphql_own_errors_have_stable_codes(client, body, code, needle):
    r = await client.post("/graphql", json=body)
    assert r.status_code == 200 and r.json()["data"] is None
    [error] = r.json()["errors"]
    assert error["extensions"] == {"code": code, "status": 400}
    assert needle in error["message"]


@pytest.mark.parametrize(
    "kwargs,status,code",
    [
        ({"json": {}}, 400, "invalid_request"),
        ({"json": {"variables": {}}}, 400, "invalid_request"),
        ({"content": "{nope", "headers": {"content-type": "application/json"}}, 400,
         "invalid_request"),
        ({"content": "{ metrics { name } }", "headers": {"content-type": "text/plain"}}, 415,
         "unsupported_media_type"),
    ],
)
async def test_requests_that_are_not_graphql_get_the_error_shape(client, kwargs, status, code):
    assert_error(await client.post("/graphql", **kwargs), status, code)


async def test_structured_filter_errors_are_plain_words(client):
    body = await gql(client, """{ query(metrics: ["revenue"], filters: [
        {dimension: "customer__country", op: "in", values: 5}]) { rowCount } }""")
    [error] = body["errors"]
    assert error["extensions"]["code"] == "invalid_filter"
    assert error["message"] == "Invalid filter #1: values: Input should be a valid list"


async def test_graphql_messages_do_not_echo_huge_inputs(client):
    name = "x" * 50_000
    r = await client.post("/graphql", json={"query": "{ " + name + " }"})
    [error] = r.json()["errors"]
    assert error["extensions"]["code"] == "graphql_validation_error"
    assert len(error["message"]) < 400
