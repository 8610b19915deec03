"""Access policies over REST, GraphQL and the core service: a tenant sees exactly its countries'
numbers (against SQL written by hand over raw.*), from a cold and from a warm cache; two tenants
never share cached rows; forbidden metrics and dimensions are absent from the catalog and a 403
when named, in queries, filters, dimension values and saved queries."""

from __future__ import annotations

import decimal

import pytest

from tests.support.hand_sql import expected_rows

REVENUE_BY_COUNTRY = """
    select customer__country as country, extract(year from order_date) as year,
           sum(net_amount) as revenue
    from enriched_orders where order_status = 'completed'
    group by 1, 2"""
QUERY = {"metrics": ["revenue"], "group_by": ["metric_time__year", "customer__country"]}
GQL = """query($m: [String!], $g: [String!]) { query(metrics: $m, groupBy: $g) {
           rows cache { hit } } }"""


def _hand(raw, countries) -> dict:
    return {(r["year"], r["country"]): decimal.Decimal(str(r["revenue"]))
            for r in expected_rows(raw, REVENUE_BY_COUNTRY) if r["country"] in countries}


def _served_rest(body) -> dict:
    return {(int(r["metric_time__year"][:4]), r["customer__country"]):
            decimal.Decimal(str(r["revenue"])) for r in body["data"]}


def _served_graphql(body) -> dict:
    return {(int(r["metric_time__year"][:4]), r["customer__country"]): float(r["revenue"])
            for r in body["data"]["query"]["rows"]}


@pytest.mark.parametrize("countries", [("DE",), ("US", "FR")])
def test_a_tenant_sees_exactly_its_countries_cold_and_warm(shared_client, secured, raw,
                                                         countries):
    token = secured.tenant(*countries)
    expected = _hand(raw, countries)
    assert expected
    for attempt in ("cold", "warm"):
        r = shared_client.query(QUERY, token)
        assert r.status_code == 200, r.text
        assert r.json()["cache"]["hit"] is (attempt == "warm")
        assert _served_rest(r.json()) == pytest.approx(expected), attempt
        g = shared_client.graphql(GQL, token, m=QUERY["metrics"], g=QUERY["group_by"]).json()
        assert "errors" not in g, g
        assert _served_graphql(g) == pytest.approx(
            {k: float(v) for k, v in expected.items()}), attempt


def test_two_tenants_never_share_cached_rows(client, secured, raw):
    de, fr = secured.tenant("DE"), secured.tenant("FR")
    first = client.query(QUERY, de).json()
    second = client.query(QUERY, fr).json()
    assert not second["cache"]["hit"]  # another tenant: another cache entry
    assert {c for _, c in _served_rest(first)} == {"DE"}
    assert {c for _, c in _served_rest(second)} == {"FR"}
    assert client.query(QUERY, de).json()["cache"]["hit"]  # its own entry, warm
    admin = client.query(QUERY, secured.keys["admin"]).json()
    assert len({c for _, c in _served_rest(admin)}) > 2 and not admin["cache"]["hit"]


def test_the_filter_applies_to_dimension_values_saved_queries_and_graphql(client, secured):
    token = secured.tenant("DE")
    values = client.request("GET", "/api/v1/dimension-values?dimension=customer__country"
                            "&metrics=revenue", token).json()
    assert values["values"] == ["DE"]
    saved = client.request("POST", "/api/v1/saved-queries/revenue_by_country_by_month/query",
                           token, json={}).json()
    assert {r["customer__country"] for r in saved["data"]} == {"DE"}
    g = client.graphql('{ query(savedQuery: "revenue_by_country_by_month") { rows } }',
                       token).json()
    assert {r["customer__country"] for r in g["data"]["query"]["rows"]} == {"DE"}


def test_a_tenant_cannot_widen_its_filter_with_its_own(client, secured, raw):
    token = secured.tenant("DE")
    country = "{{ Dimension('customer__country') }}"
    widen = f"{country} = 'FR' OR {country} != 'FR'"
    r = client.query({**QUERY, "where": [widen]}, token)
    assert r.status_code == 200
    # AND-ed with the tenant's filter: still DE only, and exactly DE's numbers
    assert _served_rest(r.json()) == pytest.approx(_hand(raw, ("DE",)))


def test_forbidden_members_are_absent_and_named_ones_are_403(client, secured):
    token = secured.tenant("DE")
    listed = client.request("GET", "/api/v1/metrics", token).json()["metrics"]
    metrics = {m["name"] for m in listed}
    assert "revenue" in metrics
    assert "gross_margin" not in metrics and "gross_margin_pct" not in metrics
    dims = {d["name"] for d in client.request("GET", "/api/v1/dimensions?metrics=revenue",
                                              token).json()["dimensions"]}
    assert "customer__country" in dims and "customer__customer_segment" not in dims
    for body in (
        {"metrics": ["gross_margin"]},
        {"metrics": ["revenue"], "group_by": ["customer__customer_segment"]},
        {"metrics": ["revenue"],
         "where": ["{{ Dimension('customer__customer_segment') }} = 'High Value'"]},
        {"metrics": ["revenue"],
         "where": [{"dimension": "customer__customer_segment", "op": "=", "value": "x"}]},
    ):
        r = client.query(body, token)
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", (body, r.text)
    assert client.request("GET", "/api/v1/metrics/gross_margin", token).status_code == 403
    assert client.request("GET", "/api/v1/dimension-values?dimension=customer__customer_segment",
                          token).status_code == 403
    # a saved query built on a metric the role may not see
    saved = {q["name"] for q in client.request("GET", "/api/v1/saved-queries",
                                               token).json()["saved_queries"]}
    assert "customer_segments" not in saved  # it groups by the forbidden segment
    assert "revenue_by_country_by_month" in saved
    g = client.graphql('{ metric(name: "gross_margin") { name } }', token).json()
    assert g["errors"][0]["extensions"]["code"] == "forbidden"


def test_a_token_without_the_claim_sees_no_rows(client, secured):
    token = secured.hs(roles=["tenant"])  # a tenant without countries
    r = client.query(QUERY, token)
    assert r.status_code == 403 and "countries" in r.json()["error"]["message"]


def test_policy_check_prints_what_a_caller_may_see(secured, warehouse):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    tally = Path(sys.executable).parent / "tally"
    out = subprocess.run(
        [str(tally), "policy", "check", "--project-dir", str(secured.project_dir), "--claims",
         '{"roles": ["tenant"], "countries": ["DE", "AT"]}', "--format", "json"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "TALLY_JWT_SECRET": "x" * 40,
             "TALLY_MANIFEST_PATH": str(warehouse.manifest_path),
             "TALLY_DUCKDB_PATH": str(warehouse.duckdb_path)})
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["roles"] == ["tenant"]
    assert report["row_filters"] == [{"dimension": "customer__country", "op": "in",
                                      "values": ["DE", "AT"], "grain": None}]
    assert "gross_margin" not in report["metrics"] and "revenue" in report["metrics"]
    assert "customer__customer_segment" not in report["dimensions"]
