"""Time grains (tally/core/grains.py): finest to coarsest, and names that carry one."""

from __future__ import annotations

import pytest

from tally.core.grains import DATE_SUFFIXES, GRAINS, grains_from, split_grain


def test_grains_from_a_dimensions_own_grain():
    assert GRAINS == ("day", "week", "month", "quarter", "year")
    assert grains_from("day") == GRAINS
    assert grains_from("month") == ("month", "quarter", "year")
    assert grains_from("year") == ("year",)
    # an unknown or missing grain: a date dimension's grains
    assert grains_from(None) == GRAINS and grains_from("fortnight") == GRAINS
    # a sub-daily dimension: its own grain and every coarser one, then the custom grains
    assert grains_from("hour") == ("hour", *GRAINS)
    assert grains_from("hour", ["fiscal_quarter"]) == ("hour", *GRAINS, "fiscal_quarter")
    # custom grains are built on days: not offered for a dimension coarser than a day
    assert grains_from("month", ["fiscal_quarter"]) == ("month", "quarter", "year")


@pytest.mark.parametrize(
    "name,expected",
    [
        ("metric_time__month", ("metric_time", "month")),
        ("cohort__cohort_month__year", ("cohort__cohort_month", "year")),
        ("customer__country", ("customer__country", None)),
        ("metric_time", ("metric_time", None)),
        ("__day", ("__day", None)),  # no name before the grain
        ("metric_time__hour", ("metric_time", "hour")),  # a sub-daily grain
        ("metric_time__fortnight", ("metric_time__fortnight", None)),  # not a grain
    ],
)
def test_split_grain(name, expected):
    assert split_grain(name) == expected


def test_split_grain_with_a_projects_custom_grain():
    assert split_grain("metric_time__fiscal_quarter", ["fiscal_quarter"]) == (
        "metric_time",
        "fiscal_quarter",
    )
    assert split_grain("metric_time__fiscal_quarter") == ("metric_time__fiscal_quarter", None)


def test_date_suffixes():
    assert DATE_SUFFIXES == ("__day", "__week", "__month", "__quarter", "__year")
