"""The dbt Semantic Layer's statement dialect, read by a restricted AST walk: every form its
SDK and JDBC users write, and clear refusals of anything else (nothing is ever evaluated)."""

from __future__ import annotations

import pytest

from tally.core.request import QueryRequest
from tally.core.semantic_layer import GroupBy, OrderBy, build_request, split_group_by
from tally.flight.statement import InvalidStatement, dimension_of, names, parse, to_request


def request(text: str) -> QueryRequest:
    return to_request(parse(text))


def test_what_the_sdk_writes():
    # dbtsl.api.adbc.protocol.ADBCProtocol.get_query_sql, byte for byte.
    text = ('{{ semantic_layer.query(group_by=[TimeDimension("metric_time", "MONTH"),'
            '"customer__country"],limit=5,metrics=["revenue"],'
            'order_by=[Metric("revenue").descending(True),Dimension("metric_time").grain("month")],'
            'read_cache=True,where=["{{ Dimension(\'customer__country\') }} = \'US\'"]) }}')
    assert request(text) == QueryRequest.create(
        metrics=["revenue"], group_by=["metric_time__month", "customer__country"],
        where=["{{ Dimension('customer__country') }} = 'US'"],
        order_by=["-revenue", "metric_time__month"], limit=5)


def test_jdbc_forms():
    assert request("select * from {{ semantic_layer.query(metrics=['revenue'], "
                   "group_by=[Dimension('metric_time').grain('year')], "
                   "order_by=['-revenue'], where=\"{{ Dimension('x__y') }} = 1\") }};"
                   ) == QueryRequest.create(metrics=["revenue"], group_by=["metric_time__year"],
                                            order_by=["-revenue"],
                                            where=["{{ Dimension('x__y') }} = 1"])
    assert request("SELECT  *  FROM {{semantic_layer.query(saved_query='customer_segments', "
                   "limit=3)}}") == QueryRequest.create(saved_query="customer_segments",
                                                        limit=3)
    assert request("{{ semantic_layer.query(metrics=['revenue'], group_by=["
                   "Dimension('city_name', entity_path=['bike', 'station']), Entity('bike'), "
                   "TimeDimension('metric_time', date_part_name='year')]) }}").group_by == (
        "bike__station__city_name", "bike", "metric_time__extract_year")
    # Ordered by a time dimension without its grain: the query's own group-by of it.
    assert request("{{ semantic_layer.query(metrics=['m'], group_by=['metric_time__week'], "
                   "order_by=[Dimension('metric_time').descending(True)]) }}").order_by == (
        "-metric_time__week",)


def test_catalog_calls():
    assert parse("{{ semantic_layer.metrics() }}").call == "metrics"
    statement = parse("{{ semantic_layer.dimension_values(group_by='customer__country', "
                      "metrics=['revenue']) }}")
    assert dimension_of(statement) == "customer__country"
    assert names(statement, "metrics") == ("revenue",)
    assert names(parse("{{ semantic_layer.metrics_for_dimensions(group_by=["
                       "TimeDimension('metric_time', 'month')]) }}"), "group_by") == (
        "metric_time__month",)


@pytest.mark.parametrize("text,needle", [
    ("", "empty"),
    ("select 1", "Cannot read"),
    ("{{ semantic_layer.query(metrics=['revenue'] }}", "does not parse"),
    ("{{ os.system('ls') }}", "Expected a call like semantic_layer.query"),
    ("{{ semantic_layer.__class__() }}", "not a call tally serves"),
    ("{{ semantic_layer.query('revenue') }}", "keyword arguments only"),
    ("{{ semantic_layer.query(metric=['revenue']) }}", "unexpected argument 'metric'"),
    ("{{ semantic_layer.query(metrics=[x for x in 'ab']) }}", "Unsupported expression"),
    ("{{ semantic_layer.query(metrics=[().__class__]) }}", "Unsupported expression"),
    ("{{ semantic_layer.query(metrics=[f'{1}']) }}", "Unsupported expression"),
    ("{{ semantic_layer.query(metrics=[eval('1')]) }}", "Unknown function 'eval'"),
    ("{{ semantic_layer.query(metrics=[Dimension('x').__init__('y')]) }}", "Unsupported"),
    ("{{ semantic_layer.query(metrics=[lambda: 1]) }}", "Unsupported expression"),
    ("{{ semantic_layer.query(metrics=['m'], **{'limit': 1}) }}", "unexpected argument"),
    ("{{ semantic_layer.query(metrics=['m'], group_by=[Metric('m')]) }}", "not a group-by"),
    ("{{ semantic_layer.query(metrics=['m'], compile='yes') }}", None),
    ("{{ semantic_layer.query(metrics=['m']) }} union select 1", "Cannot read"),
    ("{{ semantic_layer.query(metrics=[" + "[" * 3000 + "]" * 3000 + "]) }}", None),
])
def test_refusals(text, needle):
    with pytest.raises((InvalidStatement, Exception)) as caught:
        statement = parse(text)
        to_request(statement)
        if statement.get("compile") is not None:
            from tally.flight.statement import flag

            flag(statement, "compile", False)
    error = caught.value
    assert isinstance(error, InvalidStatement), repr(error)
    assert error.code == "invalid_statement"
    if needle:
        assert needle in error.message, error.message


def test_semantic_layer_names():
    assert GroupBy("metric_time", grain="MONTH").tally_name() == "metric_time__month"
    assert GroupBy("metric_time__month", grain="month").tally_name() == "metric_time__month"
    assert GroupBy("order__order_date", date_part="DOW").tally_name() == (
        "order__order_date__extract_dow")
    assert split_group_by("metric_time__extract_year") == GroupBy("metric_time",
                                                                   date_part="year")
    assert split_group_by("cohort__cohort_month__fiscal_year", ["fiscal_year"]) == GroupBy(
        "cohort__cohort_month", grain="fiscal_year")
    built = build_request(saved_query="cohort_retention",
                          order_by=[OrderBy("cohort__cohort_month", True)],
                          saved_group_bys=["cohort__cohort_month__month"])
    assert built.order_by == ("-cohort__cohort_month__month",)
