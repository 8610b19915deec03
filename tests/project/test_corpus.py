"""Each shape of the corpus, and the demo, as a user meets them: from the project's folder with
no options, `tally list metrics`, a query through REST (numbers against SQL written by hand
over the fixture's data) and `tally validate` (exit 0; warnings allowed)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.support.corpus import SHAPES, CorpusProject, clean_env, in_folder, rest
from tests.support.hand_sql import VALID_ORDERS
from tests.support.paths import TALLY

MONTHLY = """select strftime(date_trunc('month', ordered_at), '%Y-%m-%d'), count(*), sum(amount)
              from raw_orders group by 1 order by 1"""
# shape -> (metrics listed, REST body, hand SQL giving the body's rows in its column order)
CASES: dict[str, tuple[set[str], dict, str]] = {
    name: ({"orders", "gross_amount"},
           {"metrics": ["orders", "gross_amount"], "group_by": ["metric_time__month"],
            "order_by": ["metric_time__month"]}, MONTHLY)
    for name in SHAPES
}  # fmt: skip
CASES["macro_vars"] = (
    {"orders", "revenue"},
    {"metrics": ["orders", "revenue"], "group_by": ["metric_time__month"],
     "order_by": ["metric_time__month"]},
    # report_start (a var rendered from modules.datetime) drops the orders before 10 January;
    # the returned status comes from a project macro through a var.
    """select strftime(date_trunc('month', ordered_at), '%Y-%m-%d'), count(*),
              sum(case when status = 'returned' then 0 else amount end)
       from raw_orders where ordered_at >= date '2024-01-10' group by 1 order by 1""",
)  # fmt: skip
CASES["yaml_spine"] = (
    {"orders", "gross_amount", "orders_to_date", "kept_orders", "keep_rate", "orders_growth_mom"},
    {"metrics": ["orders", "gross_amount"], "group_by": ["metric_time__fiscal_quarter"],
     "order_by": ["metric_time__fiscal_quarter"]},
    # Fiscal years start on 1 April: January-March 2024 is FY2024-Q4, April-June FY2025-Q1.
    """select case when month(ordered_at) <= 3 then 'FY2024-Q4' else 'FY2025-Q1' end as q,
              count(*), sum(amount)
       from raw_orders where ordered_at between date '2024-01-01' and date '2024-06-30'
       group by 1 order by 1""",
)  # fmt: skip
CASES["legacy_spine"] = (
    {"orders", "gross_amount", "orders_to_date"},
    {"metrics": ["orders_to_date"], "group_by": ["metric_time__day"],
     "order_by": ["metric_time__day"], "start": "2024-01-01", "end": "2024-01-31"},
    # Every day of January from the first order on, orders placed so far: the days without
    # orders come from the time spine.
    """select strftime(d, '%Y-%m-%d'), count(o.order_id)
       from range(date '2024-01-01', date '2024-02-01', interval 1 day) as t (d)
       join raw_orders as o on o.ordered_at <= d group by d order by d""",
)  # fmt: skip


_PASSED = re.compile(r"^✓ (clean|passed: 0 errors)", re.MULTILINE)


def _listed(table: str) -> set[str]:
    """The names of `tally list metrics`' table (a header, a rule, rows, a count)."""
    lines = table.strip().splitlines()
    return {line.split()[0] for line in lines[2:-1]}


def _rows(data: list[dict], columns: list[str]) -> list[tuple]:
    def value(v):
        return round(float(v), 2) if isinstance(v, int | float) else str(v)[:10]
    return [tuple(value(row[c]) for c in columns) for row in data]


def _hand(project: CorpusProject, sql: str) -> list[tuple]:
    return [tuple(round(float(v), 2) if not isinstance(v, str) else v for v in row)
            for row in project.hand(sql)]


@pytest.mark.parametrize("name", list(SHAPES))
def test_list_metrics_from_the_folder(corpus, name):
    project = corpus(name)
    listed = project.tally("list", "metrics")
    assert listed.returncode == 0, listed.stderr
    assert _listed(listed.stdout) == CASES[name][0]
    assert listed.stderr.strip() == ""  # no dbt log line, no warning


@pytest.mark.parametrize("name", list(SHAPES))
def test_rest_query_from_the_folder_matches_hand_sql(corpus, name, monkeypatch):
    project = corpus(name)
    _, body, sql = CASES[name]
    with in_folder(project.project_dir, monkeypatch):
        status, answer = rest(body)
    assert status == 200, answer
    columns = [*body["group_by"], *body["metrics"]]
    expected = _hand(project, sql)
    assert expected and _rows(answer["data"], columns) == expected


@pytest.mark.parametrize("name", list(SHAPES))
def test_validate_from_the_folder(corpus, name):
    project = corpus(name)
    run = project.tally("validate")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert _PASSED.search(run.stdout), run.stdout[-2000:]


# The demo ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(request, warehouse, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A copy of the demo project with target/ written by the real `dbt parse`, its profile
    pointed at the session's warehouse through the variable the profile reads."""
    from tests.support.project_copies import dbt_parsed_copy

    parsed = dbt_parsed_copy(request.config)
    root = tmp_path_factory.mktemp("demo")
    shutil.copytree(parsed.root, root, dirs_exist_ok=True)  # times kept: target/ stays fresh
    return root / "dbt_project", clean_env(TALLY_DUCKDB_PATH=str(warehouse.duckdb_path))


def test_demo_lists_queries_and_validates_from_its_folder(demo, raw, monkeypatch):
    import subprocess

    project_dir, env = demo
    listed = subprocess.run([str(TALLY), "list", "metrics"], cwd=project_dir, env=env,
                            capture_output=True, text=True, timeout=300)
    assert listed.returncode == 0, listed.stderr
    assert {"revenue", "order_count"} <= _listed(listed.stdout)
    with in_folder(project_dir, monkeypatch, TALLY_DUCKDB_PATH=env["TALLY_DUCKDB_PATH"]):
        status, answer = rest({"metrics": ["order_count"], "group_by": ["metric_time__year"],
                               "order_by": ["metric_time__year"]})
    assert status == 200, answer
    expected = raw.sql(f"with {VALID_ORDERS} select strftime(date_trunc('year', order_date), "
                       "'%Y-%m-%d'), count(*) from valid_orders group by 1 order by 1").fetchall()
    assert expected and _rows(answer["data"], ["metric_time__year", "order_count"]) == [
        (d, float(n)) for d, n in expected]
    validated = subprocess.run([str(TALLY), "validate"], cwd=project_dir, env=env,
                               capture_output=True, text=True, timeout=600)
    assert validated.returncode == 0, validated.stdout[-3000:] + validated.stderr[-2000:]
    assert _PASSED.search(validated.stdout), validated.stdout[-2000:]
