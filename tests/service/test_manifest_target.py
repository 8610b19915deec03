"""A manifest parsed for one kind of warehouse is never compiled for another: its table names
are that warehouse's, so the SQL could only fail (or, worse, read other tables)."""

from __future__ import annotations

import pytest

from tally.core.caller import ANONYMOUS
from tally.errors import ManifestMismatch
from tally.warehouse.postgres import PostgresWarehouse


def test_a_duckdb_manifest_with_a_postgres_warehouse_is_refused_with_the_fix(services):
    # Never connected: the mismatch is found before any SQL is written (by the service's own
    # engine, built on first use: a shared one would be built for the wrong engine).
    service = services.service(PostgresWarehouse(host="127.0.0.1", port=1),
                               shared_engine=False)
    with pytest.raises(ManifestMismatch) as e:
        service.list_metrics(ANONYMOUS)
    assert "parsed by dbt for a duckdb target" in e.value.message
    assert "TALLY_TARGET" in e.value.message
