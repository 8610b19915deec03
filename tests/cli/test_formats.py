"""`tally query` in the formats of tally/core/formats.py, through the real command in a
subprocess: NDJSON on standard output (the JSON format's rows, the hand SQL's numbers), the
whole result streamed to FILE.ndjson / FILE.jsonl past the row limit, and clear one-line errors
for a format that cannot go where it was asked. The `--format` choices and the `--output` help
come from the table."""

from __future__ import annotations

import json
import os
import subprocess
from decimal import Decimal

import pytest

from tally.core import formats
from tests.support.hand_sql import expected_rows, group_columns
from tests.support.paths import PROJECT_DIR, TALLY

QUERY = ["query", "--metrics", "revenue,order_count", "--group-by", "metric_time__year"]
BIG = ["query", "--metrics", "revenue,order_count", "--group-by",
       "metric_time__day,customer__country"]


@pytest.fixture(scope="module")
def run(warehouse):
    env = {**os.environ, "TALLY_DUCKDB_PATH": str(warehouse.duckdb_path),
           "TALLY_MANIFEST_PATH": str(warehouse.manifest_path),
           "TALLY_PROJECT_DIR": str(PROJECT_DIR), "TALLY_MAX_ROWS": "10"}
    env.pop("TALLY_DEBUG", None)

    def _run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(TALLY), *args], env=env, capture_output=True, timeout=120)

    return _run


def lines(body: bytes) -> list[dict]:
    text = body.decode()
    assert text == "" or text.endswith("\n")
    return [json.loads(line, parse_float=Decimal) for line in text.split("\n")[:-1]]


def hand(raw, group_by: list[str]) -> dict[tuple, tuple]:
    rows = expected_rows(raw, f"select {group_columns(group_by, 'order_date')}, "
                              "sum(net_amount) filter (where order_status = 'completed') "
                              "as revenue, count(*) as order_count from enriched_orders "
                              "group by all")
    return {tuple(str(r[g]) for g in group_by): (r["revenue"] or 0, r["order_count"])
            for r in rows}


def keyed(rows: list[dict], group_by: list[str]) -> dict[tuple, tuple]:
    return {tuple(r[g] for g in group_by): (r["revenue"] or 0, r["order_count"]) for r in rows}


def test_ndjson_on_standard_output_is_the_json_rows_and_the_hand_numbers(run, raw):
    nd = run(*QUERY, "--format", "ndjson")
    assert nd.returncode == 0, nd.stderr
    js = run(*QUERY, "--format", "json")
    rows = lines(nd.stdout)
    assert rows == json.loads(js.stdout, parse_float=Decimal)["data"]
    assert len(rows) == 4 and isinstance(rows[0]["revenue"], Decimal)
    assert keyed(rows, ["metric_time__year"]) == hand(raw, ["metric_time__year"])


def test_no_rows_prints_nothing(run):
    out = run(*QUERY, "--format", "ndjson", "--where",
              "{{ Dimension('customer__country') }} = 'XX'")
    assert out.returncode == 0 and out.stdout == b""


@pytest.mark.parametrize("name", ["result.ndjson", "result.JSONL"])
def test_output_streams_the_whole_result_to_an_ndjson_file(run, raw, tmp_path, name):
    out = tmp_path / name
    done = run(*BIG, "--output", str(out))
    assert done.returncode == 0, done.stderr
    assert "rows written to" in done.stderr.decode() and "(ndjson)" in done.stderr.decode()
    group_by = ["metric_time__day", "customer__country"]
    rows = lines(out.read_bytes())
    expected = hand(raw, group_by)
    assert len(rows) == len(expected) > 10  # past TALLY_MAX_ROWS: the whole result
    assert keyed(rows, group_by) == expected


def test_format_ndjson_names_the_output_files_format(run, tmp_path):
    out = tmp_path / "result.txt"
    assert run(*BIG, "--format", "ndjson", "--output", str(out)).returncode == 0
    assert len(lines(out.read_bytes())) > 10


@pytest.mark.parametrize("args,needle", [
    (["--format", "parquet"], "--format parquet writes files only: give --output FILE.parquet"),
    (["--output", "{tmp}/result.json"], "json is not written as a stream: name the file .csv"),
    (["--output", "{tmp}/result.xlsx"], "cannot tell the format of"),
    (["--format", "ndjsn"], "invalid choice: 'ndjsn'"),
])  # fmt: skip
def test_a_format_that_cannot_go_there_is_one_line_and_exit_2(run, tmp_path, args, needle):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    out = run(*QUERY, *args)
    err = out.stderr.decode()
    assert out.returncode == 2 and needle in err and "Traceback" not in err, err
    assert not list(tmp_path.iterdir())  # no file, not even a half one


def test_the_choices_and_the_help_come_from_the_table(run):
    from tally.cli import FORMATS as CHOICES

    assert ("table", *formats.names()) == CHOICES
    bad = run(*QUERY, "--format", "xml").stderr.decode()
    assert all(f"'{name}'" in bad for name in CHOICES)
    helped = " ".join(run("query", "--help").stdout.decode().split())
    for ext in formats.extensions(formats.exports()):
        assert ext in helped
    assert "--format " + "|".join(formats.names(formats.exports())) in helped
