"""Resource exhaustion of what the Flight SQL server holds between calls: results waiting for
their DoGet, prepared statements and sessions. Each caller has a share; a caller over its share
loses its own oldest entries and never another caller's, pending results are bounded in bytes as
well as in number, and the global bounds hold. Through a real secured `tally serve` (small
bounds, set by TALLY_FLIGHT_*) and pyarrow's Flight client; the stores' own arithmetic (global
bounds in bytes, expiry) on the store itself."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.flight as fl
import pytest

from tally.errors import ResultTooLarge
from tally.flight import proto
from tally.flight.state import Bounds, Store
from tests.support import flight_calls
from tests.support.clock import FakeClock
from tests.support.hand_sql import expected_rows
from tests.support.processes import start_server, stop_server

BY_COUNTRY = """{{ semantic_layer.query(metrics=['revenue'], group_by=['customer__country']) }}"""
BY_DAY = """{{ semantic_layer.query(metrics=['revenue', 'order_count'],
    group_by=['metric_time__day', 'customer__country']) }}"""
BY_FOUR = """{{ semantic_layer.query(metrics=['revenue', 'order_count'],
    group_by=['metric_time__day', 'customer__country', 'customer__customer_segment',
              'order__order_status']) }}"""
REVENUE_BY_COUNTRY = """select customer__country, sum(net_amount) as revenue
    from enriched_orders where order_status = 'completed' group by 1"""
LIMITS = {
    "flight_pending_results": 128, "flight_pending_results_per_caller": 32,
    "flight_pending_results_bytes": 1_000_000,
    "flight_pending_results_bytes_per_caller": 400_000,
    "flight_prepared_statements": 64, "flight_prepared_statements_per_caller": 16,
    "flight_sessions": 32, "flight_sessions_per_caller": 8,
}


def _serve(secured, warehouse, tmp_path_factory):
    log = tmp_path_factory.mktemp("exhaustion") / "serve.log"
    env = flight_calls.secured_env(secured, warehouse, rate_limit_per_minute=0,
                                   max_rows=1_000_000, **LIMITS)
    served = start_server(log, env, clean_env=True)
    yield served
    stop_server(served)


@pytest.fixture(scope="module")
def server(secured, warehouse, tmp_path_factory):
    yield from _serve(secured, warehouse, tmp_path_factory)


@pytest.fixture
def flight(server):
    client = fl.connect(server.flight)
    yield client
    client.close()


@pytest.fixture
def empty_flight(secured, warehouse, tmp_path_factory):
    """A server of its own, holding nothing yet: for arithmetic on the global bound, which
    the module's other tests (in whatever order a worker runs them) would leave entries in."""
    for served in _serve(secured, warehouse, tmp_path_factory):
        client = fl.connect(served.flight)
        yield client
        client.close()


def _gone(client, token, flight) -> bool:
    try:
        flight_calls.fetch(client, token, flight)
    except pa.ArrowKeyError as e:  # NOT_FOUND
        assert "unknown_ticket" in str(e) or "result is gone" in str(e), str(e)
        return True
    return False


def _revenue(table: pa.Table) -> dict[str, float]:
    return {r["customer__country"]: float(r["revenue"]) for r in table.to_pylist()}


def test_a_tenant_cannot_evict_another_tenants_pending_result(flight, secured, raw):
    de, fr = secured.tenant("DE"), secured.tenant("FR")
    waiting = flight_calls.info(flight, fr, BY_COUNTRY)
    flooding = [flight_calls.info(flight, de, BY_COUNTRY) for _ in range(260)]
    expected = {r["customer__country"]: float(r["revenue"])
                for r in expected_rows(raw, REVENUE_BY_COUNTRY) if r["customer__country"] == "FR"}
    assert _revenue(flight_calls.fetch(flight, fr, waiting)) == pytest.approx(expected)
    # The flooding tenant lost its own oldest results, and kept its share of newest ones.
    share = LIMITS["flight_pending_results_per_caller"]
    assert all(_gone(flight, de, f) for f in flooding[:-share])
    assert not any(_gone(flight, de, f) for f in flooding[-share:])


def test_the_global_bound_takes_from_the_heaviest_caller(empty_flight, secured):
    flight = empty_flight
    light = secured.tenant("FR")
    waiting = flight_calls.info(flight, light, BY_COUNTRY)
    heavy = [secured.tenant("DE", other) for other in ("A1", "A2", "A3", "A4")]
    held = {token: [flight_calls.info(flight, token, BY_COUNTRY)
                    for _ in range(LIMITS["flight_pending_results_per_caller"])]
            for token in heavy}
    # 1 + 4 x 32 = 129 results, one over the global 128: one heavy caller's oldest went.
    assert not _gone(flight, light, waiting)
    lost = [token for token, flights in held.items() if _gone(flight, token, flights[0])]
    assert len(lost) == 1
    for token, flights in held.items():
        assert not any(_gone(flight, token, f) for f in flights[1:])


def test_pending_results_are_bounded_in_bytes_per_caller(flight, secured):
    victim, hammer = secured.keys["reader"], secured.keys["hammer"]
    waiting = flight_calls.info(flight, victim, BY_COUNTRY)
    first = flight_calls.info(flight, hammer, BY_DAY)
    size = first.total_bytes
    fits = LIMITS["flight_pending_results_bytes_per_caller"] // size
    assert 1 <= fits <= 10, size  # the budget is what binds, not the count
    more = [flight_calls.info(flight, hammer, BY_DAY) for _ in range(fits + 2)]
    assert _gone(flight, hammer, first)
    assert all(_gone(flight, hammer, f) for f in more[:2])
    assert not any(_gone(flight, hammer, f) for f in more[2:])
    assert flight_calls.fetch(flight, victim, waiting).num_rows > 0


def test_a_result_larger_than_a_callers_budget_is_refused(flight, secured):
    with pytest.raises(pa.ArrowInvalid) as caught:  # INVALID_ARGUMENT
        flight_calls.info(flight, secured.keys["hammer"], BY_FOUR)
    message = str(caught.value)
    assert "waiting for their DoGet may hold at most 400,000" in message
    assert "Traceback" not in message


def test_get_schema_holds_no_result(flight, secured):
    token = secured.tenant("DE", "schema")
    waiting = flight_calls.info(flight, token, BY_COUNTRY)
    for _ in range(2 * LIMITS["flight_pending_results"] + 1):  # past any share or bound
        flight.get_schema(flight_calls.statement(BY_COUNTRY), flight_calls.options(token))
    assert not _gone(flight, token, waiting)


def test_prepared_statements_have_a_share_per_caller(flight, secured, raw):
    de, fr = secured.tenant("DE", "prepared"), secured.tenant("FR")
    theirs = flight_calls.prepare(flight, fr, BY_COUNTRY)
    mine = [flight_calls.prepare(flight, de, BY_COUNTRY)
            for _ in range(LIMITS["flight_prepared_statements_per_caller"] + 1)]
    with pytest.raises(pa.ArrowKeyError, match="Unknown or closed prepared statement"):
        flight_calls.prepared_info(flight, de, mine[0])
    assert flight_calls.prepared_info(flight, de, mine[-1]).total_records > 0
    answer = flight_calls.fetch(flight, fr, flight_calls.prepared_info(flight, fr, theirs))
    expected = {r["customer__country"]: float(r["revenue"])
                for r in expected_rows(raw, REVENUE_BY_COUNTRY) if r["customer__country"] == "FR"}
    assert _revenue(answer) == pytest.approx(expected)


def test_sessions_have_a_share_per_caller(server, secured):
    fr, de = secured.tenant("FR"), secured.tenant("DE", "sessions")
    theirs = fl.connect(server.flight, middleware=[flight_calls.Cookies()])
    flight_calls.set_options(theirs, fr, catalog="fr")
    first = fl.connect(server.flight, middleware=[flight_calls.Cookies()])
    flight_calls.set_options(first, de, catalog="first")
    # Without a cookie jar, each call of this client makes another session.
    flooding = fl.connect(server.flight)
    for i in range(LIMITS["flight_sessions"] + 1):
        flight_calls.set_options(flooding, de, catalog=f"de{i}")
    assert flight_calls.get_options(theirs, fr) == {"catalog": "fr"}
    assert flight_calls.get_options(first, de) == {}  # its own oldest session went
    for client in (theirs, first, flooding):
        client.close()


def test_a_sessions_options_are_bounded(server, secured):
    token = secured.tenant("DE", "options")
    client = fl.connect(server.flight, middleware=[flight_calls.Cookies()])
    flight_calls.set_options(client, token, catalog="demo")
    with pytest.raises(pa.ArrowInvalid, match="at most 64 options"):
        flight_calls.set_options(client, token, **{f"o{i}": "x" for i in range(65)})
    with pytest.raises(pa.ArrowInvalid, match="at most 16,384 characters"):
        flight_calls.set_options(client, token, big="x" * 20_000)
    assert flight_calls.get_options(client, token) == {"catalog": "demo"}
    client.close()


def test_sql_info_answers_each_id_once(flight, secured):
    """An id asked a million times (a 2 MB request) is one row, not a million."""
    command = proto.sql("CommandGetSqlInfo", info=[0] * 1_000_000)
    descriptor = fl.FlightDescriptor.for_command(proto.pack(command))
    info = flight.get_flight_info(descriptor, flight_calls.options(secured.tenant("DE")))
    assert info.total_records == 1
    table = flight_calls.fetch(flight, secured.tenant("DE"), info)
    assert table.column(0).to_pylist() == [0]


# The store itself -----------------------------------------------------------------------------

A, B, C = ("a", ()), ("b", ()), ("c", ())


def test_the_global_byte_bound_takes_from_the_heaviest_owner():
    store: Store[bytes] = Store(60.0, Bounds(100, 100, bytes=1_000, bytes_per_owner=600),
                                weigh=len, clock=FakeClock())
    small = store.put(b"x" * 100, C)
    a = [store.put(b"a" * 200, A) for _ in range(3)]  # 600: A's whole budget
    b = [store.put(b"b" * 150, B) for _ in range(2)]  # 100 + 600 + 300 = 1,000
    assert store.held(C) == (1, 100)
    newest = store.put(b"b" * 150, B)  # 1,150 > 1,000: A holds most, loses its oldest
    assert store.get(a[0], A) is None
    assert all(store.get(h, A) is not None for h in a[1:])
    assert all(store.get(h, B) is not None for h in [*b, newest])
    assert store.get(small, C) == b"x" * 100
    assert store.held(A) == (2, 400) and store.held(B) == (3, 450)


def test_a_value_over_an_owners_budget_is_refused_and_nothing_is_lost():
    store: Store[bytes] = Store(60.0, Bounds(10, 10, bytes=1_000, bytes_per_owner=300),
                                weigh=len, clock=FakeClock())
    kept = store.put(b"k" * 300, A)
    with pytest.raises(ResultTooLarge):
        store.put(b"x" * 301, A)
    assert store.get(kept, A) == b"k" * 300 and len(store) == 1


def test_expired_entries_leave_their_owners_share():
    clock = FakeClock()
    store: Store[bytes] = Store(10.0, Bounds(4, 2, bytes=100, bytes_per_owner=50),
                                weigh=len, clock=clock)
    old = [store.put(b"x" * 25, A) for _ in range(2)]
    clock.advance(11)
    new = [store.put(b"y" * 25, A) for _ in range(2)]
    assert [store.get(h, A) for h in old] == [None, None]
    assert store.held(A) == (2, 50) and all(store.get(h, A) for h in new)
