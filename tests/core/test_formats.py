"""The formats registry (tally/core/formats.py) and NDJSON's encoders: one entry per format, what
each can do, unknown names answered with the list and a suggestion, and NDJSON's text written
out by hand from its rules (one JSON object per row, as the row is in JSON's `data`, each line
newline-terminated, no envelope, nothing at all for no rows)."""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json
import math
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tally.core import formats
from tally.core.encoding import json_rows, result_ndjson, to_csv, to_json, to_ndjson
from tally.core.request import QueryRequest
from tally.core.results import CacheStatus, QueryResult, Timing
from tally.errors import InvalidRequest

D = decimal.Decimal


def table() -> pa.Table:
    return pa.table({
        "day": pa.array([dt.date(2025, 1, 31), dt.date(2025, 2, 28)], pa.date32()),
        "country": pa.array(["US", None], pa.string()),
        "revenue": pa.array([D("12345678901234567.89"), D("-0.10")], pa.decimal128(20, 2)),
        "orders": pa.array([3, None], pa.int64()),
        "rate": pa.array([0.25, math.inf], pa.float64()),
        "at": pa.array([dt.datetime(2025, 1, 31, 8, 5), None], pa.timestamp("us")),
        "note": pa.array(['say "hi"\nthen go', "=1+1"], pa.string()),
    })


def result(t: pa.Table, memo: dict | None = None) -> QueryResult:
    return QueryResult(
        table=t, sql="select 1", request=QueryRequest.create(metrics=["revenue"]),
        timing=Timing(compile_ms=1.0, execute_ms=1.0, total_ms=2.0),
        cache=CacheStatus(hit=False), manifest_version="v1", memo=memo)  # fmt: skip


NDJSON = (
    '{"day": "2025-01-31", "country": "US", "revenue": 12345678901234567.89, "orders": 3, '
    '"rate": 0.25, "at": "2025-01-31T08:05:00", "note": "say \\"hi\\"\\nthen go"}\n'
    '{"day": "2025-02-28", "country": null, "revenue": -0.10, "orders": null, "rate": null, '
    '"at": null, "note": "=1+1"}\n'
)


def test_ndjson_is_one_json_object_per_row_with_every_digit():
    assert to_ndjson(table()).decode() == NDJSON
    assert result_ndjson(result(table())).decode() == NDJSON
    lines = [json.loads(line, parse_float=D) for line in NDJSON.splitlines()]
    assert lines[0]["revenue"] == D("12345678901234567.89")  # never through a float


def test_ndjson_lines_are_the_json_results_rows():
    data = json.loads(to_json(result(table())), parse_float=D)["data"]
    lines = to_ndjson(table()).decode().splitlines()
    assert [json.loads(line, parse_float=D) for line in lines] == data
    # The same text, not only the same values.
    assert lines == json_rows(result(table()))


def test_no_rows_is_an_empty_body_in_every_ndjson_encoder():
    empty = table().slice(0, 0)
    stream = formats.named("ndjson").stream
    assert to_ndjson(empty) == b"" and result_ndjson(result(empty)) == b""
    assert b"".join(stream(empty.schema, [pa.RecordBatch.from_pylist([], empty.schema)])) == b""


def test_ndjson_rows_are_memoized_with_jsons_for_the_next_hit():
    memo: dict = {}
    t = table()
    first = result_ndjson(result(t, memo))
    assert memo["json_rows"][0] is t and memo["memo_bytes"] > 0
    memo["json_rows"] = (t, ['{"kept": 1}', '{"kept": 2}'])  # what a hit would reuse
    assert result_ndjson(result(t, memo)) == b'{"kept": 1}\n{"kept": 2}\n' != first


@pytest.mark.parametrize("name", formats.names(formats.exports()))
def test_a_stream_over_batches_reads_back_as_the_whole_table(name):
    fmt = formats.named(name)
    t = table().drop_columns(["rate"])  # inf aside: CSV writes it, NDJSON makes it null
    pieces = list(fmt.stream(t.schema, t.to_batches(max_chunksize=1)))
    assert len(pieces) >= 2  # bytes as each batch arrives, not all at the end
    body = b"".join(pieces)
    if fmt.text:  # the same text as the whole table's
        assert body == fmt.table(t)
    elif name == "arrow":  # the same table (in two record batches rather than one)
        assert pa.ipc.open_stream(body).read_all().equals(t)
    else:
        back = pq.read_table(io.BytesIO(body))
        assert back.equals(t) and pq.ParquetFile(io.BytesIO(body)).num_row_groups == 2


def test_csv_stream_neutralizes_formulas_like_the_whole_table():
    t = table()
    stream = formats.named("csv").stream
    assert b"".join(stream(t.schema, t.to_batches(max_chunksize=1))) == to_csv(t)
    assert b"'=1+1" in to_csv(t)


def test_one_entry_per_name_media_type_and_extension():
    names = formats.names()
    assert names == ["json", "csv", "arrow", "parquet", "ndjson"]
    assert len({f.media_type for f in formats.FORMATS}) == len(names)
    extensions = formats.extensions(formats.FORMATS)
    assert len(set(extensions)) == len(extensions)
    assert all(n == n.lower() and e.startswith(".") for n in names for e in extensions)
    assert formats.FORMATS[0] is formats.JSON and formats.JSON.answers


def test_what_each_format_can_do_follows_from_its_encoders():
    assert formats.names(formats.answers()) == ["json", "csv", "arrow", "ndjson"]
    assert formats.names(formats.exports()) == ["csv", "arrow", "parquet", "ndjson"]
    ndjson = formats.named("ndjson")
    assert ndjson.media_type == "application/x-ndjson" and ndjson.text
    assert ndjson.extensions == (".ndjson", ".jsonl") and ndjson.answers and ndjson.streams
    assert formats.named("csv").content_type == "text/csv; charset=utf-8"
    assert ndjson.content_type == "application/x-ndjson"  # JSON is UTF-8 by definition
    assert formats.named("arrow").content_type == "application/vnd.apache.arrow.stream"
    assert not formats.named("arrow").text and not formats.named("parquet").answers


def test_extensions_name_their_format():
    assert formats.by_extension(".JSONL") is formats.by_extension(".ndjson")
    assert formats.by_extension(".ndjson").name == "ndjson"
    assert formats.by_extension(".arrow") is formats.by_extension(".arrows")
    assert formats.by_extension(".xlsx") is None


@pytest.mark.parametrize(
    "asked,among,what,needle",
    [
        ("parqet", formats.exports(), "export format",
         "Unknown export format 'parqet': use one of csv, arrow, parquet, ndjson. "
         "Did you mean 'parquet'?"),
        ("jsonl", None, "format", "Did you mean 'ndjson'?"),  # an extension of ndjson's
        ("xml", None, "format", "Unknown format 'xml': use one of json, csv, arrow, parquet, "
         "ndjson."),
        ("json", formats.exports(), "export format",
         "json is not offered as an export format here: use one of csv, arrow, parquet, ndjson."),
        ("parquet", formats.answers(), "format",
         "parquet is not offered as a format here: use one of json, csv, arrow, ndjson."),
    ],
)
def test_an_unknown_format_names_the_known_ones(asked, among, what, needle):
    with pytest.raises(InvalidRequest) as e:
        formats.find(asked, among, what=what)
    assert needle in e.value.message
    assert e.value.details["supported"] == formats.names(among)
    if "Did you mean" not in needle:
        assert "Did you mean" not in e.value.message


def test_names_are_read_in_any_case():
    assert formats.find(" NDJSON ") is formats.named("ndjson")


def test_media_types_suggest_by_their_subtype():
    assert formats.suggest("application/ndjson").name == "ndjson"
    assert formats.suggest("application/jsonl").name == "ndjson"
    # Not JSON for anything under application/: their shared prefix would make any two close.
    assert formats.suggest("application/xml") is None and formats.suggest("text/html") is None


def test_reading_the_table_does_not_load_pyarrow():
    """The CLI parses its arguments from the table: `tally --help` stays quick."""
    code = ("import sys, tally.core.formats as f, tally.cli; f.names(f.exports()); "
            "print('pyarrow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
