"""Semantic manifests written by other dbt versions (tests/fixtures/manifests/README.md), served
over the warehouse this run builds from the project they were written for, numbers against SQL
written by hand; a manifest of a newer spec than tally's MetricFlow knows is one clear line."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.support.corpus import in_folder, rest, to_newer_spec
from tests.support.paths import ROOT

MANIFESTS = ROOT / "tests" / "fixtures" / "manifests"
BODY = {"metrics": ["orders", "gross_amount", "keep_rate", "orders_to_date"],
        "group_by": ["metric_time__month"], "order_by": ["metric_time__month"],
        "start": "2024-01-01", "end": "2024-04-30"}  # fmt: skip
# Months of the orders: count, amount, the share not returned, and orders placed so far as of
# the month's first day (a cumulative metric at month grain is its first day's value; the
# series starts on the day of the first order).
HAND = """
with months as (
    select date_trunc('month', ordered_at) as m, count(*) as n, sum(amount) as amount,
           count(*) filter (where status <> 'returned') * 1.0 / count(*) as kept
    from raw_orders group by 1
)
select strftime(m, '%Y-%m-%d'), n, amount, round(kept, 4),
       (select count(*) from raw_orders
        where ordered_at <= greatest(months.m, (select min(ordered_at) from raw_orders)))
from months order by m
"""


def _rows(data):
    return [(r["metric_time__month"][:10], r["orders"], round(r["gross_amount"], 2),
             round(r["keep_rate"], 4), r["orders_to_date"]) for r in data]  # fmt: skip


@pytest.fixture(scope="module")
def spine(corpus):
    return corpus("yaml_spine")


def _expected(project):
    return [(m, n, round(float(a), 2), round(float(k), 4), c)
            for m, n, a, k, c in project.hand(HAND)]  # fmt: skip


@pytest.mark.parametrize("version", ["dbt-1.10.23", "dbt-1.11.16"])
def test_a_manifest_of_each_dbt_version_answers_as_the_hand_sql(spine, version, tmp_path,
                                                                monkeypatch):  # fmt: skip
    target = tmp_path / "target"
    shutil.copytree(MANIFESTS / version, target)
    dbt_version = json.loads((target / "manifest.json").read_text())["metadata"]["dbt_version"]
    assert version == f"dbt-{dbt_version}"
    with in_folder(spine.project_dir, monkeypatch, DBT_TARGET_PATH=str(target)):
        status, answer = rest(BODY)
    assert status == 200, answer
    assert _rows(answer["data"]) == _expected(spine)
    with in_folder(spine.project_dir, monkeypatch, DBT_TARGET_PATH=str(target)):
        status, saved = rest({}, "/api/v1/saved-queries/orders_by_fiscal_quarter/query")
    assert status == 200, saved
    by_quarter = spine.hand("""select case when month(ordered_at) <= 3 then 'FY2024-Q4'
                                      else 'FY2025-Q1' end as q, count(*)
                               from raw_orders group by 1 order by 1""")
    assert [(r["metric_time__fiscal_quarter"], r["orders"]) for r in saved["data"]] == by_quarter


def test_the_newer_metric_spec_of_dbt_1_12_is_read(spine, tmp_path, monkeypatch):
    """No measures, aggregations on the simple metrics, a cumulative metric over its input
    metric: MetricFlow 0.213's own spec, which dbt 1.12 writes."""
    old = json.loads((MANIFESTS / "dbt-1.11.16" / "semantic_manifest.json").read_text())
    newer = to_newer_spec(old, "0.213.0")
    assert not any(m["measures"] for m in newer["semantic_models"])
    (tmp_path / "semantic_manifest.json").write_text(json.dumps(newer))
    with in_folder(spine.project_dir, monkeypatch, DBT_TARGET_PATH=str(tmp_path)):
        status, answer = rest(BODY)
    assert status == 200, answer
    assert _rows(answer["data"]) == _expected(spine)


def test_a_newer_spec_than_tallys_metricflow_is_refused_in_one_line(spine, tmp_path):
    old = json.loads((MANIFESTS / "dbt-1.11.16" / "semantic_manifest.json").read_text())
    path = tmp_path / "semantic_manifest.json"
    path.write_text(json.dumps(to_newer_spec(old, "0.299.0")))
    run = spine.tally("list", "metrics", TALLY_MANIFEST_PATH=str(path))
    assert run.returncode == 1 and "Traceback" not in run.stderr
    [line] = run.stderr.strip().splitlines()
    assert str(path) in line and "MetricFlow 0.299.0 (dbt 1.12 or later)" in line
    assert "this tally's MetricFlow 0.213.0" in line and "not supported" in line
