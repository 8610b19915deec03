"""Anomalies injected into generated raw data, for the monitors to catch (and tests to prove
they do): each is a small, deterministic edit of schema `raw` after generation.

    half_day[:YYYY-MM-DD]          half of that day's orders (and their lines) are missing
                                   (default: the anomaly day)
    country_stops:<CC>[:DAYS]      customers of country CC place no orders in the DAYS days
                                   up to the anomaly day (default 14)
    stale:<table>[:DAYS]           the table stops updating DAYS days before the end of the
                                   anomaly day (default 4): its updated_at never goes past that

The anomaly day defaults to the last day of history. The generator's last few days hold more
orders than the days before (repeat orders of recent customers are squeezed into the days that
remain), so tests put the anomaly day a week earlier and check monitors as of that day.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import duckdb

KINDS = ("half_day", "country_stops", "stale")
_STALE_TABLES = ("customers", "orders")


@dataclass(frozen=True)
class Anomaly:
    kind: str
    arg: str | None = None
    days: int | None = None

    @classmethod
    def parse(cls, text: str) -> Anomaly:
        kind, *rest = text.strip().split(":")
        if kind not in KINDS:
            raise ValueError(f"unknown anomaly {kind!r} (known: {', '.join(KINDS)})")
        if kind == "half_day":
            if len(rest) > 1:
                raise ValueError("half_day takes at most a date: half_day[:YYYY-MM-DD]")
            if rest:
                dt.date.fromisoformat(rest[0])
            return cls(kind, rest[0] if rest else None)
        if not rest or len(rest) > 2 or not rest[0]:
            raise ValueError(f"{kind} needs an argument: {kind}:<value>[:DAYS]")
        if kind == "stale" and rest[0] not in _STALE_TABLES:
            raise ValueError(f"stale: table must be one of {', '.join(_STALE_TABLES)}")
        days = int(rest[1]) if len(rest) == 2 else None
        if days is not None and days < 1:
            raise ValueError(f"{kind}: DAYS must be at least 1")
        return cls(kind, rest[0], days)


def parse_anomalies(specs: Sequence[str]) -> list[Anomaly]:
    return [Anomaly.parse(s) for spec in specs for s in spec.split(",") if s.strip()]


def inject(
    path: str | os.PathLike,
    anomalies: Sequence[Anomaly],
    end: str,
    progress: Callable[[str], None] | None = None,
) -> None:
    say = progress or (lambda _msg: None)
    last = dt.date.fromisoformat(end)
    con = duckdb.connect(os.fspath(path))
    try:
        con.execute("BEGIN TRANSACTION")
        for a in anomalies:
            if a.kind == "half_day":
                day = a.arg or last.isoformat()
                doomed = (f"SELECT order_id FROM raw.orders WHERE order_date = DATE '{day}' "
                          "AND order_id % 2 = 0")  # fmt: skip
                n = _drop_orders(con, doomed)
                say(f"anomaly half_day: {n} of the orders of {day} removed")
            elif a.kind == "country_stops":
                first = last - dt.timedelta(days=(a.days or 14) - 1)
                # Up to the anomaly day only: later days keep their orders
                doomed = (
                    "SELECT o.order_id FROM raw.orders o JOIN raw.customers c USING "
                    f"(customer_id) WHERE c.country = '{_quote(a.arg)}' "
                    f"AND o.order_date BETWEEN DATE '{first}' AND DATE '{last}'"
                )
                n = _drop_orders(con, doomed)
                say(f"anomaly country_stops: {n} orders of {a.arg} since {first} removed")
            else:
                cutoff = dt.datetime.combine(last, dt.time(23, 59, 59)) - dt.timedelta(
                    days=a.days or 4
                )
                con.execute(f"UPDATE raw.{a.arg} SET updated_at = TIMESTAMP '{cutoff}' "
                            f"WHERE updated_at > TIMESTAMP '{cutoff}'")  # fmt: skip
                say(f"anomaly stale: raw.{a.arg} not updated after {cutoff}")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.close()


def _drop_orders(con: duckdb.DuckDBPyConnection, doomed: str) -> int:
    con.execute(f"CREATE OR REPLACE TEMP TABLE _doomed AS {doomed}")
    n = con.execute("SELECT count(*) FROM _doomed").fetchone()[0]
    con.execute("DELETE FROM raw.order_items WHERE order_id IN (SELECT order_id FROM _doomed)")
    con.execute("DELETE FROM raw.orders WHERE order_id IN (SELECT order_id FROM _doomed)")
    return int(n)


def _quote(value: str | None) -> str:
    return (value or "").replace("'", "''")
