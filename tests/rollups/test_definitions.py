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


def test_a_build_drops_what_no_registry_row_points_to_and_undeclared_rollups(warehouse, tmp_path):
    """Superseded tables (no registry row points to them) and rollups no longer declared go at
    the start of the next build; the current rollups stay."""
    import duckdb

    from tally.rollups.definitions import REGISTRY, SCHEMA
    from tests.support.builds import copy_of
    from tests.support.rollups import build_duckdb

    db, target = copy_of(warehouse, tmp_path)
    first = build_duckdb(db, target, only=("cohort_retention",))
    with duckdb.connect(str(db)) as con:
        con.execute(f'CREATE TABLE {SCHEMA}."cohort_retention__0ld0ld0ld0ld" AS SELECT 1 AS x')
        con.execute(f'CREATE TABLE {SCHEMA}."gone__0123456789ab" AS SELECT 1 AS x')
        con.execute(f"INSERT INTO {REGISTRY} (rollup, version, relation, source) VALUES "
                    f"('gone', '0123456789ab', '{SCHEMA}.\"gone__0123456789ab\"', 'x')")
    again = build_duckdb(db, target, only=("cohort_retention",))
    assert [r.action for r in first] == ["built"] and [r.action for r in again] == ["up to date"]
    with duckdb.connect(str(db), read_only=True) as con:
        tables = {t for (t,) in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ?",
            [SCHEMA]).fetchall()}
        registered = con.execute(f"SELECT rollup, relation FROM {REGISTRY}").fetchall()
    assert [rollup for rollup, _ in registered] == ["cohort_retention"]
    current = registered[0][1].split(".", 1)[1].strip('"')
    assert tables == {"registry", current}
