"""Attack class: two filters that differ only in a value must never be one question.

Every cache in front of the warehouse is keyed on the request: the compiled-SQL cache, the
result cache (in process and in Redis) and rollup routing. A key built from text rewritten
around literals made `'At Risk'` and `'At  Risk'` one key: the second filter was answered with
the first one's rows, and a tenant whose row-policy claim differed from another's by a space
read the other's rows. The reproductions run through a real app and hand-written SQL; the
properties (hypothesis) pair values that differ in white space, case, Unicode look-alikes,
escapes and type (True / 1 / 1.0 / '1'). Rollup routing has its property beside the rollup
tests (tests/rollups/test_filter_identity.py), where the built rollups are."""

from __future__ import annotations

import base64

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tally.cache.keys import result_key
from tally.core.filters import StructuredFilter
from tally.core.request import QueryRequest
from tests.support.hand_sql import VALID_ORDERS

STATUS = "{{ Dimension('customer__customer_status') }}"
AT_RISK_ORDERS = "select count(*) from enriched_orders where customer__customer_status = ?"


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _orders(raw, status: str) -> int:
    return int(raw.execute(f"with {VALID_ORDERS} {AT_RISK_ORDERS}", [status]).fetchone()[0])


@pytest.mark.parametrize("spelling", ["At  Risk", "At Risk ", "at risk", "At\u00a0Risk",
                                      "\u0410t Risk"])
def test_a_filter_value_differing_in_one_character_is_another_question(client, secured, raw,
                                                                       spelling):
    """'At Risk' first fills every cache; each spelling after it is answered for itself."""
    token = secured.keys["admin"]
    body = {"metrics": ["order_count"], "where": [f"{STATUS} = 'At Risk'"]}
    first = client.query(body, token)
    assert first.status_code == 200, first.text
    expected = _orders(raw, "At Risk")
    assert expected > 0
    assert first.json()["data"][0]["order_count"] == expected
    other = client.query({**body, "where": [f"{STATUS} = {_sql_string(spelling)}"]}, token)
    assert other.status_code == 200, other.text
    assert not other.json()["cache"]["hit"]
    served = [row["order_count"] for row in other.json()["data"]]
    assert served in ([], [0], [None]) and _orders(raw, spelling) == 0
    assert spelling in other.json()["sql"]  # its own SQL, not the first filter's


def test_read_cache_false_on_the_dbt_semantic_layer_api_answers_the_filter_given(client,
                                                                                  secured, raw):
    token = secured.keys["admin"]
    mutation = """mutation($w: [WhereInput!]) { createSynchronousQuery(environmentId: 1,
        metrics: [{name: "order_count"}], where: $w, readCache: false) {
        status error arrowResult } }"""
    answers = {}
    for status in ("At Risk", "At  Risk"):
        where = [{"sql": f"{STATUS} = {_sql_string(status)}"}]
        body = client.request("POST", "/api/graphql", token,
                              json={"query": mutation, "variables": {"w": where}}).json()
        assert "errors" not in body, body
        result = body["data"]["createSynchronousQuery"]
        assert result["status"] == "SUCCESSFUL", result["error"]
        table = pa.ipc.open_stream(base64.b64decode(result["arrowResult"])).read_all()
        answers[status] = [v for row in table.to_pylist() for v in row.values()]
    assert answers["At Risk"] == [_orders(raw, "At Risk")]
    assert answers["At  Risk"] in ([], [0], [None])


ORG_POLICY = """
  - role: org
    row_filters:
      - "{{ Dimension('customer__customer_status') }} = {{ claims.org }}"
"""


@pytest.fixture
def org_client(secured, client_with, tmp_path_factory):
    """The secured project plus a role whose row filter binds a claim into template SQL."""
    import shutil

    project = tmp_path_factory.mktemp("org") / "project"
    shutil.copytree(secured.project_dir, project)
    (project / "tally.yml").write_text((project / "tally.yml").read_text() + ORG_POLICY)
    return client_with(project_dir=project)


def test_a_claim_differing_by_a_space_never_reads_another_tenants_rows(org_client, secured,
                                                                       raw):
    body = {"metrics": ["order_count"]}
    real = org_client.query(body, secured.hs(roles=["org"], org="At Risk", sub="real"))
    assert real.status_code == 200, real.text
    assert real.json()["data"][0]["order_count"] == _orders(raw, "At Risk") > 0
    spaced = org_client.query(body, secured.hs(roles=["org"], org="At  Risk", sub="spaced"))
    assert spaced.status_code == 200, spaced.text
    assert [r["order_count"] for r in spaced.json()["data"]] in ([], [0], [None])


# Properties ---------------------------------------------------------------------------------

LOOK_ALIKES = {"A": "\u0410", "a": "\u0430", "e": "\u0435", "o": "\u043e", " ": "\u00a0",
               "i": "\u0456", "-": "\u2010"}


@st.composite
def differing_values(draw) -> tuple[object, object]:
    """Two filter values that are different values, though often alike to the eye or equal
    to Python (True == 1 == 1.0)."""
    kind = draw(st.sampled_from(["text", "typed"]))
    if kind == "typed":
        a, b = draw(st.lists(st.sampled_from([True, 1, 1.0, "1", "true", "1.0", 1.5]),
                             min_size=2, max_size=2, unique_by=lambda v: (type(v), v)))
        return a, b
    base = draw(st.sampled_from(["At Risk", "High Value", "New Customer", " x", "a b c"])
                | st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
                          min_size=1, max_size=12))
    how = draw(st.sampled_from(["space", "double", "tab", "case", "look", "quote",
                                "backslash"]))
    i = draw(st.integers(0, len(base)))
    if how == "space":
        other = base[:i] + " " + base[i:]
    elif how == "double":
        other = base.replace(" ", "  ") if " " in base else base + "  "
    elif how == "tab":
        other = base.replace(" ", "\t", 1) if " " in base else base + "\t"
    elif how == "case":
        other = base.swapcase()
    elif how == "look":
        other = "".join(LOOK_ALIKES.get(c, c) for c in base)
    elif how == "quote":
        other = base[:i] + "'" + base[i:]
    else:
        other = base[:i] + "\\" + base[i:]
    assume(other != base)
    return base, other


def _filters(value: object) -> list[object]:
    """The value as a structured filter and, for text, as template SQL."""
    structured = StructuredFilter.parse({"dimension": "customer__customer_status", "op": "=",
                                         "values": [value]})
    if isinstance(value, str):
        return [structured, f"{STATUS} = {_sql_string(value)}"]
    return [structured]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(differing_values())
def test_filters_that_differ_in_a_value_never_share_a_result_key(pair):
    a, b = pair
    for fa in _filters(a):
        for fb in _filters(b):
            ka = result_key(QueryRequest.create(metrics=["order_count"], where=[fa]), "m", "d")
            kb = result_key(QueryRequest.create(metrics=["order_count"], where=[fb]), "m", "d")
            assert ka != kb, (fa, fb)


@settings(max_examples=60, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(differing_values())
def test_filters_that_differ_in_a_value_never_share_compiled_sql(service, pair):
    """Whichever filter compiles first, the other gets SQL of its own: the compiled-SQL cache
    gives what an uncached compile gives."""
    compiler = service.compiler
    for value in pair:
        for where in _filters(value):
            request = QueryRequest.create(metrics=["order_count"], where=[where])
            cached = compiler.compile(request).sql
            assert cached == compiler._compile(request, None).sql, where
    first, second = (QueryRequest.create(metrics=["order_count"], where=[_filters(v)[0]])
                     for v in pair)
    assert compiler.compile(first).sql != compiler.compile(second).sql


def test_spellings_of_one_filter_still_share_a_result_key():
    """What did not change: spaces between tokens, keyword case, the quotes around a
    reference's name, SQL vs structured."""
    spellings = [f"{STATUS} = 'At Risk'", "{{Dimension(\"customer__customer_status\")}}='At Risk'",
                 {"dimension": "customer__customer_status", "op": "=", "value": "At Risk"}]
    keys = {result_key(QueryRequest.create(metrics=["order_count"], where=[s]), "m", "d")
            for s in spellings}
    assert len(keys) == 1


# Filters are compared in the warehouse's own dialect ------------------------------------------

CASTS = ["CHAR", "VARCHAR", "TEXT"]


def test_casts_a_dialect_writes_apart_never_share_a_key_there():
    """sqlglot's DuckDB dialect writes CHAR, VARCHAR and TEXT alike (DuckDB treats them alike);
    PostgreSQL does not (CAST('DE' AS CHAR) is 'D'), so on PostgreSQL they are three keys."""
    def key(cast: str, dialect: str) -> str:
        where = f"CAST({{{{ Dimension('customer__country') }}}} AS {cast}) = 'D'"
        return result_key(QueryRequest.create(metrics=["customers"], where=[where]), "m", "d",
                          (), dialect)  # fmt: skip

    assert len({key(c, "postgres") for c in CASTS}) == 3
    assert len({key(c, "duckdb") for c in CASTS}) == 1  # one question in DuckDB


@pytest.fixture(scope="module")
def postgres_service(engines, pg_warehouse):
    from tally.warehouse.postgres import PostgresWarehouse
    from tests.support.services import ServiceFactory

    factory = ServiceFactory(engines, pg_warehouse.manifest_path,
                             lambda: PostgresWarehouse(**pg_warehouse.conn()), target="postgres")
    yield factory.service()
    factory.close()


def test_on_postgres_a_char_cast_is_not_answered_from_a_varchar_one(postgres_service, raw):
    from tally.core.caller import ANONYMOUS

    def served(cast: str):
        where = f"CAST({{{{ Dimension('customer__country') }}}} AS {cast}) = 'D'"
        result = postgres_service.query(
            QueryRequest.create(metrics=["customers"], where=[where]), ANONYMOUS)
        return result.cache.hit, result.table.column("customers").to_pylist()

    # PostgreSQL's CHAR is one character: the valid customers of countries starting with D.
    expected = raw.execute(f"with {VALID_ORDERS} select count(*) from valid_customers "
                           "where left(country, 1) = 'D'").fetchone()[0]
    assert expected > 0
    assert served("VARCHAR")[1] in ([], [0], [None])  # no two-letter country is 'D'
    hit, rows = served("CHAR")
    assert not hit and rows == [expected]
