"""tally's wire encoding of values against PostgreSQL's own: the same values selected from a
real PostgreSQL server, in text and in binary (the raw bytes psycopg receives), must equal what
tally.pgwire.values writes for them (its vectorized paths and its per-value ones)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal

import psycopg
import pyarrow as pa
import pytest

from tally.pgwire.values import encode_column
from tally.sql import pgtypes
from tests.support.postgres import postgres_or_skip

NUMERICS = ["0", "0.5", "10000", "12345.678", "-1.05", "0.0000001", "123456789012.34",
            "-99999999.99", "100.00", None]
CASES = [
    ("int8", "bigint", pgtypes.INT8, pa.int64(), [0, 1, -5, 2**62, None]),
    ("int4", "integer", pgtypes.INT4, pa.int32(), [0, 7, -2**31, None]),
    ("float8", "double precision", pgtypes.FLOAT8, pa.float64(),
     [0.1, 1.5, 1e20, -2.5e-8, 12345.678, None]),
    ("bool", "boolean", pgtypes.BOOL, pa.bool_(), [True, False, None]),
    ("text", "text", pgtypes.TEXT, pa.string(), ["US", "", "ünï cødé", "a,b", None]),
    ("date", "date", pgtypes.DATE, pa.date32(),
     [dt.date(2025, 1, 31), dt.date(1999, 12, 31), dt.date(2000, 1, 1), None]),
    ("timestamp", "timestamp", pgtypes.TIMESTAMP, pa.timestamp("us"),
     [dt.datetime(2025, 3, 1, 12, 30, 5), dt.datetime(2025, 3, 1, 0, 0, 0, 250000), None]),
]


@pytest.fixture(scope="module")
def pg() -> Iterator[psycopg.Connection]:
    params = postgres_or_skip()  # fails in CI without a server, skips (saying why) elsewhere
    with psycopg.connect(host=params["host"], port=params["port"], user=params["user"],
                         dbname=params["dbname"], autocommit=True) as conn:
        yield conn


def postgres_bytes(pg: psycopg.Connection, sql_type: str, values: list, binary: bool) -> list:
    literals = ", ".join("NULL" if v is None else f"'{v}'" for v in values)
    cursor = pg.cursor(binary=binary)
    cursor.execute(f"SELECT v FROM unnest(ARRAY[{literals}]::{sql_type}[]) "
                   "WITH ORDINALITY AS t(v, i) ORDER BY i")
    result = cursor.pgresult
    return [result.get_value(i, 0) for i in range(result.ntuples)]


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
@pytest.mark.parametrize(("name", "sql_type", "pg_type", "arrow", "values"), CASES,
                         ids=[c[0] for c in CASES])
def test_values_are_written_as_postgresql_writes_them(pg, name, sql_type, pg_type, arrow,
                                                      values, binary):
    ours = encode_column(pa.array(values, arrow), pg_type, binary)
    theirs = postgres_bytes(pg, sql_type, [str(v).lower() if isinstance(v, bool) else v
                                           for v in values], binary)
    assert ours == [bytes(v) if v is not None else None for v in theirs]


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_numerics_keep_their_scale_as_postgresql_does(pg, binary):
    decimals = [None if v is None else Decimal(v) for v in NUMERICS]
    scale = max(-Decimal(v).as_tuple().exponent for v in NUMERICS if v is not None)
    ours = encode_column(pa.array(decimals, pa.decimal128(38, scale)), pgtypes.NUMERIC, binary)
    theirs = postgres_bytes(pg, f"numeric(38, {scale})", NUMERICS, binary)
    assert ours == [bytes(v) if v is not None else None for v in theirs]
