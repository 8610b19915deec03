"""Saying why: the JSON result, POST /api/v1/compile and `tally query --explain` name the rollup
that answered, or for each rollup the first reason it did not fit; `tally rollups build` shows
its progress and leaves up-to-date rollups alone."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.support.builds import copy_of
from tests.support.clients import SyncASGIClient
from tests.support.paths import PROJECT_DIR, TALLY

WEEKLY = {"metrics": ["revenue", "average_order_value"], "group_by": ["metric_time__week"]}
DISTINCT_BY_QUARTER = {"metrics": ["active_customers"], "group_by": ["metric_time__quarter"]}


@pytest.fixture(scope="module")
def client(rollup_services):
    return SyncASGIClient(rollup_services.app(cache_enabled=False))


def _env(duckdb_path, manifest_path) -> dict[str, str]:
    env = {**os.environ, "TALLY_DUCKDB_PATH": str(duckdb_path),
           "TALLY_MANIFEST_PATH": str(manifest_path), "TALLY_PROJECT_DIR": str(PROJECT_DIR)}
    env.pop("TALLY_DEBUG", None)
    return env


def test_json_result_names_the_rollup_used(client):
    body = client.post("/api/v1/query", json=WEEKLY).json()
    assert body["rollup"]["used"] == "order_kpis_daily"
    misses = {m["rollup"]: m["reason"] for m in body["rollup"]["misses"]}
    assert misses["executive_kpis_by_month"] == "grain: 'metric_time__week' is not a roll-up of " \
        "metric_time__month"
    assert misses["cohort_retention"] == "lacks dimension 'metric_time__week'"
    assert "tally_rollups." in body["sql"]


def test_json_result_says_why_no_rollup_fits(client):
    body = client.post("/api/v1/query", json=DISTINCT_BY_QUARTER).json()
    assert body["rollup"]["used"] is None
    misses = {m["rollup"]: m["reason"] for m in body["rollup"]["misses"]}
    assert misses["executive_kpis_by_month"].startswith("non-additive: metric 'active_customers' "
                                                        "aggregates with count_distinct")
    assert misses["order_kpis_daily"] == "lacks metric 'active_customers'"
    assert "tally_rollups." not in body["sql"]


def test_compile_names_the_rollup(client):
    body = client.post("/api/v1/compile", json=WEEKLY).json()
    assert body["rollup"]["used"] == "order_kpis_daily"
    assert "tally_rollups." in body["sql"]
    body = client.post("/api/v1/compile", json=DISTINCT_BY_QUARTER).json()
    assert body["rollup"]["used"] is None and body["rollup"]["misses"]


def test_cli_explain_says_which_rollup_or_why_none(rollup_warehouse):
    env = _env(rollup_warehouse.duckdb_path, rollup_warehouse.manifest_path)

    def explain(*args: str) -> str:
        out = subprocess.run([str(TALLY), "query", *args, "--explain"], env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return out.stdout

    used = explain("--metrics", "revenue", "--group-by", "metric_time__year,customer__country")
    assert used.splitlines()[0] == "-- rollup: revenue_by_country_by_month"
    assert "FROM tally_rollups." in used
    none = explain("--metrics", "active_customers", "--group-by", "metric_time__quarter")
    lines = none.splitlines()
    assert lines[0] == "-- rollup: none"
    assert any(line.startswith("--   not executive_kpis_by_month: non-additive") for line in lines)
    assert "tally_rollups." not in none


def test_cli_rollups_build_shows_progress_and_skips_what_is_current(warehouse, tmp_path):
    db, target = copy_of(warehouse, tmp_path)
    env = _env(db, target / "semantic_manifest.json")

    def build(*args: str) -> str:
        out = subprocess.run([str(TALLY), "rollups", "build", *args], env=env,
                             capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr
        return out.stdout

    first = build("--select", "revenue_by_country_by_month,cohort_retention")
    assert "[1/2] cohort_retention ..." in first
    assert "cohort_retention: built," in first and "revenue_by_country_by_month: built," in first
    assert "2 rollup(s), 2 built or refreshed" in first
    marker = json.loads((target / "tally_rollups.json").read_text())
    assert {r["rollup"] for r in marker["rollups"]} == {"cohort_retention",
                                                        "revenue_by_country_by_month"}
    again = build("--select", "cohort_retention")
    assert "cohort_retention: up to date" in again
    unknown = subprocess.run([str(TALLY), "rollups", "build", "--select", "cohort_retentio"],
                             env=env, capture_output=True, text=True, timeout=120)
    assert unknown.returncode == 2 and "No rollup named cohort_retentio" in unknown.stderr


def test_an_engine_without_rollups_is_named_in_a_clear_error(tmp_path):
    """Rollups are built on DuckDB and PostgreSQL; any other engine is refused by name (a
    caller's error: `tally rollups build` exits 2 with one line), before connecting."""
    from tally.rollups.build import RollupsUnsupported, open_writer
    from tally.warehouse.registry import engine_for

    for adapter in ("spark", "snowflake"):
        with pytest.raises(RollupsUnsupported, match=f"not supported on {adapter} "):
            open_writer(engine_for(adapter), {"type": adapter}, tmp_path)
