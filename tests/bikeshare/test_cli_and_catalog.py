"""The second project as a new user meets it: the real `tally` command run from the project's
root with the profile in DBT_PROFILES_DIR; the catalog over REST and GraphQL; dimension
values; messages that name the metric concerned and never a demo command."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from tally.core.caller import ANONYMOUS


def test_cli_finds_the_project_and_profile_the_way_dbt_does(bikeshare, hand):
    listed = bikeshare.tally("list", "metrics", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    names = {m["name"] for m in json.loads(listed.stdout)}
    assert {"rentals", "revenue", "cumulative_revenue", "signup_conversion_7d"} <= names
    assert "completed_rentals" not in names  # hidden (meta: {hidden: true})
    assert not any(n.endswith("_1") for n in names)  # nothing MetricFlow created while loading
    out = bikeshare.tally("query", "--metrics", "revenue", "--group-by",
                          "bike__station__city_name", "--where",
                          "{{ Dimension('bike__station__city_name') }} = 'Portside'",
                          "--format", "json")
    assert out.returncode == 0, out.stderr
    [row] = json.loads(out.stdout)["data"]
    [(expected,)] = hand("""select sum(case when status = 'completed' then price else 0 end)
        from {raw}.raw_rentals join {raw}.raw_bikes using (bike_id)
        join {raw}.raw_stations using (station_id) where city_name = 'Portside'""")
    assert row == {"bike__station__city_name": "Portside", "revenue": float(expected)}


def test_cli_from_another_folder_says_what_it_looked_at(bikeshare, tmp_path):
    out = bikeshare.tally("list", "metrics", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "No dbt project found" in out.stderr and str(tmp_path) in out.stderr
    assert "DBT_PROJECT_DIR" in out.stderr
    ok = bikeshare.tally("list", "metrics", cwd=tmp_path, DBT_PROJECT_DIR=str(bikeshare.root))
    assert ok.returncode == 0, ok.stderr


def test_cli_without_the_profile_says_where_it_looked(bikeshare):
    out = bikeshare.tally("list", "metrics", DBT_PROFILES_DIR="")
    assert out.returncode == 2
    assert "profiles.yml not found" in out.stderr and "DBT_PROFILES_DIR" in out.stderr
    assert str(Path.home() / ".dbt") in out.stderr and str(bikeshare.root) in out.stderr


def test_a_bad_setting_is_one_line_naming_it(bikeshare):
    out = bikeshare.tally("serve", "--port", "0")
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "port" in out.stderr and "TALLY_PORT" in out.stderr
    assert "ValidationError" not in out.stderr


def test_catalog_lists_every_name_that_works(bike_service):
    dims = {d.name: d for d in bike_service.list_dimensions(("revenue",), ANONYMOUS)}
    assert "bike__station__city_name" in dims
    assert {"fiscal_quarter", "fiscal_year"} <= set(dims["metric_time"].grains)
    assert "metric_time__extract_year" in dims["metric_time"].group_by_names()
    rentals = {d.name: d for d in bike_service.list_dimensions(("rentals",), ANONYMOUS)}
    assert "hour" in rentals["metric_time"].grains  # rentals are timed to the minute
    assert "hour" not in dims["metric_time"].grains  # revenue is booked by day
    entities = {e.name for e in bike_service.list_entities(("revenue",), ANONYMOUS)}
    assert "bike__station" in entities


def test_an_unknown_dimension_of_a_multi_metric_query_names_the_metric(bike_service):
    from tally.core.request import QueryRequest
    from tally.errors import UnknownDimension

    with pytest.raises(UnknownDimension) as e:
        bike_service.query(QueryRequest.create(metrics=["revenue", "signups"],
                                               group_by=["bike__model_name"]), ANONYMOUS)
    assert "signups cannot" in e.value.message and "revenue can" in e.value.message
    assert "user__group" in e.value.details["available"]


def test_messages_name_the_metric_and_no_demo_command(bike_service):
    from tally.core.request import QueryRequest
    from tally.errors import TallyError

    asks = [
        dict(metrics=["revenue"], group_by=["metric_time__hour"]),  # revenue is by day
        dict(metrics=["rentals_growth_mom"]),
        dict(metrics=["revenue"], where=["{{ Dimension('bike__station__city') }} = 'x'"]),
        dict(metrics=["revnue"]),
    ]
    for ask in asks:
        with pytest.raises(TallyError) as e:
            bike_service.query(QueryRequest.create(**ask), ANONYMOUS)
        message = e.value.message
        assert "make " not in message and "Traceback" not in message, message
        assert "order" not in message.lower(), message  # the demo's vocabulary
    with pytest.raises(TallyError, match="rentals_growth_mom"):
        bike_service.query(QueryRequest.create(metrics=["rentals_growth_mom"]), ANONYMOUS)


@pytest.fixture
def client(bike_service):
    from tally.server import create_app

    app = create_app(bike_service.settings, service=bike_service)
    transport = httpx.ASGITransport(app=app)

    def get(url: str) -> httpx.Response:
        async def send() -> httpx.Response:
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                return await c.get(url)
        return asyncio.run(send())

    return get


def test_dimension_values_with_and_without_metrics(client, hand):
    own = client("/api/v1/dimension-values?dimension=station__city_name").json()
    assert own["scope"] == "semantic_model"
    assert sorted(own["values"]) == sorted(c for (c,) in hand(
        "select distinct city_name from {raw}.raw_stations"))
    reached = client("/api/v1/dimension-values?dimension=bike__station__city_name"
                     "&metrics=revenue").json()
    assert reached["scope"] == "metrics" and reached["metrics"] == ["revenue"]
    assert sorted(reached["values"]) == sorted(c for (c,) in hand("""
        select distinct city_name from {raw}.raw_rentals join {raw}.raw_bikes using (bike_id)
        join {raw}.raw_stations using (station_id)"""))
    assert "Lowmoor" in own["values"] and "Lowmoor" not in reached["values"]
    # the multi-hop name without metrics: its values in its own model
    hop = client("/api/v1/dimension-values?dimension=bike__station__city_name").json()
    assert sorted(hop["values"]) == sorted(own["values"])
    missing = client("/api/v1/dimension-values?dimension=station__city")
    assert missing.status_code == 404 and "station__city_name" in missing.text


def test_rest_catalog_hides_what_the_project_hides(client):
    names = {m["name"] for m in client("/api/v1/metrics").json()["metrics"]}
    assert "completed_rentals" not in names and "rentals" in names
    one = client("/api/v1/metrics/completion_rate").json()
    assert "bike__station__city_name" in {d["name"] for d in one["dimensions"]}


@pytest.mark.parametrize("metric", ["revenue", "rentals", "signup_conversion_7d"])
def test_every_name_the_catalog_lists_works_in_group_by_filter_and_order(bike_service, metric):
    """A name in the catalog (or offered as a suggestion) never fails in any position."""
    from tally.core.request import QueryRequest

    dims = bike_service.list_dimensions((metric,), ANONYMOUS)
    names = [n for d in dims for n in d.group_by_names()]
    names += [e.name for e in bike_service.list_entities((metric,), ANONYMOUS)]
    assert len(names) > 20
    for name in names:
        entities = {e.name for e in bike_service.list_entities((metric,), ANONYMOUS)}
        kind = "Entity" if name in entities else "Dimension"
        grouped = bike_service.query(QueryRequest.create(
            metrics=[metric], group_by=[name], order_by=[f"-{name}"], limit=3), ANONYMOUS)
        assert grouped.table.column_names[0].startswith(name)  # a bare time name: its grain
        bike_service.query(QueryRequest.create(
            metrics=[metric], where=[f"{{{{ {kind}('{name}') }}}} is not null"]), ANONYMOUS)
