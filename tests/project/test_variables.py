"""A var read outside dbt (tally.project.read_var), as the monitors read `as_of_date`: with
dbt's own var() and base context, no macros. The values are checked against the SQL dbt
compiled from the same vars."""

from __future__ import annotations

import datetime as dt

import pytest

from tally.errors import ConfigurationError
from tally.monitor.runner import reference_day
from tally.project import read_project, read_var


def test_vars_read_as_dbt_rendered_them_in_the_model(corpus):
    project = corpus("macro_vars")
    config = read_project(project.project_dir)
    compiled = (project.project_dir / "target" / "compiled" / "macro_vars" / "models"
                / "orders.sql").read_text()  # fmt: skip
    start = read_var(config, "report_start")  # modules.datetime, rendered
    assert start == "2024-01-10" and f"cast('{start}' as date)" in compiled
    currency = read_var(config, "currency")  # scoped to the project: vars: {macro_vars: ...}
    assert currency == "EUR" and f"'{currency}' as currency" in compiled
    assert read_var(config, "dbt_date:time_zone") == "America/Los_Angeles"
    assert read_var(config, "as_of_date") == "2024-04-30"
    assert read_var(config, "not_a_var", default="fallback") == "fallback"


@pytest.mark.parametrize("name", ["truncate_timespan_to", "returned_status"])
def test_a_var_that_needs_macros_says_so_and_blames_no_one(corpus, name):
    config = read_project(corpus("macro_vars").project_dir)
    with pytest.raises(ConfigurationError) as e:
        read_var(config, name, instead="with TALLY_AS_OF_DATE")
    message = e.value.message
    assert f"vars.{name}" in message and "dbt_project.yml" in message
    assert "needs dbt's macros" in message and "is undefined" in message
    assert "Your project is fine" in message and "with TALLY_AS_OF_DATE" in message


def test_monitors_count_from_a_var_rendered_with_modules_datetime(corpus):
    day, now = reference_day(corpus("macro_vars").project_dir)
    assert day == dt.date(2024, 4, 30) and now == dt.datetime(2024, 5, 1)


def test_monitors_say_when_as_of_date_needs_a_macro(corpus, tmp_path):
    project = corpus("macro_vars").copy_to(tmp_path)
    path = project.project_dir / "dbt_project.yml"
    path.write_text(path.read_text().replace(
        'as_of_date: "{{ modules.datetime.date(2024, 4, 30).isoformat() }}"',
        'as_of_date: "{{ macro_vars_returned_status() }}"'))
    with pytest.raises(ConfigurationError) as e:
        reference_day(project.project_dir)
    assert "vars.as_of_date" in e.value.message and "tally monitor --as-of" in e.value.message
    # Told another way, the monitors need nothing from the var.
    assert reference_day(project.project_dir, dt.date(2024, 3, 31))[0] == dt.date(2024, 3, 31)
    path.write_text(path.read_text().replace('"{{ macro_vars_returned_status() }}"', "soon"))
    with pytest.raises(ConfigurationError, match="not a date"):
        reference_day(project.project_dir)
