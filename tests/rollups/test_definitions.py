"""Rollup table names fit every engine's identifiers."""

from __future__ import annotations

from tally.rollups.definitions import MAX_TABLE_NAME, table_name


def test_a_short_name_is_the_saved_query_and_the_version():
    assert table_name("revenue_by_month", "0123456789ab") == "revenue_by_month__0123456789ab"


def test_a_long_name_is_cut_to_fit_postgres_and_stays_unique():
    version = "0123456789ab"
    first = table_name("monthly_" + "a" * 80 + "_by_country", version)
    second = table_name("monthly_" + "a" * 80 + "_by_region", version)
    assert len(first.encode()) <= MAX_TABLE_NAME <= 63 - len("__new")
    assert len(second.encode()) <= MAX_TABLE_NAME
    assert first != second
    assert first.startswith("monthly_aaa") and first.endswith("__" + version)
