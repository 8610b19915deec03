"""Dashboards as code, pure: the demo's file reads; each tile becomes the request its controls
say; a KPI's previous period; every mistake in a file is one error naming file:line."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tally.core.dashboards import (
    Choices,
    DashboardError,
    dashboard_requests,
    load_dashboards,
    previous_period,
    tile_request,
)
from tally.core.filters import StructuredFilter
from tests.support.paths import PROJECT_DIR


@pytest.fixture(scope="module")
def overview():
    return load_dashboards(PROJECT_DIR)["overview"]


def test_the_demo_dashboard_has_the_tiles_the_product_promises(overview):
    kinds = {t.name: (t.type, t.metrics) for t in overview.tiles}
    assert kinds == {
        "revenue": ("kpi", ("revenue",)),
        "orders": ("kpi", ("order_count",)),
        "revenue_by_month": ("line", ("revenue",)),
        "revenue_by_country": ("bar", ("revenue",)),
        "margin_by_category": ("bar", ("gross_margin",)),
        "cohort_retention": ("heatmap", ("retention_rate",)),
    }


def test_a_tile_request_follows_the_controls(overview):
    monthly = tile_request(overview, overview.tile("revenue_by_month"))
    assert monthly.group_by == ("metric_time__month",)
    assert (monthly.start.date(), monthly.end.date()) == (dt.date(2025, 1, 1),
                                                          dt.date(2025, 12, 31))
    choices = Choices(start=dt.date(2025, 7, 1), grain="quarter",
                      picked={"customer__country": ["DE"]})
    chosen = tile_request(overview, overview.tile("revenue_by_month"), choices)
    assert chosen.group_by == ("metric_time__quarter",)
    assert chosen.start.date() == dt.date(2025, 7, 1) and chosen.end.date() == dt.date(2025, 12, 31)
    assert chosen.where == (StructuredFilter("customer__country", "in", ("DE",)),)
    # the picker applies only to the tiles it names; the cohort tile ignores the date range
    margin = tile_request(overview, overview.tile("margin_by_category"), choices)
    assert margin.where == () and margin.group_by == ("product__category",)
    cohorts = tile_request(overview, overview.tile("cohort_retention"), choices)
    assert cohorts.start is None and cohorts.end is None and len(cohorts.where) == 1


def test_dashboard_requests_cover_every_tile_and_each_kpis_previous_period(overview):
    requests = dashboard_requests(PROJECT_DIR)
    names = [(d, t) for d, t, _ in requests]
    assert names.count(("overview", "revenue:previous")) == 1
    assert {t for d, t in names if ":" not in t} == {t.name for t in overview.tiles}
    previous = dict((t, r) for _, t, r in requests)["revenue:previous"]
    assert (previous.start.date(), previous.end.date()) == (dt.date(2024, 1, 1),
                                                            dt.date(2024, 12, 31))
    assert dashboard_requests(PROJECT_DIR, names=["nothing"]) == []


@pytest.mark.parametrize(("start", "end", "before"), [
    ("2025-01-01", "2025-12-31", ("2024-01-01", "2024-12-31")),  # a year (2024 is a leap year)
    ("2025-04-01", "2025-06-30", ("2025-01-01", "2025-03-31")),  # a quarter
    ("2024-03-01", "2024-03-31", ("2024-02-01", "2024-02-29")),  # a month
    ("2025-03-10", "2025-03-16", ("2025-03-03", "2025-03-09")),  # any days: the same count
])  # fmt: skip
def test_previous_period(start, end, before):
    got = previous_period(dt.date.fromisoformat(start), dt.date.fromisoformat(end))
    assert got == tuple(dt.date.fromisoformat(d) for d in before)


def _project(tmp_path: Path, *files: str) -> Path:
    project = tmp_path / "project"
    (project / "models" / "dashboards").mkdir(parents=True)
    (project / "dbt_project.yml").write_text("name: p\nprofile: p\n")
    for i, text in enumerate(files):
        (project / "models" / "dashboards" / f"d{i}.yml").write_text(text)
    return project


GOOD_TILE = "      - {name: t, type: kpi, metrics: [m]}\n"


@pytest.mark.parametrize(("text", "line", "needle"), [
    ("dashboards:\n  - name: d\n    tiles:\n      - {name: t, type: pie, metrics: [m]}\n", 4,
     "unknown type 'pie'"),
    ("dashboards:\n  - name: d\n    tiles:\n      - {name: t, type: lines, metrics: [m]}\n", 4,
     "Did you mean 'line'?"),
    ("dashboards:\n  - name: d\n    titel: x\n    tiles:\n" + GOOD_TILE, 2,
     "unknown key 'titel' in a dashboard. Did you mean 'title'?"),
    ("dashboards:\n  - name: d\n    tiles:\n      - {name: t, type: line, metrics: [m], "
     "grain: fortnight}\n", 4, "unknown grain 'fortnight'"),
    ("dashboards:\n  - name: d\n    controls:\n      date_range: {start: 2025-13-01}\n"
     "    tiles:\n" + GOOD_TILE, 4, "date_range.start must be an ISO date"),
    ("dashboards:\n  - name: d\n    tiles:\n" + GOOD_TILE + GOOD_TILE, 5, "tile 't' appears twice"),
    ("dashboards:\n  - name: d\n    controls:\n      pickers:\n        - {dimension: c, "
     "applies_to: [x]}\n    tiles:\n" + GOOD_TILE, 5, "picker applies to unknown tile 'x'"),
    ("dashboards:\n  - name: d\n    tiles:\n      - {name: t, type: kpi}\n", 4,
     "needs at least one metric"),
    ("dashboards:\n  - name: d\n    tiles: [\n", 4, "not valid YAML"),
    ("dashboard:\n  - name: d\n", None, "top-level `dashboards:` list"),
])  # fmt: skip
def test_each_mistake_is_one_error_with_file_and_line(tmp_path, text, line, needle):
    project = _project(tmp_path, text)
    with pytest.raises(DashboardError) as e:
        load_dashboards(project)
    assert needle in e.value.message
    where = f"d0.yml:{line}: " if line else "d0.yml: "
    assert where in e.value.message
    assert e.value.code == "invalid_dashboard" and e.value.status == 400


def test_two_dashboards_of_one_name(tmp_path):
    text = "dashboards:\n  - name: d\n    tiles:\n" + GOOD_TILE
    with pytest.raises(DashboardError, match="defined twice"):
        load_dashboards(_project(tmp_path, text, text))


def test_no_dashboards_folder_is_no_dashboards(tmp_path):
    (tmp_path / "dbt_project.yml").write_text("name: p\nprofile: p\n")
    assert load_dashboards(tmp_path) == {}
