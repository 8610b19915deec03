"""The encoders every transport shares (tally/core/encoding.py): the JSON shape with exact
decimals, non-finite numbers as null, CSV, the Arrow IPC stream and the CLI's text table. The
expected texts are written out by hand from the formats' rules."""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json
import math

import pyarrow as pa
import pytest

from tally.core.encoding import (
    column_type,
    json_value,
    to_arrow_stream,
    to_csv,
    to_json,
    to_text_table,
)
from tally.core.request import QueryRequest
from tally.core.results import CacheStatus, QueryResult, Timing

D = decimal.Decimal


def table() -> pa.Table:
    return pa.table({
        "day": pa.array([dt.date(2025, 1, 31), dt.date(2025, 2, 28)], pa.date32()),
        "country": pa.array(["US", None], pa.string()),
        "revenue": pa.array([D("12345678901234567.89"), D("-0.10")], pa.decimal128(20, 2)),
        "orders": pa.array([3, None], pa.int64()),
        "rate": pa.array([0.25, math.inf], pa.float64()),
    })


def result(t: pa.Table, memo: dict | None = None) -> QueryResult:
    return QueryResult(
        table=t,
        sql="select 1",
        request=QueryRequest.create(metrics=["revenue"]),
        timing=Timing(compile_ms=1.5, execute_ms=2.5, total_ms=4.0),
        cache=CacheStatus(hit=True, age_seconds=1.23456),
        manifest_version="v1",
        memo=memo,
    )


def test_json_has_the_design_shape_and_every_digit():
    text = to_json(result(table()))
    assert text == (
        '{"columns": [{"name": "day", "type": "date"}, {"name": "country", "type": "string"}, '
        '{"name": "revenue", "type": "decimal"}, {"name": "orders", "type": "integer"}, '
        '{"name": "rate", "type": "float"}], '
        '"data": [{"day": "2025-01-31", "country": "US", "revenue": 12345678901234567.89, '
        '"orders": 3, "rate": 0.25}, '
        '{"day": "2025-02-28", "country": null, "revenue": -0.10, "orders": null, '
        '"rate": null}], '
        '"row_count": 2, "sql": "select 1", "cache": {"hit": true, "age_seconds": 1.235}, '
        '"timing_ms": {"compile": 1.5, "execute": 2.5, "total": 4.0}, '
        '"rollup": {"used": null, "misses": []}}'
    )
    # Read back with exact decimals, the value is the one stored: no float went in between.
    body = json.loads(text, parse_float=D)
    assert body["data"][0]["revenue"] == D("12345678901234567.89")
    assert float(D("12345678901234567.89")) != D("12345678901234567.89")  # a float would lose it


def test_indented_json_is_the_same_document():
    compact = json.loads(to_json(result(table())), parse_float=D)
    indented = to_json(result(table()), indent=True)
    assert indented.startswith('{\n  "columns": ') and indented.endswith("\n}")
    assert '\n    {"day": "2025-01-31"' in indented
    assert json.loads(indented, parse_float=D) == compact


def test_json_of_no_rows():
    empty = table().slice(0, 0)
    body = json.loads(to_json(result(empty)))
    assert body["data"] == [] and body["row_count"] == 0 and len(body["columns"]) == 5


def test_json_rows_are_kept_in_the_entrys_memo_for_the_next_hit():
    memo: dict = {}
    t = table()
    first = to_json(result(t, memo))
    assert memo["json_rows"][0] is t and len(memo["json_rows"][1]) == 2
    assert to_json(result(t, memo)) == first
    # Another table (another column order of the same entry) is encoded afresh.
    other = t.select(["country", "day", "revenue", "orders", "rate"])
    assert '"data": [{"country": "US", "day": "2025-01-31"' in to_json(result(other, memo))


@pytest.mark.parametrize(
    "value,expected",
    [
        (D("5.00"), 5),
        (D("2.50"), 2.5),
        (D("NaN"), None),
        (D("Infinity"), None),
        (math.nan, None),
        (-math.inf, None),
        (0.1, 0.1),
        (None, None),
        (True, True),
        (7, 7),
        ("text", "text"),
        (dt.date(2025, 1, 31), "2025-01-31"),
        (dt.datetime(2025, 1, 31, 12, 30), "2025-01-31T12:30:00"),
        (dt.time(8, 5), "08:05:00"),
        (b"raw", "b'raw'"),
    ],
)
def test_json_value(value, expected):
    out = json_value(value)
    assert out == expected and type(out) is type(expected)


def test_non_finite_numbers_are_null_in_json_text():
    t = pa.table({"x": pa.array([math.nan, -math.inf, 1.5], pa.float64())})
    assert json.loads(to_json(result(t)))["data"] == [{"x": None}, {"x": None}, {"x": 1.5}]


@pytest.mark.parametrize(
    "arrow_type,name",
    [(pa.date32(), "date"), (pa.timestamp("us"), "timestamp"), (pa.decimal128(10, 2), "decimal"),
     (pa.int32(), "integer"), (pa.float32(), "float"), (pa.bool_(), "boolean"),
     (pa.string(), "string"), (pa.large_string(), "string"), (pa.binary(), "binary")],
)
def test_column_types(arrow_type, name):
    assert column_type(arrow_type) == name


def test_csv():
    assert to_csv(table()).decode() == (
        '"day","country","revenue","orders","rate"\n'
        '2025-01-31,"US",12345678901234567.89,3,0.25\n'
        "2025-02-28,,-0.10,,inf\n"
    )


def test_arrow_stream_round_trip_keeps_types_and_values():
    t = table()
    back = pa.ipc.open_stream(io.BytesIO(to_arrow_stream(t))).read_all()
    assert back.schema == t.schema and back.equals(t)
    assert back.column("revenue")[0].as_py() == D("12345678901234567.89")
    empty = t.slice(0, 0)
    back = pa.ipc.open_stream(io.BytesIO(to_arrow_stream(empty))).read_all()
    assert back.num_rows == 0 and back.schema == t.schema


def text_table() -> pa.Table:
    return pa.table({
        "country": pa.array(["US", "DE", None]),
        "revenue": pa.array([D("1234.50"), D("7.00"), None], pa.decimal128(10, 2)),
        "rate": pa.array([0.25, 0.123456, 2e9]),
    })


def test_text_table_aligns_numbers_right_and_text_left():
    assert to_text_table(text_table()) == "\n".join([
        "country  revenue    rate",
        "-------  -------  ------",
        "US       1234.50    0.25",
        "DE          7.00  0.1235",
        "                   2e+09",
        "(3 rows)",
    ])


def test_text_table_says_how_many_rows_it_left_out():
    assert to_text_table(text_table(), max_rows=2).splitlines()[-2:] == [
        "... 1 more rows (use --limit or --format csv)",
        "(3 rows)",
    ]
    assert to_text_table(text_table().slice(0, 1)).splitlines()[-1] == "(1 row)"
