"""One real `tally serve` for the clients' and dashboards' tests (tests/clients/ run on one
worker: tests/support/scheduling.py), over a copy of the session warehouse, with the demo
project's dashboards and tenant policy, an admin token (to mint embed tokens) and an embed
secret. Anonymous callers of this loopback server see everything."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.support.paths import PROJECT_DIR
from tests.support.processes import Server, free_port, start_server, stop_server

ADMIN = "clients-admin-token-0123456789abcdef"
EMBED_SECRET = "clients-embed-secret-0123456789abcdef"


@pytest.fixture(scope="session")
def product_port() -> int:
    """The port of the example product app (clients/dashboard/example/app.py), another origin
    that tally allows (CORS)."""
    return free_port()


@pytest.fixture(scope="session")
def tally_server(warehouse, tmp_path_factory, product_port) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("clients_server")
    # a copy: the server may hold it; hand SQL reads the original
    served = root / "warehouse.duckdb"
    shutil.copy(warehouse.duckdb_path, served)
    server = start_server(root / "server.log", {
        "TALLY_DUCKDB_PATH": str(served), "TALLY_MANIFEST_PATH": str(warehouse.manifest_path),
        "TALLY_PROJECT_DIR": str(PROJECT_DIR), "TALLY_ADMIN_TOKEN": ADMIN,
        "TALLY_EMBED_SECRET": EMBED_SECRET,
        "TALLY_CORS_ORIGINS": f'["http://127.0.0.1:{product_port}"]'}, flight=False)
    yield server
    stop_server(server)


@pytest.fixture(scope="session")
def admin_token() -> str:
    return ADMIN


@pytest.fixture(scope="session")
def mint(tally_server: Server) -> Callable[..., str]:
    """An embed token for a tenant, minted the way a product's backend does."""

    def mint_token(countries: list[str], metrics: list[str] | None = None,
                   ttl_seconds: float = 600) -> str:  # fmt: skip
        r = httpx.post(f"{tally_server.http}/api/v1/embed-tokens",
                       headers={"authorization": f"Bearer {ADMIN}"},
                       json={"claims": {"roles": ["tenant"], "countries": countries},
                             "metrics": metrics, "ttl_seconds": ttl_seconds})  # fmt: skip
        assert r.status_code == 200, r.text
        return r.json()["token"]

    return mint_token
