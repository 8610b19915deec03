"""Attack class: a condition on a metric, computed outside the caller's row filters.

MetricFlow computes a `{{ Metric('m', group_by=[...]) }}` condition in a subquery of its own, over
every row; the caller's row filters (AND-ed into the query's where) never reach it. A tenant
limited to DE bisected `{{ Metric('item_revenue', group_by=['product']) }} > X` to read every
country's total for a product, on REST, Flight SQL and the SDK (found by the adversarial pass).
A caller with row filters may now not filter by a metric, in a filter or through a metric whose
own definition does; callers without row filters keep the feature."""

from __future__ import annotations

import json
import shutil

import pytest

from tally.core.caller import ANONYMOUS, Caller
from tally.core.request import QueryRequest
from tally.errors import Forbidden

PRODUCT = "{{ Dimension('product__product_name') }} = 'Atlas Blender Go'"
BY_METRIC = "{{ Metric('item_revenue', group_by=['product']) }} > 100"
QUERY = {"metrics": ["item_revenue"], "group_by": ["product__product_name"],
         "where": [PRODUCT, BY_METRIC]}


def test_a_tenant_may_not_filter_by_a_metric(client, secured):
    r = client.query(QUERY, secured.tenant("DE"))
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "forbidden"
    assert "row filters" in r.json()["error"]["message"]
    g = client.graphql("""query($w: [String!]) { query(metrics: ["item_revenue"],
        groupBy: ["product__product_name"], where: $w) { rows } }""", secured.tenant("DE"),
        w=[PRODUCT, BY_METRIC]).json()
    assert g["errors"][0]["extensions"]["code"] == "forbidden", g


def test_callers_without_row_filters_keep_metric_filters(client, secured):
    r = client.query(QUERY, secured.keys["admin"])
    assert r.status_code == 200, r.text


@pytest.fixture
def defined_by_metric(service, warehouse, tmp_path):
    """The demo's manifest with one metric whose definition filters by another metric."""
    from tally.service import TallyService

    manifest = tmp_path / "semantic_manifest.json"
    shutil.copy(warehouse.manifest_path, manifest)
    data = json.loads(manifest.read_text())
    metric = next(m for m in data["metrics"] if m["name"] == "high_value_customers")
    metric["filter"] = {"where_filters": [
        {"where_sql_template": "{{ Metric('revenue', group_by=['customer']) }} > 1000"}]}
    manifest.write_text(json.dumps(data))
    return TallyService(service.settings.model_copy(update={"manifest_path": manifest}),
                        warehouse=service.warehouse)


def test_a_metric_defined_by_a_metric_is_refused_to_a_tenant(defined_by_metric, secured):
    from tally.service.security.config import load_security
    from tally.service.security.policies import grant_for

    policies = load_security(secured.project_dir).policies
    grant = grant_for(policies, ["tenant"], {"countries": ["DE"]})
    tenant = Caller(subject="t", access=grant.access(), grant=grant)
    request = QueryRequest.create(metrics=["high_value_customers"])
    with pytest.raises(Forbidden, match="row filters"):
        defined_by_metric.check(request, tenant)
    defined_by_metric.check(request, ANONYMOUS)  # unrestricted: allowed
