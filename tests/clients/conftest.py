"""One real `tally serve` for the clients' and dashboards' tests (tests/clients/ run on one
worker: tests/support/scheduling.py), over a copy of the session warehouse, with the demo
project's dashboards and tenant policy, an admin token (to mint embed tokens) and an embed
secret. Anonymous callers of this loopback server see everything."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.support.servers import RunningServer, free_port, start_tally

ADMIN = "clients-admin-token-0123456789abcdef"
EMBED_SECRET = "clients-embed-secret-0123456789abcdef"


@pytest.fixture(scope="session")
def product_port() -> int:
    """The port of the example product app (clients/dashboard/example/app.py), another origin
    that tally allows (CORS)."""
    return free_port()


@pytest.fixture(scope="session")
def tally_server(warehouse, tmp_path_factory, product_port) -> Iterator[RunningServer]:
    server = start_tally(warehouse, tmp_path_factory.mktemp("clients_server"),
                         TALLY_ADMIN_TOKEN=ADMIN, TALLY_EMBED_SECRET=EMBED_SECRET,
                         TALLY_CORS_ORIGINS=f'["http://127.0.0.1:{product_port}"]')  # fmt: skip
    yield server
    log = server.stop()
    assert "Traceback" not in log, log[-3000:]


@pytest.fixture(scope="session")
def admin_token() -> str:
    return ADMIN


@pytest.fixture(scope="session")
def mint(tally_server: RunningServer) -> Callable[..., str]:
    """An embed token for a tenant, minted the way a product's backend does."""

    def mint_token(countries: list[str], metrics: list[str] | None = None,
                   ttl_seconds: float = 600) -> str:  # fmt: skip
        r = httpx.post(f"{tally_server.url}/api/v1/embed-tokens",
                       headers={"authorization": f"Bearer {ADMIN}"},
                       json={"claims": {"roles": ["tenant"], "countries": countries},
                             "metrics": metrics, "ttl_seconds": ttl_seconds})  # fmt: skip
        assert r.status_code == 200, r.text
        return r.json()["token"]

    return mint_token
