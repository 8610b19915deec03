"""The helpers the other tests stand on: a comparison that can fail, a clock that only moves
forward, builds made once per run, and the groups that share a worker."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from tests.support import scheduling, shared
from tests.support.clock import FakeClock
from tests.support.hand_sql import assert_rows_match

ROWS = [{"k": "a", "v": Decimal("1.50")}, {"k": "b", "v": 2}]


def test_rows_match_exactly_or_not_at_all():
    assert assert_rows_match(ROWS, [{"k": "a", "v": Decimal("1.5")}, {"k": "b", "v": 2}],
                             ["k"], "v") == 2
    with pytest.raises(AssertionError, match="expected Decimal"):
        assert_rows_match(ROWS, [{"k": "a", "v": Decimal("1.51")}, {"k": "b", "v": 2}],
                          ["k"], "v")
    # Money never goes through floating point: a float is a mismatch even when equal.
    with pytest.raises(AssertionError, match="mismatching"):
        assert_rows_match(ROWS, [{"k": "a", "v": 1.5}, {"k": "b", "v": 2}], ["k"], "v")
    assert assert_rows_match(ROWS, [{"k": "a", "v": 1.5000000001}, {"k": "b", "v": 2}],
                             ["k"], "v", tol=1e-6) == 2


def test_a_row_on_one_side_only():
    with pytest.raises(AssertionError, match="served only"):
        assert_rows_match(ROWS, ROWS[:1], ["k"], "v")
    with pytest.raises(AssertionError, match="expected only"):
        assert_rows_match(ROWS[:1], ROWS, ["k"], "v")
    # "zero": a period without events may be missing on one side when the other says 0
    zero = [{"k": "a", "v": Decimal("1.50")}, {"k": "b", "v": 0}]
    assert assert_rows_match(ROWS[:1], zero, ["k"], "v", absent="zero") == 1  # a compared
    with pytest.raises(AssertionError, match="expected only"):
        assert_rows_match(ROWS[:1], ROWS, ["k"], "v", absent="zero")


def test_a_vacuous_comparison_fails():
    with pytest.raises(AssertionError, match="vacuous"):
        assert_rows_match([], [], ["k"], "v")
    with pytest.raises(AssertionError, match="non-null"):
        assert_rows_match([{"k": "a", "v": None}], [{"k": "a", "v": None}], ["k"], "v")
    with pytest.raises(AssertionError, match="duplicate served row"):
        assert_rows_match(ROWS + ROWS[:1], ROWS, ["k"], "v")


def test_the_fake_clock_moves_only_forward_and_only_when_told():
    clock = FakeClock(10.0)
    assert clock() == clock() == 10.0
    clock.advance(2.5)
    assert clock() == 12.5
    with pytest.raises(AssertionError):
        clock.advance(-1)


def test_a_shared_build_runs_once_and_a_failed_one_fails_every_caller(request):
    name = f"test-{uuid.uuid4().hex[:8]}"
    built = []

    def build(folder):
        built.append(folder)
        (folder / "file").write_text("made")
        return {"folder": str(folder)}

    first = shared.build_once(request.config, name, build)
    assert shared.build_once(request.config, name, build) == first
    assert len(built) == 1 and (built[0] / "file").read_text() == "made"

    def broken(folder):
        raise RuntimeError("dbt build failed: no such model")

    with pytest.raises(RuntimeError):
        shared.build_once(request.config, name + "-broken", broken)
    with pytest.raises(pytest.fail.Exception, match="no such model"):
        shared.build_once(request.config, name + "-broken", build)
    assert len(built) == 1  # never tried again


def test_groups_and_slow_tests_by_node_id():
    assert scheduling.group_of("tests/datagen/test_datagen.py::test_y[1]") == "datagen"
    assert scheduling.group_of("tests/api/test_query.py::test_z") is None
    assert scheduling.is_slow("tests/validate/test_diff.py::test_x")
    assert scheduling.is_slow("tests/correctness/test_order_metrics.py::test_a[postgres-day]")
    assert not scheduling.is_slow("tests/correctness/test_order_metrics.py::test_a[core-day]")
