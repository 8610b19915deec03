"""Attack class: authentication that switches itself off.

Whether callers must authenticate was decided per request from the key store as it was then,
while the refusal to serve openly off loopback ran only at start. Revoking the last key (or
moving `keys.json` away) turned a secured server into an open one, admin included, logging
nothing; a corrupt store gave everyone a 500 naming its absolute path. A server started with
authentication now stays authenticated until it restarts: no key left refuses everyone (401),
a lost or corrupt store refuses API keys with a 503 that names no path, both logged loudly."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tally.service.security.config import load_security
from tally.service.security.keys import KeyStore

TALLY = Path(sys.executable).parent / "tally"
DEMO = Path(__file__).resolve().parent.parent.parent / "dbt_project"
QUERY = {"metrics": ["order_count"], "group_by": ["customer__country"]}


@pytest.fixture
def keyed(tmp_path, warehouse, services):
    """A project secured by API keys only (no JWT), with one admin key, and its app."""
    for name in ("dbt_project.yml", "profiles.yml"):
        shutil.copy(DEMO / name, tmp_path / name)
    store = KeyStore(load_security(tmp_path).keys_file)
    _, token = store.create("only", ["meta", "query", "admin"], {})
    app = services.app(project_dir=tmp_path)
    return tmp_path, store, token, app


def _client(app):
    import asyncio

    import httpx

    def request(method, url, token=None, **kw):
        headers = {"authorization": f"Bearer {token}"} if token else {}

        async def send():
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                return await c.request(method, url, headers=headers, **kw)

        return asyncio.run(send())

    return request


def test_revoking_the_last_key_refuses_everyone_instead_of_opening_the_server(keyed, caplog):
    _, store, token, app = keyed
    request = _client(app)
    assert request("POST", "/api/v1/cache/invalidate").status_code == 401
    assert request("POST", "/api/v1/cache/invalidate", token).status_code == 200
    store.revoke("only")
    with caplog.at_level(logging.ERROR, logger="tally.auth"):
        for method, url, body in (("POST", "/api/v1/cache/invalidate", None),
                                  ("POST", "/api/v1/query", QUERY),
                                  ("GET", "/api/v1/metrics", None)):
            anonymous = request(method, url, json=body)
            assert anonymous.status_code == 401, (url, anonymous.text)
            assert anonymous.json()["error"]["code"] == "unauthorized"
        assert request("POST", "/api/v1/query", token, json=QUERY).status_code == 401
    loud = [r for r in caplog.records if "NO API KEY IS ACTIVE" in r.getMessage()]
    assert len(loud) == 1  # once per change, not once per request
    _, fresh = store.create("new", ["meta", "query"], {})
    assert request("POST", "/api/v1/query", fresh, json=QUERY).status_code == 200


@pytest.mark.parametrize("damage", ["moved", "corrupt", "not-a-list"])
def test_a_lost_or_corrupt_key_store_refuses_with_503_naming_no_path(keyed, caplog, damage):
    project, store, token, app = keyed
    request = _client(app)
    assert request("POST", "/api/v1/query", token, json=QUERY).status_code == 200
    path = store.path
    if damage == "moved":
        path.rename(path.with_name("keys.json.bak"))
    elif damage == "corrupt":
        path.write_text('{"keys": [')
    else:
        path.write_text('{"keys": 5}')
    with caplog.at_level(logging.ERROR, logger="tally.auth"):
        with_key = request("POST", "/api/v1/query", token, json=QUERY)
        anonymous = request("POST", "/api/v1/cache/invalidate")
    assert with_key.status_code == 503, with_key.text
    assert with_key.json()["error"]["code"] == "auth_unavailable"
    assert str(project) not in with_key.text and "keys.json" not in with_key.text
    assert anonymous.status_code == 401  # never open
    assert any(str(path) in r.getMessage() for r in caplog.records)  # the log says where


def test_serve_refuses_to_start_on_a_corrupt_key_store_with_one_line(tmp_path, warehouse):
    for name in ("dbt_project.yml", "profiles.yml"):
        shutil.copy(DEMO / name, tmp_path / name)
    (tmp_path / ".tally").mkdir()
    (tmp_path / ".tally" / "keys.json").write_text("{not json")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TALLY_")}
    environ.update(TALLY_MANIFEST_PATH=str(warehouse.manifest_path),
                   TALLY_DUCKDB_PATH=str(warehouse.duckdb_path))
    out = subprocess.run([str(TALLY), "serve", "--project-dir", str(tmp_path), "--port", "1"],
                         env=environ, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "keys.json cannot be read" in lines[0] and "tally keys create" in lines[0]
    assert "Traceback" not in out.stderr


def test_two_active_keys_cannot_share_a_name(keyed):
    """A key's name is its subject (rate limits, jobs, the audit log): a second active key of
    one name would share them. Once the first is revoked, the name is free again."""
    from tally.errors import CallerError

    _, store, _, _ = keyed
    with pytest.raises(CallerError, match="already named 'only'"):
        store.create("only", ["meta"], {})
    store.revoke("only")
    store.create("only", ["meta"], {})
