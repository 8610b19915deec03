"""Deep input: statements and filters nested or chained deep enough to exhaust Python's recursion
in a parser are refused as the caller's mistake, before any parser runs: INVALID_ARGUMENT over
Flight SQL (a real secured `tally serve`, pyarrow's and the ADBC driver's clients) and 400
`invalid_filter` over HTTP, never INTERNAL, a 500 or a traceback (the server's log is checked
for tracebacks when it stops). The deepest input the bounds let through is answered."""

from __future__ import annotations

import time

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager
import pyarrow as pa
import pyarrow.flight as fl
import pytest
from adbc_driver_flightsql import DatabaseOptions

from tally.core.filters import check_depth
from tally.errors import InvalidFilter
from tally.flight import statement as st
from tests.support import flight_calls
from tests.support.hand_sql import expected_rows
from tests.support.processes import start_server, stop_server

COUNTRY = "{{ Dimension('customer__country') }}"
QUERY = "select * from {{{{ semantic_layer.query(metrics=['revenue'], {}) }}}}"
REVENUE_DE = """select sum(net_amount) as revenue from enriched_orders
    where order_status = 'completed' and customer__country = 'DE'"""

DEEP_STATEMENTS = {
    "grain chain": QUERY.format("group_by=[Dimension('metric_time')"
                                + ".grain('month')" * 600 + "]"),
    "sum of 1,300 ones": QUERY.format("limit=" + "+".join(["1"] * 1300)),
    "attribute chain": QUERY.format("group_by=[a" + ".b" * 1900 + "]"),
    "nested lists": QUERY.format("group_by=" + "[" * 150 + "'x'" + "]" * 150),
    "negations": QUERY.format("limit=" + "-" * 2000 + "1"),
    "nots": QUERY.format("limit=" + "not " * 2000 + "1"),
}
# Each under the 4,000 characters a filter may have, and deep far beyond the bound.
DEEP_FILTERS = {
    "sum of 1,900 ones": f"{COUNTRY} = " + "+".join(["1"] * 1900),
    "nested parentheses": "(" * 1000 + f"{COUNTRY} = 'DE'" + ")" * 1000,
    "NOT NOT NOT": "NOT " * 900 + f"{COUNTRY} = 'DE'",
    "minus minus": f"{COUNTRY} = " + "- " * 1500 + "1",
    "nested functions": f"{COUNTRY} = " + "lower(" * 500 + "'de'" + ")" * 500,
    "CASE in CASE": f"{COUNTRY} = " + "CASE WHEN 1 = 1 THEN " * 150 + "'DE'" + " END" * 150,
}


@pytest.fixture(scope="module")
def server(secured, warehouse, tmp_path_factory):
    log = tmp_path_factory.mktemp("deep_input") / "serve.log"
    served = start_server(log, flight_calls.secured_env(secured, warehouse), clean_env=True)
    yield served
    stop_server(served)  # and no traceback in its log


@pytest.fixture(scope="module")
def flight(server):
    client = fl.connect(server.flight)
    yield client
    client.close()


def _refused(flight, token, text) -> str:
    with pytest.raises(pa.ArrowInvalid) as caught:  # INVALID_ARGUMENT
        flight_calls.info(flight, token, text)
    message = str(caught.value)
    assert "Traceback" not in message and "Recursion" not in message, message
    return message


@pytest.mark.parametrize("case", DEEP_STATEMENTS)
def test_a_deep_statement_is_invalid_argument(flight, secured, case):
    message = _refused(flight, secured.tenant("DE"), DEEP_STATEMENTS[case])
    assert "too deep to read" in message, message


@pytest.mark.parametrize("case", DEEP_FILTERS)
def test_a_deep_filter_in_a_statement_is_invalid_argument(flight, secured, case):
    clause = DEEP_FILTERS[case]
    assert len(clause) <= 4_000  # so the depth, not the length, is what refuses it
    text = QUERY.format(f"where=[{clause!r}]")
    message = _refused(flight, secured.tenant("DE"), text)
    assert "too deep to read" in message, message


@pytest.mark.parametrize("case", DEEP_FILTERS)
def test_a_deep_filter_over_http_is_invalid_filter(client, secured, case):
    r = client.query({"metrics": ["revenue"], "group_by": ["customer__country"],
                      "where": [DEEP_FILTERS[case]]}, token=secured.tenant("DE"))
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_filter" and "too deep to read" in error["message"]
    assert "Traceback" not in r.text


def test_the_adbc_driver_sees_invalid_argument(server, secured):
    conn = flightsql.connect(server.flight, db_kwargs={
        DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {secured.tenant('DE')}"},
        autocommit=True)
    try:
        with pytest.raises(adbc_driver_manager.Error) as caught, conn.cursor() as cur:
            cur.execute(DEEP_STATEMENTS["sum of 1,300 ones"])
    finally:
        conn.close()
    assert caught.value.status_code == adbc_driver_manager.AdbcStatusCode.INVALID_ARGUMENT
    assert "too deep to read" in str(caught.value) and "Traceback" not in str(caught.value)


# The deepest input let through is answered -------------------------------------------------


def _deepest(make, refused) -> str:
    """make(n) for the largest n the bound lets through (found by asking the bound itself)."""
    n = 1
    while not refused(make(n + 1)):
        n += 1
    return make(n)


def _filter_refused(clause: str) -> bool:
    try:
        check_depth(clause)
    except InvalidFilter:
        return True
    return False


def _statement_refused(text: str) -> bool:
    try:
        st.parse(text)
    except st.InvalidStatement as e:
        return "too deep" in e.message
    return False


def _revenue(rows) -> float:
    return sum(float(r["revenue"]) for r in rows)


def test_the_deepest_filters_allowed_are_answered(client, secured, raw):
    expected = float(expected_rows(raw, REVENUE_DE)[0]["revenue"])
    parens = _deepest(lambda n: "(" * n + f"{COUNTRY} = 'DE'" + ")" * n, _filter_refused)
    nots = _deepest(lambda n: "NOT " * (2 * n) + f"{COUNTRY} = 'DE'", _filter_refused)
    # The longest chain of conditions a filter's 4,000 characters hold.
    conditions = [f"{COUNTRY} = 'DE'"]
    while len(" OR ".join([*conditions, f"{COUNTRY} = 'X{len(conditions)}'"])) <= 4_000:
        conditions.append(f"{COUNTRY} = 'X{len(conditions)}'")
    chain = " OR ".join(conditions)
    assert len(conditions) > 80 and not _filter_refused(chain)
    for clause in (parens, nots, chain):
        r = client.query({"metrics": ["revenue"], "where": [clause]},
                         token=secured.tenant("DE"))
        assert r.status_code == 200, r.text
        assert _revenue(r.json()["data"]) == pytest.approx(expected)


def test_a_wide_filter_is_not_deep(client, secured, raw):
    """A long IN list is wide: its values are separated, not chained (a structured filter's
    values are not bounded by a where string's 4,000 characters, only by
    TALLY_MAX_FILTER_VALUES: test_pool_exhaustion)."""
    expected = float(expected_rows(raw, REVENUE_DE)[0]["revenue"])
    values = ["DE", *(f"X{i}" for i in range(999))]  # the most values a filter may hold
    r = client.query({"metrics": ["revenue"], "where": [
        {"dimension": "customer__country", "op": "in", "values": values}]},
        token=secured.tenant("DE"))
    assert r.status_code == 200, r.text
    assert _revenue(r.json()["data"]) == pytest.approx(expected)


def test_the_deepest_statement_allowed_is_answered(flight, secured, raw):
    expected = float(expected_rows(raw, REVENUE_DE)[0]["revenue"])
    text = _deepest(lambda n: QUERY.format("limit=" + "(" * n + "10" + ")" * n),
                    _statement_refused)
    token = secured.tenant("DE")
    rows = flight_calls.fetch(flight, token, flight_calls.info(flight, token, text)).to_pylist()
    assert _revenue(rows) == pytest.approx(expected)


# The session cookie, read from the caller's header ----------------------------------------


def test_a_hostile_session_cookie_is_read_in_linear_time():
    from tally.flight.server import COOKIE, _session_cookie

    session = "ab" * 16
    hostile = 'x="' + "\\" * 200_000 + f'"; {COOKIE}={session}'
    started = time.perf_counter()
    assert _session_cookie({"cookie": [hostile]}) == bytes.fromhex(session)
    # http.cookies takes over a minute on this header (time quadratic in the backslashes).
    assert time.perf_counter() - started < 2.0


def test_a_session_id_tally_never_issued_is_no_session():
    from tally.flight.server import COOKIE, _session_cookie

    for value in ("ab" * 2_000, "zz" * 16, "ab" * 15, ""):
        assert _session_cookie({"cookie": [f"{COOKIE}={value}"]}) is None, value
