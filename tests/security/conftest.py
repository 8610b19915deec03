"""A secured server over the session's demo warehouse: a project folder of its own whose
tally.yml turns on API keys, HS256 and RS256 JWTs, and access policies (a tenant role limited to
the countries of its claims, an analyst role without margins), with callers of every kind."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ROOT = Path(__file__).resolve().parent.parent.parent
DEMO = ROOT / "dbt_project"
SECRET = "test-jwt-secret-that-is-long-enough-for-hs256"
ISSUER = "https://auth.example.test"
AUDIENCE = "tally-tests"

TALLY_YML = """
auth:
  jwt:
    algorithms: [HS256, RS256]
    public_key_file: keys/jwt.pub.pem
    issuer: {issuer}
    audience: {audience}
    leeway_seconds: 5
policies:
  - role: tenant
    row_filters:
      - {{dimension: customer__country, op: in, values: "{{{{ claims.countries }}}}"}}
    metrics: {{deny: [gross_margin, gross_margin_pct]}}
    dimensions: {{deny: [customer__customer_segment]}}
  - role: analyst
    metrics: {{deny: [gross_margin_pct]}}
"""


@dataclass
class Secured:
    project_dir: Path
    jwt_secret: str
    private_key: rsa.RSAPrivateKey
    keys: dict[str, str]  # name -> token
    app_factory: Callable

    def hs(self, **claims) -> str:
        now = int(time.time())
        payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 600,
                   **claims}
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(payload, SECRET, algorithm="HS256")

    def rs(self, **claims) -> str:
        now = int(time.time())
        payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": "bob", "iat": now, "exp": now + 600,
                   **claims}
        return jwt.encode(payload, self.private_key, algorithm="RS256")

    def tenant(self, *countries: str) -> str:
        return self.hs(roles=["tenant"], countries=list(countries), sub=f"t-{'-'.join(countries)}")


def _project(root: Path, private_key: rsa.RSAPrivateKey) -> Path:
    project = root / "project"
    project.mkdir()
    for name in ("dbt_project.yml", "profiles.yml"):
        shutil.copy(DEMO / name, project / name)
    # The demo's dashboards, where its model paths put them (../semantic/dashboards).
    shutil.copytree(ROOT / "semantic" / "dashboards", root / "semantic" / "dashboards")
    (project / "keys").mkdir()
    (project / "keys" / "jwt.pub.pem").write_bytes(private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    (project / "tally.yml").write_text(TALLY_YML.format(issuer=ISSUER, audience=AUDIENCE))
    return project


@pytest.fixture(scope="session")
def secured(warehouse, tmp_path_factory) -> Secured:
    from tally.server import create_app
    from tally.service import TallyService
    from tally.settings import Settings
    from tally.warehouse.duckdb import DuckDBWarehouse

    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    project = _project(tmp_path_factory.mktemp("secured"), private_key)

    def settings(**overrides) -> Settings:
        base = {"project_dir": project, "manifest_path": warehouse.manifest_path,
                "jwt_secret": SECRET, "admin_token": "admin-secret-token"}
        return Settings(**{**base, **overrides})

    def app_factory(clock: Callable[[], float] = time.monotonic, **overrides):
        """An app over `overrides` of the settings; `clock` what its service reads time from
        (a FakeClock for a rate-limit burst: no token refills while a slow machine sends it)."""
        s = settings(**overrides)
        service = TallyService(s, warehouse=DuckDBWarehouse(warehouse.duckdb_path), clock=clock)
        return create_app(s, service=service)

    store = TallyService(settings(), warehouse=DuckDBWarehouse(warehouse.duckdb_path))
    keys = {}
    for name, scopes, claims in (
        ("reader", ["meta", "query"], {}),
        ("sql-reader", ["meta", "query", "sql"], {}),
        ("meta-only", ["meta"], {}),
        ("admin", ["meta", "query", "sql", "admin"], {}),
        ("acme-backend", ["meta", "query", "embed"], {"roles": ["tenant"], "countries": ["DE"]}),
        ("revoked", ["meta", "query"], {}),
        ("hammer", ["meta", "query"], {}),
    ):
        _, keys[name] = store.security.keys.create(name, scopes, claims)
    store.security.keys.revoke("revoked")
    return Secured(project, SECRET, private_key, keys, app_factory)


class Client:
    """In-process HTTP with a bearer token (or none)."""

    def __init__(self, app) -> None:
        self.app = app

    def request(self, method: str, url: str, token: str | None = None, **kw) -> httpx.Response:
        headers = dict(kw.pop("headers", {}) or {})
        if token is not None:
            headers["authorization"] = f"Bearer {token}"

        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://tally.test") as c:
                return await c.request(method, url, headers=headers, **kw)

        return asyncio.run(send())

    def query(self, body: dict, token: str | None = None, **kw) -> httpx.Response:
        return self.request("POST", "/api/v1/query", token, json=body, **kw)

    def graphql(self, query: str, token: str | None = None, **variables) -> httpx.Response:
        return self.request("POST", "/graphql", token, json={"query": query,
                                                             "variables": variables})


@pytest.fixture
def client(secured) -> Client:
    return Client(secured.app_factory())


@pytest.fixture
def client_with(secured) -> Callable[..., Client]:
    """A client of an app with other settings (e.g. client_with(metrics_token="x")), and
    optionally another clock (client_with(clock=FakeClock(), ...))."""
    return lambda **overrides: Client(secured.app_factory(**overrides))


@pytest.fixture(scope="session")
def shared_client(secured) -> Client:
    """One app for the whole session: its caches outlive a test (cold vs warm checks)."""
    return Client(secured.app_factory())

