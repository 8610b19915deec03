"""Deterministic generator of the raw tables (schema ``raw``) the dbt project builds on.

Everything is done with DuckDB set operations. Every pseudo-random number comes from the
``u(key, salt)`` macro, a hash of (seed, key, salt) mapped to [0, 1): DuckDB's ``random()`` is
not reproducible under parallelism, a hash of the row's key is, whatever the thread count.
The multi-argument ``hash()`` ends by XOR-ing in the last argument's hash, so ``u(k, 'a')`` and
``u(k, 'b')`` would be strongly correlated (corr about -0.6); hashing that hash again breaks
the link. The output depends on the DuckDB version only through ``hash()``.

Time shapes (growth, seasonality) come from a calendar of integer day weights: a date is drawn
by picking a uniform integer below the total weight of an interval and finding its day with an
ASOF join on the cumulative weights (an inverse-CDF lookup done as one sorted merge).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import time
from collections.abc import Callable, Sequence

import duckdb

from tally.datagen.vocabulary import (
    ADJECTIVES,
    CATEGORIES,
    COUNTRIES,
    DOMAINS,
    FIRST_NAMES,
    LAST_NAMES,
)

# Relative order volume by calendar month: January/February dip, November/December peak.
MONTH_SEASON = [0.78, 0.72, 0.92, 0.95, 1.00, 0.96, 0.94, 1.00, 0.98, 1.05, 1.30, 1.60]

# Order status mixes by the order's age in days at `end` (upper bound exclusive). Old orders
# settled long ago; the last two weeks are still in flight.
STATUS_BY_AGE = [
    (3, [("placed", 55), ("shipped", 25), ("completed", 10), ("cancelled", 10)]),
    (14, [("placed", 8), ("shipped", 42), ("completed", 42), ("cancelled", 7), ("returned", 1)]),
    (
        None,
        [("completed", 76), ("cancelled", 9), ("returned", 6.5), ("shipped", 5.5), ("placed", 3)],
    ),
]
# Seconds from the order's placement to its last update, as (base, random span) per status.
STATUS_LAG = {
    "placed": (0, 6 * 3600),
    "shipped": (86400, 3 * 86400),
    "completed": (3 * 86400, 9 * 86400),
    "returned": (12 * 86400, 30 * 86400),
    "cancelled": (0, 2 * 86400),
}
# Lifetime orders per customer: P(0), P(1) before the tenure cut, then 2 + a Pareto-like tail
# (scale, power) capped at 30. Repeat counts are cut pro rata for customers with less than
# FULL_TENURE_DAYS of history, which turns some would-be repeat buyers into one-time buyers.
P_NEVER, P_ONCE = 0.10, 0.24
TAIL_SCALE, TAIL_POWER = 6.0, 0.45
FULL_TENURE_DAYS, TENURE_POWER = 1095.0, 0.5
# Resolution of the product lookup table (popularity weights are quantized to 1/65536)
PRODUCT_BUCKETS = 65536
LINES_PER_ORDER = [(1, 36), (2, 28), (3, 16), (4, 10), (5, 6), (6, 4)]
QUANTITY = [(1, 74), (2, 16), (3, 5), (4, 3), (5, 2)]


def _lit(value: object) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def _list(values: Sequence[object]) -> str:
    return "[" + ", ".join(_lit(v) for v in values) + "]"


def _pick(u: str, choices: Sequence[tuple[object, float]]) -> str:
    """CASE expression mapping the uniform `u` to a value with the given relative weights."""
    total = float(sum(w for _, w in choices))
    parts, acc = [], 0.0
    for value, weight in choices[:-1]:
        acc += weight
        parts.append(f"WHEN {u} < {acc / total!r} THEN {_lit(value)}")
    return f"(CASE {' '.join(parts)} ELSE {_lit(choices[-1][0])} END)"


def _index(u: str, weights: Sequence[float]) -> str:
    """1-based index into a list, chosen by `u` with the given relative weights."""
    return _pick(u, [(i + 1, w) for i, w in enumerate(weights)])


def _u(key: str, salt: str) -> str:
    return f"u({key}, '{salt}')"


def _uniform_index(u: str, n: int) -> str:
    return f"(1 + floor({u} * {n})::int)"


def generate(
    path: str | os.PathLike,
    *,
    seed: int = 42,
    scale: float = 1.0,
    start: str = "2022-01-01",
    end: str = "2025-12-31",
    progress: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """(Re)create schema `raw` in the DuckDB file at `path` with tables customers, products,
    orders, order_items; return row counts per table.

    Same seed, scale, start and end give identical table contents (each table is written
    sorted by its id). Other schemas in the file are left alone; the schema is replaced in one
    transaction, so a failure leaves the previous `raw` in place.
    """
    seed = int(seed)
    d_start, d_end = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    if d_end <= d_start:
        raise ValueError(f"end ({end}) must be after start ({start})")
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    n_days = (d_end - d_start).days + 1
    n_customers = max(1, round(10_000 * scale))
    # The catalogue grows slowly: a bigger shop carries more products, not 100x more.
    n_products = 250 + math.floor(50 * math.log(max(scale, 1.0)))
    say = progress or (lambda _msg: None)
    start_sql, end_sql = f"DATE '{d_start}'", f"DATE '{d_end}'"
    end_eod = f"TIMESTAMP '{d_end} 23:59:59'"

    con = duckdb.connect(os.fspath(path))
    try:
        con.execute("SET enable_progress_bar = false")
        # Bounded memory at any scale: DuckDB spills its joins and sorts to disk past this
        # (default 80% of RAM, too much on a shared machine). TALLY_DUCKDB_MEMORY_LIMIT, as dbt.
        limit = os.environ.get("TALLY_DUCKDB_MEMORY_LIMIT", "4GB")
        con.execute(f"SET memory_limit = {_lit(limit)}")
        con.execute(
            "CREATE OR REPLACE TEMP MACRO u(k, salt) AS "
            f"((hash(hash({seed}, k, salt)) >> 11)::double / 9007199254740992.0)"
        )
        con.execute("BEGIN TRANSACTION")
        con.execute("DROP SCHEMA IF EXISTS raw CASCADE")
        con.execute("CREATE SCHEMA raw")
        counts: dict[str, int] = {}
        steps: list[tuple[str, Callable[[], None]]] = [
            (
                "customers",
                lambda: _customers(con, n_customers, n_days, start_sql, end_sql, end_eod),
            ),
            ("products", lambda: _products(con, n_products)),
            ("orders", lambda: _orders(con, end_sql, end_eod)),
            ("order_items", lambda: _order_items(con)),
        ]
        for table, step in steps:
            t0 = time.perf_counter()
            step()
            counts[table] = con.execute(f"SELECT count(*) FROM raw.{table}").fetchone()[0]
            say(f"raw.{table}: {counts[table]:,} rows in {time.perf_counter() - t0:.2f}s")
        con.execute("COMMIT")
        return counts
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise
    finally:
        con.close()


def _calendar(con: duckdb.DuckDBPyConnection, n_days: int, start_sql: str) -> tuple[int, int]:
    """Temp table _cal, one row per day; returns the total signup and order weights."""
    season = (
        f"{_list(MONTH_SEASON)}[month(d)]"
        # Black Friday / Cyber Monday week on top of the November baseline.
        " * CASE WHEN month(d) = 11 AND day(d) >= 23 THEN 1.6 ELSE 1.0 END"
        " * CASE WHEN dayofweek(d) IN (0, 6) THEN 1.1 ELSE 1.0 END"
    )
    # One row per day with exclusive running sums of integer weights (integers keep the sums
    # exact): a uniform integer below the total, ASOF-joined on `lo_*`, lands on a day with
    # probability proportional to its weight.
    con.execute(f"""
        CREATE TEMP TABLE _cal AS
        WITH days AS (
            SELECT i::int AS i, {start_sql} + i::int AS d FROM range({n_days}) t(i)
        ), w AS (
            SELECT i, d,
                -- signups grow ~3x over the history, with a softened seasonality
                round(1000 * (0.6 + 0.4 * ({season})) * (1 + 2.0 * i / {n_days}))::bigint
                    AS w_signup,
                round(1000 * ({season}))::bigint AS w_order
            FROM days
        )
        SELECT i, d, w_signup, w_order,
            sum(w_signup) OVER (ORDER BY i) - w_signup AS lo_signup,
            sum(w_order) OVER (ORDER BY i) - w_order AS lo_order
        FROM w
    """)
    return con.execute("SELECT sum(w_signup), sum(w_order) FROM _cal").fetchone()


def _customers(
    con: duckdb.DuckDBPyConnection,
    n: int,
    n_days: int,
    start_sql: str,
    end_sql: str,
    end_eod: str,
) -> None:
    tot_signup, tot_order = _calendar(con, n_days, start_sql)

    # Lifetime order count: ~10% never order, ~30% once, the rest a Pareto-like tail capped at
    # 30. Customers who joined recently had less time, so their repeat count is cut pro rata.
    tail = (
        f"least(30, 2 + floor({TAIL_SCALE} * (pow(1 - u(customer_id, 'tail'), "
        f"-{TAIL_POWER}) - 1)))::int"
    )
    con.execute(f"""
        CREATE TEMP TABLE _cust AS
        WITH s AS (
            SELECT i, floor(u(i, 'signup') * {tot_signup})::bigint AS tgt FROM range({n}) t(i)
        ), c AS (
            SELECT s.i, cal.d + to_seconds(floor(u(s.i, 'signup_s') * 86400)::bigint)
                AS created_at
            FROM s ASOF JOIN _cal cal ON s.tgt >= cal.lo_signup
        ), ided AS (
            -- ids follow signup order, as an autoincrement key would
            SELECT row_number() OVER (ORDER BY created_at, i)::int AS customer_id, created_at,
                created_at::date AS created_date
            FROM c
        ), k AS (
            SELECT *,
                CASE WHEN u(customer_id, 'n') < {P_NEVER} THEN 0
                     WHEN u(customer_id, 'n') < {P_NEVER + P_ONCE:.4f} THEN 1 ELSE {tail} END AS k0,
                -- first order a few days after signup; wraps so it never passes `end`
                created_date + (floor(-ln(1 - u(customer_id, 'first')) * 12)::bigint
                    % ({end_sql} - created_date + 1))::int AS first_date
            FROM ided
        )
        SELECT k.customer_id, k.created_at, k.created_date, k.first_date,
            CASE WHEN k0 <= 1 THEN k0 ELSE 1 + floor((k0 - 1)
                * least(1.0, pow(({end_sql} - first_date + 30) / {FULL_TENURE_DAYS},
                                 {TENURE_POWER}))
                + u(customer_id, 'k'))::int
            END AS n_orders,
            coalesce(cal.lo_order, {tot_order}) AS lo_next,
            {tot_order} AS tot_order
        FROM k LEFT JOIN _cal cal ON cal.d = k.first_date + 1
    """)

    first = f"{_list(FIRST_NAMES)}[{_uniform_index(_u('customer_id', 'fn'), len(FIRST_NAMES))}]"
    last = f"{_list(LAST_NAMES)}[{_uniform_index(_u('customer_id', 'ln'), len(LAST_NAMES))}]"
    dom = _index("u(customer_id, 'dom')", [w for *_, w in DOMAINS])
    country = _index("u(customer_id, 'country')", [w for _, w, _ in COUNTRIES])
    con.execute("""
        CREATE TABLE raw.customers (
            customer_id INTEGER, email VARCHAR, first_name VARCHAR, last_name VARCHAR,
            phone_number VARCHAR, country VARCHAR, created_at TIMESTAMP, updated_at TIMESTAMP,
            is_active BOOLEAN
        )
    """)
    con.execute(f"""
        INSERT INTO raw.customers
        WITH b AS (
            SELECT customer_id, created_at, n_orders, {first} AS fn, {last} AS ln,
                {dom} AS dom, {country} AS ci
            FROM _cust
        ), e AS (
            SELECT *,
                -- the local part ends with the id, so cleaned valid emails are unique
                CASE {_pick("u(customer_id, 'fmt')", [(1, 40), (2, 20), (3, 20), (4, 20)])}
                    WHEN 1 THEN fn || '.' || ln WHEN 2 THEN left(fn, 1) || ln
                    WHEN 3 THEN fn || '_' || ln ELSE fn END || customer_id AS local
            FROM b
        ), e2 AS (
            SELECT *,
                CASE {_pick("u(customer_id, 'case')", [(1, 55), (2, 30), (3, 15)])}
                    WHEN 1 THEN lower(local || '@' || {_list([d for d, _, _ in DOMAINS])}[dom])
                    WHEN 2 THEN local || '@' || {_list([m for _, m, _ in DOMAINS])}[dom]
                    ELSE upper(local || '@' || {_list([d for d, _, _ in DOMAINS])}[dom])
                END AS email0
            FROM (SELECT * REPLACE (replace(replace(local, ' ', ''), '''', '') AS local) FROM e)
        )
        SELECT customer_id,
            CASE WHEN u(customer_id, 'bad') < 0.012 THEN NULL
                 WHEN u(customer_id, 'bad') < 0.022 THEN ''
                 WHEN u(customer_id, 'bad') < 0.036
                     THEN replace(email0, '@', CASE WHEN u(customer_id, 'at') < 0.5
                                                   THEN '' ELSE ' at ' END)
                 ELSE {_spaces("email0", "u(customer_id, 'esp')", 0.10, 0.10, 0.05)}
            END AS email,
            {_messy_name("fn", "customer_id", "f")} AS first_name,
            {_messy_name("ln", "customer_id", "l")} AS last_name,
            CASE WHEN u(customer_id, 'ph0') < 0.05 THEN NULL ELSE
                '+' || {_list([c for _, _, c in COUNTRIES])}[ci] || ' '
                || lpad(floor(u(customer_id, 'ph') * 1e10)::bigint::varchar, 10, '0')
                    .regexp_replace('(\\d{{3}})(\\d{{3}})(\\d{{4}})', '\\1-\\2-\\3')
            END AS phone_number,
            {_list([c for c, _, _ in COUNTRIES])}[ci] AS country,
            created_at,
            CASE WHEN u(customer_id, 'upd') < 0.4 THEN created_at
                 ELSE created_at + to_seconds(floor(u(customer_id, 'upd_s')
                      * (epoch({end_eod}) - epoch(created_at)))::bigint)
            END AS updated_at,
            u(customer_id, 'c_active') < CASE WHEN n_orders = 0 THEN 0.6 ELSE 0.93 END AS is_active
        FROM e2
        ORDER BY customer_id
    """)


def _spaces(expr: str, u: str, lead: float, trail: float, both: float) -> str:
    """Stray leading/trailing blanks, as pasted from a form."""
    return (
        f"(CASE WHEN {u} < {lead} THEN '  ' || {expr}"
        f" WHEN {u} < {lead + trail} THEN {expr} || ' '"
        f" WHEN {u} < {lead + trail + both} THEN ' ' || {expr} || ' ' ELSE {expr} END)"
    )


def _messy_name(name: str, key: str, salt: str) -> str:
    """~1% missing (NULL or ''), the rest in mixed case with some stray blanks."""
    cased = (
        f"CASE {_pick(_u(key, salt + 'case'), [(1, 78), (2, 12), (3, 6), (4, 4)])}"
        f" WHEN 1 THEN {name} WHEN 2 THEN lower({name}) WHEN 3 THEN upper({name})"
        f" ELSE left(lower({name}), 1) || upper(substr({name}, 2)) END"
    )
    return (
        f"CASE WHEN u({key}, '{salt}miss') < 0.006 THEN NULL"
        f" WHEN u({key}, '{salt}miss') < 0.010 THEN ''"
        f" ELSE {_spaces(f'({cased})', _u(key, salt + 'sp'), 0.04, 0.04, 0.02)} END"
    )


def _products(con: duckdb.DuckDBPyConnection, n: int) -> None:
    cat = _index("u(product_id, 'cat')", [w for _, w, _, _, _ in CATEGORIES])
    lo = _list([lo for _, _, lo, _, _ in CATEGORIES])
    hi = _list([hi for _, _, _, hi, _ in CATEGORIES])
    nouns = "[" + ", ".join(_list(ns) for *_, ns in CATEGORIES) + "]"
    variants = _list(["Mini", "Pro", "Max", "Lite", "Plus", "Classic", "Go", "Sport"])
    con.execute(f"""
        CREATE TEMP TABLE _prod AS
        WITH p AS (
            SELECT i::int + 1 AS product_id FROM range({n}) t(i)
        ), c AS (
            SELECT product_id, {cat} AS c FROM p
        ), q AS (
            SELECT product_id, c,
                -- r numbers products within a category, scrambled by a bijection of [0, 1280)
                -- so names vary early on and stay unique while a category has < 1280 products
                (row_number() OVER (PARTITION BY c ORDER BY product_id) - 1) * 797 % 1280 AS r,
                -- log-uniform within the category's price band, ending in .99
                (floor(exp(ln({lo}[c]) + u(product_id, 'price')
                    * (ln({hi}[c]) - ln({lo}[c])))) + 0.99)::decimal(10, 2) AS list_price
            FROM c
        )
        SELECT product_id,
            {_list(ADJECTIVES)}[1 + r % {len(ADJECTIVES)}] || ' '
                || {nouns}[c][1 + (r // {len(ADJECTIVES)}) % 8] || ' '
                || {variants}[1 + (r // {len(ADJECTIVES) * 8}) % 8] AS product_name,
            {_list([name for name, *_ in CATEGORIES])}[c] AS category,
            (list_price::double * (0.35 + 0.35 * u(product_id, 'cost')))::decimal(10, 2)
                AS unit_cost,
            list_price,
            u(product_id, 'p_active') < 0.9 AS is_active,
            -- popularity rank, shuffled so the best sellers are spread over ids and categories
            row_number() OVER (ORDER BY u(product_id, 'pop'), product_id) AS pop_rank
        FROM q
    """)
    # Zipf-like sales weights by popularity rank (the top seller takes ~2% of lines), with
    # exclusive running sums for the same ASOF inverse-CDF lookup as the calendar.
    con.execute("""
        CREATE TEMP TABLE _pop AS
        WITH w AS (
            SELECT product_id, list_price, pop_rank,
                round(1000000 / pow(pop_rank + 10, 0.8))::bigint AS w
            FROM _prod
        )
        SELECT product_id, list_price, sum(w) OVER (ORDER BY pop_rank) - w AS lo_pop,
            sum(w) OVER () AS tot_pop
        FROM w
    """)
    # The same lookup quantized to 2^16 buckets, so the order lines find their product with a
    # hash join: an ASOF join over ~10M lines costs a sort, 5x slower here.
    con.execute(f"""
        CREATE TEMP TABLE _pop_bucket AS
        WITH b AS (
            SELECT b::int AS bucket, (b * p.tot_pop) // {PRODUCT_BUCKETS} AS tgt
            FROM range({PRODUCT_BUCKETS}) t(b), (SELECT max(tot_pop) AS tot_pop FROM _pop) p
        )
        SELECT b.bucket, p.product_id, p.list_price
        FROM b ASOF JOIN _pop p ON b.tgt >= p.lo_pop
    """)
    con.execute("""
        CREATE TABLE raw.products (
            product_id INTEGER, product_name VARCHAR, category VARCHAR,
            unit_cost DECIMAL(10, 2), list_price DECIMAL(10, 2), is_active BOOLEAN
        )
    """)
    con.execute("""
        INSERT INTO raw.products
        SELECT product_id, product_name, category, unit_cost, list_price, is_active
        FROM _prod ORDER BY product_id
    """)


def _orders(con: duckdb.DuckDBPyConnection, end_sql: str, end_eod: str) -> None:
    status = (
        "CASE "
        + " ".join(
            f"WHEN {end_sql} - order_date < {age} THEN {_pick(_u('order_id', 'st'), mix)}"
            for age, mix in STATUS_BY_AGE
            if age is not None
        )
        + f" ELSE {_pick(_u('order_id', 'st'), STATUS_BY_AGE[-1][1])} END"
    )
    lag = (
        "CASE order_status "
        + " ".join(
            f"WHEN '{s}' THEN {base} + floor(u(order_id, 'lag') * {span})::bigint"
            for s, (base, span) in STATUS_LAG.items()
        )
        + " END"
    )
    # Order key before ids exist: (customer, n-th order), at most 30 orders per customer.
    con.execute(f"""
        CREATE TEMP TABLE _ord AS
        WITH x AS (
            SELECT customer_id, first_date, lo_next, tot_order,
                unnest(range(n_orders)) AS j
            FROM _cust WHERE n_orders > 0
        ), y AS (
            SELECT *, customer_id::bigint * 32 + j AS k FROM x
        ), z AS (
            SELECT y.customer_id, y.j,
                CASE WHEN y.j = 0 THEN y.first_date
                     -- a few order again the same day (a forgotten item)
                     WHEN y.j = 1 AND u(y.k, 'same') < 0.03 THEN y.first_date
                     -- a third of second orders come back within 90 days of the first
                     WHEN y.j = 1 AND u(y.k, 'quick') < 0.33 AND y.first_date < {end_sql}
                         THEN y.first_date + 1 + floor(u(y.k, 'qd')
                              * least(89, {end_sql} - y.first_date))::int
                     -- other repeats: any day after the first, weighted by season
                     ELSE cal.d
                END AS order_date,
                floor(u(y.k, 'tod') * 86400)::bigint AS tod
            FROM y ASOF JOIN _cal cal
                ON y.lo_next + floor(u(y.k, 'rep') * (y.tot_order - y.lo_next))::bigint
                   >= cal.lo_order
        ), ided AS (
            SELECT row_number() OVER (ORDER BY order_date, tod, customer_id, j)::int AS order_id,
                customer_id, order_date, tod
            FROM z
        ), st AS (
            SELECT *, {status} AS order_status,
                {_pick("u(order_id, 'lines')", LINES_PER_ORDER)} AS n_lines
            FROM ided
        )
        SELECT order_id, customer_id, order_date, order_status, n_lines,
            least({end_eod}, order_date + to_seconds(tod + {lag})) AS updated_at,
            -- first order_item_id of the order minus one: ids follow orders without a sort
            sum(n_lines) OVER (ORDER BY order_id ROWS UNBOUNDED PRECEDING) - n_lines
                AS item_offset
        FROM st
    """)
    con.execute("""
        CREATE TABLE raw.orders (
            order_id INTEGER, customer_id INTEGER, order_date DATE, order_status VARCHAR,
            updated_at TIMESTAMP
        )
    """)
    con.execute("""
        INSERT INTO raw.orders
        SELECT order_id, customer_id, order_date, order_status, updated_at
        FROM _ord ORDER BY order_id
    """)


def _order_items(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("""
        CREATE TABLE raw.order_items (
            order_item_id INTEGER, order_id INTEGER, product_id INTEGER, quantity INTEGER,
            unit_price DECIMAL(10, 2), discount_amount DECIMAL(10, 2)
        )
    """)
    con.execute(f"""
        INSERT INTO raw.order_items
        WITH l AS (
            SELECT order_id, item_offset + unnest(range(1, n_lines + 1)) AS id FROM _ord
        ), m AS (
            SELECT id, order_id, floor(u(id, 'prod') * {PRODUCT_BUCKETS})::int AS bucket,
                {_pick("u(id, 'qty')", QUANTITY)} AS quantity
            FROM l
        ), p AS (
            SELECT m.id, m.order_id, p.product_id, m.quantity,
                CASE WHEN u(m.id, 'sale') < 0.15
                     THEN (p.list_price::double * (0.70 + 0.25 * u(m.id, 'sale_pct')))
                     ELSE p.list_price END::decimal(10, 2) AS unit_price
            FROM m JOIN _pop_bucket p USING (bucket)
        )
        SELECT id, order_id, product_id, quantity, unit_price,
            CASE WHEN u(id, 'disc') < 0.70 THEN 0
                 ELSE (unit_price * quantity)::double * 0.30 * u(id, 'disc_pct')
            END::decimal(10, 2) AS discount_amount
        FROM p
        ORDER BY id
    """)
