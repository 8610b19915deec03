"""Small pieces without dbt: when a parse is fresh, where an element is defined, the rules'
own logic."""

from __future__ import annotations

import json
import os
import time

from tally.validate.freshness import (
    STAMP,
    TargetInfo,
    fingerprint,
    fresh_outcome,
    target_info,
)
from tally.validate.locate import Locator, message_names
from tests.support.paths import PROJECT_DIR
from tests.support.project_copies import ORDERS, SAVED, make_copy

DEV = TargetInfo("dev", "duckdb", True)
COHORTS = "semantic/metrics/cohorts.yml"


def _age(path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


def _age_all(root, seconds: float) -> None:
    for p in [root, *root.rglob("*")]:
        _age(p, seconds)


def _dbt_target(copy, files: list[str] = (), adapter: str = "duckdb"):
    """A target/ as dbt writes it, now: its manifest.json names `files` (relative to the
    project folder) as the files defining its metrics."""
    target = copy.target_dir
    target.mkdir(exist_ok=True)
    (target / "semantic_manifest.json").write_text('{"semantic_models": [], "metrics": []}')
    metrics = {f"metric.tally.m{i}": {"package_name": "tally", "original_file_path": f}
               for i, f in enumerate(files)}  # fmt: skip
    manifest = {"metadata": {"project_name": "tally", "adapter_type": adapter},
                "nodes": {}, "metrics": metrics}  # fmt: skip
    (target / "manifest.json").write_text(json.dumps(manifest))
    return target


def test_a_dbt_target_is_fresh_until_a_project_file_changes(tmp_path):
    copy = make_copy(tmp_path / "p")
    _age_all(copy.root, 60)
    target = _dbt_target(copy)
    outcome, why = fresh_outcome(copy.project_dir, target, DEV)
    assert outcome is not None and outcome.reused and outcome.success, why
    assert not outcome.warnings_complete  # dbt's own target/ keeps no warnings
    _age(copy.path(ORDERS), -5)  # an edit after dbt wrote the target
    outcome, why = fresh_outcome(copy.project_dir, target, DEV)
    assert outcome is None and "changed after dbt wrote it" in why
    # tally.yml does not change what dbt parses
    _age(copy.path(ORDERS), 60)
    (copy.project_dir / "tally.yml").write_text("validate: {}\n")
    _age(copy.project_dir / "tally.yml", -5)
    assert fresh_outcome(copy.project_dir, target, DEV)[0] is not None


def test_deleting_a_file_makes_a_dbt_target_stale(tmp_path):
    """No remaining file is newer than the manifest after a delete; its folder is."""
    copy = make_copy(tmp_path / "p")
    _age_all(copy.root, 60)
    target = _dbt_target(copy)
    assert fresh_outcome(copy.project_dir, target, DEV)[0] is not None
    copy.path(COHORTS).unlink()
    _age(copy.path(COHORTS).parent, -5)  # the folder's mtime, as the delete left it (now)
    outcome, why = fresh_outcome(copy.project_dir, target, DEV)
    assert outcome is None and "folder changed" in why


def test_a_file_dbt_knew_that_is_gone_makes_a_dbt_target_stale(tmp_path):
    """Even when every folder's mtime is older than the manifest (a restored cache, a copy),
    a file that manifest.json names and that no longer exists means a stale parse."""
    copy = make_copy(tmp_path / "p")
    target = _dbt_target(copy, ["../semantic/metrics/cohorts.yml", "../semantic/metrics/items.yml"])
    _age_all(copy.root, 60)
    _age_all(target, 0)
    assert fresh_outcome(copy.project_dir, target, DEV)[0] is not None
    copy.path(COHORTS).unlink()
    _age_all(copy.root / "semantic", 60)
    outcome, why = fresh_outcome(copy.project_dir, target, DEV)
    assert outcome is None and why == "../semantic/metrics/cohorts.yml no longer exists"


def test_a_dbt_target_is_reused_only_for_the_default_target_and_its_adapter(tmp_path):
    copy = make_copy(tmp_path / "p")
    _age_all(copy.root, 60)
    target = _dbt_target(copy, adapter="duckdb")
    assert fresh_outcome(copy.project_dir, target, DEV)[0] is not None
    outcome, why = fresh_outcome(copy.project_dir, target, TargetInfo("postgres", "postgres",
                                                                       False))  # fmt: skip
    assert outcome is None and "another target" in why
    # the default target, but not the adapter dbt parsed for
    outcome, why = fresh_outcome(copy.project_dir, target, TargetInfo("dev", "postgres", True))
    assert outcome is None and "for a duckdb target" in why


def test_target_info_reads_the_profile(monkeypatch):
    monkeypatch.delenv("TALLY_TARGET", raising=False)
    monkeypatch.delenv("DBT_TARGET", raising=False)
    assert target_info(PROJECT_DIR, PROJECT_DIR, None) == DEV
    assert target_info(PROJECT_DIR, PROJECT_DIR, "dev") == DEV
    assert target_info(PROJECT_DIR, PROJECT_DIR, "postgres") == TargetInfo(
        "postgres", "postgres", False)  # fmt: skip
    monkeypatch.setenv("TALLY_TARGET", "postgres")  # the profile's default follows it
    assert target_info(PROJECT_DIR, PROJECT_DIR, None) == TargetInfo("postgres", "postgres",
                                                                     True)  # fmt: skip
    unknown = target_info(PROJECT_DIR, PROJECT_DIR, "nope")
    assert unknown.adapter is None and not unknown.is_default


def test_a_stamp_is_reused_only_for_the_same_files_and_target(tmp_path):
    copy = make_copy(tmp_path / "p")
    target = copy.target_dir
    target.mkdir()
    fp, _ = fingerprint(copy.project_dir, "dev")
    stamp = {"success": False, "semantic_ok": None, "events": [{"level": "error",
             "name": "MainEncounteredError", "msg": "boom"}], "exception": "boom",
             "fingerprint": fp, "target": "dev", "warnings_complete": True}  # fmt: skip
    (target / STAMP).write_text(json.dumps(stamp))
    outcome, _ = fresh_outcome(copy.project_dir, target, DEV)
    assert outcome is not None and not outcome.success and outcome.events[0]["msg"] == "boom"
    assert outcome.warnings_complete
    postgres = TargetInfo("postgres", "postgres", False)
    assert fresh_outcome(copy.project_dir, target, postgres)[0] is None
    copy.path(SAVED).write_text(copy.path(SAVED).read_text() + "\n")
    assert fresh_outcome(copy.project_dir, target, DEV)[0] is None
    # A successful stamp whose manifest is gone is not reused either.
    stamp.update(success=True, fingerprint=fingerprint(copy.project_dir, "dev")[0])
    (target / STAMP).write_text(json.dumps(stamp))
    assert fresh_outcome(copy.project_dir, target, DEV)[0] is None
    # Deleting a file changes the fingerprint (its path is part of it).
    before = fingerprint(copy.project_dir, "dev")[0]
    copy.path(COHORTS).unlink()
    assert fingerprint(copy.project_dir, "dev")[0] != before


def test_locator_finds_elements_fields_and_values(tmp_path):
    copy = make_copy(tmp_path / "p")
    loc = Locator.for_project(copy.project_dir)
    orders = copy.path(ORDERS).resolve()
    m = loc.find("metric", "revenue")
    lines = copy.path(ORDERS).read_text().splitlines()
    assert m.path == orders and lines[m.line - 1] == "  - name: revenue"
    assert loc.find("metric", "revenue", "meta").line > m.line
    d = loc.find("dimension", "customers.country")
    assert d is not None and d.path.name == "customers.yml"
    assert loc.find("dimension", "country") == d  # a bare element name
    sq = loc.value_line("saved_query", "executive_kpis_by_month", "new_customers")
    assert sq.line == copy.line_of(SAVED, "new_customers]")
    quoted = loc.value_line("saved_query", "revenue_by_country_by_month", "customer__country")
    assert quoted.line == copy.line_of(SAVED, "Dimension('customer__country')")
    assert loc.find("metric", "nope") is None
    assert "order_count" in loc.names("metric") and "revenue" in loc.names("measure")


def test_message_names():
    assert message_names("measure `order_countx` of 'revenue': entity_x") == [
        "order_countx", "revenue", "entity_x"]  # fmt: skip


def test_snake_case_and_definition_rules():
    from tally.validate.tally_rules import SNAKE, definition

    assert SNAKE.match("revenue_per_customer") and SNAKE.match("revenue_30d")
    for bad in ("Revenue", "revenue__x", "_revenue", "revenue-x", "revenue_"):
        assert not SNAKE.match(bad), bad
    a = {"name": "a", "label": "A", "description": "x", "type": "simple",
         "type_params": {"measure": {"name": "revenue"}}, "filter": None}  # fmt: skip
    b = {**a, "name": "b", "label": "B", "description": "y"}
    assert definition(a) == definition(b)
    assert definition(a) != definition({**b, "filter": {"where_filters": []}})
