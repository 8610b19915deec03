"""Attack class: learning the names of what one may not see.

A tenant denied `gross_margin` and `customer__customer_segment` could still learn they exist:
did-you-mean suggestions were drawn from the whole catalog, a dashboard's definition listed the
denied metric's tile, `rollup.misses` named every other rollup and why (tested beside the built
rollups, tests/rollups/test_filter_identity.py), and a measure's SQL expression was shown
without the `sql` scope. Each is checked here against an unrestricted caller, who still gets
the helpful answer."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from tally.core.caller import ANONYMOUS, Caller
from tally.core.request import QueryRequest
from tally.errors import Forbidden


def _error(response) -> dict:
    return response.json()["error"]


@pytest.mark.parametrize(("body", "denied"), [
    ({"metrics": ["gross_margn"]}, "gross_margin"),
    ({"metrics": ["gross_margin_pc"]}, "gross_margin_pct"),
    ({"metrics": ["revenue"], "group_by": ["customer__customer_segmen"]},
     "customer__customer_segment"),
    ({"metrics": ["revenue"], "where": ["{{ Dimension('customer__customer_segmnt') }} = 'x'"]},
     "customer__customer_segment"),
])
def test_suggestions_never_name_a_denied_member(client, secured, body, denied):
    tenant = secured.tenant("DE")
    r = client.query(body, tenant)
    assert r.status_code == 400, r.text
    assert denied not in r.text
    assert _error(r)["code"] in ("unknown_metric", "unknown_dimension")
    admin = client.query(body, secured.keys["admin"])  # the helpful answer for the unrestricted
    assert denied in admin.text


def test_the_catalog_routes_suggest_only_what_the_tenant_sees(client, secured):
    tenant = secured.tenant("DE")
    r = client.request("GET", "/api/v1/metrics/gross_margn", tenant)
    assert r.status_code == 404 and "gross_margin" not in r.text
    assert "gross_margin" in client.request("GET", "/api/v1/metrics/gross_margn",
                                            secured.keys["admin"]).text
    r = client.request("GET", "/api/v1/dimension-values?dimension=customer__customer_segmen",
                       tenant)
    assert r.status_code == 404 and "customer_segment" not in r.text
    r = client.request("GET", "/api/v1/dimensions?metrics=gross_margn", tenant)
    assert r.status_code in (400, 404) and "gross_margin" not in r.text
    g = client.graphql('{ query(metrics: ["gross_margn"]) { rows } }', tenant).json()
    assert "gross_margin" not in str(g)


def test_a_still_helpful_suggestion_for_the_tenant(client, secured):
    r = client.query({"metrics": ["revenu"]}, secured.tenant("DE"))
    assert _error(r)["details"]["suggestion"] == "revenue"
    assert "Did you mean 'revenue'?" in _error(r)["message"]


def test_a_dashboard_lists_only_the_tiles_its_viewer_may_query(client, secured):
    tenant = secured.tenant("DE")
    mine = client.request("GET", "/api/v1/dashboards/overview", tenant).json()
    assert "margin_by_category" not in {t["name"] for t in mine["tiles"]}
    assert "gross_margin" not in str(mine)
    full = client.request("GET", "/api/v1/dashboards/overview", secured.keys["admin"]).json()
    assert "margin_by_category" in {t["name"] for t in full["tiles"]}
    # Also gone: the cohort grid, which the tenant's row filter (by country) cannot reach.
    gone = {t["name"] for t in full["tiles"]} - {t["name"] for t in mine["tiles"]}
    assert gone == {"margin_by_category", "cohort_retention"}
    listed = client.request("GET", "/api/v1/dashboards", tenant).json()["dashboards"]
    overview = next(d for d in listed if d["name"] == "overview")
    assert overview["tiles"] == len(mine["tiles"]) == len(full["tiles"]) - 2


def test_measures_show_their_sql_only_with_the_sql_scope(service):
    reader = replace(Caller.of("rest", subject="reader"), scopes=frozenset({"meta", "query"}))
    hidden = service.list_measures(("revenue",), reader)
    shown = service.list_measures(("revenue",), ANONYMOUS)
    assert hidden and all(m.expr == "" for m in hidden)
    assert any(m.expr for m in shown)


def test_metrics_for_a_denied_dimension_is_forbidden(secured, service):
    from pydantic import SecretStr

    from tally.service import TallyService

    svc = TallyService(service.settings.model_copy(update={
        "project_dir": secured.project_dir, "jwt_secret": SecretStr(secured.jwt_secret)}),
        warehouse=service.warehouse)
    tenant = svc.security.for_claims({"roles": ["tenant"], "countries": ["DE"], "sub": "t"})
    with pytest.raises(Forbidden):
        svc.metrics_for(("customer__customer_segment",), tenant)
    assert svc.metrics_for(("customer__country",), tenant)
    with pytest.raises(Forbidden):
        svc.check(QueryRequest.create(metrics=["gross_margin"]), tenant)


def test_a_metrics_filter_is_shown_only_when_it_names_nothing_denied(client, secured):
    """high_value_customers filters by customer__customer_segment, which the tenant role may
    not see: the tenant sees the metric, not its filter's text."""
    tenant = client.request("GET", "/api/v1/metrics/high_value_customers",
                            secured.tenant("DE")).json()
    admin = client.request("GET", "/api/v1/metrics/high_value_customers",
                           secured.keys["admin"]).json()
    assert "customer_segment" in str(admin["filter"])
    assert tenant["filter"] is None and "customer_segment" not in str(tenant)
    listed = client.request("GET", "/api/v1/metrics", secured.tenant("DE")).json()
    assert "customer_segment" not in json.dumps(listed)


def test_a_metric_the_row_filter_cannot_reach_is_a_403_saying_why(client, secured):
    """The cohort metrics cannot be filtered by customer__country, the tenant's row filter:
    refused (never answered unfiltered), and not reported as the tenant's own mistake."""
    r = client.query({"metrics": ["retention_rate"],
                      "group_by": ["cohort__cohort_month__month"]}, secured.tenant("DE"))
    assert r.status_code == 403, r.text
    message = r.json()["error"]["message"]
    assert "access policy" in message and "customer__country" in message
    dashboard = client.request("GET", "/api/v1/dashboards/overview", secured.tenant("DE")).json()
    assert "cohort_retention" not in {t["name"] for t in dashboard["tiles"]}
