"""A PostgreSQL connection that may write, for rollups (tally.rollups.build); the served
PostgresWarehouse stays read-only.

dbt builds PostgreSQL in place, so rollups are written in the served database while it serves:
each rollup's new rows, table and registry row are committed in one transaction, which readers
see whole or not at all (MVCC; DDL is transactional in PostgreSQL)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from tally.errors import WarehouseError, WarehouseUnavailable

# bit_xor, which the partition fingerprints aggregate row hashes with, is PostgreSQL 14's.
MIN_VERSION = 140000


class PostgresWriter:
    dialect = "postgres"

    def __init__(self, conn: dict[str, Any]) -> None:
        import psycopg2

        try:
            # UTC, like the served connections: date_trunc over timestamptz (and so partition
            # keys) follows the session's time zone.
            self._con = psycopg2.connect(connect_timeout=5, options="-c TimeZone=UTC", **conn)
        except psycopg2.Error as e:
            raise WarehouseUnavailable(f"Cannot connect to PostgreSQL: {str(e).strip()}") from e
        self._con.autocommit = True  # transaction() opens the ones that must be atomic
        version = self._con.server_version
        if version < MIN_VERSION:
            self._con.close()
            raise WarehouseError(
                f"Rollups on PostgreSQL need version 14 or newer (bit_xor); this server is "
                f"{version // 10000}."
            )

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self._con.cursor() as cur:
            self._run(cur, sql, params)

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._con.cursor() as cur:
            self._run(cur, sql, params)
            return cur.fetchall()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.execute("BEGIN")
        try:
            yield
        except BaseException:
            # Autocommit: psycopg2 does not track the transaction, so it is ended by hand.
            with contextlib.suppress(Exception):
                self.execute("ROLLBACK")
            raise
        self.execute("COMMIT")

    def relation_bytes(self, relation: str) -> int:
        rows = self.fetchall("SELECT pg_total_relation_size(to_regclass(?))", [relation])
        return int(rows[0][0] or 0)

    def close(self) -> None:
        self._con.close()

    def _run(self, cur: Any, sql: str, params: Sequence[Any]) -> None:
        import psycopg2

        if params:  # psycopg2's style: %s, and a literal % doubled
            sql = sql.replace("%", "%%").replace("?", "%s")
        try:
            cur.execute(sql, tuple(params) or None)
        except psycopg2.Error as e:
            raise WarehouseError(f"PostgreSQL: {str(e).strip().splitlines()[0]}") from e
