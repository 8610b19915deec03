"""tally validate's dashboard rules over a project whose dashboards name a renamed metric, a
dimension a tile's metric cannot reach, a bad grain, a picker that does not reach a tile, and a
malformed file: one finding each, with file and line, against the real catalog (compiled)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tally.validate.config import ValidateConfig
from tally.validate.context import Context
from tally.validate.dashboard_rules import run_dashboard_rules
from tally.validate.findings import Report
from tally.validate.locate import Locator
from tests.support.paths import PROJECT_DIR

BROKEN = """dashboards:
  - name: broken
    controls:
      date_range: {start: 2025-01-01, end: 2025-12-31}
      pickers:
        - {dimension: cohort__period_number, applies_to: [margin]}
        - {dimension: customer__country}
    tiles:
      - {name: fine, type: kpi, metrics: [revenue]}
      - {name: renamed, type: kpi, metrics: [revenu]}
      - {name: unreachable, type: bar, metrics: [revenue], group_by: [product__categry]}
      - {name: margin, type: bar, metrics: [gross_margin], group_by: [product__category]}
"""


def _context(project: Path, compiler) -> Context:
    return Context(project_dir=project, manifest_path=project / "none.json", semantic={},
                   raw=None, dbt_manifest={}, locator=Locator([]), config=ValidateConfig(),
                   report=Report(), compiler=compiler)  # fmt: skip


def _project(tmp_path: Path, **files: str) -> Path:
    (tmp_path / "models" / "dashboards").mkdir(parents=True)
    (tmp_path / "dbt_project.yml").write_text("name: p\nprofile: p\n")
    for name, text in files.items():
        (tmp_path / "models" / "dashboards" / name).write_text(text)
    return tmp_path


@pytest.fixture(scope="module")
def compiler(session_services):
    return session_services.service().compiler


def test_the_demo_dashboards_are_clean(compiler):
    ctx = _context(PROJECT_DIR, compiler)
    run_dashboard_rules(ctx)
    assert ctx.report.findings == []
    assert ctx.report.checked["dashboard_tile_compiles"] >= 6


def test_each_broken_tile_is_one_finding_with_its_line(tmp_path, compiler):
    project = _project(tmp_path, **{"broken.yml": BROKEN,
                                    "bad.yml": "dashboards:\n  - name: x\n    tiles: []\n"})
    ctx = _context(project, compiler)
    run_dashboard_rules(ctx)
    found = {(f.rule, f.line): f.message for f in ctx.report.findings}
    assert set(found) == {
        ("dashboard_valid", 2),               # bad.yml: no tiles
        ("dashboard_tile_compiles", 10),      # revenu (once: not again for the country picker)
        ("dashboard_tile_compiles", 11),      # product__categry
        ("dashboard_tile_compiles", 6),       # the picker's dimension does not reach margin
    }, found
    assert "Did you mean 'revenue'?" in found[("dashboard_tile_compiles", 10)]
    unreachable = found[("dashboard_tile_compiles", 11)]
    assert "Unknown dimension 'product__categry'" in unreachable
    picker = found[("dashboard_tile_compiles", 6)]
    assert "picker 'cohort__period_number' on tile 'margin'" in picker
    assert all(Path(f.file).name in ("broken.yml", "bad.yml") for f in ctx.report.findings)
