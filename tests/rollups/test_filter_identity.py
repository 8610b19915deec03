"""Rollup routing never answers one filter with another's route (security: filter identity, see
tests/security/test_filter_identity.py). Routes are remembered per query shape; two filters that
differ in any value, however alike (white space, case, look-alikes, quotes, type), are two
shapes: each gets SQL over the rollup that carries its own value. And why other rollups could
not answer is shown only with the `sql` scope (security: name leaks, test_name_leaks.py)."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tally.core.caller import ANONYMOUS, Caller
from tally.core.filters import StructuredFilter
from tally.core.request import QueryRequest

STATUSES = ["At Risk", "Active", "Dormant", "New Customer"]


@st.composite
def alike_statuses(draw) -> tuple[str, str]:
    base = draw(st.sampled_from(STATUSES))
    other = draw(st.sampled_from([
        base.replace(" ", "  "), base + " ", " " + base, base.lower(), base.upper(),
        base.replace("A", "\u0410"), base.replace(" ", "\u00a0"), base + "'", base + "\\",
        base.replace(" ", "\t"),
    ]))
    assume(other != base)
    return base, other


def _requests(status: str) -> list[QueryRequest]:
    """The filter as a structured filter and as template SQL."""
    structured = StructuredFilter.parse({"dimension": "customer__customer_status", "op": "=",
                                         "value": status})
    quoted = status.replace("'", "''")
    text = "{{ Dimension('customer__customer_status') }} = " + f"'{quoted}'"
    return [QueryRequest.create(metrics=["order_count"], group_by=["metric_time__month"],
                                where=[where]) for where in (structured, text)]


@settings(max_examples=40, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(alike_statuses())
def test_alike_filters_never_share_a_route(routed, rollup_services, pair):
    fresh = rollup_services.service(cache_enabled=False)
    for first_request, second_request in zip(*(_requests(v) for v in pair), strict=True):
        first, second = (routed.compile(r, ANONYMOUS) for r in (first_request, second_request))
        assert first.rollup.used and first.rollup.used == second.rollup.used  # both routed
        assert first.sql != second.sql
        # The second, routed after the first, is what a router that never saw the first gives.
        assert fresh.compile(second_request, ANONYMOUS).sql == second.sql


def test_rollup_misses_only_with_the_sql_scope(routed):
    request = QueryRequest.create(metrics=["revenue"], group_by=["metric_time__year"])
    full = routed.query(request, ANONYMOUS)
    assert full.rollup.used and full.rollup.misses  # other rollups, each with its reason
    reader = replace(Caller.of("rest", subject="reader"), scopes=frozenset({"meta", "query"}))
    plain = routed.query(request, reader)
    assert plain.rollup.used == full.rollup.used and plain.rollup.misses == ()
    assert plain.sql == ""


def test_the_rollup_used_is_named_only_to_who_may_run_it(routed):
    """order_count by month and customer status is answered by a rollup whose saved query
    also groups by customer__customer_segment: a caller denied the segment may ask this
    question, but may not run that saved query, so without the `sql` scope it is not told
    the rollup's name."""
    from tally.core.access import Grant

    request = QueryRequest.create(metrics=["order_count"],
                                  group_by=["metric_time__month", "customer__customer_status"])
    full = routed.query(request, ANONYMOUS)
    assert full.rollup.used
    grant = Grant(roles=("r",), dimensions_deny=frozenset({"customer__customer_segment"}))
    denied = replace(Caller.of("rest", subject="restricted"), scopes=frozenset({"query"}),
                     grant=grant, access=grant.access())
    plain = routed.query(request, denied)
    assert plain.rollup.used == "rollup" != full.rollup.used  # ran, but not named
