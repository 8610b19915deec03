"""Time grains (tally/core/grains.py): finest to coarsest, and names that carry one."""

from __future__ import annotations

import pytest

from tally.core.grains import DATE_SUFFIXES, GRAINS, grains_from, split_grain


def test_grains_from_a_dimensions_own_grain():
    assert GRAINS == ("day", "week", "month", "quarter", "year")
    assert grains_from("day") == GRAINS
    assert grains_from("month") == ("month", "quarter", "year")
    assert grains_from("year") == ("year",)
    # an unknown or missing grain: every standard one
    assert grains_from(None) == GRAINS and grains_from("hour") == GRAINS


@pytest.mark.parametrize(
    "name,expected",
    [
        ("metric_time__month", ("metric_time", "month")),
        ("cohort__cohort_month__year", ("cohort__cohort_month", "year")),
        ("customer__country", ("customer__country", None)),
        ("metric_time", ("metric_time", None)),
        ("__day", ("__day", None)),  # no name before the grain
        ("metric_time__hour", ("metric_time__hour", None)),  # not a standard grain
    ],
)
def test_split_grain(name, expected):
    assert split_grain(name) == expected


def test_date_suffixes():
    assert DATE_SUFFIXES == ("__day", "__week", "__month", "__quarter", "__year")
