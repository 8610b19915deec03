"""Cohort metrics against a hand-built dense cohort grid over raw.*: cohort = month of a valid
customer's first completed order; period p = months from the cohort month to the month of a
completed order; every cohort has periods 0 .. (months to 2025-12), zero-retention cells
included."""

from __future__ import annotations

import pytest

from tests.support.hand_sql import (
    COHORT_GRID,
    FLOAT_TOL,
    assert_rows_match,
    expected_rows,
    scalar,
    served_rows,
)

COHORT = "cohort__cohort_month__month"
PERIOD = "cohort__period_number"


METRICS = ["retained_customers", "cohort_customers", "retention_rate", "cohort_size"]


def grid(raw):
    return expected_rows(raw, f"{COHORT_GRID} select * from cells")


@pytest.mark.parametrize("metric", METRICS)
def test_cohort_grid(service, raw, metric):
    group_by = [COHORT, PERIOD]
    served = served_rows(service, [metric], group_by)
    expected = grid(raw)
    tol = FLOAT_TOL if metric == "retention_rate" else None
    # Dense: every cell of every cohort is served (zero retention included); cohort_size is
    # reported on period 0 only, so other cells may be null or absent.
    absent = "null" if metric == "cohort_size" else "forbidden"
    assert_rows_match(served, expected, group_by, metric, tol=tol, absent=absent, min_rows=48)


def test_grid_has_zero_retention_cells_and_is_dense(service, raw):
    expected = grid(raw)
    zero_cells = [r for r in expected if r["retained_customers"] == 0]
    assert zero_cells, "no cohort period without a retained customer: the edge case is missing"
    served = served_rows(service, ["retained_customers"], [COHORT, PERIOD])
    served_keys = {(r[COHORT], r[PERIOD]) for r in served}
    for cell in zero_cells:
        assert (cell[COHORT], cell[PERIOD]) in served_keys, f"zero cell not served: {cell}"
    # Cohorts: one per month of 2022..2025, the last one (2025-12) has period 0 only.
    assert len({r[COHORT] for r in expected}) == 48
    assert len(expected) == sum(range(1, 49))


def test_period_zero_retains_the_whole_cohort(service, raw):
    served = served_rows(service, ["retention_rate", "retained_customers", "cohort_size"],
                         [COHORT], ["{{ Dimension('cohort__period_number') }} = 0"])
    expected = [r for r in grid(raw) if r[PERIOD] == 0]
    assert len(expected) == 48
    assert_rows_match(served, expected, [COHORT], "retained_customers")
    assert_rows_match(served, expected, [COHORT], "cohort_size")
    assert all(r["retention_rate"] == 1.0 for r in served), served[:3]


@pytest.mark.parametrize("group_by", [[COHORT], ["metric_time__month"]], ids=["cohort", "time"])
def test_cohort_size_by_cohort_month(service, raw, group_by):
    served = served_rows(service, ["cohort_size"], group_by)
    expected = expected_rows(raw, f"""{COHORT_GRID}
        select cohort_month as {group_by[0]}, n as cohort_size from sizes""")
    assert_rows_match(served, expected, group_by, "cohort_size", min_rows=48)


@pytest.mark.parametrize("grain", ["quarter", "year"])
def test_cohort_size_by_coarser_grain(service, raw, grain):
    """A cohort quarter / year holds the customers whose first completed order falls in it."""
    key = f"metric_time__{grain}"
    served = served_rows(service, ["cohort_size"], [key])
    expected = expected_rows(raw, f"""
        select cast(date_trunc('{grain}', first_order_date) as date) as {key},
               count(*) as cohort_size
        from customer_attrs where first_order_date is not null group by all""")
    assert_rows_match(served, expected, [key], "cohort_size")
    total = scalar(raw, "select count(*) from customer_attrs where first_order_date is not null")
    assert sum(r["cohort_size"] for r in served) == total


@pytest.mark.parametrize("metric", ["retained_customers", "cohort_customers", "retention_rate"])
def test_by_period_number_across_cohorts(service, raw, metric):
    """Across cohorts: retained and eligible customers are summed per period number."""
    served = served_rows(service, [metric], [PERIOD])
    expected = expected_rows(raw, f"""{COHORT_GRID}
        select cohort__period_number,
               sum(retained_customers) as retained_customers,
               sum(cohort_customers) as cohort_customers,
               cast(sum(retained_customers) as double) / sum(cohort_customers) as retention_rate
        from cells group by all""")
    tol = FLOAT_TOL if metric == "retention_rate" else None
    assert_rows_match(served, expected, [PERIOD], metric, tol=tol, min_rows=48)


@pytest.mark.parametrize("metric", ["retained_customers", "retention_rate"])
def test_one_cohort_filtered(service, raw, metric):
    served = served_rows(service, [metric], [COHORT, PERIOD],
                         ["{{ TimeDimension('cohort__cohort_month', 'month') }} = '2023-06-01'"])
    expected = [r for r in grid(raw) if str(r[COHORT]) == "2023-06-01"]
    assert len(expected) == 31
    tol = FLOAT_TOL if metric == "retention_rate" else None
    assert_rows_match(served, expected, [COHORT, PERIOD], metric, tol=tol, min_rows=31)
