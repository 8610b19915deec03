"""The ADBC Flight SQL driver (the Go driver the dbt SDK and many tools use) against a real
`tally serve --flight-port`, with statement text written by hand in the dbt Semantic Layer's
dialect: numbers against hand SQL, prepared and plain statements, GetSqlInfo, sessions, the
catalog calls, and errors as readable statuses after which the server keeps serving. Also the
raw Flight SQL protocol through pyarrow's client (tickets, handles, actions)."""

from __future__ import annotations

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager
import pyarrow as pa
import pyarrow.flight as fl
import pytest
from adbc_driver_flightsql import DatabaseOptions

from tally.flight import proto
from tests.support.hand_sql import assert_rows_match, expected_rows, scalar

COMPLETED = "order_status = 'completed'"


@pytest.fixture
def conn(sl_server):
    connection = flightsql.connect(sl_server.flight, db_kwargs={
        DatabaseOptions.AUTHORIZATION_HEADER.value: "Bearer test-token",
        DatabaseOptions.WITH_COOKIE_MIDDLEWARE.value: "true",
        f"{DatabaseOptions.RPC_CALL_HEADER_PREFIX.value}environmentid": "1",
    }, autocommit=True)
    yield connection
    connection.close()


def fetch(conn, text: str) -> pa.Table:
    with conn.cursor() as cur:
        cur.execute(text)
        return cur.fetch_arrow_table()


def test_hand_written_statement_equals_hand_sql(conn, raw):
    served = fetch(conn, """select * from {{ semantic_layer.query(
        metrics=['revenue', 'order_count'],
        group_by=[Dimension('metric_time').grain('year'), 'customer__country'],
        where=["{{ Dimension('customer__customer_status') }} = 'Active'"]) }}""")
    expected = expected_rows(raw, f"""
        select cast(date_trunc('year', order_date) as date) as metric_time__year,
               customer__country, sum(net_amount) filter (where {COMPLETED}) as revenue,
               count(*) as order_count
        from enriched_orders where customer__customer_status = 'Active' group by all""")
    keys = ["metric_time__year", "customer__country"]
    for metric in ("revenue", "order_count"):
        assert_rows_match(served.to_pylist(), expected, keys, metric, absent="zero")


def test_helpers_order_and_limit(conn, raw):
    served = fetch(conn, """{{ semantic_layer.query(metrics=['order_count'],
        group_by=[TimeDimension('metric_time', 'MONTH')],
        order_by=[Metric('order_count').descending(True)], limit=3) }}""")
    expected = expected_rows(raw, """
        select cast(date_trunc('month', order_date) as date) as metric_time__month,
               count(*) as order_count
        from enriched_orders group by all order by order_count desc limit 3""")
    assert served.to_pylist() == expected


def test_plain_statement_without_prepare(sl_server, raw):
    """ADBC's statement API without prepare(): the driver sends CommandStatementQuery."""
    db = flightsql.connect(sl_server.flight, autocommit=True)  # take its raw handles
    try:
        statement = adbc_driver_manager.AdbcStatement(db.adbc_connection)
        statement.set_sql_query("{{ semantic_layer.query(metrics=['completed_orders']) }}")
        stream, _ = statement.execute_query()
        table = pa.RecordBatchReader._import_from_c(stream.address).read_all()
        statement.close()
    finally:
        db.close()
    completed = scalar(raw, f"select count(*) from enriched_orders where {COMPLETED}")
    assert table.to_pylist() == [{"completed_orders": completed}]


def test_saved_query_dimension_values_and_compile(conn, raw):
    saved = fetch(conn, "{{ semantic_layer.query(saved_query='customer_segments') }}")
    expected = expected_rows(raw, """
        select customer__customer_segment, customer__customer_status, count(*) as customers
        from customer_dims group by all""")
    assert_rows_match(saved.to_pylist(), expected,
                      ["customer__customer_segment", "customer__customer_status"], "customers")
    values = fetch(conn, "{{ semantic_layer.dimension_values(metrics=['revenue'], "
                         "group_by='customer__country') }}")
    countries = expected_rows(raw, "select distinct customer__country from enriched_orders")
    assert sorted(values.column(0).to_pylist()) == sorted(r["customer__country"]
                                                          for r in countries)
    sql = fetch(conn, "{{ semantic_layer.query(metrics=['revenue'], compile=True) }}")
    assert sql.column_names == ["sql"] and "select" in sql.column(0)[0].as_py().lower()


def test_catalog_calls(conn):
    metrics = fetch(conn, "select * from {{ semantic_layer.metrics() }}")
    assert "revenue" in metrics.column("name").to_pylist()
    dims = fetch(conn, "{{ semantic_layer.dimensions(metrics=['revenue']) }}")
    assert "customer__country" in dims.column("name").to_pylist()
    assert "customer" in fetch(conn, "{{ semantic_layer.entities(metrics=['revenue']) }}"
                               ).column("name").to_pylist()
    assert fetch(conn, "{{ semantic_layer.measures(metrics=['revenue']) }}"
                 ).column("name").to_pylist() == ["revenue"]
    assert "customer_segments" in fetch(conn, "{{ semantic_layer.saved_queries() }}"
                                        ).column("name").to_pylist()
    grains = fetch(conn, "{{ semantic_layer.queryable_granularities(metrics=['revenue']) }}")
    assert grains.column(0).to_pylist()[:3] == ["DAY", "WEEK", "MONTH"]
    for_dims = fetch(conn, "{{ semantic_layer.metrics_for_dimensions("
                           "group_by=['product__category']) }}").column("name").to_pylist()
    assert "item_revenue" in for_dims and "customers" not in for_dims


def test_get_info_and_session_options(conn):
    info = conn.adbc_get_info()
    assert info["vendor_name"] == "tally" and info["vendor_arrow_version"] == pa.__version__
    raw = conn.adbc_connection
    raw.set_options(**{"adbc.flight.sql.session.option.region": "eu"})
    assert raw.get_option("adbc.flight.sql.session.option.region") == "eu"


@pytest.mark.parametrize("text,status,needles", [
    ("{{ semantic_layer.query(metrics=['revenu']) }}", "INVALID_ARGUMENT",
     ["Unknown metric 'revenu'", "Did you mean 'revenue'?"]),
    ("{{ semantic_layer.query(metrics=['revenue'] }}", "INVALID_ARGUMENT",
     ["does not parse"]),
    ("select revenue from orders", "INVALID_ARGUMENT", ["semantic_layer.query"]),
    ("{{ semantic_layer.query(metrics=['revenue'], group_by=['metric_time__fortnight']) }}",
     "INVALID_ARGUMENT", ["fortnight"]),
    ("{{ semantic_layer.query(metrics=[__import__('os').getcwd()]) }}", "INVALID_ARGUMENT",
     ["Unknown function '__import__'"]),
    ("{{ semantic_layer.query(metrics=[open]) }}", "INVALID_ARGUMENT",
     ["Unsupported expression 'open'"]),
    ("{{ semantic_layer.drop_table(name='x') }}", "INVALID_ARGUMENT", ["is not a call"]),
])
def test_errors_are_readable_statuses(conn, sl_server, text, status, needles):
    with pytest.raises(adbc_driver_manager.Error) as caught, conn.cursor() as cur:
        cur.execute(text)
    message = str(caught.value)
    assert status in message, message
    for needle in needles:
        assert needle in message, message
    assert "Traceback" not in message and "File \"" not in message
    assert fetch(conn, "{{ semantic_layer.query(metrics=['order_count']) }}").num_rows == 1
    assert sl_server.alive()


def test_tickets_and_handles_over_the_raw_protocol(sl_server):
    client = fl.connect(sl_server.flight)
    command = proto.sql("CommandStatementQuery",
                        query="{{ semantic_layer.query(metrics=['order_count']) }}")
    info = client.get_flight_info(fl.FlightDescriptor.for_command(proto.pack(command)))
    ticket = info.endpoints[0].ticket
    assert client.do_get(ticket).read_all().num_rows == 1
    with pytest.raises(pa.ArrowKeyError, match="result is gone") as gone:  # NOT_FOUND
        client.do_get(ticket).read_all()  # read once: the ticket has expired
    assert "Traceback" not in str(gone.value)
    closed = proto.sql("CommandPreparedStatementQuery", prepared_statement_handle=b"nope")
    with pytest.raises(pa.ArrowKeyError, match="Unknown or closed prepared statement"):
        client.get_flight_info(fl.FlightDescriptor.for_command(proto.pack(closed)))
    with pytest.raises(pa.ArrowNotImplementedError, match="not served"):
        client.get_flight_info(fl.FlightDescriptor.for_command(
            proto.pack(proto.sql("CommandGetExportedKeys"))))
    sql_info = client.get_flight_info(fl.FlightDescriptor.for_command(
        proto.pack(proto.sql("CommandGetSqlInfo", info=[0, 8]))))
    rows = client.do_get(sql_info.endpoints[0].ticket).read_all()
    assert rows.column("info_name").to_pylist() == [0, 8]
    assert rows.column("value").to_pylist() == ["tally", 0]
    client.close()


def test_bearer_scheme_in_any_case(sl_server):
    client = fl.connect(sl_server.flight)
    options = fl.FlightCallOptions(headers=[(b"authorization", b"bEaReR some-token")])
    command = proto.sql("CommandStatementQuery",
                        query="{{ semantic_layer.query(metrics=['order_count']) }}")
    info = client.get_flight_info(fl.FlightDescriptor.for_command(proto.pack(command)), options)
    assert info.total_records == 1
    client.close()
