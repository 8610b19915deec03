"""SQL over metrics on the Flight SQL port, through the real ADBC Flight SQL driver: the
database-metadata commands from the caller's SQL catalog (the PostgreSQL endpoint's), plain SQL
whose numbers equal SQL written by hand over raw.*, a saved query's table, a tenant's columns
and rows, a refused query's error (the connection still usable), and the dbt Semantic Layer's
dialect beside it. One in-process server per module (a second one for the secured project)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager
import jwt
import pyarrow as pa
import pyarrow.flight as fl
import pytest
from adbc_driver_flightsql import DatabaseOptions

from tally.flight import proto, tables
from tally.flight.server import FlightSqlServer
from tally.service import TallyService
from tally.settings import Settings
from tally.sql.session import SqlEngine
from tally.warehouse.duckdb import DuckDBWarehouse
from tests.support.hand_sql import expected_rows

ROOT = Path(__file__).resolve().parent.parent.parent
SECRET = "flight-sql-test-secret-that-is-long-enough-for-hs256"
TALLY_YML = """
auth:
  jwt:
    algorithms: [HS256]
    issuer: https://auth.example.test
    audience: tally-tests
policies:
  - role: tenant
    row_filters:
      - {dimension: customer__country, op: in, values: "{{ claims.countries }}"}
    metrics: {deny: [gross_margin, gross_margin_pct]}
    dimensions: {deny: [customer__customer_segment]}
"""
REVENUE_BY_COUNTRY_2025 = """
    select customer__country as country, sum(net_amount) as revenue
    from enriched_orders
    where order_status = 'completed' and order_date >= date '2025-01-01'
    group by 1"""
SQL_2025 = ("SELECT customer__country, SUM(revenue) AS revenue FROM metrics "
            "WHERE metric_time >= '2025-01-01' GROUP BY 1")


@pytest.fixture(scope="module")
def uri(service):
    server = FlightSqlServer(service, "127.0.0.1", 0)
    yield f"grpc://127.0.0.1:{server.port}"
    server.shutdown()


@pytest.fixture
def conn(uri):
    connection = flightsql.connect(uri, autocommit=True)
    yield connection
    connection.close()


def _rows(connection, sql: str) -> list[dict]:
    with connection.cursor() as cur:
        cur.execute(sql)
        return cur.fetch_arrow_table().to_pylist()


def _hand(raw, countries=None) -> dict[str, float]:
    return {r["country"]: float(r["revenue"]) for r in expected_rows(raw, REVENUE_BY_COUNTRY_2025)
            if countries is None or r["country"] in countries}


def test_get_objects_lists_catalog_schema_tables_and_columns(conn, service):
    objects = conn.adbc_get_objects().read_all().to_pylist()
    assert [c["catalog_name"] for c in objects] == ["tally"]
    (schema,) = objects[0]["catalog_db_schemas"]
    assert schema["db_schema_name"] == "public"
    by_name = {t["table_name"]: t for t in schema["db_schema_tables"]}
    assert "metrics" in by_name and "revenue_by_country_by_month" in by_name
    assert {t["table_type"] for t in by_name.values()} == {"TABLE"}
    columns = {c["column_name"]: c for c in by_name["metrics"]["table_columns"]}
    assert {"revenue", "customer__country", "metric_time", "metric_time__month"} <= set(columns)
    xdbc_names = {t.type_name for t in tables.XDBC_TYPES}
    assert columns["revenue"]["xdbc_type_name"] in {"NUMERIC", "DOUBLE PRECISION"}
    assert {c["xdbc_type_name"] for c in columns.values()} <= xdbc_names
    assert columns["customer__country"]["xdbc_type_name"] == "TEXT"
    positions = [c["ordinal_position"] for c in by_name["metrics"]["table_columns"]]
    assert positions == list(range(1, len(positions) + 1))
    saved = [c["column_name"] for c in by_name["revenue_by_country_by_month"]["table_columns"]]
    assert saved == ["metric_time__month", "customer__country", "revenue", "completed_orders"]
    # Filters: a table name pattern, a schema that does not exist, another table type.
    only = conn.adbc_get_objects(depth="tables", table_name_filter="revenue%").read_all()
    names = {t["table_name"] for c in only.to_pylist() for s in c["catalog_db_schemas"]
             for t in s["db_schema_tables"]}
    assert names and all(n.startswith("revenue") for n in names) and "metrics" not in names
    none = conn.adbc_get_objects(depth="tables", db_schema_filter="nope").read_all().to_pylist()
    assert none[0]["catalog_db_schemas"] in ([], None)
    views = conn.adbc_get_objects(depth="tables", table_types_filter=["VIEW"]).read_all()
    assert not [t for c in views.to_pylist() for s in c["catalog_db_schemas"] or []
                for t in s["db_schema_tables"] or []]


def test_table_schema_and_types(conn, service):
    schema = conn.adbc_get_table_schema("metrics")
    # the PostgreSQL endpoint's columns, typed alike
    caller = service.authenticate(None, transport="flight")
    catalog = SqlEngine(service).catalogs.get(caller)
    expected = [(c.name, c.type.arrow()) for c in catalog.table("metrics").columns]
    assert [(f.name, f.type) for f in schema] == expected
    assert schema.field("customer__country").type == pa.string()
    assert schema.field("metric_time__month").type == pa.date32()
    assert schema.field("revenue").metadata[b"ARROW:FLIGHT:SQL:TABLE_NAME"] == b"metrics"
    assert conn.adbc_get_table_types() == ["TABLE"]
    with pytest.raises(adbc_driver_manager.Error):
        conn.adbc_get_table_schema("no_such_table")


def test_flight_sql_result_schemas_are_the_specifications(uri):
    """The raw commands: each answer's schema field for field, filters with presence."""
    client = fl.connect(uri)

    def get(name, **fields) -> pa.Table:
        descriptor = fl.FlightDescriptor.for_command(proto.pack(proto.sql(name, **fields)))
        info = client.get_flight_info(descriptor)
        table = client.do_get(info.endpoints[0].ticket).read_all()
        assert table.schema == info.schema
        return table

    assert get("CommandGetCatalogs").schema == tables.CATALOGS_SCHEMA
    assert get("CommandGetDbSchemas", catalog="tally").to_pylist() == [
        {"catalog_name": "tally", "db_schema_name": "public"}]
    assert get("CommandGetDbSchemas", catalog="").num_rows == 0  # "" = without a catalog
    assert get("CommandGetDbSchemas", db_schema_filter_pattern="p_b%").num_rows == 1
    assert get("CommandGetTables", table_name_filter_pattern="metric_").num_rows == 1
    plain = get("CommandGetTables", table_name_filter_pattern="metric")
    assert plain.schema == tables.TABLES_SCHEMA and plain.num_rows == 0
    with_schema = get("CommandGetTables", table_name_filter_pattern="metrics",
                      include_schema=True)
    assert with_schema.schema == tables.TABLES_WITH_SCHEMA
    serialized = with_schema.column("table_schema")[0].as_py()
    assert "revenue" in pa.ipc.read_schema(pa.py_buffer(serialized)).names
    names = get("CommandGetTables").column("table_name").to_pylist()
    assert names == sorted(names)
    types = get("CommandGetXdbcTypeInfo")
    assert types.schema == tables.XDBC_TYPE_INFO_SCHEMA
    assert set(types.column("type_name").to_pylist()) >= {"BIGINT", "DOUBLE PRECISION", "TEXT",
                                                          "DATE", "TIMESTAMP"}
    codes = types.column("data_type").to_pylist()
    assert codes == sorted(codes)
    assert get("CommandGetXdbcTypeInfo", data_type=-5).column("type_name").to_pylist() == [
        "BIGINT"]
    info = get("CommandGetSqlInfo", info=[4, 513])  # FLIGHT_SQL_SERVER_SQL, escape
    assert dict(zip(info.column(0).to_pylist(), info.column(1).to_pylist(), strict=True)) == {
        4: True, 513: "\\"}
    # GetSchema of a SQL statement: described, not run
    statement = fl.FlightDescriptor.for_command(proto.pack(proto.sql(
        "CommandStatementQuery", query=SQL_2025)))
    assert client.get_schema(statement).schema.names == ["customer__country", "revenue"]
    client.close()


def test_plain_sql_equals_hand_sql(conn, raw):
    served = {r["customer__country"]: float(r["revenue"]) for r in _rows(conn, SQL_2025)}
    assert served == pytest.approx(_hand(raw))
    with conn.cursor() as cur:
        cur.execute(SQL_2025)
        table = cur.fetch_arrow_table()
    # the column's type is the one GetTables declares for it (a decimal's scale may differ)
    declared = conn.adbc_get_table_schema("metrics").field("revenue").type
    assert table.schema.field("revenue").type.id == declared.id
    assert table.schema.field("customer__country").type == pa.string()


def test_outer_sql_and_a_saved_query_table(conn, raw):
    outer = _rows(conn, f"SELECT count(*) AS n, sum(revenue) AS total FROM ({SQL_2025}) t")
    assert outer[0]["n"] == len(_hand(raw))
    assert float(outer[0]["total"]) == pytest.approx(sum(_hand(raw).values()))
    hand = expected_rows(raw, """
        select customer__country as country, sum(net_amount) as revenue
        from enriched_orders
        where order_status = 'completed' and order_date >= date '2025-03-01'
              and order_date < date '2025-04-01'
        group by 1""")
    saved = _rows(conn, "SELECT customer__country, revenue FROM revenue_by_country_by_month "
                        "WHERE metric_time__month = '2025-03-01'")
    assert {r["customer__country"]: float(r["revenue"]) for r in saved} == pytest.approx(
        {r["country"]: float(r["revenue"]) for r in hand})


def test_a_refused_query_is_a_clear_error_and_the_connection_lives_on(conn):
    with pytest.raises(adbc_driver_manager.Error) as caught, conn.cursor() as cur:
        cur.execute("SELECT customer__country, SUM(average_order_value) FROM metrics "
                    "GROUP BY 1")
    message = str(caught.value)
    assert "average_order_value" in message and "SQLSTATE" in message
    assert "Traceback" not in message
    assert caught.value.status_code == adbc_driver_manager.AdbcStatusCode.INVALID_ARGUMENT
    with pytest.raises(adbc_driver_manager.Error, match="SQLSTATE 25006"), \
            conn.cursor() as cur:
        cur.execute("DELETE FROM metrics")
    with pytest.raises(adbc_driver_manager.Error, match="SQLSTATE 42P01"), \
            conn.cursor() as cur:
        cur.execute("SELECT revenue FROM no_such_table")
    assert _rows(conn, "SELECT MEASURE(average_order_value) AS aov FROM metrics")[0]["aov"] > 0


def test_the_semantic_layer_dialect_still_works(conn, raw):
    rows = _rows(conn, "select * from {{ semantic_layer.query(metrics=['revenue'], "
                       "group_by=['customer__country'], "
                       "where=[\"{{ TimeDimension('metric_time', 'day') }} >= '2025-01-01'\"]) }}")
    served = {r["customer__country"]: float(r["revenue"]) for r in rows}
    assert served == pytest.approx(_hand(raw))
    assert {r["name"] for r in _rows(conn, "{{ semantic_layer.metrics() }}")} >= {"revenue"}
    with pytest.raises(adbc_driver_manager.Error, match="not a call tally serves"), \
            conn.cursor() as cur:
        cur.execute("{{ semantic_layer.nope() }}")


# A tenant: a secured project of its own ------------------------------------------------


@pytest.fixture(scope="module")
def secured_uri(warehouse, tmp_path_factory):
    root = tmp_path_factory.mktemp("flight-secured")
    project = root / "project"
    project.mkdir()
    for name in ("dbt_project.yml", "profiles.yml"):
        shutil.copy(ROOT / "dbt_project" / name, project / name)
    shutil.copytree(ROOT / "semantic" / "dashboards", root / "semantic" / "dashboards")
    (project / "tally.yml").write_text(TALLY_YML)
    settings = Settings(project_dir=project, manifest_path=warehouse.manifest_path,
                        jwt_secret=SECRET, admin_token="flight-admin-token")
    service = TallyService(settings, warehouse=DuckDBWarehouse(warehouse.duckdb_path))
    server = FlightSqlServer(service, "127.0.0.1", 0)
    yield f"grpc://127.0.0.1:{server.port}"
    server.shutdown()


def _token(**claims) -> str:
    now = int(time.time())
    return jwt.encode({"iss": "https://auth.example.test", "aud": "tally-tests", "sub": "t-1",
                       "iat": now, "exp": now + 600, **claims}, SECRET, algorithm="HS256")


def _connect(uri: str, token: str):
    return flightsql.connect(uri, db_kwargs={
        DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {token}"}, autocommit=True)


def test_a_tenant_sees_only_its_columns_and_rows(secured_uri, raw):
    tenant = _connect(secured_uri, _token(roles=["tenant"], countries=["DE", "FR"]))
    try:
        columns = tenant.adbc_get_table_schema("metrics").names
        assert "revenue" in columns and "customer__country" in columns
        assert "gross_margin" not in columns and "customer__customer_segment" not in columns
        served = {r["customer__country"]: float(r["revenue"])
                  for r in _rows(tenant, SQL_2025)}
        assert served == pytest.approx(_hand(raw, ("DE", "FR")))
        assert set(served) == {"DE", "FR"}
        with pytest.raises(adbc_driver_manager.Error) as caught, tenant.cursor() as cur:
            cur.execute("SELECT SUM(gross_margin) FROM metrics")
        assert "SQLSTATE" in str(caught.value)
        assert _rows(tenant, "SELECT count(*) AS n FROM (SELECT customer__country, "
                             "SUM(revenue) FROM metrics GROUP BY 1) t")[0]["n"] == 2
    finally:
        tenant.close()
    admin = _connect(secured_uri, "flight-admin-token")
    try:
        assert "gross_margin" in admin.adbc_get_table_schema("metrics").names
        assert len(_rows(admin, SQL_2025)) > 2
    finally:
        admin.close()
