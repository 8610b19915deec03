"""The tenant matrix: every protocol x every question x {cold, warm after an admin asked, warm
after another tenant asked}, the tenant's numbers against SQL written by hand over raw.*.

One real secured `tally serve` (HTTP, Flight SQL, MCP at /mcp) and `tally mcp` over stdio, all
sharing one Redis cache (a prefix of their own), so that "warm" means warm across processes
too. "Cold" is after the admin's cache invalidation (a shared data generation: every process).
The tenant is limited to DE and US by its token's claims; the other tenant to FR. A leak of any
cached row, through any protocol, shows as a country the tenant may not see or as a number that
is not its own."""

from __future__ import annotations

import base64
import csv
import decimal
import io
import time
from collections.abc import Callable, Iterator
from typing import Any

import adbc_driver_flightsql.dbapi as flightsql
import httpx
import pyarrow as pa
import pytest
from adbc_driver_flightsql import DatabaseOptions

from tests.support.hand_sql import expected_rows
from tests.support.mcp_clients import McpSession, http_session, stdio_session
from tests.support.processes import start_server, stop_server
from tests.support.redis import clean_prefix, machine_redis_url

TENANT, OTHER = ("DE", "US"), ("FR",)
Rows = dict[tuple, tuple]  # group key -> metric values

QUESTION = {"metrics": ["revenue", "order_count"],
            "group_by": ["metric_time__year", "customer__country"]}
SAVED = "revenue_by_country_by_month"
HAND = {
    "query": """select cast(date_trunc('year', order_date) as date) as t, customer__country as c,
                       sum(net_amount) filter (where order_status = 'completed') as m1,
                       count(*) as m2
                from enriched_orders group by 1, 2""",
    # Every month and country with an order: the metrics count completed ones (0 if none).
    "saved": """select cast(date_trunc('month', order_date) as date) as t, customer__country as c,
                       coalesce(sum(net_amount) filter (where order_status = 'completed'), 0)
                           as m1,
                       count(*) filter (where order_status = 'completed') as m2
                from enriched_orders group by 1, 2""",
    "values": "select distinct customer__country as c from enriched_orders",
}


def _hand(raw, question: str, countries: tuple[str, ...]) -> Rows:
    out: Rows = {}
    for r in expected_rows(raw, HAND[question]):
        if r["c"] not in countries:
            continue
        if question == "values":
            out[(r["c"],)] = ()
        else:
            out[(str(r["t"])[:10], r["c"])] = (_num(r["m1"]), _num(r["m2"]))
    return out


def _num(v: Any) -> decimal.Decimal | None:
    return None if v is None or v == "" else decimal.Decimal(str(v))  # "": a CSV null


def _assert_same(served: Rows, expected: Rows, where: str) -> None:
    extra = {k: served[k] for k in set(served) - set(expected)}
    assert set(served) == set(expected), (where, extra)  # not one group of another country
    for key, want in expected.items():
        got = served[key]
        for g, w in zip(got, want, strict=True):
            assert (g is None and w is None) or (
                g is not None and w is not None and abs(g - w) <= abs(w) * decimal.Decimal(
                    "1e-12")), (where, key, got, want)


def _rows(records: list[dict[str, Any]], question: str) -> Rows:
    """Served records (any protocol, any case of column names) in the shape of _hand."""
    out: Rows = {}
    for rec in records:
        r = {k.lower(): v for k, v in rec.items()}
        if question == "values":
            out[(r["customer__country"],)] = ()
            continue
        time_col = "metric_time__year" if question == "query" else "metric_time__month"
        metrics = ("revenue", "order_count") if question == "query" else \
            ("revenue", "completed_orders")
        key = (str(r[time_col])[:10], r["customer__country"])
        out[key] = tuple(_num(r[m]) for m in metrics)
    return out


# The protocols: each asks one of the questions with a token and returns the served records --

class Protocols:
    def __init__(self, http: str, flight: str, stdio_for: Callable[[str], McpSession]):
        self.http, self.flight, self._stdio_for = http, flight, stdio_for
        self._mcp_http: dict[str, McpSession] = {}

    def _post(self, token: str, path: str, **kw) -> httpx.Response:
        r = httpx.post(f"{self.http}{path}", headers={"authorization": f"Bearer {token}"},
                       timeout=60, **kw)
        assert r.status_code in (200, 202), (path, r.status_code, r.text[:500])
        return r

    def rest(self, token: str, question: str) -> list[dict]:
        if question == "values":
            r = httpx.get(f"{self.http}/api/v1/dimension-values", params={
                "dimension": "customer__country", "metrics": "revenue"},
                headers={"authorization": f"Bearer {token}"}, timeout=60)
            assert r.status_code == 200, r.text
            return [{"customer__country": v} for v in r.json()["values"]]
        if question == "saved":
            return self._post(token, f"/api/v1/saved-queries/{SAVED}/query", json={}).json()[
                "data"]
        return self._post(token, "/api/v1/query", json=QUESTION).json()["data"]

    def graphql(self, token: str, question: str) -> list[dict]:
        saved = '{ query(savedQuery: "' + SAVED + '") { rows } }'
        query = saved if question == "saved" else (
            '{ query(metrics: ["revenue", "order_count"], groupBy: ["metric_time__year", '
            '"customer__country"]) { rows } }')
        body = self._post(token, "/graphql", json={"query": query}).json()
        assert "errors" not in body, body
        return body["data"]["query"]["rows"]

    def dbt_sl(self, token: str, question: str) -> list[dict]:
        if question == "values":
            create = ('mutation { createDimensionValuesQuery(environmentId: 1, groupBy: '
                      '[{name: "customer__country"}], metrics: [{name: "revenue"}]) { queryId } }')
            key = "createDimensionValuesQuery"
        else:
            args = f'savedQuery: "{SAVED}"' if question == "saved" else (
                'metrics: [{name: "revenue"}, {name: "order_count"}], groupBy: [{name: '
                '"metric_time", grain: YEAR}, {name: "customer__country"}]')
            create, key = f"mutation {{ createQuery(environmentId: 1, {args}) {{ queryId }} }}", \
                "createQuery"
        created = self._post(token, "/api/graphql", json={"query": create}).json()
        assert "errors" not in created, created
        job = created["data"][key]["queryId"]
        poll = """query($id: String!) { query(environmentId: 1, queryId: $id) {
                  status error arrowResult } }"""
        for _ in range(600):
            got = self._post(token, "/api/graphql", json={"query": poll,
                                                          "variables": {"id": job}}).json()
            result = got["data"]["query"]
            if result["status"] in ("SUCCESSFUL", "FAILED"):
                assert result["status"] == "SUCCESSFUL", result["error"]
                table = pa.ipc.open_stream(base64.b64decode(result["arrowResult"])).read_all()
                return table.to_pylist()
            time.sleep(0.05)
        raise AssertionError("the dbt SL query never finished")

    def rest_jobs(self, token: str, question: str) -> list[dict]:
        body = {"saved_query": SAVED} if question == "saved" else QUESTION
        location = self._post(token, "/api/v1/queries", json=body).headers["location"]
        headers = {"authorization": f"Bearer {token}"}
        for _ in range(600):
            state = httpx.get(f"{self.http}{location}", headers=headers, timeout=60).json()
            if state["status"] in ("SUCCESSFUL", "FAILED"):
                assert state["status"] == "SUCCESSFUL", state
                return httpx.get(f"{self.http}{location}/result", headers=headers,
                                 timeout=60).json()["data"]
            time.sleep(0.05)
        raise AssertionError("the REST job never finished")

    def flight_sql(self, token: str, question: str) -> list[dict]:
        statement = {
            "query": "select * from {{ semantic_layer.query(metrics=['revenue', 'order_count'],"
                     " group_by=['metric_time__year', 'customer__country']) }}",
            "saved": f"select * from {{{{ semantic_layer.query(saved_query='{SAVED}') }}}}",
            "values": "select * from {{ semantic_layer.dimension_values("
                      "group_by='customer__country', metrics=['revenue']) }}",
        }[question]
        conn = flightsql.connect(self.flight, db_kwargs={
            DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {token}",
            DatabaseOptions.WITH_COOKIE_MIDDLEWARE.value: "true"}, autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
                return cur.fetch_arrow_table().to_pylist()
        finally:
            conn.close()

    def _mcp(self, session: McpSession, question: str) -> list[dict]:
        if question == "values":
            values = session.ok("get_dimension_values", dimension="customer__country",
                                metrics=["revenue"])["values"]
            return [{"customer__country": v} for v in values]
        if question == "saved":
            return session.ok("query_saved_query", name=SAVED, limit=10_000)["data"]
        return session.ok("query_metrics", metrics=QUESTION["metrics"], limit=10_000,
                          group_by=[{"name": "metric_time", "grain": "year"},
                                    {"name": "customer__country"}])["data"]

    def mcp_http(self, token: str, question: str) -> list[dict]:
        if token not in self._mcp_http:
            self._mcp_http[token] = http_session(f"{self.http}/mcp", token)
        return self._mcp(self._mcp_http[token], question)

    def mcp_stdio(self, token: str, question: str) -> list[dict]:
        return self._mcp(self._stdio_for(token), question)

    def exports(self, token: str, question: str) -> list[dict]:
        body = {"saved_query": SAVED} if question == "saved" else QUESTION
        text = self._post(token, "/api/v1/exports", json={**body, "format": "csv"}).text
        return list(csv.DictReader(io.StringIO(text)))

    def close(self) -> None:
        for session in self._mcp_http.values():
            session.close()


PROTOCOLS = {  # protocol -> the questions it can ask
    "rest": ("query", "saved", "values"),
    "graphql": ("query", "saved"),
    "dbt_sl": ("query", "saved", "values"),
    "rest_jobs": ("query", "saved"),
    "flight_sql": ("query", "saved", "values"),
    "mcp_http": ("query", "saved", "values"),
    "mcp_stdio": ("query", "saved", "values"),
    "exports": ("query", "saved"),
}
CELLS = [(p, q) for p, questions in PROTOCOLS.items() for q in questions]
STATES = ("cold", "warm_after_admin", "warm_after_other_tenant")


@pytest.fixture(scope="module")
def matrix(secured, warehouse, tmp_path_factory) -> Iterator[Protocols]:
    url = machine_redis_url()
    with clean_prefix(url) as prefix:
        env = {"TALLY_PROJECT_DIR": str(secured.project_dir),
               "TALLY_MANIFEST_PATH": str(warehouse.manifest_path),
               "TALLY_DUCKDB_PATH": str(warehouse.duckdb_path),
               "TALLY_JWT_SECRET": secured.jwt_secret, "TALLY_CACHE_URL": url,
               "TALLY_CACHE_PREFIX": prefix, "TALLY_RATE_LIMIT_PER_MINUTE": "0"}
        served = start_server(tmp_path_factory.mktemp("matrix") / "serve.log", env,
                              clean_env=True)
        stdio: dict[str, McpSession] = {}

        def stdio_for(token: str) -> McpSession:
            if token not in stdio:
                import os

                base = {k: v for k, v in os.environ.items() if not k.startswith("TALLY_")}
                stdio[token] = stdio_session({**base, **env}, "--token", token)
            return stdio[token]

        protocols = Protocols(served.http, served.flight, stdio_for)
        try:
            yield protocols
        finally:
            protocols.close()
            for session in stdio.values():
                session.close()
            stop_server(served)


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize(("protocol", "question"), CELLS, ids=[f"{p}-{q}" for p, q in CELLS])
def test_a_tenant_gets_exactly_its_own_numbers(matrix, secured, raw, protocol, question, state):
    ask = getattr(matrix, protocol)
    admin, tenant = secured.keys["admin"], secured.tenant(*TENANT)
    invalidated = httpx.post(f"{matrix.http}/api/v1/cache/invalidate", timeout=30,
                             headers={"authorization": f"Bearer {admin}"})
    assert invalidated.status_code == 200, invalidated.text
    if state == "warm_after_admin":
        everyone = _rows(ask(admin, question), question)
        assert {k[-1] for k in everyone} > set(TENANT)  # the admin's answer holds more
    elif state == "warm_after_other_tenant":
        theirs = _rows(ask(secured.tenant(*OTHER), question), question)
        _assert_same(theirs, _hand(raw, question, OTHER), f"{protocol} {question}: other")
    served = _rows(ask(tenant, question), question)
    expected = _hand(raw, question, TENANT)
    assert expected and {k[-1] for k in expected} == set(TENANT)
    _assert_same(served, expected, f"{protocol} {question} {state}")
