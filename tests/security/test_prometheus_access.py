"""GET /metrics (Prometheus) on a server with authentication: TALLY_METRICS_TOKEN or a caller
with the `admin` scope, nothing else; open only on an open (loopback, no authentication)
server without a metrics token."""

from __future__ import annotations

import shutil

import pytest

from tests.support.clients import SyncASGIClient

ADMIN_TOKEN = "admin-secret-token"  # the secured apps' TALLY_ADMIN_TOKEN (conftest)
SCRAPE = "scrape-token-of-the-metrics-endpoint"


def _scrape(client, token: str | None) -> tuple[int, str | None]:
    r = client.request("GET", "/metrics", token)
    if r.status_code == 200:
        assert "tally_http_requests" in r.text
        return 200, None
    return r.status_code, r.json()["error"]["code"]


@pytest.mark.parametrize("metrics_token", [None, SCRAPE])
def test_a_secured_server_guards_metrics(client_with, secured, metrics_token):
    client = client_with(metrics_token=metrics_token)
    # before, without a metrics token: 200 for anyone, no token needed
    assert _scrape(client, None) == (401, "unauthorized")
    assert _scrape(client, "not-a-token") == (401, "unauthorized")
    assert _scrape(client, secured.keys["reader"]) == (403, "forbidden")
    assert _scrape(client, secured.tenant("DE")) == (403, "forbidden")
    assert _scrape(client, secured.keys["admin"]) == (200, None)
    assert _scrape(client, ADMIN_TOKEN) == (200, None)
    if metrics_token:
        assert _scrape(client, SCRAPE) == (200, None)


class _Open:
    """GET on an app, with a bearer token or none (the secured clients' `request`)."""

    def __init__(self, app) -> None:
        self.http = SyncASGIClient(app)

    def request(self, method: str, url: str, token: str | None = None):
        assert method == "GET"
        headers = {"authorization": f"Bearer {token}"} if token is not None else {}
        return self.http.get(url, headers=headers)


@pytest.fixture(scope="module")
def open_client(secured, warehouse, tmp_path_factory):
    """An app over a project without tally.yml: no authentication (a loopback server)."""
    from tally.server import create_app
    from tally.service import TallyService
    from tally.settings import Settings
    from tally.warehouse.duckdb import DuckDBWarehouse

    project = tmp_path_factory.mktemp("open") / "project"
    project.mkdir()
    for name in ("dbt_project.yml", "profiles.yml"):
        shutil.copy(secured.project_dir / name, project / name)

    def client(**overrides) -> _Open:
        settings = Settings(manifest_path=warehouse.manifest_path, project_dir=project,
                            **overrides)  # fmt: skip
        return _Open(create_app(settings, service=TallyService(
            settings, warehouse=DuckDBWarehouse(warehouse.duckdb_path))))

    return client


def test_an_open_server_keeps_metrics_open(open_client):
    assert _scrape(open_client(), None) == (200, None)
    # ...until it is given a metrics token: then that token (or an admin credential).
    guarded = open_client(metrics_token=SCRAPE, admin_token=ADMIN_TOKEN)
    assert _scrape(guarded, None) == (401, "unauthorized")
    assert _scrape(guarded, "any-token") == (401, "unauthorized")
    assert _scrape(guarded, SCRAPE) == (200, None)
    assert _scrape(guarded, ADMIN_TOKEN) == (200, None)
