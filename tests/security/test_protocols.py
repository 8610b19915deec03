"""Authentication and access policies on the dbt Semantic Layer's protocols and the asynchronous
jobs: a real secured `tally serve --flight-port` answers a tenant token with exactly its
country's numbers (against SQL written by hand over raw.*) over Flight SQL (the ADBC driver), the
dbt SL GraphQL API and REST asynchronous queries, and refuses bad credentials on each."""

from __future__ import annotations

import time

import adbc_driver_flightsql.dbapi as flightsql
import httpx
import pytest
from adbc_driver_flightsql import DatabaseOptions

from tests.support.hand_sql import expected_rows
from tests.support.processes import start_server, stop_server

REVENUE_BY_COUNTRY = """
    select customer__country, sum(net_amount) as revenue
    from enriched_orders where order_status = 'completed' group by 1"""
STATEMENT = """select * from {{ semantic_layer.query(metrics=['revenue'],
    group_by=['customer__country']) }}"""


@pytest.fixture(scope="module")
def server(secured, warehouse, tmp_path_factory):
    log = tmp_path_factory.mktemp("secured_server") / "serve.log"
    served = start_server(log, {"TALLY_PROJECT_DIR": str(secured.project_dir),
                                "TALLY_MANIFEST_PATH": str(warehouse.manifest_path),
                                "TALLY_DUCKDB_PATH": str(warehouse.duckdb_path),
                                "TALLY_JWT_SECRET": secured.jwt_secret}, clean_env=True)
    yield served.http, served.flight
    stop_server(served)


def _flight(url: str, token: str | None):
    kwargs = {DatabaseOptions.WITH_COOKIE_MIDDLEWARE.value: "true"}
    if token is not None:
        kwargs[DatabaseOptions.AUTHORIZATION_HEADER.value] = f"Bearer {token}"
    return flightsql.connect(url, db_kwargs=kwargs, autocommit=True)


def _fetch(url: str, token: str | None, statement: str):
    conn = _flight(url, token)
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
            return cur.fetch_arrow_table().to_pylist()
    finally:
        conn.close()


def _expected(raw, countries) -> dict:
    return {r["customer__country"]: float(r["revenue"])
            for r in expected_rows(raw, REVENUE_BY_COUNTRY) if r["customer__country"] in countries}


def test_flight_sql_tenant_sees_its_rows(server, secured, raw):
    _, flight = server
    for attempt in ("cold", "warm"):
        rows = _fetch(flight, secured.tenant("DE"), STATEMENT)
        served = {r["customer__country"]: float(r["revenue"]) for r in rows}
        assert served == pytest.approx(_expected(raw, ("DE",))), attempt
    metrics = {r["name"] for r in _fetch(flight, secured.tenant("DE"),
                                          "{{ semantic_layer.metrics() }}")}
    assert "revenue" in metrics and "gross_margin" not in metrics


@pytest.mark.parametrize("case", ["no token", "bad token", "expired", "forbidden metric"])
def test_flight_sql_refusals(server, secured, case):
    _, flight = server
    token = {"no token": None, "bad token": "nope",
             "expired": secured.hs(exp=int(time.time()) - 120),
             "forbidden metric": secured.tenant("DE")}[case]  # fmt: skip
    statement = "{{ semantic_layer.query(metrics=['gross_margin']) }}" \
        if case == "forbidden metric" else STATEMENT
    with pytest.raises(Exception) as e:
        _fetch(flight, token, statement)
    # ADBC names gRPC's PermissionDenied as "UNAUTHORIZED ... (PermissionDenied; ...)"
    expected = "PermissionDenied" if case == "forbidden metric" else "UNAUTHENTICATED"
    assert expected in str(e.value) and "Traceback" not in str(e.value), str(e.value)


GQL_CREATE = """mutation($env: BigInt!) { createQuery(environmentId: $env,
    metrics: [{name: "revenue"}], groupBy: [{name: "customer__country"}]) { queryId } }"""
GQL_RESULT = """query($env: BigInt!, $id: String!) { query(environmentId: $env, queryId: $id) {
    status error jsonResult(orient: RECORDS, encoded: false) } }"""


def test_dbt_sl_graphql_tenant_sees_its_rows(server, secured, raw):
    base, _ = server
    headers = {"authorization": f"Bearer {secured.tenant('FR')}"}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as c:
        created = c.post("/api/graphql", json={"query": GQL_CREATE, "variables": {"env": 1}})
        query_id = created.json()["data"]["createQuery"]["queryId"]
        for _ in range(600):
            body = c.post("/api/graphql", json={"query": GQL_RESULT,
                                                "variables": {"env": 1, "id": query_id}}).json()
            status = body["data"]["query"]["status"]
            if status in ("SUCCESSFUL", "FAILED"):
                break
            time.sleep(0.1)
    assert status == "SUCCESSFUL", body
    rows = body["data"]["query"]["jsonResult"]
    served = {r["customer__country"]: float(r["revenue"]) for r in rows}
    assert served == pytest.approx(_expected(raw, ("FR",)))
    refused = httpx.post(f"{base}/api/graphql", json={"query": GQL_CREATE, "variables": {"env": 1}},
                         headers={"authorization": "Bearer not-a-token"})
    assert "User is not authorized" in refused.text


def test_rest_asynchronous_queries_keep_the_caller(server, secured, raw):
    base, _ = server
    tenant = {"authorization": f"Bearer {secured.tenant('DE')}"}
    with httpx.Client(base_url=base, timeout=60) as c:
        r = c.post("/api/v1/queries", headers=tenant,
                   json={"metrics": ["revenue"], "group_by": ["customer__country"]})
        assert r.status_code == 202, r.text
        location = r.headers["location"]
        for _ in range(600):
            state = c.get(location, headers=tenant).json()
            if state.get("status") in ("SUCCESSFUL", "FAILED"):
                break
            time.sleep(0.1)
        result = c.get(f"{location}/result", headers=tenant).json()
        served = {row["customer__country"]: float(row["revenue"]) for row in result["data"]}
        assert served == pytest.approx(_expected(raw, ("DE",)))
        # another caller cannot read the tenant's job, and no token is a 401
        other = c.get(location, headers={"authorization": f"Bearer {secured.keys['reader']}"})
        assert other.status_code == 404
        assert c.get(location).status_code == 401
