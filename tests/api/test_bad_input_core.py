"""Bad input that the core refuses, seen over HTTP and GraphQL: one error shape, a 4xx, never a
500 or a warehouse fault. (Shapes of the transport's own errors are in test_query.py.)"""

from __future__ import annotations

import pytest

from tests.support.assertions import assert_error

pytestmark = pytest.mark.anyio

QUERY = {"metrics": ["revenue"], "group_by": ["metric_time__year"]}


@pytest.mark.parametrize("limit", ["1e400", "-1e400", "NaN", "Infinity", str(2**70)])
async def test_limits_that_are_not_row_counts_are_400(client, limit):
    # Raw JSON text: 1e400 and Infinity become float('inf') in the server's JSON parser.
    body = '{"metrics": ["revenue"], "limit": ' + limit + "}"
    r = await client.post(
        "/api/v1/query", content=body, headers={"content-type": "application/json"}
    )
    assert_error(r, 400, "invalid_request", "limit must be")


async def test_a_zoned_start_is_read_in_utc(client, raw):
    r = await client.post(
        "/api/v1/query",
        json={
            "metrics": ["order_count"],
            "group_by": ["metric_time__day"],
            "start": "2025-01-01T01:00:00+02:00",
            "end": "2025-01-01T00:00:00Z",
        },
    )
    assert r.status_code == 200, r.text
    days = [row["metric_time__day"] for row in r.json()["data"]]
    assert days == ["2024-12-31", "2025-01-01"]


@pytest.mark.parametrize(
    "where",
    [
        {"dimension": "customer__country", "op": ">", "value": 5},
        {"dimension": "metric_time", "op": ">=", "value": "not a date"},
        "cast({{ Dimension('customer__country') }} as integer) = 1",
        "{{ Dimension('customer__country') }} + 1 = 2",
    ],
)
async def test_filter_values_of_the_wrong_type_are_the_callers_mistake(client, where):
    r = await client.post("/api/v1/query", json={**QUERY, "where": [where]})
    error = assert_error(r, 400, "invalid_filter", "does not fit the data")
    assert "Compare each dimension with a value of its type" in error["message"]
    # Not counted as a warehouse fault.
    metrics = (await client.get("/metrics")).text
    assert "tally_warehouse_errors_total 0.0" in metrics


async def test_wrong_typed_filter_over_graphql_carries_the_code(client):
    r = await client.post(
        "/graphql",
        json={
            "query": '{ query(metrics: ["revenue"], '
            'where: ["{{ Dimension(\'customer__country\') }} > 5"]) { rowCount } }'
        },
    )
    errors = r.json()["errors"]
    assert errors[0]["extensions"]["code"] == "invalid_filter"
    assert "does not fit the data" in errors[0]["message"]


async def test_a_huge_name_is_refused_without_echoing_it(client):
    r = await client.post("/api/v1/query", json={**QUERY, "group_by": ["x" * 200_000]})
    error = assert_error(r, 400, "invalid_request", "too long")
    assert len(r.content) < 1_000 and len(error["message"]) < 300


async def test_a_string_value_that_looks_like_tallys_placeholder_is_not_rewritten(client):
    r = await client.post(
        "/api/v1/compile",
        json={
            **QUERY,
            "where": [{"dimension": "customer__country", "op": "=", "value": "__tally_ref_0__"}],
        },
    )
    assert r.status_code == 200, r.text
    assert "'__tally_ref_0__'" in r.json()["sql"]
