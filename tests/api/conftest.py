"""In-process HTTP tests: the real app over the session warehouse, through httpx's ASGI
transport (no socket). Each test gets a fresh service, so caches and counters start empty."""

from __future__ import annotations

import httpx
import pytest

from tally.api.app import create_app
from tally.service import TallyService
from tally.settings import Settings
from tally.warehouse.duckdb import DuckDBWarehouse
from tests.conftest import PROJECT_DIR


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def make_app(warehouse):
    def _make(**settings_overrides):
        settings = Settings(
            **{"project_dir": PROJECT_DIR, "manifest_path": warehouse.manifest_path,
               **settings_overrides}
        )
        service = TallyService(settings, warehouse=DuckDBWarehouse(warehouse.duckdb_path))
        return create_app(settings, service=service)

    return _make


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
async def client(app):
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://tally.test"
    ) as c:
        yield c


def assert_error(response: httpx.Response, status: int, code: str, *needles: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), body
    assert body["error"]["code"] == code, body
    for needle in needles:
        assert needle in body["error"]["message"], body
    assert "Traceback" not in response.text
    return body["error"]
