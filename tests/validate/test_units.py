"""Small pieces without dbt: when a parse is fresh, where an element is defined, the rules'
own logic."""

from __future__ import annotations

import json
import os
import time

from server.validate.locate import Locator, message_names
from server.validate.parse import STAMP, fresh_outcome
from tests.validate.conftest import ORDERS, SAVED, make_copy


def _age(path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_a_dbt_target_is_fresh_until_a_project_file_changes(tmp_path):
    copy = make_copy(tmp_path / "p")
    for f in copy.root.rglob("*"):
        if f.is_file():
            _age(f, 60)
    target = copy.target_dir
    target.mkdir()
    (target / "semantic_manifest.json").write_text("{}")
    (target / "manifest.json").write_text("{}")
    outcome = fresh_outcome(copy.project_dir, target)
    assert outcome is not None and outcome.reused and outcome.success
    copy.path(ORDERS).write_text(copy.path(ORDERS).read_text() + "\n")  # an edit, now
    assert fresh_outcome(copy.project_dir, target) is None
    # tally.yml does not change what dbt parses
    (target / "semantic_manifest.json").write_text("{}")
    (target / "manifest.json").write_text("{}")
    (copy.project_dir / "tally.yml").write_text("validate: {}\n")
    assert fresh_outcome(copy.project_dir, target) is not None


def test_a_stamp_is_reused_only_for_the_same_files(tmp_path):
    from server.validate.parse import fingerprint

    copy = make_copy(tmp_path / "p")
    target = copy.target_dir
    target.mkdir()
    fp, _ = fingerprint(copy.project_dir)
    stamp = {"success": False, "semantic_ok": None, "events": [{"level": "error",
             "name": "MainEncounteredError", "msg": "boom"}], "exception": "boom",
             "fingerprint": fp}  # fmt: skip
    (target / STAMP).write_text(json.dumps(stamp))
    outcome = fresh_outcome(copy.project_dir, target)
    assert outcome is not None and not outcome.success and outcome.events[0]["msg"] == "boom"
    copy.path(SAVED).write_text(copy.path(SAVED).read_text() + "\n")
    assert fresh_outcome(copy.project_dir, target) is None
    # A successful stamp whose manifest is gone is not reused either.
    stamp.update(success=True, fingerprint=fingerprint(copy.project_dir)[0])
    (target / STAMP).write_text(json.dumps(stamp))
    assert fresh_outcome(copy.project_dir, target) is None


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
    from server.validate.tally_rules import SNAKE, definition

    assert SNAKE.match("revenue_per_customer") and SNAKE.match("revenue_30d")
    for bad in ("Revenue", "revenue__x", "_revenue", "revenue-x", "revenue_"):
        assert not SNAKE.match(bad), bad
    a = {"name": "a", "label": "A", "description": "x", "type": "simple",
         "type_params": {"measure": {"name": "revenue"}}, "filter": None}  # fmt: skip
    b = {**a, "name": "b", "label": "B", "description": "y"}
    assert definition(a) == definition(b)
    assert definition(a) != definition({**b, "filter": {"where_filters": []}})
