"""An export whose result has no rows is still a valid file: a CSV header, an Arrow IPC stream or
a Parquet file whose schema has the columns (names and types) the same export has when rows
match. Over HTTP, in every format, with and without group-bys, on a streaming warehouse
(DuckDB) and on one whose whole result is fetched (PostgreSQL)."""

from __future__ import annotations

import io
import os
import subprocess

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.support.clients import SyncASGIClient
from tests.support.hand_sql import expected_rows
from tests.support.paths import PROJECT_DIR, TALLY
from tests.support.services import ServiceFactory

# A country no customer has (checked against raw.* below), and one many have.
NOWHERE, SOMEWHERE = "XX", "DE"
SHAPES = {
    "by_day_and_country": {"metrics": ["revenue", "order_count"],
                           "group_by": ["metric_time__day", "customer__country"]},
    "by_month": {"metrics": ["revenue"], "group_by": ["metric_time__month"]},
    "no_group_by": {"metrics": ["revenue", "order_count"]},
}
FORMATS = ("csv", "arrow", "parquet")


def _where(country: str) -> list[str]:
    return [f"{{{{ Dimension('customer__country') }}}} = '{country}'"]


@pytest.fixture(scope="module")
def postgres_services(engines, pg_warehouse):
    from tally.warehouse.postgres import PostgresWarehouse

    factory = ServiceFactory(engines, pg_warehouse.manifest_path,
                             lambda: PostgresWarehouse(**pg_warehouse.conn()), target="postgres")
    yield factory
    factory.close()


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def client(request, session_services):
    services = session_services if request.param == "duckdb" else \
        request.getfixturevalue("postgres_services")
    return request.param, SyncASGIClient(services.app())


def _export(client, shape: str, country: str, fmt: str) -> bytes:
    _, http = client
    r = http.post("/api/v1/exports", json={**SHAPES[shape], "where": _where(country),
                                              "format": fmt})
    assert r.status_code == 200, r.text
    return r.content


def _kind(t: pa.DataType) -> str:
    if pa.types.is_integer(t) or pa.types.is_decimal(t) or pa.types.is_floating(t):
        return "number"
    return str(t)


def _read(fmt: str, content: bytes) -> pa.Table:
    if fmt == "arrow":
        return pa.ipc.open_stream(content).read_all()
    return pq.read_table(io.BytesIO(content))


def test_the_empty_filter_matches_no_rows_and_the_other_does(raw):
    count = "select count(*) as n from raw.customers where country = '{}'"
    assert expected_rows(raw, count.format(NOWHERE))[0]["n"] == 0
    assert expected_rows(raw, count.format(SOMEWHERE))[0]["n"] > 0


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("fmt", ["arrow", "parquet"])
def test_an_empty_export_has_the_schema_of_a_full_one(client, shape, fmt):
    empty = _read(fmt, _export(client, shape, NOWHERE, fmt))
    full = _read(fmt, _export(client, shape, SOMEWHERE, fmt))
    names = [*SHAPES[shape].get("group_by", []), *SHAPES[shape]["metrics"]]
    assert full.num_rows > 0
    assert full.column_names == names
    if client[0] == "duckdb":
        assert empty.schema == full.schema
    else:
        # PostgreSQL declares sum(numeric) unconstrained (no scale): psycopg2's rows give a
        # decimal sized by the values, so even two full results of one query can differ.
        assert empty.column_names == full.column_names
        assert [_kind(f.type) for f in empty.schema] == [_kind(f.type) for f in full.schema]
    if "group_by" in SHAPES[shape]:
        assert empty.num_rows == 0
    else:  # aggregates over no rows: at most one row, with no values
        assert empty.num_rows <= 1
        assert all(v is None for row in empty.to_pylist() for v in row.values())


@pytest.mark.parametrize("shape", SHAPES)
def test_an_empty_csv_export_has_the_header_of_a_full_one(client, shape):
    empty = _export(client, shape, NOWHERE, "csv").decode()
    full = _export(client, shape, SOMEWHERE, "csv").decode()
    names = [*SHAPES[shape].get("group_by", []), *SHAPES[shape]["metrics"]]
    header = ",".join(f'"{n}"' for n in names)
    assert full.splitlines()[0] == header and len(full.splitlines()) > 1
    lines = empty.splitlines()
    assert lines[0] == header
    if "group_by" in SHAPES[shape]:
        assert lines == [header]
    else:
        assert lines[1:] in ([], ["," * (len(names) - 1)])  # at most one row, of no values


def test_cli_output_of_an_empty_result_has_the_schema_of_a_full_one(warehouse, tmp_path):
    """`tally query --output FILE` streams through the same export."""
    env = {**os.environ, "TALLY_DUCKDB_PATH": str(warehouse.duckdb_path),
           "TALLY_MANIFEST_PATH": str(warehouse.manifest_path),
           "TALLY_PROJECT_DIR": str(PROJECT_DIR)}
    tables = {}
    for country in (NOWHERE, SOMEWHERE):
        out = tmp_path / f"{country}.parquet"
        run = subprocess.run(
            [str(TALLY), "query", "--metrics", "revenue,order_count", "--group-by",
             "metric_time__day,customer__country", "--where", _where(country)[0],
             "--output", str(out)],
            env=env, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        tables[country] = pq.read_table(out)
    assert tables[NOWHERE].num_rows == 0 < tables[SOMEWHERE].num_rows
    assert tables[NOWHERE].schema == tables[SOMEWHERE].schema
