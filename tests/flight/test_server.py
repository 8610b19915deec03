"""The Flight SQL server in process (on a loopback port), for what a real `tally serve` does not
show: GetSqlInfo's exact schema, the authentication contract (a refused token is
UNAUTHENTICATED before any work, as the ADBC driver and the SDK expect), the environment id,
sessions, and updates refused."""

from __future__ import annotations

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager
import pyarrow as pa
import pyarrow.flight as fl
import pytest
from adbc_driver_flightsql import DatabaseOptions

from tally.errors import Unauthorized
from tally.flight import proto, sqlinfo
from tally.flight.server import FlightSqlServer
from tally.service import TallyService


@pytest.fixture
def flight_server(service):
    def make(**settings):
        svc = TallyService(service.settings.model_copy(update=settings),
                           warehouse=service.warehouse)
        server = FlightSqlServer(svc, "127.0.0.1", 0)
        servers.append(server)
        return server, f"grpc://127.0.0.1:{server.port}"

    servers: list[FlightSqlServer] = []
    yield make
    for server in servers:
        server.shutdown()


def test_sql_info_schema_is_the_specifications():
    table = sqlinfo.sql_info([], 60)
    assert table.schema == sqlinfo.SQL_INFO_SCHEMA
    union = table.schema.field("value").type
    assert [union.field(i).name for i in range(6)] == [
        "string_value", "bool_value", "bigint_value", "int32_bitmask", "string_list",
        "int32_to_int32_list_map"]
    assert union.mode == "dense" and list(union.type_codes) == [0, 1, 2, 3, 4, 5]
    rows = dict(zip(table.column(0).to_pylist(), table.column(1).to_pylist(), strict=True))
    assert rows[0] == "tally" and rows[3] is True and rows[8] == 0 and rows[100] == 60_000


def test_refused_token_is_unauthenticated(flight_server):
    server, uri = flight_server()

    def refuse(token, *, transport, request_id="-"):
        assert transport == "flight"
        raise Unauthorized("The token 'bad' is not valid." if token == "bad" else "No token.")

    server.service.authenticate = refuse
    connection = flightsql.connect(uri, db_kwargs={
        DatabaseOptions.AUTHORIZATION_HEADER.value: "Bearer bad"}, autocommit=True)
    with pytest.raises(adbc_driver_manager.Error) as caught, connection.cursor() as cur:
        cur.execute("{{ semantic_layer.metrics() }}")
    connection.close()
    assert caught.value.status_code in (adbc_driver_manager.AdbcStatusCode.UNAUTHENTICATED,
                                        adbc_driver_manager.AdbcStatusCode.UNAUTHORIZED)
    assert "The token 'bad' is not valid." in str(caught.value)
    assert "Traceback" not in str(caught.value)


def test_environment_id(flight_server):
    _, uri = flight_server(dbt_environment_id=7)
    client = fl.connect(uri)
    command = fl.FlightDescriptor.for_command(proto.pack(proto.sql(
        "CommandStatementQuery", query="{{ semantic_layer.metrics() }}")))
    wrong = fl.FlightCallOptions(headers=[(b"environmentid", b"8")])
    with pytest.raises(pa.ArrowKeyError, match="Environment 8 is not served here"):
        client.get_flight_info(command, wrong)
    right = fl.FlightCallOptions(headers=[(b"environmentid", b"7")])
    assert client.get_flight_info(command, right).total_records > 10
    client.close()


class _Cookies(fl.ClientMiddlewareFactory):
    def __init__(self) -> None:
        self.cookie: str | None = None

    def start_call(self, info):
        factory = self

        class Middleware(fl.ClientMiddleware):
            def sending_headers(self):
                return {"cookie": factory.cookie} if factory.cookie else {}

            def received_headers(self, headers):
                for value in headers.get("set-cookie", []):
                    factory.cookie = value.split(";")[0]

        return Middleware()


def test_sessions(flight_server):
    _, uri = flight_server()
    client = fl.connect(uri, middleware=[_Cookies()])
    request = proto.flight("SetSessionOptionsRequest")
    request.session_options["catalog"].string_value = "demo"
    request.session_options["tags"].string_list_value.values.extend(["a", "b"])
    list(client.do_action(fl.Action("SetSessionOptions", request.SerializeToString())))
    got = next(iter(client.do_action(fl.Action("GetSessionOptions", b"")))).body.to_pybytes()
    options = proto.parse("GetSessionOptionsResult", got, proto.FLIGHT).session_options
    assert options["catalog"].string_value == "demo"
    assert list(options["tags"].string_list_value.values) == ["a", "b"]
    closed = next(iter(client.do_action(fl.Action("CloseSession", b"")))).body.to_pybytes()
    assert proto.parse("CloseSessionResult", closed, proto.FLIGHT).status == 1  # CLOSED
    with pytest.raises(pa.ArrowKeyError, match="No session to close"):
        list(client.do_action(fl.Action("CloseSession", b"")))
    client.close()


def test_updates_are_refused_and_unknown_actions_unimplemented(flight_server):
    _, uri = flight_server()
    client = fl.connect(uri)
    update = fl.FlightDescriptor.for_command(proto.pack(proto.sql(
        "CommandStatementUpdate", query="delete from orders")))
    with pytest.raises(pa.ArrowInvalid, match="read-only"):
        writer, _ = client.do_put(update, pa.schema([]))
        writer.close()
    with pytest.raises(pa.ArrowNotImplementedError, match="not served"):
        list(client.do_action(fl.Action("DropEverything", b"")))
    assert {a.type for a in client.list_actions()} >= {"CreatePreparedStatement",
                                                       "CloseSession"}
    client.close()
