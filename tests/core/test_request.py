from __future__ import annotations

import datetime as dt

import pytest

from tally.core.request import QueryRequest, split_csv
from tally.errors import InvalidFilter, InvalidOrderBy, InvalidRequest


def test_names_are_split_trimmed_lowercased_and_deduplicated():
    r = QueryRequest.create(
        metrics=[" Revenue , order_count", "revenue"],
        group_by="metric_time__MONTH, customer__country",
    )
    assert r.metrics == ("revenue", "order_count")
    assert r.group_by == ("metric_time__month", "customer__country")


def test_normalized_ignores_order_but_not_order_by_nor_a_filters_text():
    a = QueryRequest.create(
        metrics=["revenue", "order_count"],
        group_by=["customer__country", "metric_time__month"],
        where=["{{ Dimension('customer__country') }} = 'US'"],
        order_by=["-revenue"],
    )
    b = QueryRequest.create(
        metrics=["order_count", "revenue"],
        group_by=["metric_time__month", "customer__country"],
        where=["{{ Dimension('customer__country') }} = 'US'"],
        order_by=["-revenue"],
    )
    assert a != b
    assert a.normalized() == b.normalized()
    # Filters are kept exactly: white space inside a value is part of the value (spellings
    # that mean the same share a cache key through tally.cache.keys, which parses them).
    spaced = QueryRequest.create(metrics=["revenue"],
                                 where=["{{ Dimension('customer__status') }} = 'At  Risk'"])
    single = QueryRequest.create(metrics=["revenue"],
                                 where=["{{ Dimension('customer__status') }} = 'At Risk'"])
    assert spaced.normalized() != single.normalized()
    c = QueryRequest.create(metrics=["revenue"], order_by=["revenue"])
    d = QueryRequest.create(metrics=["revenue"], order_by=["-revenue"])
    assert c.normalized() != d.normalized()


@pytest.mark.parametrize("limit", [-1, "ten", 1.5, True, [3]])
def test_bad_limits_are_rejected(limit):
    with pytest.raises(InvalidRequest, match="limit"):
        QueryRequest.create(metrics=["revenue"], limit=limit)


@pytest.mark.parametrize("limit,expected", [(0, 0), ("5", 5), (None, None), (10.0, 10)])
def test_good_limits(limit, expected):
    assert QueryRequest.create(metrics=["revenue"], limit=limit).limit == expected


def test_no_metric_and_no_saved_query_is_an_error():
    with pytest.raises(InvalidRequest, match="at least one metric"):
        QueryRequest.create(metrics=[])


@pytest.mark.parametrize("name", ["revenue;drop", "Revenue Total", "1revenue", "rev-enue", "a.b"])
def test_names_must_be_snake_case(name):
    with pytest.raises(InvalidRequest, match="snake_case"):
        QueryRequest.create(metrics=[name])


def test_order_by_accepts_descending_prefix_and_rejects_junk():
    assert QueryRequest.create(metrics="revenue", order_by="-Revenue").order_by == ("-revenue",)
    with pytest.raises(InvalidOrderBy):
        QueryRequest.create(metrics="revenue", order_by="revenue desc")


def test_time_range_parsing_and_ordering():
    r = QueryRequest.create(metrics="revenue", start="2024-01-01", end=dt.date(2024, 3, 31))
    assert r.start == dt.datetime(2024, 1, 1) and r.end == dt.datetime(2024, 3, 31)
    with pytest.raises(InvalidRequest, match="after end"):
        QueryRequest.create(metrics="revenue", start="2024-02-01", end="2024-01-01")
    with pytest.raises(InvalidRequest, match="ISO date"):
        QueryRequest.create(metrics="revenue", start="last tuesday")


def test_non_string_items_are_rejected():
    with pytest.raises(InvalidRequest, match="must be a string"):
        QueryRequest.create(metrics=["revenue", 3])


def test_overlong_filter_is_rejected():
    with pytest.raises(InvalidFilter, match="too long"):
        QueryRequest.create(metrics="revenue", where="x" * 5000)


def test_split_csv():
    assert split_csv(["a,b", " c ", ""]) == ["a", "b", "c"]


@pytest.mark.parametrize("limit", [float("inf"), float("-inf"), float("nan"), "1e400", 2**70])
def test_limits_that_are_not_row_counts_are_refused(limit):
    with pytest.raises(InvalidRequest, match="limit must be"):
        QueryRequest.create(metrics=["revenue"], limit=limit)


def test_zoned_instants_are_read_in_utc_and_compare_with_naive_ones():
    r = QueryRequest.create(
        metrics=["revenue"], start="2025-01-01T00:00:00+02:00", end="2025-01-01"
    )
    assert r.start == dt.datetime(2024, 12, 31, 22, 0) and r.start.tzinfo is None
    assert r.end == dt.datetime(2025, 1, 1)


def test_error_messages_never_echo_a_huge_input():
    with pytest.raises(InvalidRequest) as e:
        QueryRequest.create(metrics=["revenue"], group_by=["x" * 100_000])
    assert len(e.value.message) < 300 and "100000 characters" in e.value.message
    with pytest.raises(InvalidRequest) as e:
        QueryRequest.create(metrics=["revenue"], start="y" * 100_000)
    assert len(e.value.message) < 300


def test_a_saved_query_does_not_mix_with_metrics_or_group_bys():
    for extra in ({"metrics": ["revenue"]}, {"group_by": ["customer__country"]}):
        with pytest.raises(InvalidRequest, match="brings its own metrics and group-bys"):
            QueryRequest.create(saved_query="customer_segments", **extra)
    r = QueryRequest.create(saved_query="customer_segments", where=["x"], limit=3)
    assert r.saved_query == "customer_segments" and r.limit == 3
