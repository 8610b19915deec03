"""The generic warehouse path: queries executed on the connection the installed dbt adapter opens
from the profile (here dbt-postgres against the real local server, the PostgreSQL build of the
session's raw data), with `TALLY_EXECUTION_PATH=dbt-adapter`. The numbers are checked against
hand-written SQL over raw.* at several grains, group-bys and filters; errors and timeouts keep
their meaning; an adapter that is not installed is a clear configuration error."""

from __future__ import annotations

import pytest

from tally.core.caller import ANONYMOUS
from tally.core.request import QueryRequest
from tally.errors import ConfigurationError, InvalidFilter, QueryTimeout, WarehouseError
from tally.service import TallyService
from tally.settings import Settings
from tally.warehouse import registry
from tally.warehouse.dbt_adapter import DbtAdapterWarehouse
from tests.support.hand_sql import (
    FLOAT_TOL,
    assert_rows_match,
    dim_filter,
    expected_rows,
    group_columns,
)
from tests.support.paths import PROJECT_DIR

COMPLETED = "order_status = 'completed'"
HAND = {
    "order_count": "count(*)",
    "revenue": f"sum(net_amount) filter (where {COMPLETED})",
    "active_customers": f"count(distinct customer_id) filter (where {COMPLETED})",
    "average_order_value": (f"cast(sum(net_amount) filter (where {COMPLETED}) as double)"
                            f" / nullif(count(*) filter (where {COMPLETED}), 0)"),
}


@pytest.fixture(scope="module")
def adapter_service(pg_warehouse):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PGDATABASE", pg_warehouse.dbname)  # the profile reads it
        service = TallyService(Settings(
            project_dir=PROJECT_DIR, manifest_path=pg_warehouse.manifest_path,
            target="postgres", execution_path="dbt-adapter", cache_enabled=False))
        service.ready()  # connects now, with the profile rendered under this environment
        yield service
        service.shutdown()


def check(service, raw, metric, group_by, where_served=(), where_sql="true"):
    request = QueryRequest.create(metrics=[metric], group_by=list(group_by),
                                  where=list(where_served))
    served = service.query(request, ANONYMOUS).table.to_pylist()
    select = f"{group_columns(group_by, 'order_date')}, " if group_by else ""
    expected = expected_rows(raw, f"select {select}{HAND[metric]} as {metric} "
                                  f"from enriched_orders where {where_sql} group by all")
    if metric == "average_order_value":
        assert_rows_match(served, expected, list(group_by), metric, tol=FLOAT_TOL, absent="null")
    else:
        assert_rows_match(served, expected, list(group_by), metric, absent="zero")


def test_it_runs_through_the_dbt_adapter(adapter_service):
    assert adapter_service.engine.execution_path == "dbt-adapter"
    assert isinstance(adapter_service.warehouse, DbtAdapterWarehouse)


@pytest.mark.parametrize("grain", ["day", "month", "year"])
@pytest.mark.parametrize("metric", list(HAND))
def test_metrics_by_grain(adapter_service, raw, metric, grain):
    check(adapter_service, raw, metric, [f"metric_time__{grain}"])


@pytest.mark.parametrize("metric", ["revenue", "active_customers", "average_order_value"])
def test_metrics_by_month_and_country_with_a_filter(adapter_service, raw, metric):
    check(adapter_service, raw, metric, ["metric_time__month", "customer__country"],
          [dim_filter("order__order_status", "completed")], "order_status = 'completed'")


def test_a_value_the_warehouse_refuses_is_the_callers_mistake(adapter_service):
    request = QueryRequest.create(metrics=["revenue"], where=[
        "{{ TimeDimension('metric_time', 'day') }} > 'not a date'"])
    with pytest.raises(InvalidFilter):
        adapter_service.query(request, ANONYMOUS)


def test_timeouts_and_faults(adapter_service):
    warehouse = adapter_service.warehouse
    with pytest.raises(QueryTimeout, match=r"0\.3 s"):
        warehouse.execute("select pg_sleep(5)", timeout_seconds=0.3)
    with pytest.raises(WarehouseError, match="postgres failed"):
        warehouse.execute("select * from no_such_table")
    assert warehouse.execute("select 1 as one").column("one").to_pylist() == [1]


def test_paths_by_engine_and_missing_adapters():
    paths = {row["adapter"]: row["path"] for row in registry.execution_paths()}
    assert paths["duckdb"] == "native" and paths["postgres"] == "adbc"
    assert {paths[a] for a in ("snowflake", "bigquery", "databricks", "trino",
                               "redshift")} == {"dbt-adapter"}
    assert paths["spark"] == "dbt-adapter (session: Arrow)"
    spec = registry.engine_for("snowflake")
    assert spec.dialect == "snowflake" and spec.metricflow_engine == "SNOWFLAKE"
    with pytest.raises(ConfigurationError, match="pip install dbt-snowflake"):
        spec.connect({"type": "snowflake", "account": "x"}, PROJECT_DIR)
    with pytest.raises(ConfigurationError, match="no warehouse engine"):
        registry.engine_for("no_such_adapter")
