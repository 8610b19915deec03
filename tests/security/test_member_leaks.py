"""Catalog fields of the dbt Semantic Layer's GraphQL API that must not reveal what a caller's
grant denies, nor SQL without the `sql` scope: metricsForDimensions and metricsPaginated(groupBy)
naming a denied dimension are a 403 (as REST answers a denied name), and a measure's SQL
expression is shown only with the `sql` scope."""

from __future__ import annotations

import json

import pytest

DENIED = "customer__customer_segment"  # denied to the tenant role (conftest's tally.yml)
ALLOWED = "customer__country"
FOR_DIMENSIONS = """query($d: [GroupByInput!]!) {
    metricsForDimensions(environmentId: 1, dimensions: $d) { name } }"""
PAGINATED = """query($d: [GroupByInput!]) {
    metricsPaginated(environmentId: 1, groupBy: $d) { items { name } totalItems } }"""


def _sl(client, token: str, query: str, **variables) -> dict:
    r = client.request("POST", "/api/graphql", token, json={"query": query,
                                                            "variables": variables})
    assert r.status_code == 200, r.text[:300]
    return r.json()


def _names(body: dict, field: str) -> set[str]:
    assert "errors" not in body, body
    data = body["data"][field]
    return {m["name"] for m in (data["items"] if field == "metricsPaginated" else data)}


@pytest.mark.parametrize("query,field", [(FOR_DIMENSIONS, "metricsForDimensions"),
                                         (PAGINATED, "metricsPaginated")])
def test_a_denied_dimension_is_forbidden_not_answered(client, secured, query, field):
    tenant = secured.tenant("DE")
    body = _sl(client, tenant, query, d=[{"name": DENIED}])
    assert body["data"] is None, body  # before: the metrics that have the denied dimension
    [error] = body["errors"]
    assert error["extensions"]["code"] == "forbidden" and error["extensions"]["status"] == 403
    assert DENIED in error["message"]
    # Together with an allowed one, still refused: the denied name is never answered about.
    both = _sl(client, tenant, query, d=[{"name": ALLOWED}, {"name": DENIED}])
    assert both["errors"][0]["extensions"]["code"] == "forbidden"


@pytest.mark.parametrize("query,field", [(FOR_DIMENSIONS, "metricsForDimensions"),
                                         (PAGINATED, "metricsPaginated")])
def test_allowed_dimensions_still_answer(client, secured, query, field):
    # Another caller may see the dimension: the same question is answered for it.
    reader = _names(_sl(client, secured.keys["reader"], query, d=[{"name": DENIED}]), field)
    assert "revenue" in reader
    tenant = _names(_sl(client, secured.tenant("DE"), query, d=[{"name": ALLOWED}]), field)
    assert "revenue" in tenant and not {"gross_margin", "gross_margin_pct"} & tenant


def _manifest_exprs(manifest_path) -> dict[str, str]:
    """Each measure's expression as dbt wrote it into the semantic manifest (its name when it
    has none: the column of the same name)."""
    manifest = json.loads(manifest_path.read_text())
    return {m["name"]: m.get("expr") or m["name"]
            for model in manifest["semantic_models"] for m in model["measures"]}


MEASURES = """{ measures(environmentId: 1, metrics: [{name: "revenue"}, {name: "order_count"}])
    { name expr }
    metrics(environmentId: 1) { name measures { name expr } } }"""


def test_measure_expressions_need_the_sql_scope(client, secured, warehouse):
    expected = _manifest_exprs(warehouse.manifest_path)
    for key, shows in (("reader", False), ("sql-reader", True)):
        body = _sl(client, secured.keys[key], MEASURES)
        assert "errors" not in body, body
        measures = body["data"]["measures"] + [m for metric in body["data"]["metrics"]
                                               for m in metric["measures"]]  # fmt: skip
        assert len(measures) > 2
        for m in measures:
            # Without the scope: empty, as a result's `sql` (the SDK's model wants a string).
            # With it: the manifest's expression (MetricFlow wraps a count's in a CASE WHEN).
            if shows:
                assert expected[m["name"]].lower() in m["expr"].lower(), (key, m)
            else:
                assert m["expr"] == "", (key, m)
    # The expression is SQL (a CASE WHEN over columns in this project): what was hidden.
    assert any(" " in e for e in expected.values())
