from __future__ import annotations

import pytest

from tally.core.filters import check_where, structured_to_where
from tally.errors import InvalidFilter

DIM = "{{ Dimension('customer__country') }}"


@pytest.mark.parametrize(
    "clause",
    [
        f"{DIM} = 'US'",
        f"{DIM} in ('US', 'DE') and {{{{ Dimension('order__order_status') }}}} != 'cancelled'",
        "{{ TimeDimension('metric_time', 'month') }} >= '2024-01-01'",
        "{{ Dimension('metric_time').grain('month') }} >= '2024-01-01'",
        f"lower({DIM}) like 'u%' or {DIM} is null",
        "{{ Dimension('cohort__period_number') }} between 0 and 3",
        "{{ Metric('revenue', group_by=['customer']) }} > 1000",
        "{{ Entity('customer') }} = 42",
        # MetricFlow's own spellings: an entity path, date parts, a boolean dimension alone.
        "{{ Dimension('location__name', entity_path=['order_id']) }} = 'x'",
        "{{ TimeDimension('metric_time', date_part_name='year') }} = 2024",
        "{{ Dimension('metric_time').date_part('year') }} = 2024",
        "{{ Dimension('listing__is_instant') }}",
        "NOT {{ Dimension('listing__is_instant') }} OR {DIM} = 'US'".replace("{DIM}", DIM),
    ],
)
def test_allowed_clauses(clause):
    checked = check_where(clause)
    assert checked.references
    assert "{{" in checked.sql


@pytest.mark.parametrize(
    "clause,message",
    [
        (f"{DIM} = 'US'; drop table raw.orders", "one expression"),
        (f"{DIM} in (select country from raw.customers)", "Subquery|SELECT"),
        (f"{DIM} = read_csv('/etc/passwd')", "READ"),
        ("country = 'US'", "references no dimension"),
        (f"{DIM} = 'US' or country = 'DE'", "names column"),
        ("{{ config(materialized='table') }}", "template code"),
        (f"{DIM} = 'US' {{% if true %}}", "template code"),
        ("{{ Dimension(__import__('os').getcwd()) }} = 1", "literal"),
        ("{{ Dimension('customer__country', entity_path='x') }} = 1", "entity_path"),
        ("{{ Dimension('customer__country').descending(True) }} = 1", "grain"),
        (f"{DIM} = ", "Cannot parse"),
        (f"{DIM} || 'x'", "condition"),
        (f"{DIM} = 'US' union select 1", "one expression|parse|condition|Union"),
        (f"{DIM} = pg_sleep(10)", "PG_SLEEP|ANONYMOUS|filters may not"),
        (f"{DIM} = 'x' OR '1'='1'", "constants only"),
        (f"{DIM} = 'x' OR 1 = 1", "constants only"),
        (f"{DIM} = 'x' OR TRUE", "constants only"),
        (f"({DIM} = 'x') OR (2 > 1)", "constants only"),
    ],
)
def test_rejected_clauses(clause, message):
    with pytest.raises(InvalidFilter, match=message):
        check_where(clause)


def test_comments_do_not_survive():
    checked = check_where(f"{DIM} = 'US' -- */ drop table x")
    assert "drop" not in checked.sql.lower() and "--" not in checked.sql


def test_whitespace_and_case_of_keywords_are_canonical():
    a = check_where(f"{DIM}   IN ('US','DE')")
    b = check_where(f"{DIM} in ( 'US' , 'DE' )")
    assert a.sql == b.sql


@pytest.mark.parametrize(
    "item,expected",
    [
        (
            {"dimension": "customer__country", "op": "in", "values": ["US", "DE"]},
            f"{DIM} IN ('US', 'DE')",
        ),
        ({"dimension": "customer__country", "op": "=", "value": "O'Brien"}, f"{DIM} = 'O''Brien'"),
        (
            {"dimension": "customer__country", "op": "not_in", "values": ["US"]},
            f"NOT {DIM} IN ('US')",
        ),
        ({"dimension": "customer__country", "op": "is_null"}, f"{DIM} IS NULL"),
        (
            {"dimension": "cohort__period_number", "op": "<=", "value": 3},
            "{{ Dimension('cohort__period_number') }} <= 3",
        ),
        (
            {
                "dimension": "metric_time",
                "op": "between",
                "values": ["2024-01-01", "2024-12-31"],
                "grain": "day",
            },
            "{{ TimeDimension('metric_time', 'day') }} BETWEEN '2024-01-01' AND '2024-12-31'",
        ),
    ],
)
def test_structured_filters(item, expected):
    sql = structured_to_where(item)
    assert sql == expected
    check_where(sql)  # what we generate passes our own checker


def test_structured_contains_escapes_wildcards():
    sql = structured_to_where({"dimension": "customer__country", "op": "contains", "value": "5%_"})
    assert "'%5\\%\\_%'" in sql and "ESCAPE" in sql


@pytest.mark.parametrize(
    "item,message",
    [
        ({"dimension": "customer__country", "op": "like", "value": "x"}, "Unknown filter op"),
        ({"dimension": "x; drop", "op": "=", "value": "x"}, "dimension"),
        ({"dimension": "customer__country", "op": "in", "values": []}, "at least one"),
        ({"dimension": "customer__country", "op": "between", "values": [1]}, "exactly two"),
        ({"dimension": "customer__country", "op": "=", "value": {"a": 1}}, "strings, numbers"),
        ({"dimension": "customer__country", "op": "="}, "needs 'value'"),
        ({"dimension": "customer__country", "op": "=", "value": "x", "sql": "1"}, "Unknown key"),
        ("customer__country = 'US'", "must be an object"),
    ],
)
def test_bad_structured_filters(item, message):
    with pytest.raises(InvalidFilter, match=message):
        structured_to_where(item)


def test_a_string_literal_that_looks_like_a_placeholder_is_kept_as_written():
    value = "__tally_ref_0__"
    assert check_where(f"{DIM} = '{value}'").sql == f"{DIM} = '{value}'"
    structured = structured_to_where({"dimension": "customer__country", "value": value})
    assert structured == f"{DIM} = '{value}'"


@pytest.mark.parametrize(
    "spelling",
    [
        "{{ TimeDimension('metric_time', 'month') }}",
        "{{ TimeDimension('metric_time', time_granularity_name='month') }}",
        "{{ Dimension('metric_time').grain('month') }}",
        "{{ TimeDimension('metric_time__month') }}",
        # MetricFlow itself reads this one at the default grain (day); tally reads the suffix.
        "{{ Dimension('metric_time__month') }}",
    ],
)
def test_every_spelling_of_a_time_grain_is_one_canonical_reference(spelling):
    checked = check_where(f"{spelling} >= '2024-01-01'")
    assert checked.sql == "{{ TimeDimension('metric_time', 'month') }} >= '2024-01-01'"
    assert [(r.kind, r.name, r.grain) for r in checked.references] == [
        ("TimeDimension", "metric_time", "month")
    ]


def test_a_dimension_whose_name_merely_contains_a_grain_word_is_left_alone():
    checked = check_where("{{ Dimension('cohort__cohort_month') }} = '2024-01-01'")
    assert [(r.kind, r.name, r.grain) for r in checked.references] == [
        ("Dimension", "cohort__cohort_month", None)
    ]


def test_parse_errors_speak_of_the_filter_not_of_the_parser():
    with pytest.raises(InvalidFilter) as e:
        check_where(f"{DIM} = ")
    assert "'=' is missing the value on its right" in e.value.message
    assert "sqlglot" not in e.value.message and "<class" not in e.value.message


def test_sql_keyword_entities_are_quoted_only_where_they_are_identifiers():
    from tally.core.reserved import quote_reserved, reserved_names

    names = reserved_names(["order", "customer"])
    assert names == {"order"}
    sql = ("SELECT order, SUM(x) AS order_count FROM (SELECT order_id AS order FROM t) s "
           "WHERE s.c = 'order' -- Select: ['order']\nGROUP BY order ORDER BY order")
    assert quote_reserved(sql, names, "duckdb") == (
        'SELECT "order", SUM(x) AS order_count FROM (SELECT order_id AS "order" FROM t) s '
        "WHERE s.c = 'order' -- Select: ['order']\nGROUP BY \"order\" ORDER BY \"order\"")


def test_entity_path_and_date_part_are_read_into_one_name():
    clause = "{{ Dimension('location__name', entity_path=['order_id']) }} = 'x'"
    [ref] = check_where(clause).references
    assert (ref.kind, ref.name, ref.group_by_name()) == (
        "Dimension", "order_id__location__name", "order_id__location__name")
    [ref] = check_where("{{ Dimension('metric_time').date_part('YEAR') }} = 2024").references
    assert ref.group_by_name() == "metric_time__extract_year"
    [ref] = check_where("{{ TimeDimension('metric_time', 'fiscal_quarter') }} = 'x'").references
    assert ref.group_by_name() == "metric_time__fiscal_quarter"
