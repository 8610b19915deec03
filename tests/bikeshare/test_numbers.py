"""The second project's numbers, through the core service, REST and GraphQL, against SQL written
by hand over its raw seed tables: names through two joins (in group-bys and in both filter
spellings), custom and sub-daily grains, date parts, a boolean dimension alone as a filter,
an offset metric, a cumulative metric by metric_time and by its own time dimension, a
conversion metric, names that are SQL keywords, a query without metrics and a saved query."""

from __future__ import annotations

import datetime as dt
import decimal

import pytest

CITY = """
    select s.city_name as city, r.*
    from {raw}.raw_rentals r
    join {raw}.raw_bikes b using (bike_id)
    join {raw}.raw_stations s using (station_id)"""
REVENUE = "sum(case when status = 'completed' then price else 0 end)"
FISCAL = """'FY' || cast(year(d) + case when month(d) >= 4 then 1 else 0 end as varchar)"""
AS_OF = dt.date(2025, 6, 30)


def norm(rows) -> list[tuple]:
    """Rows with one spelling per value whatever the transport: dates as ISO text, numbers as
    floats rounded to 6 places."""

    def one(v):
        if isinstance(v, dt.datetime):
            return v.isoformat()
        if isinstance(v, dt.date):
            return v.isoformat()
        if isinstance(v, decimal.Decimal | float | int) and not isinstance(v, bool):
            return round(float(v), 6)
        return v

    return sorted(tuple(one(v) for v in row) for row in rows)


def test_a_dimension_two_joins_away(served, hand):
    expected = hand(f"select city, {REVENUE} from ({CITY}) group by 1")
    assert norm(served(metrics=["revenue"], group_by=["bike__station__city_name"])) == norm(
        expected)
    # the shortest unambiguous spelling names the same dimension
    assert norm(served(metrics=["revenue"], group_by=["station__city_name"])) == norm(expected)


@pytest.mark.parametrize("clause", [
    "{{ Dimension('bike__station__city_name') }} = 'Portside'",
    "{{ Dimension('station__city_name', entity_path=['bike']) }} = 'Portside'",
    "{{ Dimension('station__city_name') }} = 'Portside'",
])
def test_filters_by_a_dimension_two_joins_away(served, hand, clause):
    expected = hand(f"select {REVENUE} from ({CITY}) where city = 'Portside'")
    assert norm(served(metrics=["revenue"], where=[clause])) == norm(expected)


def test_structured_filter_two_joins_away(served, hand):
    where = [{"dimension": "bike__station__city_name", "op": "in", "values": ["Highfield"]}]
    expected = hand(f"select {REVENUE} from ({CITY}) where city = 'Highfield'")
    assert norm(served(metrics=["revenue"], where=where)) == norm(expected)


def test_custom_grain_in_group_by_and_filter(served, hand):
    quarter = (f"{FISCAL} || '-Q' || cast(((month(d) + 8) % 12) // 3 + 1 as varchar)")
    expected = hand(f"""
        select {quarter.replace('d)', 'cast(started_at as date))')} as q, {REVENUE}
        from {{raw}}.raw_rentals group by 1""")
    assert norm(served(metrics=["revenue"], group_by=["metric_time__fiscal_quarter"])) == norm(
        expected)
    fy2025 = hand(f"""select {REVENUE} from {{raw}}.raw_rentals
        where {FISCAL.replace('d)', 'cast(started_at as date))')} = 'FY2025'""")
    got = served(metrics=["revenue"],
                 where=["{{ TimeDimension('metric_time', 'fiscal_year') }} = 'FY2025'"])
    assert norm(got) == norm(fy2025)


def test_sub_daily_grain(served, hand):
    expected = hand("select date_trunc('hour', started_at), count(*) from {raw}.raw_rentals "
                    "group by 1")
    assert norm(served(metrics=["rentals"], group_by=["metric_time__hour"])) == norm(expected)


def test_date_part_in_group_by_and_filter(served, hand):
    expected = hand(f"select year(started_at), {REVENUE} from {{raw}}.raw_rentals group by 1")
    assert norm(served(metrics=["revenue"], group_by=["metric_time__extract_year"])) == norm(
        expected)
    only = hand(f"select {REVENUE} from {{raw}}.raw_rentals where year(started_at) = 2024")
    got = served(metrics=["revenue"],
                 where=["{{ Dimension('metric_time').date_part('year') }} = 2024"])
    assert norm(got) == norm(only)


@pytest.mark.parametrize("clause,hand_where", [
    ("{{ Dimension('bike__is_electric') }}", "b.is_electric"),
    ("NOT {{ Dimension('bike__is_electric') }}", "not b.is_electric"),
])
def test_a_boolean_dimension_alone_is_a_condition(served, hand, clause, hand_where):
    expected = hand(f"""select {REVENUE} from {{raw}}.raw_rentals r
        join {{raw}}.raw_bikes b using (bike_id) where {hand_where}""")
    assert norm(served(metrics=["revenue"], where=[clause])) == norm(expected)


def test_names_that_are_sql_keywords(served, hand):
    expected = hand(f"""select p.rider_group, {REVENUE} from {{raw}}.raw_rentals r
        join {{raw}}.raw_riders p using (rider_id) group by 1""")
    assert norm(served(metrics=["revenue"], group_by=["user__group"])) == norm(expected)
    students = hand(f"""select {REVENUE} from {{raw}}.raw_rentals r
        join {{raw}}.raw_riders p using (rider_id) where p.rider_group = 'student'""")
    got = served(metrics=["revenue"], where=["{{ Dimension('user__group') }} = 'student'"])
    assert norm(got) == norm(students)


def test_an_entity_reached_through_a_join(served, hand):
    expected = hand(f"""select b.station_id, {REVENUE} from {{raw}}.raw_rentals r
        join {{raw}}.raw_bikes b using (bike_id) group by 1""")
    assert norm(served(metrics=["revenue"], group_by=["bike__station"])) == norm(expected)


MONTHS = """
    months as (
        select cast(m as date) as month
        from range(date '2024-01-01', date '2025-07-01', interval 1 month) as t (m)
    )"""


def test_offset_metric_by_month(served, hand):
    expected = hand(f"""
        with {MONTHS},
        counts as (select date_trunc('month', started_at) as month, count(*) as n
                   from {{raw}}.raw_rentals group by 1)
        select m.month, (cur.n - prev.n) / prev.n, cur.n
        from months m
        left join counts cur on cur.month = m.month
        left join counts prev on prev.month = m.month - interval 1 month""")
    got = served(metrics=["rentals_growth_mom", "rentals"], group_by=["metric_time__month"])
    assert norm(got) == norm(expected)


@pytest.mark.parametrize("time", ["metric_time__month", "rental__rental_date__month"])
def test_cumulative_metric_by_month_reports_the_last_day(served, hand, time):
    expected = hand(f"""
        with {MONTHS}
        select m.month, (select {REVENUE} from {{raw}}.raw_rentals
                         where cast(started_at as date) < m.month + interval 1 month)
        from months m""")
    assert norm(served(metrics=["cumulative_revenue"], group_by=[time])) == norm(expected)


def test_offset_metric_by_its_own_time_dimension(served):
    by_metric_time = served(metrics=["rentals_growth_mom"], group_by=["metric_time__month"])
    by_own = served(metrics=["rentals_growth_mom"], group_by=["rental__started_at__month"])
    assert norm(by_own) == norm(by_metric_time)


def test_conversion_metric_by_year(served, hand):
    expected = hand("""
        select year(p.signed_up_at),
               count(distinct case when exists (
                   select 1 from {raw}.raw_rentals r where r.rider_id = p.rider_id
                     and r.started_at >= p.signed_up_at
                     and r.started_at < p.signed_up_at + interval 7 day)
                 then p.rider_id end) / count(*)
        from {raw}.raw_riders p group by 1""")
    got = served(metrics=["signup_conversion_7d"], group_by=["metric_time__year"])
    assert norm([(r[0][:4], r[1]) for r in norm(got)]) == norm(
        [(str(y), v) for y, v in expected])


def test_group_bys_without_a_metric_are_distinct_combinations(served, hand):
    expected = hand("select distinct model_name from {raw}.raw_bikes")
    assert norm(served(group_by=["bike__model_name"])) == norm(expected)
    cities = hand("select distinct city_name from {raw}.raw_stations")
    assert norm(served(group_by=["station__city_name"])) == norm(cities)
    assert ("Lowmoor",) in norm(cities)  # a city without rentals is still a value


def test_saved_query_with_an_entity_path_and_a_custom_grain(served, hand):
    quarter = (f"{FISCAL} || '-Q' || cast(((month(d) + 8) % 12) // 3 + 1 as varchar)")
    expected = hand(f"""
        select {quarter.replace('d)', 'cast(started_at as date))')} as q, city,
               {REVENUE}, count(*)
        from ({CITY}) group by 1, 2""")
    assert norm(served(saved_query="revenue_by_city")) == norm(expected)


def test_a_hidden_metric_is_queryable_and_feeds_its_ratio(served, hand):
    completed = hand("select count(*) from {raw}.raw_rentals where status = 'completed'")
    assert norm(served(metrics=["completed_rentals"])) == norm(completed)
    rate = hand("select avg(case when status = 'completed' then 1.0 else 0 end) "
                "from {raw}.raw_rentals")
    assert norm(served(metrics=["completion_rate"])) == norm(rate)
