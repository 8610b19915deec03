from __future__ import annotations

import decimal
import io
import json

import pyarrow as pa
import pytest

from tests.support.assertions import assert_error
from tests.support.clients import asgi_client
from tests.support.warehouses import missing_warehouse

pytestmark = pytest.mark.anyio

Q = {"metrics": ["revenue", "order_count"], "group_by": ["metric_time__year"]}


async def test_json_result_has_the_design_shape(client):
    r = await client.post("/api/v1/query", json=Q)
    assert r.status_code == 200
    body = json.loads(r.text, parse_float=decimal.Decimal)
    assert list(body) == ["columns", "data", "row_count", "sql", "cache", "timing_ms", "rollup"]
    assert body["columns"] == [
        {"name": "metric_time__year", "type": "date"},
        {"name": "revenue", "type": "decimal"},
        {"name": "order_count", "type": "integer"},
    ]
    assert body["row_count"] == 4 and body["data"][0]["metric_time__year"] == "2022-01-01"
    assert isinstance(body["data"][0]["revenue"], decimal.Decimal)
    assert body["cache"] == {"hit": False, "age_seconds": 0}
    assert set(body["timing_ms"]) == {"compile", "execute", "total"}
    assert r.headers["x-tally-cache"] == "miss" and r.headers["x-request-id"]


async def test_formats_agree(client):
    js = (await client.post("/api/v1/query", json=Q)).json()
    csv = await client.post("/api/v1/query", json=Q, headers={"accept": "text/csv"})
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.strip().splitlines()
    assert lines[0] == '"metric_time__year","revenue","order_count"' and len(lines) == 5
    arrow = await client.post(
        "/api/v1/query", json=Q, headers={"accept": "application/vnd.apache.arrow.stream"}
    )
    assert arrow.headers["content-type"] == "application/vnd.apache.arrow.stream"
    table = pa.ipc.open_stream(io.BytesIO(arrow.content)).read_all()
    assert pa.types.is_decimal(table.schema.field("revenue").type)
    assert [float(v) for v in table.column("revenue").to_pylist()] == [
        row["revenue"] for row in js["data"]
    ]
    assert [int(line.split(",")[2]) for line in lines[1:]] == table.column(
        "order_count"
    ).to_pylist()


@pytest.mark.parametrize(
    "accept,fmt",
    [
        ("*/*", "json"),
        ("text/csv;q=0.5, application/json", "json"),
        ("text/html, text/csv;q=0.9", "csv"),
    ],
)
async def test_accept_negotiation(client, accept, fmt):
    r = await client.post("/api/v1/query", json=Q, headers={"accept": accept})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith(
        {"json": "application/json", "csv": "text/csv"}[fmt]
    )


async def test_structured_filters_equal_raw_where(client):
    structured = await client.post(
        "/api/v1/query",
        json={
            **Q,
            "where": [
                {"dimension": "customer__country", "op": "in", "values": ["US", "DE"]},
                {"dimension": "order__order_status", "op": "!=", "value": "cancelled"},
            ],
        },
    )
    raw = await client.post(
        "/api/v1/query",
        json={
            **Q,
            "where": [
                "{{ Dimension('customer__country') }} in ('US', 'DE')",
                "{{ Dimension('order__order_status') }} <> 'cancelled'",
            ],
        },
    )
    everything = await client.post("/api/v1/query", json=Q)
    assert structured.status_code == raw.status_code == 200
    assert structured.json()["data"] == raw.json()["data"] != everything.json()["data"]


async def test_time_range_order_and_limit(client):
    r = await client.post(
        "/api/v1/query",
        json={
            "metrics": ["revenue"],
            "group_by": ["metric_time__month"],
            "start": "2024-01-01",
            "end": "2024-06-30",
            "order_by": ["-revenue"],
            "limit": 3,
        },
    )
    data = r.json()["data"]
    assert len(data) == 3
    assert all("2024-01-01" <= row["metric_time__month"] <= "2024-06-01" for row in data)
    assert [row["revenue"] for row in data] == sorted(
        (row["revenue"] for row in data), reverse=True
    )


async def test_compile(client):
    r = await client.post("/api/v1/compile", json=Q)
    assert r.status_code == 200 and "SELECT" in r.json()["sql"]


async def test_etag_and_cache_control(client):
    first = await client.post("/api/v1/query", json=Q)
    etag = first.headers["etag"]
    assert etag.startswith('W/"') and first.headers["cache-control"] == "private, max-age=300"
    again = await client.post("/api/v1/query", json=Q, headers={"if-none-match": etag})
    assert again.status_code == 304 and again.content == b""
    csv = await client.post(
        "/api/v1/query", json=Q, headers={"if-none-match": etag, "accept": "text/csv"}
    )
    assert csv.status_code == 200  # another representation, another tag


@pytest.mark.parametrize(
    "body,status,code,needle",
    [
        ({"metrics": ["revenu"]}, 400, "unknown_metric", "Did you mean 'revenue'?"),
        (
            {"metrics": ["revenue"], "group_by": ["customer__countr"]},
            400,
            "unknown_dimension",
            "Did you mean 'customer__country'?",
        ),
        ({"metrics": ["revenue"], "group_by": ["metric_time__hour"]}, 400, "invalid_grain", "day"),
        (
            {"metrics": ["revenue"], "group_by": ["metric_time__fortnight"]},
            400,
            "invalid_grain",
            "week",
        ),
        (
            {"metrics": ["revenue"], "where": ["country = 'US'"]},
            400,
            "invalid_filter",
            "no dimension",
        ),
        (
            {
                "metrics": ["revenue"],
                "where": ["{{ Dimension('customer__country') }} = 'US'; drop table raw.orders"],
            },
            400,
            "invalid_filter",
            "one expression",
        ),
        (
            {
                "metrics": ["revenue"],
                "where": ["{{ Dimension('customer__country') }} in (select 1)"],
            },
            400,
            "invalid_filter",
            "Subquery",
        ),
        (
            {
                "metrics": ["revenue"],
                "where": [{"dimension": "customer__country", "op": "like", "value": "U%"}],
            },
            400,
            "invalid_filter",
            "Unknown filter op",
        ),
        (
            {
                "metrics": ["revenue"],
                "where": [{"dimension": "customer__contry", "op": "=", "value": "US"}],
            },
            400,
            "unknown_dimension",
            "Did you mean 'customer__country'?",
        ),
        ({"metrics": ["revenue"], "limit": -1}, 400, "invalid_request", "limit must be 0 or more"),
        ({"metrics": ["revenue"], "limit": "many"}, 400, "invalid_request", "limit"),
        ({"metrics": []}, 400, "invalid_request", "at least one metric"),
        ({"metrics": "revenue"}, 400, "invalid_request", "metrics"),
        ({"metrics": ["revenue"], "colour": "red"}, 400, "invalid_request", "colour"),
        ({"metrics": ["revenue"], "order_by": ["-revenu"]}, 400, "invalid_order_by", "revenue"),
        ({"metrics": ["revenue_growth_mom"]}, 400, "invalid_query", "metric_time"),
        ({"metrics": ["revenue"], "start": "soon"}, 400, "invalid_request", "ISO date"),
        ({"saved_query": "nope"}, 400, "unknown_saved_query", "nope"),
        ({"metrics": ["revenue"], "group_by": [1, 2]}, 400, "invalid_request", "group_by.0"),
        ({"metrics": ["revenue"], "where": 5}, 400, "invalid_request", "where"),
        ({"metrics": ["revenue"], "order_by": "-revenue"}, 400, "invalid_request", "order_by"),
        ({"metrics": [None]}, 400, "invalid_request", "metrics.0"),
        ({"metrics": ["revenue"], "where": [{"dimension": "customer__country"}]}, 400,
         "invalid_filter", "needs 'value' or 'values'"),
        ({"metrics": ["revenue"], "where": [{"dimension": "customer__country", "value": "US",
                                             "colour": "red"}]}, 400, "invalid_request", "colour"),
        (["revenue"], 400, "invalid_request", "JSON object"),
        ("revenue", 400, "invalid_request", "JSON object"),
        (None, 400, "invalid_request", "JSON object"),
    ],
)
async def test_bad_input_gets_a_4xx_in_the_one_error_shape(client, body, status, code, needle):
    assert_error(await client.post("/api/v1/query", json=body), status, code, needle)


async def test_no_body_and_unsupported_formats(client):
    assert_error(await client.post("/api/v1/query"), 400, "invalid_request", "JSON object")
    for accept in ("application/xml", "text/html", "image/png;q=1, application/json;q=0"):
        err = assert_error(
            await client.post("/api/v1/query", json=Q, headers={"accept": accept}),
            406, "not_acceptable", accept.split(",")[0].split(";")[0])
        assert err["details"]["supported"] == [
            "application/json", "text/csv", "application/vnd.apache.arrow.stream",
            "application/x-ndjson"]
    assert_error(await client.post("/api/v1/saved-queries/nope/query"), 404,
                 "unknown_saved_query", "nope")


async def test_wrong_content_type_unsupported_accept_and_bad_json(client):
    assert_error(
        await client.post(
            "/api/v1/query", content=json.dumps(Q), headers={"content-type": "text/plain"}
        ),
        415,
        "unsupported_media_type",
        "application/json",
    )
    assert_error(
        await client.post("/api/v1/query", json=Q, headers={"accept": "text/html"}),
        406,
        "not_acceptable",
        "text/html",
    )
    assert_error(
        await client.post(
            "/api/v1/query", content="{nope", headers={"content-type": "application/json"}
        ),
        400,
        "invalid_request",
        "not valid JSON",
    )
    assert_error(await client.get("/api/v1/query"), 405, "method_not_allowed")
    assert_error(await client.get("/api/v1/nothing-here"), 404, "not_found")


async def test_the_data_is_unchanged_by_hostile_filters(client, raw):
    before = raw.execute("select count(*) from raw.orders").fetchall()
    for where in [
        "{{ Dimension('customer__country') }} = 'US'); delete from raw.orders; --",
        "{{ Dimension('customer__country') }} = 'x' or 1=1; drop table raw.orders",
        "{{ Dimension('customer__country') }} = '' || (select 1)",
    ]:
        r = await client.post("/api/v1/query", json={"metrics": ["revenue"], "where": [where]})
        assert r.status_code == 400, r.text
    assert raw.execute("select count(*) from raw.orders").fetchall() == before


async def test_warehouse_failure_is_a_5xx_without_internals(make_app, tmp_path):
    async with asgi_client(make_app(missing_warehouse(tmp_path))) as c:
        r = await c.post("/api/v1/query", json=Q)
    err = assert_error(r, 503, "warehouse_unavailable", "tally build")
    assert "Traceback" not in err["message"]
