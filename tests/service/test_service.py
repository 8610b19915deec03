"""The core service over a real warehouse: typed errors, catalog, limits, manifest reload."""

from __future__ import annotations

import json
import shutil

import pytest

from tally.core.caller import ANONYMOUS
from tally.core.request import QueryRequest
from tally.errors import (
    InvalidFilter,
    InvalidGrain,
    InvalidOrderBy,
    InvalidQuery,
    ManifestUnavailable,
    NotFound,
    ResultTooLarge,
    UnknownDimension,
    UnknownMetric,
    UnknownSavedQuery,
    WarehouseUnavailable,
)
from tests.support.warehouses import missing_warehouse


def q(**kw):
    return QueryRequest.create(**kw)


@pytest.mark.parametrize(
    "kw,error,message",
    [
        ({"metrics": "revenu"}, UnknownMetric, "Unknown metric 'revenu'. Did you mean 'revenue'?"),
        (
            {"metrics": "revenue", "group_by": "customer__countr"},
            UnknownDimension,
            "Did you mean 'customer__country'?",
        ),
        (
            {"metrics": "revenue", "group_by": "product__category"},
            UnknownDimension,
            "Unknown dimension 'product__category'",
        ),
        ({"metrics": "revenue", "group_by": "metric_time__hour"}, InvalidGrain, "day, week"),
        ({"metrics": "retention_rate", "group_by": "metric_time__day"}, InvalidGrain, "month"),
        (
            {"metrics": "revenue", "group_by": "customer__country__month"},
            InvalidGrain,
            "not a time dimension",
        ),
        (
            {"metrics": "revenue", "where": "{{ Dimension('customer__contry') }} = 'US'"},
            UnknownDimension,
            "in a filter",
        ),
        (
            {"metrics": "revenue", "where": "{{ Dimension('customer__country') }} = 'US'; drop"},
            InvalidFilter,
            "one expression",
        ),
        ({"metrics": "revenue", "order_by": "-revenu"}, InvalidOrderBy, "Did you mean 'revenue'?"),
        ({"metrics": "revenue", "order_by": "customer__country"}, InvalidOrderBy, "order by one"),
        ({"metrics": "revenue_growth_mom"}, InvalidQuery, "group by metric_time"),
        ({"saved_query": "cohort_retentio"}, UnknownSavedQuery, "Did you mean 'cohort_retention'?"),
    ],
)
def test_caller_errors_are_typed_with_suggestions(service, kw, error, message):
    with pytest.raises(error) as info:
        service.query(q(**kw), ANONYMOUS)
    assert message in info.value.message
    assert 400 <= info.value.status < 500


def test_query_returns_arrow_with_group_bys_then_metrics_in_order(service):
    result = service.query(
        q(metrics=["revenue", "order_count"], group_by=["metric_time__year", "customer__country"]),
        ANONYMOUS,
    )
    assert result.table.column_names == [
        "metric_time__year",
        "customer__country",
        "revenue",
        "order_count",
    ]
    years = result.table.column("metric_time__year").to_pylist()
    assert years == sorted(years)
    assert result.timing.total_ms >= result.timing.execute_ms > 0
    assert result.cache.hit is False and result.manifest_version


def test_saved_query_runs_with_extra_filter_and_limit(service):
    full = service.query(q(saved_query="revenue_by_country_by_month"), ANONYMOUS)
    assert {"metric_time__month", "customer__country", "revenue"} <= set(full.table.column_names)
    us = service.query(
        q(
            saved_query="revenue_by_country_by_month",
            limit=3,
            where="{{ Dimension('customer__country') }} = 'US'",
        ), ANONYMOUS
    )
    assert us.table.num_rows == 3
    assert set(us.table.column("customer__country").to_pylist()) == {"US"}


def test_max_rows_is_enforced(services):
    svc = services.service(max_rows=5)
    with pytest.raises(ResultTooLarge, match="more than 5 rows"):
        svc.query(q(metrics="revenue", group_by="metric_time__month"), ANONYMOUS)
    assert (
        svc.query(q(metrics="revenue", group_by="metric_time__month", limit=5),
                  ANONYMOUS).table.num_rows == 5
    )
    yearly = svc.query(q(metrics="revenue", group_by="metric_time__year"), ANONYMOUS)
    assert yearly.table.num_rows == 4


def test_catalog(service):
    names = {m.name for m in service.list_metrics(ANONYMOUS)}
    assert "revenue" in names
    assert service.get_metric("revenue", ANONYMOUS).label == "Revenue"
    with pytest.raises(NotFound) as info:
        service.get_metric("revenu", ANONYMOUS)
    assert info.value.status == 404 and info.value.code == "unknown_metric"
    dims = {d.name: d for d in service.list_dimensions(("revenue",), ANONYMOUS)}
    assert {"metric_time", "customer__country", "order__order_status"} <= set(dims)
    assert dims["metric_time"].grains == ("day", "week", "month", "quarter", "year")
    item_dims = {d.name for d in service.list_dimensions(("gross_margin",), ANONYMOUS)}
    assert "product__category" in item_dims
    assert {e.name for e in service.list_entities(("revenue",), ANONYMOUS)} == {"customer", "order"}
    assert {s.name for s in service.list_saved_queries(ANONYMOUS)} >= {
        "executive_kpis_by_month",
        "revenue_by_country_by_month",
        "customer_segments",
        "cohort_retention",
    }


def test_missing_manifest_says_how_to_fix(tmp_path, services):
    svc = services.service(manifest_path=tmp_path / "nope.json")
    with pytest.raises(ManifestUnavailable, match="dbt parse"):
        svc.list_metrics(ANONYMOUS)


def test_new_manifest_is_picked_up_and_broken_one_is_ignored(tmp_path, warehouse, services):
    manifest = tmp_path / "semantic_manifest.json"
    shutil.copy(warehouse.manifest_path, manifest)
    svc = services.service(manifest_path=manifest)  # another manifest: an engine of its own
    first = svc.manifest_version
    manifest.write_text("{ not json")
    assert svc.manifest_version == first  # a broken file never replaces a good one
    assert svc.query(q(metrics="revenue"), ANONYMOUS).table.num_rows == 1
    data = json.loads(warehouse.manifest_path.read_text())
    next(m for m in data["metrics"] if m["name"] == "revenue")["label"] = "Net revenue"
    manifest.write_text(json.dumps(data))
    assert svc.manifest_version != first
    assert svc.get_metric("revenue", ANONYMOUS).label == "Net revenue"


def test_missing_warehouse_file_is_a_clear_server_error(tmp_path, services):
    svc = services.service(missing_warehouse(tmp_path))
    with pytest.raises(WarehouseUnavailable, match="tally build"):
        svc.query(q(metrics="revenue"), ANONYMOUS)


def test_metric_meta_comes_through(service):
    meta = service.get_metric("revenue", ANONYMOUS).meta
    assert meta["owner"] == "@finance-analytics" and meta["format"] == "currency"
