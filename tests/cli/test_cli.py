"""The real `tally` command in a subprocess, against the session warehouse."""

from __future__ import annotations

import decimal
import io
import json
import os
import subprocess

import pyarrow as pa
import pytest

from tests.support.hand_sql import expected_rows
from tests.support.paths import PROJECT_DIR, TALLY


@pytest.fixture(scope="module")
def run(warehouse):
    env = {
        **os.environ,
        "TALLY_DUCKDB_PATH": str(warehouse.duckdb_path),
        "TALLY_MANIFEST_PATH": str(warehouse.manifest_path),
        "TALLY_PROJECT_DIR": str(PROJECT_DIR),
    }
    env.pop("TALLY_DEBUG", None)

    def _run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(TALLY), *args], env=env, capture_output=True, timeout=120)

    return _run


def test_query_json_has_the_design_shape_and_hand_checked_numbers(run, raw):
    out = run(
        "query", "--metrics", "revenue", "--group-by", "metric_time__month", "--format", "json"
    )
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout, parse_float=decimal.Decimal)
    assert set(body) == {"columns", "data", "row_count", "sql", "cache", "timing_ms", "rollup"}
    assert body["columns"] == [
        {"name": "metric_time__month", "type": "date"},
        {"name": "revenue", "type": "decimal"},
    ]
    assert body["cache"] == {"hit": False, "age_seconds": 0}
    assert set(body["timing_ms"]) == {"compile", "execute", "total"}
    assert body["row_count"] == len(body["data"]) == 48
    expected = dict(
        raw.sql("""
        with valid as (
            select customer_id from raw.customers
            where coalesce(lower(trim(email)) <> '' and lower(trim(email)) like '%@%', false)
              and coalesce(trim(first_name) <> '' and trim(last_name) <> '', false)
        )
        select strftime(date_trunc('month', o.order_date), '%Y-%m-%d') as m,
               sum(i.unit_price * i.quantity - i.discount_amount) as revenue
        from raw.orders o
        join valid v using (customer_id)
        join raw.order_items i using (order_id)
        where o.order_status = 'completed'
        group by 1
    """).fetchall()
    )
    served = {row["metric_time__month"]: row["revenue"] for row in body["data"]}
    assert served == expected


def test_order_by_descending_as_design_spells_it(run):
    out = run("query", "--metrics", "revenue", "--group-by", "customer__country",
              "--order-by", "-revenue", "--limit", "3", "--format", "json")
    assert out.returncode == 0, out.stderr
    values = [row["revenue"] for row in json.loads(out.stdout)["data"]]
    assert len(values) == 3 and values == sorted(values, reverse=True)
    both = run("query", "--metrics", "revenue,order_count", "--group-by", "customer__country",
               "--order-by", "-order_count,customer__country", "--format", "json")
    counts = [row["order_count"] for row in json.loads(both.stdout)["data"]]
    assert counts == sorted(counts, reverse=True)


def test_unknown_metric_exits_2_with_suggestion(run):
    out = run("query", "--metrics", "revenu")
    assert out.returncode == 2
    assert out.stderr.decode().strip() == "error: Unknown metric 'revenu'. Did you mean 'revenue'?"
    assert out.stdout == b""


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--metrics", "revenue", "--group-by", "customer__countr"], "customer__country"),
        (["--metrics", "revenue", "--limit", "-3"], "limit must be 0 or more"),
        (["--metrics", "revenue", "--where", "country = 'US'"], "references no dimension"),
        (
            [
                "--metrics",
                "revenue",
                "--where",
                "{{ Dimension('customer__country') }} = 'US'; drop table x",
            ],
            "one expression",
        ),
        (["--metrics", "revenue", "--start", "yesterday"], "ISO date"),
        (["--metrics", "revenue", "--format", "xml"], "invalid choice"),
        (["--metrics", "revenue", "--limit", "1e400"], "whole number"),
        # Values of the wrong type pass the filter parser; the warehouse refuses them, and
        # that is still the caller's mistake, not a warehouse fault.
        (
            ["--metrics", "revenue", "--where", "{{ Dimension('customer__country') }} > 5"],
            "does not fit the data",
        ),
        (
            ["--metrics", "revenue", "--where", "{{ TimeDimension('metric_time') }} >= 'soon'"],
            "does not fit the data",
        ),
        (["--metrics", "revenue", "--target", "nosuch"], "Target 'nosuch' is not in profile"),
        (["--metrics", "revenue", "--project-dir", "/nonexistent"], "is not a dbt project"),
        (["--saved-query", "customer_segments", "--metrics", "revenue"], "not both"),
    ],
)
def test_bad_input_exits_2_without_traceback(run, args, needle):
    out = run("query", *args)
    assert out.returncode == 2, out
    err = out.stderr.decode()
    assert needle in err and "Traceback" not in err


def test_csv_and_arrow_formats(run):
    csv = run(
        "query", "--metrics", "order_count", "--group-by", "metric_time__year", "--format", "csv"
    )
    assert csv.returncode == 0
    lines = csv.stdout.decode().splitlines()
    assert lines[0] == '"metric_time__year","order_count"' and len(lines) == 5
    arrow = run(
        "query", "--metrics", "order_count", "--group-by", "metric_time__year", "--format", "arrow"
    )
    assert arrow.returncode == 0
    table = pa.ipc.open_stream(io.BytesIO(arrow.stdout)).read_all()
    assert table.column_names == ["metric_time__year", "order_count"] and table.num_rows == 4
    text = [int(line.split(",")[1]) for line in lines[1:]]
    assert text == table.column("order_count").to_pylist()


def test_compile_and_explain_print_sql(run):
    out = run("compile", "--metrics", "revenue", "--group-by", "customer__country")
    assert out.returncode == 0 and b"SELECT" in out.stdout and b"dim_customers" in out.stdout
    explain = run("query", "--metrics", "revenue", "--group-by", "customer__country", "--explain")
    assert explain.stdout == out.stdout


def test_list(run):
    metrics = run("list", "metrics", "--format", "json")
    names = {m["name"] for m in json.loads(metrics.stdout)}
    assert {"revenue", "retention_rate", "repeat_purchase_rate_90d"} <= names
    dims = run("list", "dimensions", "--metrics", "gross_margin")
    assert b"product__category" in dims.stdout
    saved = run("list", "saved-queries")
    assert b"cohort_retention" in saved.stdout
    bad = run("list", "dimensions", "--metrics", "revenu")
    assert bad.returncode == 2 and b"Did you mean 'revenue'?" in bad.stderr


def test_missing_manifest_is_a_friendly_error(run, tmp_path):
    env = {**os.environ, "TALLY_MANIFEST_PATH": str(tmp_path / "missing.json")}
    out = subprocess.run([str(TALLY), "list", "metrics"], env=env, capture_output=True)
    assert out.returncode == 1
    assert b"dbt parse" in out.stderr and b"Traceback" not in out.stderr


def test_serve_refuses_a_wrong_target_at_once(run):
    out = run("serve", "--port", "1", "--target", "nosuch")
    assert out.returncode == 2
    assert b"Target 'nosuch'" in out.stderr and b"Traceback" not in out.stderr


def test_zoned_start_is_read_in_utc(run, raw):
    """2025-01-01T00:00+02:00 is 2024-12-31 22:00 UTC: the last day of 2024 is in range."""
    out = run(
        "query", "--metrics", "order_count", "--group-by", "metric_time__day",
        "--start", "2025-01-01T00:00:00+02:00", "--end", "2025-01-01", "--format", "json",
    )
    assert out.returncode == 0, out.stderr
    days = {row["metric_time__day"]: row["order_count"] for row in json.loads(out.stdout)["data"]}
    rows = expected_rows(
        raw,
        "select order_date as day, count(*) as n from valid_orders "
        "where order_date between date '2024-12-31' and date '2025-01-01' group by 1",
    )
    expected = {r["day"].isoformat(): r["n"] for r in rows}
    assert days == expected and "2024-12-31" in days
