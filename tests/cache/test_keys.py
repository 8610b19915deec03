"""Cache keys (tally/cache/keys.py): every spelling of one question shares a key; another
question, other definitions (manifest), other data, another caller never do."""

from __future__ import annotations

import datetime as dt
import string

import pytest

from tally.cache.keys import canonical_where, effective_order, result_key
from tally.core.caller import Caller
from tally.core.filters import StructuredFilter
from tally.core.request import QueryRequest

COUNTRY = "{{ Dimension('customer__country') }}"


def key(manifest: str = "m1", data: str = "d1", access=(), **request) -> str:
    return result_key(QueryRequest.create(**request), manifest, data, access)


BASE = {"metrics": ["revenue", "order_count"],
        "group_by": ["metric_time__month", "customer__country"],
        "where": [f"{COUNTRY} = 'US'"]}


def test_a_key_is_32_hex_digits_and_stable():
    k = key(**BASE)
    assert len(k) == 32 and set(k) <= set(string.hexdigits.lower())
    assert key(**BASE) == k


@pytest.mark.parametrize(
    "spelling",
    [
        # metrics and group-bys in another order, case and white space
        {**BASE, "metrics": ["Order_Count", " revenue "]},
        {**BASE, "group_by": ["customer__country", "METRIC_TIME__MONTH"]},
        {**BASE, "metrics": "revenue, order_count"},
        # the filter with other spaces, quotes around the name, keyword case
        {**BASE, "where": ["{{Dimension('customer__country')}}   =   'US'"]},
        {**BASE, "where": ['{{ Dimension("customer__country") }} = \'US\'']},
        # the same filter written as a structured filter
        {**BASE, "where": [{"dimension": "customer__country", "op": "=", "value": "US"}]},
        # without a limit, the order only sorts the rows (the service re-sorts a hit)
        {**BASE, "order_by": ["-revenue"]},
        {**BASE, "order_by": ["customer__country", "-order_count"]},
    ],
)
def test_spellings_of_one_question_share_a_key(spelling):
    assert key(**spelling) == key(**BASE)


def test_filters_in_another_order_and_spelling_share_a_key():
    a = key(metrics="revenue", where=[f"{COUNTRY} in ('US', 'DE')",
                                      "{{ Dimension('order__order_status') }} != 'cancelled'"])
    b = key(metrics="revenue", where=[
        {"dimension": "order__order_status", "op": "!=", "value": "cancelled"},
        f"{COUNTRY} IN ('US','DE')"])
    c = key(metrics="revenue", where=[
        "{{ Dimension('order__order_status') }} <> 'cancelled'",
        {"dimension": "customer__country", "op": "in", "values": ["US", "DE"]}])
    assert a == b == c


def test_a_time_range_is_read_as_an_instant_however_spelt():
    day = key(metrics="revenue", start="2024-01-01")
    assert key(metrics="revenue", start=dt.date(2024, 1, 1)) == day
    assert key(metrics="revenue", start="2024-01-01T00:00:00") == day
    assert key(metrics="revenue", start="2024-01-01T02:00:00+02:00") == day  # read in UTC


@pytest.mark.parametrize(
    "other",
    [
        {**BASE, "metrics": ["revenue"]},
        {**BASE, "group_by": ["metric_time__year", "customer__country"]},
        {**BASE, "where": [f"{COUNTRY} = 'DE'"]},
        {**BASE, "where": [f"{COUNTRY} = 'us'"]},  # values keep their case
        {**BASE, "where": []},
        {**BASE, "limit": 10},
        {**BASE, "start": "2024-01-01"},
        {**BASE, "end": "2024-12-31"},
    ],
)
def test_another_question_has_another_key(other):
    assert key(**other) != key(**BASE)


def test_the_manifest_the_data_and_the_caller_are_part_of_the_key():
    k = key(**BASE)
    assert key("m2", **BASE) != k  # new definitions
    assert key(data="d2", **BASE) != k  # a rebuilt warehouse, or an invalidation
    acme = Caller.of("rest", access={"tenant": "acme"}).access
    globex = Caller.of("rest", access={"tenant": "globex"}).access
    assert key(access=acme, **BASE) != k
    assert key(access=acme, **BASE) != key(access=globex, **BASE)
    assert key(access=acme, **BASE) == key(access=acme, **BASE)


def test_access_context_is_part_of_the_key():
    r = QueryRequest.create(metrics=["revenue"])
    a = Caller.of("rest", access={"tenant": "a"}).access
    b = Caller.of("rest", access={"tenant": "b"}).access
    assert result_key(r, "m", "d", a) != result_key(r, "m", "d", b)
    assert result_key(r, "m", "d", a) == result_key(r, "m", "d", a)


def test_with_a_limit_the_order_decides_which_rows_and_so_the_key():
    top = {"metrics": "revenue", "group_by": "customer__country", "limit": 3}
    assert key(**top, order_by="-revenue") != key(**top, order_by="revenue")
    assert key(**top, order_by="-revenue") != key(**top)  # default: group-by order
    # The default order is the group-bys', so asking for it explicitly is the same question.
    assert key(**top, order_by="customer__country") == key(**top)
    # Order items are not sorted: a then b is another order than b then a.
    two = {"metrics": ["revenue", "order_count"], "group_by": "customer__country", "limit": 3}
    assert key(**two, order_by=["-revenue", "-order_count"]) != key(
        **two, order_by=["-order_count", "-revenue"])


def test_effective_order():
    assert effective_order(QueryRequest.create(metrics="revenue", order_by="-revenue")) == ()
    limited = QueryRequest.create(metrics="revenue", group_by=["customer__country"], limit=5)
    assert effective_order(limited) == ("customer__country",)
    ordered = QueryRequest.create(metrics="revenue", group_by=["customer__country"], limit=5,
                                  order_by=["-revenue"])
    assert effective_order(ordered) == ("-revenue",)


def test_canonical_where_spellings():
    canonical = "{{ Dimension('customer__country') }} IN ('US', 'DE')"
    assert canonical_where("{{Dimension('customer__country')}} in ('US','DE')") == canonical
    structured = StructuredFilter.parse(
        {"dimension": "customer__country", "op": "in", "values": ["US", "DE"]})
    assert canonical_where(structured) == canonical
    # Grain spellings of a time dimension are one reference.
    assert canonical_where("{{ Dimension('metric_time').grain('month') }} >= '2024-01-01'") == \
        "{{ TimeDimension('metric_time', 'month') }} >= '2024-01-01'"
    # A clause that does not parse is kept exactly (compiling rejects it later): squeezing its
    # white space could make two different clauses one key.
    assert canonical_where("not   a  (valid") == "not   a  (valid"


@pytest.mark.parametrize("op", ["=", "contains", "in"])
def test_filter_values_equal_in_python_but_not_in_sql_never_share_a_key(op):
    """True == 1 == 1.0 in Python, but `= TRUE`, `= 1` and `= 1.0` (and contains '%true%' vs
    '%1%') are different questions: whichever came first must not answer the others."""
    values = [True, 1, 1.0, "1"]
    filters = [{"dimension": "customer__is_vip", "op": op, "values": [v]} for v in values]
    keys = {key(metrics=["revenue"], where=[f]) for f in filters}
    sql = {StructuredFilter.parse(f).to_where() for f in filters}
    assert len(sql) >= 3  # contains 1 and contains '1' are the same question
    assert len(keys) == len(sql)
    assert len({canonical_where(StructuredFilter.parse(f)) for f in filters}) == len(sql)
    again = {key(metrics=["revenue"], where=[f]) for f in filters}  # memoized: the same keys
    assert again == keys
