"""tally_client (clients/python) against a real `tally serve`: numbers equal hand-written SQL
over raw.* at several grains, group-bys and filters, sync and async; the catalog as typed
objects; the server's errors as exceptions with code and suggestion; ETag revalidation; embed
tokens; retries on a real 429 (and, through a fault-injecting transport, on 503)."""

from __future__ import annotations

import asyncio
import time

import httpx
import jwt
import pyarrow as pa
import pytest
from tally_client import AsyncClient, Client, Filter, GroupBy, Metric, Query, TallyAPIError, desc
from tally_client.client import retry_after_seconds

from tests.support.hand_dashboards import order_metric
from tests.support.hand_sql import assert_rows_match


@pytest.fixture(scope="module")
def client(tally_server) -> Client:
    with Client(tally_server.http) as c:
        yield c


CASES = [
    # (group-bys, countries filter, start, end)
    ((GroupBy("metric_time", "month"),), None, None, None),
    ((GroupBy("metric_time", "quarter"),), ["DE", "FR"], None, None),
    ((GroupBy("metric_time", "year"), "customer__country"), None, None, None),
    (("customer__country",), None, "2025-01-01", "2025-06-30"),
    (("metric_time__week",), ["US"], "2025-10-01", "2025-12-31"),
]


@pytest.mark.parametrize("metric", ["revenue", "order_count"])
@pytest.mark.parametrize(("group_by", "countries", "start", "end"), CASES)
def test_query_equals_hand_sql(client, raw, metric, group_by, countries, start, end):
    where = [Filter.isin("customer__country", countries)] if countries else []
    table = client.query(metrics=[metric], group_by=list(group_by), where=where,
                         start=start, end=end)  # fmt: skip
    assert isinstance(table, pa.Table)
    names = [str(g) for g in group_by]
    assert table.column_names == [*names, metric]
    expected = order_metric(raw, metric, names, start, end, countries)
    assert_rows_match(table.to_pylist(), expected, names, metric, absent="zero")


def test_order_and_limit(client, raw):
    table = client.query(metrics=["revenue"], group_by=["customer__country"],
                         order_by=[desc("revenue")], limit=3)  # fmt: skip
    expected = sorted(order_metric(raw, "revenue", ["customer__country"]),
                      key=lambda r: r["revenue"], reverse=True)[:3]  # fmt: skip
    assert table.to_pylist() == expected


def test_a_query_object_and_a_saved_query(client):
    q = Query(metrics=["order_count"], group_by=["metric_time__year"],
              order_by=["metric_time__year"])
    by_object = client.query(q)
    assert by_object.equals(client.query(metrics=["order_count"], group_by=["metric_time__year"],
                                         order_by=["metric_time__year"]))  # fmt: skip
    name = client.saved_queries()[0].name
    saved = client.saved_query(name, limit=2)
    assert isinstance(saved, pa.Table) and saved.num_rows <= 2


def test_async_client_answers_like_the_sync_one(tally_server, client):
    requests = [dict(metrics=["revenue"], group_by=["metric_time__month"]),
                dict(metrics=["order_count"], group_by=["customer__country"], limit=4,
                     order_by=["customer__country"])]  # fmt: skip

    async def run() -> list[pa.Table]:
        async with AsyncClient(tally_server.http) as ac:
            tables = await asyncio.gather(*(ac.query(**r) for r in requests))
            metrics = await ac.metrics()
            assert any(m.name == "revenue" for m in metrics)
            return list(tables)

    for table, r in zip(asyncio.run(run()), requests, strict=True):
        assert table.equals(client.query(**r))


def test_catalog_is_typed(client):
    metrics = {m.name: m for m in client.metrics()}
    assert isinstance(metrics["revenue"], Metric)
    assert metrics["revenue"].format == "currency" and metrics["retention_rate"].format == "percent"
    revenue = client.metric("revenue")
    assert "customer__country" in {d.name for d in revenue.dimensions}
    time_dims = [d for d in client.dimensions(["revenue"]) if d.name == "metric_time"]
    assert time_dims and "month" in time_dims[0].grains
    assert {e.name for e in client.entities(["revenue"])} >= {"customer", "order"}
    values = client.dimension_values("customer__country")
    assert "DE" in values.column(0).to_pylist()


@pytest.mark.parametrize(("kwargs", "status", "code", "suggestion"), [
    (dict(metrics=["revenu"]), 400, "unknown_metric", "revenue"),
    (dict(metrics=["revenue"], group_by=["customer__countyr"]), 400, "unknown_dimension",
     "customer__country"),
    (dict(metrics=["revenue"], group_by=["metric_time__fortnight"]), 400, "invalid_grain", None),
])  # fmt: skip
def test_errors_carry_code_message_and_suggestion(client, kwargs, status, code, suggestion):
    with pytest.raises(TallyAPIError) as e:
        client.query(**kwargs)
    assert (e.value.status, e.value.code) == (status, code)
    assert e.value.message and "Traceback" not in e.value.message
    if suggestion:
        assert e.value.suggestion == suggestion


def test_unknown_metric_on_a_resource_route(client):
    with pytest.raises(TallyAPIError) as e:
        client.metric("ordr_count")
    assert (e.value.status, e.value.code, e.value.suggestion) == (404, "unknown_metric",
                                                                  "order_count")


def test_etag_revalidation_gets_a_304_and_the_same_table(tally_server):
    seen: list[tuple[str | None, int]] = []

    def record(response: httpx.Response) -> None:
        seen.append((response.request.headers.get("if-none-match"), response.status_code))

    http = httpx.Client(base_url=tally_server.http, event_hooks={"response": [record]})
    with Client(tally_server.http, http=http) as c:
        first = c.query(metrics=["revenue"], group_by=["customer__country"])
        second = c.query(metrics=["revenue"], group_by=["customer__country"])
    assert seen[0] == (None, 200)
    assert seen[1][0] is not None and seen[1][1] == 304
    assert second.equals(first)


def test_embed_token_sees_only_its_tenant(tally_server, mint, raw):
    token = mint(["DE"], metrics=["revenue", "order_count"])
    with Client(tally_server.http, token=token) as c:
        table = c.query(metrics=["revenue"], group_by=["customer__country", "metric_time__year"])
        assert set(table.column("customer__country").to_pylist()) == {"DE"}
        expected = order_metric(raw, "revenue", ["customer__country", "metric_time__year"],
                                countries=["DE"])  # fmt: skip
        assert_rows_match(table.to_pylist(), expected, ["customer__country", "metric_time__year"],
                          "revenue")  # fmt: skip
        with pytest.raises(TallyAPIError) as e:
            c.query(metrics=["gross_margin"])
        assert (e.value.status, e.value.code) == (403, "forbidden")
    # A browser that widens its token's claims breaks its signature.
    payload = jwt.decode(token, options={"verify_signature": False})
    payload["tally"]["claims"]["countries"] = ["DE", "US"]
    forged = jwt.encode(payload, "a-guess-at-the-embed-secret-of-32-bytes", algorithm="HS256",
                        headers={"kid": "tally-embed"})  # fmt: skip
    with Client(tally_server.http, token=forged) as bad, pytest.raises(TallyAPIError) as e:
        bad.query(metrics=["revenue"])
    assert (e.value.status, e.value.code) == (401, "unauthorized")


def test_a_real_429_is_retried_after_its_retry_after(tally_server, mint):
    """One token's burst spent by the client itself: every call still returns, each 429 was
    followed by a wait of at least its Retry-After, then the same request again."""
    token = mint(["SE"], metrics=["order_count"])
    seen: list[tuple[float, int, str | None]] = []

    def record(response: httpx.Response) -> None:
        seen.append((time.monotonic(), response.status_code, response.headers.get("retry-after")))

    http = httpx.Client(base_url=tally_server.http, event_hooks={"response": [record]})
    with Client(tally_server.http, token=token, http=http, max_retries=8) as c:
        for _ in range(150):
            assert c.query(metrics=["order_count"]).num_rows == 1
            if any(status == 429 for _, status, _ in seen):
                break
    limited = [i for i, (_, status, _) in enumerate(seen) if status == 429]
    assert limited, "the burst was never exceeded"
    for i in limited:
        at, _, after = seen[i]
        assert after is not None and seen[i + 1][0] - at >= float(after) * 0.9
    assert seen[-1][1] in (200, 304)


def _arrow_bytes() -> bytes:
    sink = pa.BufferOutputStream()
    table = pa.table({"order_count": [7]})
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def test_503_is_retried_with_backoff_then_given_up():
    """A warehouse that is down cannot be arranged on the shared server: this transport injects
    the 503s (the error shape is the server's)."""
    calls: list[float] = []
    busy = {"error": {"code": "warehouse_unavailable", "message": "down"}}

    def flaky(request: httpx.Request) -> httpx.Response:
        calls.append(time.monotonic())
        if len(calls) < 3:
            return httpx.Response(503, json=busy)
        return httpx.Response(200, content=_arrow_bytes(),
                              headers={"content-type": "application/vnd.apache.arrow.stream"})

    with Client("http://tally.test", backoff=0.05,
                http=httpx.Client(base_url="http://tally.test",
                                  transport=httpx.MockTransport(flaky))) as c:  # fmt: skip
        assert c.query(metrics=["order_count"]).to_pylist() == [{"order_count": 7}]
    assert len(calls) == 3 and calls[2] - calls[1] >= 0.09  # 0.05, then 0.1

    down = httpx.MockTransport(lambda request: httpx.Response(503, json=busy))
    with Client("http://tally.test", backoff=0.01, max_retries=2,
                http=httpx.Client(base_url="http://tally.test", transport=down)) as c, \
            pytest.raises(TallyAPIError) as e:  # fmt: skip
        c.query(metrics=["order_count"])
    assert (e.value.status, e.value.code) == (503, "warehouse_unavailable")


def test_retry_after_forms():
    assert retry_after_seconds("2") == 2.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    later = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 <= retry_after_seconds(later) <= 31
