"""Copies of the dbt project, each broken on purpose, and the `tally` command in-process.

Each copy holds dbt_project/ (without target/, logs, warehouse files) and semantic/, mutated
by an exact text replacement that must match, so a fixture cannot silently stop being broken
when the project's YAML changes. Each is parsed into <copy>/target by the same code as
`tally validate`, which then reuses that parse (its stamp) instead of parsing again."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import shared
from tests.support.paths import DBT, PROJECT_DIR, SEMANTIC_DIR

# dbt's outputs, built warehouses, and tally's and DuckDB's working state (.tally: the query
# history and monitor state that servers of earlier tests left in the source tree; .tmp): a
# copy starts as a fresh checkout of the project would.
_IGNORE = shutil.ignore_patterns(
    "target", "target.old", "logs", "dbt_packages", ".build", "*.duckdb", "*.duckdb.wal",
    "__pycache__", ".tally", ".tmp"
)


@dataclass(frozen=True)
class Copy:
    root: Path

    @property
    def project_dir(self) -> Path:
        return self.root / "dbt_project"

    @property
    def target_dir(self) -> Path:
        return self.root / "target"

    @property
    def manifest_path(self) -> Path:
        return self.target_dir / "semantic_manifest.json"

    def path(self, rel: str) -> Path:
        return self.root / rel

    def replace(self, rel: str, old: str, new: str) -> None:
        f = self.path(rel)
        text = f.read_text()
        assert old in text, f"fixture mutation no longer applies: {old!r} not in {rel}"
        f.write_text(text.replace(old, new, 1))

    def remove_metric(self, rel: str, name: str) -> None:
        f = self.path(rel)
        text = f.read_text()
        block = re.compile(rf"  - name: {name}\n(?:(?!  - name:).*\n?)*")
        new, n = block.subn("", text, count=1)
        assert n == 1, f"metric {name} not found in {rel}"
        f.write_text(new)

    def line_of(self, rel: str, needle: str) -> int:
        lines = self.path(rel).read_text().splitlines()
        return next(i + 1 for i, line in enumerate(lines) if needle in line)


def make_copy(dst: Path) -> Copy:
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copytree(PROJECT_DIR, dst / "dbt_project", ignore=_IGNORE)
    shutil.copytree(SEMANTIC_DIR, dst / "semantic", ignore=_IGNORE)
    return Copy(dst)


ORDERS = "semantic/metrics/orders.yml"
CUSTOMERS = "semantic/metrics/customers.yml"
SAVED = "semantic/saved_queries/saved_queries.yml"
EXPOSURES = "dbt_project/models/marts/exposures.yml"
CUSTOMER_MODEL = "semantic/semantic_models/customers.yml"
ITEMS = "semantic/metrics/items.yml"
PROJECT_FILE = "dbt_project/dbt_project.yml"


def _unknown_measure(c: Copy) -> None:
    c.replace(ORDERS, "      measure: order_count\n", "      measure: order_countx\n")


def _bad_entity(c: Copy) -> None:
    c.replace(CUSTOMERS, "        entity: customer\n", "        entity: customerx\n")


def _ratio_of_missing_metric(c: Copy) -> None:
    c.replace(ORDERS, "      denominator: order_count\n", "      denominator: order_countz\n")


def _missing_description(c: Copy) -> None:
    c.replace(ORDERS, "    description: Units sold in completed orders (sum of quantities).\n", "")


def _duplicate_metric(c: Copy) -> None:
    f = c.path(ORDERS)
    f.write_text(f.read_text().rstrip("\n") + "\n\n" + (
        "  - name: net_revenue\n"
        "    label: Net revenue\n"
        "    description: Revenue after discounts, over completed orders.\n"
        "    type: simple\n"
        "    type_params:\n"
        "      measure: revenue\n"
        "    meta: {owner: \"@finance-analytics\"}\n"
    ))  # fmt: skip


def _removed_metric_in_saved_query(c: Copy) -> None:
    c.remove_metric(CUSTOMERS, "new_customers")


def _dropped_metric(c: Copy) -> None:
    """new_customers removed from the metrics and from the saved query, but an exposure still
    names it: dbt parses it, tally's exposure rule and `tally diff` must catch it."""
    c.remove_metric(CUSTOMERS, "new_customers")
    c.replace(SAVED, ", active_customers, new_customers]", ", active_customers]")


def _missing_column(c: Copy) -> None:
    c.replace(
        CUSTOMER_MODEL,
        "      - name: country\n        type: categorical\n",
        "      - name: country\n        type: categorical\n        expr: country_code\n",
    )


def _exposure_unknown_metric(c: Copy) -> None:
    c.replace(EXPOSURES, "metrics: [revenue, order_count,", "metrics: [revenu, order_count,")


def _missing_owner(c: Copy) -> None:
    c.replace(
        ORDERS,
        '    meta: {owner: "@finance-analytics", tier: 2, format: currency}\n\n  - name: revenue\n',
        "    meta: {tier: 2, format: currency}\n\n  - name: revenue\n",
    )


def _bad_saved_query_group_by(c: Copy) -> None:
    c.replace(SAVED, "Dimension('customer__country')", "Dimension('customer__countryx')")


def _changed_definition(c: Copy) -> None:
    """average_order_value divides by every order instead of completed ones."""
    c.replace(
        ORDERS,
        "      numerator: revenue\n      denominator: completed_orders\n",
        "      numerator: revenue\n      denominator: order_count\n",
    )


def _metric_filter_typo(c: Copy) -> None:
    """A misspelt dimension in a metric's filter: dbt and MetricFlow's validations accept it;
    only compiling the metric finds it."""
    c.replace(CUSTOMERS, "Dimension('customer__customer_segment') }} = 'High Value'",
              "Dimension('customer__customer_segmentx') }} = 'High Value'")  # fmt: skip


def _camel_case_metric(c: Copy) -> None:
    """item_revenue renamed ItemRevenueX, with every reference to it."""
    f = c.path(ITEMS)
    text = f.read_text()
    for old, new in (("- name: item_revenue\n", "- name: ItemRevenueX\n"),
                     ("expr: item_revenue -", "expr: ItemRevenueX -"),
                     ("nullif(item_revenue,", "nullif(ItemRevenueX,")):  # fmt: skip
        assert old in text, old
        text = text.replace(old, new)
    f.write_text(text)


def dbt_warning(c: Copy) -> None:
    """A config path in dbt_project.yml that matches no model: dbt warns, nothing fails."""
    c.replace(PROJECT_FILE, "    staging:\n", "    stagingg:\n      +materialized: view\n"
              "    staging:\n")  # fmt: skip


FIXTURES: dict[str, Callable[[Copy], None]] = {
    "unknown_measure": _unknown_measure,
    "bad_entity": _bad_entity,
    "ratio_of_missing_metric": _ratio_of_missing_metric,
    "missing_description": _missing_description,
    "duplicate_metric": _duplicate_metric,
    "removed_metric_in_saved_query": _removed_metric_in_saved_query,
    "dropped_metric": _dropped_metric,
    "missing_column": _missing_column,
    "exposure_unknown_metric": _exposure_unknown_metric,
    "missing_owner": _missing_owner,
    "bad_saved_query_group_by": _bad_saved_query_group_by,
    "changed_definition": _changed_definition,
    "metric_filter_typo": _metric_filter_typo,
    "camel_case_metric": _camel_case_metric,
}


def _parse_copies(root: Path) -> dict[str, str]:
    from tally.validate.parse import run_parse

    # A clean copy parsed in full first; the others start from its partial-parse state.
    clean = make_copy(root / "clean")
    run_parse(clean.project_dir, clean.project_dir, clean.target_dir)
    seed = clean.target_dir / "partial_parse.msgpack"
    copies = []
    for name, mutate in FIXTURES.items():
        copy = make_copy(root / name)
        mutate(copy)
        copies.append(copy)

    # One after another, in this process: a warm in-process dbt parse from the seed takes a
    # fraction of a second, a child process of its own seconds (bench/validate_parse.py).
    for copy in copies:
        run_parse(copy.project_dir, copy.project_dir, copy.target_dir, seed=seed)
    return {"root": str(root)}


def broken_copies(config: pytest.Config) -> dict[str, Copy]:
    """Every fixture copy, mutated and parsed: once per run (shared.build_once), shared by
    every test process, read-only (a test writes its own files in its tmp_path)."""
    root = Path(shared.build_once(config, "broken", _parse_copies)["root"])
    return {name: Copy(root / name) for name in ("clean", *FIXTURES)}


def _dbt_parse(root: Path) -> dict[str, str]:
    import subprocess

    copy = make_copy(root)
    proc = subprocess.run([str(DBT), "parse", "--profiles-dir", ".", "--quiet"],
                          cwd=copy.project_dir, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr  # fmt: skip
    assert (copy.project_dir / "target" / "semantic_manifest.json").exists()
    return {"root": str(root)}


def dbt_parsed_copy(config: pytest.Config) -> Copy:
    """A copy of the project with dbt_project/target/ written by the real `dbt parse`, as
    `dbt build` / `dbt parse` leave it in CI: once per run, shared read-only."""
    return Copy(Path(shared.build_once(config, "dbt-parsed", _dbt_parse)["root"]))


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> dict:
        return json.loads(self.out)


def tally(*args: str | Path) -> Run:
    """The `tally` command, in-process (the CLI's own main, exit code and all)."""
    from tally.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return Run(code, out.getvalue(), err.getvalue())


def validate(copy: Copy, *args: str | Path) -> Run:
    return tally("validate", "--project-dir", copy.project_dir, "--target-path", copy.target_dir,
                 *args)  # fmt: skip
