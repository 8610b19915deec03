"""A manifest parsed for one kind of warehouse is never compiled for another: its table names
are that warehouse's, so the SQL could only fail (or, worse, read other tables)."""

from __future__ import annotations

import pytest

from tally.errors import ManifestMismatch
from tally.service import TallyService
from tally.settings import Settings
from tally.warehouse.postgres import PostgresWarehouse
from tests.conftest import PROJECT_DIR


def test_a_duckdb_manifest_with_a_postgres_warehouse_is_refused_with_the_fix(warehouse):
    settings = Settings(project_dir=PROJECT_DIR, manifest_path=warehouse.manifest_path)
    # Never connected: the mismatch is found before any SQL is written.
    service = TallyService(settings, warehouse=PostgresWarehouse(host="127.0.0.1", port=1))
    with pytest.raises(ManifestMismatch) as e:
        service.list_metrics()
    assert "parsed by dbt for a duckdb target" in e.value.message
    assert "TALLY_TARGET" in e.value.message
