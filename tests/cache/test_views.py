"""A cached table as one request sees it (tally/cache/views.py): its columns in the order asked,
its rows re-sorted into its own order on a hit, and a validator per representation."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from tally.cache.views import shape, variant
from tally.core.request import QueryRequest

JAN, FEB = dt.date(2025, 1, 1), dt.date(2025, 2, 1)


def entry() -> pa.Table:
    """As an entry is stored: group-bys then metrics, rows in its first request's order
    (here: by revenue, descending)."""
    return pa.table({
        "metric_time__month": [FEB, JAN, JAN, FEB],
        "customer__country": ["DE", "US", "DE", None],
        "revenue": [300, 200, 100, None],
        "order_count": [3, 2, 1, 0],
    })


def request(**kw) -> QueryRequest:
    return QueryRequest.create(**{"metrics": ["revenue", "order_count"],
                                  "group_by": ["metric_time__month", "customer__country"], **kw})


def test_columns_come_in_the_order_asked_group_bys_first():
    r = request(metrics=["order_count", "revenue"],
                group_by=["customer__country", "metric_time__month"])
    table = shape(entry(), r, resort=False)
    assert table.column_names == ["customer__country", "metric_time__month", "order_count",
                                  "revenue"]
    # Not re-sorted: the rows keep the entry's order.
    assert table.column("revenue").to_pylist() == [300, 200, 100, None]


def test_the_same_order_returns_the_table_itself():
    table = entry()
    assert shape(table, request(), resort=False) is table


def test_a_group_by_without_a_grain_finds_its_column():
    table = pa.table({"metric_time__day": [JAN], "revenue": [1]})
    r = QueryRequest.create(metrics=["revenue"], group_by=["metric_time"])
    assert shape(table, r, resort=False).column_names == ["metric_time__day", "revenue"]


def test_columns_not_asked_for_stay_at_the_end():
    table = pa.table({"extra": [1], "revenue": [2], "customer__country": ["US"]})
    r = QueryRequest.create(metrics=["revenue"], group_by=["customer__country"])
    assert shape(table, r, resort=False).column_names == ["customer__country", "revenue",
                                                          "extra"]


def test_a_hit_is_re_sorted_by_the_group_bys_when_no_order_is_asked():
    table = shape(entry(), request(), resort=True)
    assert table.to_pylist() == [
        {"metric_time__month": JAN, "customer__country": "DE", "revenue": 100, "order_count": 1},
        {"metric_time__month": JAN, "customer__country": "US", "revenue": 200, "order_count": 2},
        {"metric_time__month": FEB, "customer__country": "DE", "revenue": 300, "order_count": 3},
        # nulls last, as the warehouse sorts them
        {"metric_time__month": FEB, "customer__country": None, "revenue": None,
         "order_count": 0},
    ]


def test_a_hit_is_re_sorted_by_its_order_by_descending_with_nulls_last():
    by_count = shape(entry(), request(order_by=["order_count"]), resort=True)
    assert by_count.column("order_count").to_pylist() == [0, 1, 2, 3]
    by_revenue = shape(entry(), request(order_by=["-revenue"]), resort=True)
    assert by_revenue.column("revenue").to_pylist() == [300, 200, 100, None]
    two_keys = shape(entry(), request(order_by=["customer__country", "-revenue"]), resort=True)
    assert two_keys.column("customer__country").to_pylist() == ["DE", "DE", "US", None]
    assert two_keys.column("revenue").to_pylist() == [300, 100, 200, None]


def test_with_a_limit_rows_are_never_re_sorted():
    # With a limit the order chose the rows: the entry is this request's alone, already sorted.
    table = shape(entry(), request(order_by=["order_count"], limit=4), resort=True)
    assert table.column("order_count").to_pylist() == [3, 2, 1, 0]


def test_variant_tells_each_representation_of_one_entry_apart():
    key = "0123456789abcdef0123456789abcdef"
    base = variant(key, request())
    assert len(base) == 16 and base == variant(key, request())
    # Spelt differently, same columns and rows in the same order: the same representation.
    assert variant(key, request(metrics=["Revenue", "order_count"])) == base
    assert variant(key, request(metrics=["order_count", "revenue"])) != base  # column order
    assert variant(key, request(order_by=["-revenue"])) != base  # row order
    assert variant("f" * 32, request()) != base  # another entry
