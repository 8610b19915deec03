"""Flooding over Flight SQL: a caller over its rate limit gets a status its client backs off on
and retries, not INVALID_ARGUMENT (which says "do not retry this call"). pyarrow's Flight server
cannot send RESOURCE_EXHAUSTED (tally/flight/errors.py says why), so a 429 is UNAVAILABLE, with
a rich status (google.rpc.Status in grpc-status-details-bin) whose RetryInfo says how long to
wait. A real secured `tally serve`, pyarrow's Flight client and the ADBC driver."""

from __future__ import annotations

import time

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager
import pyarrow.flight as fl
import pytest
from adbc_driver_flightsql import DatabaseOptions

from tally.errors import TooManyQueries
from tally.flight import rich_status
from tally.flight.errors import flight_error
from tests.support import flight_calls
from tests.support.processes import start_server, stop_server

RATE = 60  # a minute: bursts of 10, then one a second
BURST = RATE // 6
STATEMENT = "{{ semantic_layer.query(metrics=['revenue'], group_by=['customer__country']) }}"
UNAVAILABLE = 14  # gRPC's code


@pytest.fixture(scope="module")
def server(secured, warehouse, tmp_path_factory):
    log = tmp_path_factory.mktemp("backoff") / "serve.log"
    env = flight_calls.secured_env(secured, warehouse, rate_limit_per_minute=RATE)
    served = start_server(log, env, clean_env=True)
    yield served
    stop_server(served)


def _details(extra_info: bytes) -> tuple[int, dict[str, object]]:
    """(code, {detail type: detail}) of a rich status."""
    status = rich_status.parse_status(extra_info)
    details = {}
    for detail in status.details:
        name = detail.TypeName().rpartition(".")[2]
        message = rich_status.message(name)
        detail.Unpack(message)
        details[name] = message
    return status.code, details


def test_over_the_rate_limit_is_unavailable_with_the_delay(server, secured):
    client = fl.connect(server.flight)
    token = secured.tenant("DE", "rate")
    refused = None
    for _ in range(10 * BURST):  # the burst, and more in case a slow machine refills some
        try:
            flight_calls.info(client, token, STATEMENT)
        except fl.FlightUnavailableError as e:
            refused = e
            break
    assert refused is not None, "never refused"
    assert "Rate limit" in str(refused) and "Traceback" not in str(refused)
    code, details = _details(refused.extra_info)
    assert code == UNAVAILABLE
    assert details["ErrorInfo"].reason == "TOO_MANY_REQUESTS"
    assert details["ErrorInfo"].domain == "tally"
    delay = details["RetryInfo"].retry_delay.ToNanoseconds() / 1e9
    assert 0 < delay <= 60 / RATE
    # Backing off as told is enough: the same call then succeeds.
    time.sleep(delay + 0.05)
    assert flight_calls.info(client, token, STATEMENT).total_records > 0
    client.close()


def test_the_adbc_driver_sees_a_retryable_io_error(server, secured):
    conn = flightsql.connect(server.flight, db_kwargs={
        DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {secured.tenant('DE', 'adbc')}"},
        autocommit=True)
    try:
        with pytest.raises(adbc_driver_manager.Error) as caught:
            for _ in range(10 * BURST):  # each a GetFlightInfo and a DoGet
                with conn.cursor() as cur:
                    cur.execute(STATEMENT)
                    cur.fetch_arrow_table()
    finally:
        conn.close()
    error = caught.value
    assert error.status_code == adbc_driver_manager.AdbcStatusCode.IO, error
    assert "Rate limit" in str(error) and "InvalidArgument" not in str(error)
    assert "Traceback" not in str(error)
    assert any(b"google.rpc.RetryInfo" in value for key, value in error.details
               if key == b"grpc-status-details-bin"), error.details


def test_every_429_is_unavailable():
    error = flight_error(TooManyQueries("The server holds 1000 asynchronous queries."))
    assert isinstance(error, fl.FlightUnavailableError)
    code, details = _details(error.extra_info)
    assert code == UNAVAILABLE and details["ErrorInfo"].reason == "TOO_MANY_QUERIES"
    assert "RetryInfo" not in details  # no delay known: the client picks its backoff
