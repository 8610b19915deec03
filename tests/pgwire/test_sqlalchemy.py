"""SQLAlchemy 2 (postgresql+psycopg2 and postgresql+psycopg) with pandas.read_sql and the
inspector (its pg_catalog queries) against a real server."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from tests.pgwire.cases import CASES, check


@pytest.fixture(scope="module", params=["psycopg2", "psycopg"])
def engine(pg, request):
    engine = sa.create_engine(pg.url(request.param), poolclass=sa.pool.NullPool)
    yield engine
    engine.dispose()


def test_inspector(engine):
    inspector = sa.inspect(engine)
    tables = inspector.get_table_names()
    assert "metrics" in tables and "revenue_by_country_by_month" in tables
    columns = {c["name"]: c["type"] for c in inspector.get_columns("metrics")}
    assert isinstance(columns["metric_time"], sa.Date)
    assert isinstance(columns["customer__country"], sa.String)
    assert isinstance(columns["revenue"], sa.Numeric)
    saved = [c["name"] for c in inspector.get_columns("revenue_by_country_by_month")]
    assert saved == ["metric_time__month", "customer__country", "revenue", "completed_orders"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_read_sql(engine, raw, case):
    frame = pd.read_sql(sa.text(case.sql), engine, coerce_float=False)
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    for row in rows:  # pandas holds dates as Timestamps
        for column, kind in case.kinds.items():
            if kind == "date" and row[column] is not None:
                row[column] = pd.Timestamp(row[column]).date()
    check(case, raw, rows, list(frame.columns))


def test_read_sql_with_bound_parameters(engine, raw):
    case = CASES[0]
    sql = sa.text(case.template.replace("%s", ":start", 1).replace("%s", ":end", 1))
    params = {"start": case.params[0], "end": case.params[1]}
    frame = pd.read_sql(sql, engine, coerce_float=False, params=params)
    check(case, raw, frame.to_dict("records"), list(frame.columns))
