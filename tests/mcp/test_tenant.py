"""Access policies through MCP: a tenant's token sees only its rows and metrics, over HTTP (the
bearer token of each request, resolved like REST's) and over stdio (`tally mcp --token`);
numbers against SQL written by hand over raw.*; credentials that do not hold are a 401 before
any MCP message is read; a denied metric is never suggested."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator

import httpx
import jwt
import pytest

from tests.support.hand_sql import assert_rows_match, expected_rows
from tests.support.mcp_clients import McpSession, http_session, stdio_session, tally_env
from tests.support.paths import PROJECT_DIR
from tests.support.processes import Server, start_server, stop_server

SECRET = "mcp-test-jwt-secret-long-enough-for-hs256"
TALLY_YML = """
policies:
  - role: tenant
    row_filters:
      - {dimension: customer__country, op: in, values: "{{ claims.countries }}"}
    metrics: {deny: [gross_margin, gross_margin_pct]}
"""
REVENUE = """
    select cast(date_trunc('year', order_date) as date) as metric_time__year,
           customer__country, sum(net_amount) as revenue
    from enriched_orders where order_status = 'completed' group by 1, 2"""
QUERY = {"metrics": ["revenue"], "limit": 10_000, "group_by": [
    {"name": "metric_time", "type": "time_dimension", "grain": "year"},
    {"name": "customer__country"}]}


def token(*countries: str) -> str:
    now = int(time.time())
    return jwt.encode({"sub": f"tenant-{'-'.join(countries)}", "roles": ["tenant"],
                       "countries": list(countries), "iat": now, "exp": now + 3600},
                      SECRET, algorithm="HS256")  # fmt: skip


@pytest.fixture(scope="module")
def secured_env(warehouse, tmp_path_factory) -> dict[str, str]:
    project = tmp_path_factory.mktemp("mcp-secured") / "project"
    project.mkdir()
    for name in ("dbt_project.yml", "profiles.yml"):
        shutil.copy(PROJECT_DIR / name, project / name)
    (project / "tally.yml").write_text(TALLY_YML)
    return tally_env(warehouse, project, TALLY_JWT_SECRET=SECRET)


@pytest.fixture(scope="module")
def server(secured_env, tmp_path_factory) -> Iterator[Server]:
    served = start_server(tmp_path_factory.mktemp("mcp-serve") / "serve.log", secured_env,
                          flight=False)
    yield served
    stop_server(served)


@pytest.fixture(scope="module")
def http_de(server) -> Iterator[McpSession]:
    session = http_session(f"{server.http}/mcp", token("DE"))
    yield session
    session.close()


@pytest.fixture(scope="module")
def stdio_fr_us(secured_env) -> Iterator[McpSession]:
    session = stdio_session(secured_env, "--token", token("FR", "US"))
    yield session
    session.close()


def _check_tenant(session: McpSession, raw, countries: set[str]) -> None:
    body = session.ok("query_metrics", **QUERY)
    served = body["data"]
    assert {r["customer__country"] for r in served} == countries
    expected = [r | {"metric_time__year": r["metric_time__year"].isoformat()}
                for r in expected_rows(raw, REVENUE) if r["customer__country"] in countries]
    assert_rows_match(served, expected, ["metric_time__year", "customer__country"], "revenue",
                      tol=1e-9, min_rows=2)
    assert [f["from"] for f in body["filters"]] == ["access_policy"]
    assert body["filters"][0]["filter"]["dimension"] == "customer__country"
    values = session.ok("get_dimension_values", dimension="customer__country",
                        metrics=["revenue"])["values"]
    assert set(values) == countries
    metrics = {m["name"] for m in session.ok("list_metrics")["metrics"]}
    assert "revenue" in metrics and not {"gross_margin", "gross_margin_pct"} & metrics
    is_error, denied = session.call("query_metrics", metrics=["gross_margin"])
    assert is_error and denied["error"]["code"] == "forbidden"
    # A measure's SQL expression is for callers with the `sql` scope (a tenant token has not)
    explained = session.ok("explain_metric", name="revenue")
    assert explained["measures"] and all(m["expr"] is None for m in explained["measures"])
    assert "net_amount" not in json.dumps(explained)
    is_error, typo = session.call("explain_metric", name="gross_margn")
    assert is_error and not {"gross_margin", "gross_margin_pct"} & set(
        typo["error"].get("suggestions", []) + typo["error"].get("valid_metrics", []))
    catalog = json.loads(session.run(lambda c: c.read_resource("tally://catalog"))
                         .contents[0].text)
    assert "gross_margin" not in {m["name"] for m in catalog["metrics"]}
    assert "net_amount" not in json.dumps(catalog)


def test_a_tenant_token_over_http_sees_only_its_rows_and_metrics(http_de, raw):
    _check_tenant(http_de, raw, {"DE"})


def test_a_tenant_token_over_stdio_sees_only_its_rows_and_metrics(stdio_fr_us, raw):
    _check_tenant(stdio_fr_us, raw, {"FR", "US"})


@pytest.mark.parametrize("auth", [None, "Bearer not-a-token", "Bearer " + "x" * 40])
def test_credentials_that_do_not_hold_are_a_401(server, auth):
    headers = {"accept": "application/json, text/event-stream"}
    if auth:
        headers["authorization"] = auth
    r = httpx.post(f"{server.http}/mcp", headers=headers, timeout=30, json={
        "jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}})
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "unauthorized"
    assert "Traceback" not in server.log.read_text()


def test_tally_mcp_refuses_a_bad_token_in_one_line(secured_env):
    import subprocess

    from tests.support.paths import TALLY

    run = subprocess.run([str(TALLY), "mcp", "--token", "nope"], env=secured_env,
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert run.returncode == 2 and run.stderr.startswith("error:"), run.stderr
    assert "Traceback" not in run.stderr
