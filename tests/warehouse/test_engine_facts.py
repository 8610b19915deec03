"""What each engine module declares on its spec, read from there by the rest of tally: rollup
spellings (tally.rollups), the dbt Semantic Layer API's name for the engine (api/dbtsl), the
demo data target (`tally generate --target`). An engine's other execution paths say the same
about its SQL and data as its own module."""

from __future__ import annotations

import pytest

from tally.api.dbtsl.types import SqlEngine
from tally.errors import ConfigurationError
from tally.rollups.build import supports_rollups
from tally.warehouse import dbt_adapter, duckdb, postgres, postgres_adbc, registry, spark
from tests.support.paths import PROJECT_DIR

ADAPTERS = sorted({*registry.ENGINES, *registry.ADBC_ENGINES, *dbt_adapter.DIALECTS})
PATHS = [(a, "auto") for a in ADAPTERS] + [(a, "dbt-adapter") for a in dbt_adapter.DIALECTS]


@pytest.mark.parametrize(("adapter", "path"), PATHS)
def test_every_engine_names_a_dbt_semantic_layer_engine_or_none(adapter, path):
    named = registry.engine_for(adapter, path).semantic_layer_engine
    assert named is None or named in SqlEngine.__members__


def test_the_engines_names_in_the_dbt_semantic_layer_api():
    names = {a: registry.engine_for(a).semantic_layer_engine for a in ADAPTERS}
    assert names["duckdb"] == "DUCKDB" and names["postgres"] == "POSTGRES"
    assert names["snowflake"] == "SNOWFLAKE" and names["bigquery"] == "BIGQUERY"
    assert names["spark"] is None and names["athena"] is None  # UNKNOWN to the API


def test_rollups_where_the_spec_has_a_writer_and_spellings():
    assert supports_rollups(duckdb.ENGINE) and supports_rollups(postgres.ENGINE)
    assert supports_rollups(postgres_adbc.ENGINE)  # written through psycopg2
    assert duckdb.ENGINE.rollup_dialect.create_or_replace
    assert postgres.ENGINE.rollup_dialect.double == "DOUBLE PRECISION"
    through_dbt = registry.engine_for("postgres", "dbt-adapter")
    # The dbt-adapter path reads the rollups another path built (routing), builds none.
    assert through_dbt.rollup_dialect is postgres.ENGINE.rollup_dialect
    assert not supports_rollups(through_dbt)
    for adapter in ("spark", "snowflake", "bigquery"):
        assert registry.engine_for(adapter).rollup_dialect is None


def test_the_paths_of_one_engine_share_its_sql_and_data_facts():
    for path in ("adbc", "dbt-adapter"):
        other = registry.engine_for("postgres", path)
        assert other.demo_target is postgres.ENGINE.demo_target
        assert other.semantic_layer_engine == "POSTGRES"
        assert other.reserved_words == postgres.ENGINE.reserved_words
    assert registry.engine_for("spark", "dbt-adapter").demo_target is spark.ENGINE.demo_target
    assert registry.engine_for("snowflake").demo_target is None


def test_demo_targets(tmp_path):
    target = duckdb.ENGINE.demo_target({"type": "duckdb", "path": "raw.duckdb"}, tmp_path)
    assert target.file == tmp_path / "raw.duckdb" and target.load is None
    with pytest.raises(ConfigurationError, match="not a local file"):
        duckdb.ENGINE.demo_target({"type": "duckdb", "path": ":memory:"}, tmp_path)
    # Spark's resolves the session's relative folders from the project, as dbt does; nothing
    # starts before the data is loaded.
    target = spark.ENGINE.demo_target({"type": "spark", "method": "session"}, PROJECT_DIR)
    assert target.file is None and target.load is not None and "Spark" in target.where
