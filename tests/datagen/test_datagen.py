"""Tests of the raw-data generator against the contract in docs/data.md ("Raw data")."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from tally.datagen import generate
from tally.datagen.__main__ import main

SCALE = 0.2
END = "2025-12-31"
IDS = {
    "customers": "customer_id",
    "products": "product_id",
    "orders": "order_id",
    "order_items": "order_item_id",
}
COLUMNS = {
    "customers": [
        ("customer_id", "INTEGER"),
        ("email", "VARCHAR"),
        ("first_name", "VARCHAR"),
        ("last_name", "VARCHAR"),
        ("phone_number", "VARCHAR"),
        ("country", "VARCHAR"),
        ("created_at", "TIMESTAMP"),
        ("updated_at", "TIMESTAMP"),
        ("is_active", "BOOLEAN"),
    ],
    "products": [
        ("product_id", "INTEGER"),
        ("product_name", "VARCHAR"),
        ("category", "VARCHAR"),
        ("unit_cost", "DECIMAL(10,2)"),
        ("list_price", "DECIMAL(10,2)"),
        ("is_active", "BOOLEAN"),
    ],
    "orders": [
        ("order_id", "INTEGER"),
        ("customer_id", "INTEGER"),
        ("order_date", "DATE"),
        ("order_status", "VARCHAR"),
        ("updated_at", "TIMESTAMP"),
    ],
    "order_items": [
        ("order_item_id", "INTEGER"),
        ("order_id", "INTEGER"),
        ("product_id", "INTEGER"),
        ("quantity", "INTEGER"),
        ("unit_price", "DECIMAL(10,2)"),
        ("discount_amount", "DECIMAL(10,2)"),
    ],
}
INVALID_EMAIL = "(email IS NULL OR trim(email) = '' OR email NOT LIKE '%@%')"
INVALID_NAME = (
    "(first_name IS NULL OR trim(first_name) = '' OR last_name IS NULL OR trim(last_name) = '')"
)


def digests(path: Path) -> dict[str, str]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {
            table: con.execute(
                f"SELECT md5(string_agg(t::varchar, '|' ORDER BY {key})) FROM raw.{table} t"
            ).fetchone()[0]
            for table, key in IDS.items()
        }


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    path = tmp_path_factory.mktemp("datagen") / "warehouse.duckdb"
    return path, generate(path, seed=42, scale=SCALE)


@pytest.fixture()
def con(generated: tuple[Path, dict[str, int]]) -> Iterator[duckdb.DuckDBPyConnection]:
    with duckdb.connect(str(generated[0]), read_only=True) as connection:
        yield connection


def scalar(con: duckdb.DuckDBPyConnection, sql: str) -> object:
    return con.execute(sql).fetchone()[0]


# --- determinism ---------------------------------------------------------------------------


def test_same_seed_and_scale_give_identical_tables(
    generated: tuple[Path, dict[str, int]], tmp_path: Path
) -> None:
    again = tmp_path / "again.duckdb"
    assert generate(again, seed=42, scale=SCALE) == generated[1]
    assert digests(again) == digests(generated[0])


def test_different_seed_gives_different_data(
    generated: tuple[Path, dict[str, int]], tmp_path: Path
) -> None:
    other = tmp_path / "other.duckdb"
    generate(other, seed=7, scale=SCALE)
    mine, theirs = digests(generated[0]), digests(other)
    assert all(mine[table] != theirs[table] for table in IDS)


def test_thread_count_does_not_change_the_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Big enough for several row groups per table, so DuckDB really runs in parallel.
    real_connect = duckdb.connect
    results = []
    for threads in (1, 4):
        monkeypatch.setattr(
            duckdb, "connect", lambda p, t=threads, **kw: real_connect(p, config={"threads": t})
        )
        path = tmp_path / f"threads{threads}.duckdb"
        generate(path, seed=3, scale=3)
        monkeypatch.undo()
        results.append(digests(path))
    assert results[0] == results[1]


def test_tables_are_stored_in_id_order(con: duckdb.DuckDBPyConnection) -> None:
    for table, key in IDS.items():
        ids = [row[0] for row in con.execute(f"SELECT {key} FROM raw.{table}").fetchall()]
        assert ids == list(range(1, len(ids) + 1)), table


# --- schema and counts ---------------------------------------------------------------------


def test_exact_columns_and_types(con: duckdb.DuckDBPyConnection) -> None:
    for table, expected in COLUMNS.items():
        actual = con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'raw' AND table_name = ? ORDER BY ordinal_position",
            [table],
        ).fetchall()
        assert actual == expected, table


def test_returned_counts_match_tables(
    generated: tuple[Path, dict[str, int]], con: duckdb.DuckDBPyConnection
) -> None:
    counts = generated[1]
    assert set(counts) == set(IDS)
    for table in IDS:
        assert counts[table] == scalar(con, f"SELECT count(*) FROM raw.{table}")
    assert counts["customers"] == 2_000
    assert 200 <= counts["products"] <= 400
    assert counts["order_items"] > counts["orders"] > counts["customers"]


def test_keys_reference_existing_rows(con: duckdb.DuckDBPyConnection) -> None:
    assert (
        scalar(
            con,
            """
        SELECT count(*) FROM raw.orders o
        ANTI JOIN raw.customers c USING (customer_id)""",
        )
        == 0
    )
    assert (
        scalar(
            con,
            """
        SELECT count(*) FROM raw.order_items i
        ANTI JOIN raw.orders o USING (order_id)""",
        )
        == 0
    )
    assert (
        scalar(
            con,
            """
        SELECT count(*) FROM raw.order_items i
        ANTI JOIN raw.products p USING (product_id)""",
        )
        == 0
    )


# --- contract checks -----------------------------------------------------------------------


def test_every_order_has_items(con: duckdb.DuckDBPyConnection) -> None:
    assert (
        scalar(
            con,
            """
        SELECT count(*) FROM raw.orders o
        ANTI JOIN raw.order_items i USING (order_id)""",
        )
        == 0
    )
    assert (
        scalar(
            con,
            """
        SELECT max(n) FROM (SELECT count(*) AS n FROM raw.order_items GROUP BY order_id)""",
        )
        <= 6
    )


def test_line_amounts(con: duckdb.DuckDBPyConnection) -> None:
    assert scalar(con, "SELECT min(quantity) FROM raw.order_items") >= 1
    assert (
        scalar(
            con,
            """
        SELECT count(*) FROM raw.order_items
        WHERE discount_amount < 0 OR discount_amount > unit_price * quantity
           OR unit_price <= 0 OR discount_amount IS NULL OR unit_price IS NULL""",
        )
        == 0
    )
    share_no_discount = scalar(con, "SELECT avg((discount_amount = 0)::int) FROM raw.order_items")
    assert 0.6 < share_no_discount < 0.8
    # Sale prices: sometimes below list, never above it.
    below, above = con.execute("""
        SELECT avg((i.unit_price < p.list_price)::int),
               count(*) FILTER (i.unit_price > p.list_price)
        FROM raw.order_items i JOIN raw.products p USING (product_id)""").fetchone()
    assert 0.05 < below < 0.3
    assert above == 0


def test_products(con: duckdb.DuckDBPyConnection) -> None:
    assert (
        scalar(
            con,
            """
        SELECT count(*) FROM raw.products
        WHERE NOT (0 < unit_cost AND unit_cost < list_price)""",
        )
        == 0
    )
    assert 6 <= scalar(con, "SELECT count(DISTINCT category) FROM raw.products") <= 8
    assert scalar(con, "SELECT count(*) - count(DISTINCT product_name) FROM raw.products") == 0


def test_orders_within_customer_life_and_history(con: duckdb.DuckDBPyConnection) -> None:
    assert (
        scalar(
            con,
            """
        SELECT count(*) FROM raw.orders o JOIN raw.customers c USING (customer_id)
        WHERE o.order_date < c.created_at::date""",
        )
        == 0
    )
    assert scalar(con, "SELECT max(order_date) FROM raw.orders").isoformat() <= END
    assert scalar(con, "SELECT min(order_date) FROM raw.orders").isoformat() >= "2022-01-01"
    assert (
        scalar(
            con,
            f"""
        SELECT count(*) FROM raw.orders
        WHERE updated_at < order_date OR updated_at > TIMESTAMP '{END} 23:59:59'""",
        )
        == 0
    )
    assert (
        scalar(
            con,
            f"""
        SELECT count(*) FROM raw.customers
        WHERE updated_at < created_at OR updated_at > TIMESTAMP '{END} 23:59:59'
           OR created_at < TIMESTAMP '2022-01-01'""",
        )
        == 0
    )


def test_statuses(con: duckdb.DuckDBPyConnection) -> None:
    shares = dict(
        con.execute("""
        SELECT order_status, count(*) / sum(count(*)) OVER () FROM raw.orders GROUP BY 1
    """).fetchall()
    )
    assert set(shares) == {"placed", "shipped", "completed", "returned", "cancelled"}
    assert 0.68 < shares["completed"] < 0.82
    assert 0.05 < shares["cancelled"] < 0.13
    # Recent orders are still in flight far more often than old ones.
    recent, old = con.execute(f"""
        SELECT avg((order_status IN ('placed', 'shipped'))::int)
                   FILTER (order_date > DATE '{END}' - 14),
               avg((order_status IN ('placed', 'shipped'))::int)
                   FILTER (order_date <= DATE '{END}' - 14)
        FROM raw.orders""").fetchone()
    assert recent > 2 * old


def test_customers_are_messy_as_promised(con: duckdb.DuckDBPyConnection) -> None:
    invalid_email = scalar(con, f"SELECT avg({INVALID_EMAIL}::int) FROM raw.customers")
    assert 0.01 <= invalid_email <= 0.08
    kinds = con.execute("""
        SELECT count(*) FILTER (email IS NULL), count(*) FILTER (email = ''),
               count(*) FILTER (email <> '' AND email NOT LIKE '%@%')
        FROM raw.customers""").fetchone()
    assert all(n > 0 for n in kinds)
    invalid_name = scalar(con, f"SELECT avg({INVALID_NAME}::int) FROM raw.customers")
    assert 0.005 <= invalid_name <= 0.05
    untidy = con.execute("""
        SELECT avg((email <> trim(email))::int), avg((email <> lower(email))::int),
               avg((first_name <> trim(first_name))::int)
        FROM raw.customers""").fetchone()
    assert all(share > 0.02 for share in untidy)
    # After the staging clean-up the valid emails are unique.
    assert (
        scalar(
            con,
            f"""
        SELECT count(*) - count(DISTINCT lower(trim(email)))
        FROM raw.customers WHERE NOT {INVALID_EMAIL}""",
        )
        == 0
    )
    countries = {
        row[0] for row in con.execute("SELECT DISTINCT country FROM raw.customers").fetchall()
    }
    assert "US" in countries and all(len(c) == 2 and c.isupper() for c in countries)
    top = scalar(con, "SELECT mode(country) FROM raw.customers")
    assert top == "US"


def test_invalid_customers_have_orders(con: duckdb.DuckDBPyConnection) -> None:
    # Downstream must filter them: the generator does not.
    assert (
        scalar(
            con,
            f"""
        SELECT count(DISTINCT o.customer_id) FROM raw.orders o
        JOIN raw.customers c USING (customer_id) WHERE {INVALID_EMAIL}""",
        )
        > 0
    )
    assert (
        scalar(
            con,
            f"""
        SELECT count(DISTINCT o.customer_id) FROM raw.orders o
        JOIN raw.customers c USING (customer_id) WHERE {INVALID_NAME}""",
        )
        > 0
    )


def test_one_time_repeat_and_never_buyers(con: duckdb.DuckDBPyConnection) -> None:
    never, once, repeat, most = con.execute("""
        WITH n AS (
            SELECT count(o.order_id) AS n
            FROM raw.customers c LEFT JOIN raw.orders o USING (customer_id) GROUP BY c.customer_id
        )
        SELECT avg((n = 0)::int), avg((n = 1)::int), avg((n > 1)::int), max(n) FROM n
    """).fetchone()
    assert 0.05 < never < 0.15
    assert 0.2 < once < 0.45
    assert repeat > 0.4
    assert 10 <= most <= 30
    # Some come back within 90 days of their first order, most do not.
    quick = scalar(
        con,
        """
        WITH f AS (SELECT customer_id, min(order_date) AS d FROM raw.orders GROUP BY 1)
        SELECT avg((EXISTS (SELECT 1 FROM raw.orders o WHERE o.customer_id = f.customer_id
                            AND o.order_date > f.d AND o.order_date <= f.d + 90))::int)
        FROM f""",
    )
    assert 0.1 < quick < 0.5
    # A few order twice on their first day (an edge of the predicted-CLV formula).
    same_day = scalar(
        con,
        """
        SELECT count(*) FROM (
            SELECT customer_id FROM raw.orders
            GROUP BY customer_id, order_date HAVING count(*) > 1)""",
    )
    assert same_day > 0


def test_seasonality_and_growth(con: duckdb.DuckDBPyConnection) -> None:
    by_month = dict(
        con.execute("SELECT month(order_date), count(*) FROM raw.orders GROUP BY 1").fetchall()
    )
    assert by_month[12] > 1.5 * by_month[2]
    assert by_month[11] > by_month[10] > by_month[1]
    by_year = dict(
        con.execute("SELECT year(order_date), count(*) FROM raw.orders GROUP BY 1").fetchall()
    )
    assert by_year[2025] > by_year[2024] > by_year[2023] > by_year[2022]


# --- file handling and arguments -----------------------------------------------------------


def test_other_schemas_untouched_and_raw_replaced(tmp_path: Path) -> None:
    path = tmp_path / "shared.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA marts")
        con.execute("CREATE TABLE marts.keep AS SELECT range AS x FROM range(5)")
        con.execute("CREATE SCHEMA raw")
        con.execute("CREATE TABLE raw.stale (x INTEGER)")
    first = generate(path, seed=1, scale=0.05)
    second = generate(path, seed=1, scale=0.05)
    assert first == second
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT list(x ORDER BY x) FROM marts.keep").fetchone()[0] == [
            0,
            1,
            2,
            3,
            4,
        ]
        tables = {
            row[0]
            for row in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'raw'"
            ).fetchall()
        }
        assert tables == set(IDS)
        assert scalar(con, "SELECT count(*) FROM raw.customers") == first["customers"]


def test_custom_history_window(tmp_path: Path) -> None:
    path = tmp_path / "window.duckdb"
    generate(path, seed=5, scale=0.05, start="2024-03-01", end="2024-08-31")
    with duckdb.connect(str(path), read_only=True) as con:
        lo, hi = con.execute("SELECT min(order_date), max(order_date) FROM raw.orders").fetchone()
        assert lo.isoformat() >= "2024-03-01" and hi.isoformat() <= "2024-08-31"


@pytest.mark.parametrize(
    "kwargs", [{"scale": 0}, {"scale": -1}, {"start": "2025-01-01", "end": "2024-01-01"}]
)
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        generate(tmp_path / "bad.duckdb", **kwargs)


def test_progress_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines: list[str] = []
    generate(tmp_path / "p.duckdb", scale=0.05, progress=lines.append)
    assert [line.split(":")[0] for line in lines] == [f"raw.{t}" for t in IDS]

    out = tmp_path / "sub" / "cli.duckdb"
    assert main(["--seed", "1", "--scale", "0.05", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert out.exists()
    assert "raw.order_items:" in printed and "done:" in printed


def test_cli_into_a_profile_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    """`--target` writes where the target's engine says (its spec's demo target): a DuckDB
    output's own file."""
    from tests.support.paths import PROJECT_DIR

    out = tmp_path / "target.duckdb"
    monkeypatch.setenv("TALLY_DUCKDB_PATH", str(out))  # the demo profile's dev output reads it
    assert main(["--scale", "0.02", "--target", "dev", "--project-dir", str(PROJECT_DIR)]) == 0
    assert f"generating raw data into {out}" in capsys.readouterr().out
    with duckdb.connect(str(out), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM raw.customers").fetchone()[0] == 200
