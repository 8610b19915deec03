"""The operator's side: `tally keys create|list|revoke`, `tally serve` refusing a non-loopback
address without authentication, and tally.yml mistakes reported with file:line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TALLY = Path(sys.executable).parent / "tally"
DEMO = Path(__file__).resolve().parent.parent.parent / "dbt_project"


@pytest.fixture
def project(tmp_path, warehouse):
    for name in ("dbt_project.yml", "profiles.yml"):
        shutil.copy(DEMO / name, tmp_path / name)
    return tmp_path


def tally(project: Path, warehouse, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TALLY_")}
    environ.update(TALLY_MANIFEST_PATH=str(warehouse.manifest_path),
                   TALLY_DUCKDB_PATH=str(warehouse.duckdb_path), **env)
    return subprocess.run([str(TALLY), *args, "--project-dir", str(project)], env=environ,
                          capture_output=True, text=True, timeout=120)


def test_keys_create_list_revoke(project, warehouse):
    made = tally(project, warehouse, "keys", "create", "bi-tool", "--scopes", "meta,query")
    assert made.returncode == 0, made.stderr
    token = made.stdout.splitlines()[1]
    assert token.startswith("tk_")
    store = (project / ".tally" / "keys.json").read_text()
    assert token not in store and "bi-tool" in store  # hashed, never the key itself
    assert oct((project / ".tally" / "keys.json").stat().st_mode & 0o777) == "0o600"
    listed = tally(project, warehouse, "keys", "list")
    assert "bi-tool" in listed.stdout and "active" in listed.stdout and token not in listed.stdout
    revoked = tally(project, warehouse, "keys", "revoke", "bi-tool")
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    assert "revoked" in tally(project, warehouse, "keys", "list").stdout
    bad = tally(project, warehouse, "keys", "create", "x", "--scopes", "meta,root")
    assert bad.returncode == 2 and "root" in bad.stderr


def test_serve_refuses_a_public_address_without_authentication(project, warehouse):
    out = tally(project, warehouse, "serve", "--host", "0.0.0.0", "--port", "1")
    assert out.returncode == 2
    assert "Refusing to serve on 0.0.0.0 without authentication" in out.stderr
    assert "TALLY_JWT_SECRET" in out.stderr and "--insecure" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_serve_insecure_starts_and_says_so_loudly(project, warehouse):
    import socket
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TALLY_")}
    environ.update(TALLY_MANIFEST_PATH=str(warehouse.manifest_path),
                   TALLY_DUCKDB_PATH=str(warehouse.duckdb_path))
    proc = subprocess.Popen([str(TALLY), "serve", "--project-dir", str(project), "--host",
                             "0.0.0.0", "--port", str(port), "--insecure"], env=environ,
                            stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health/live").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "INSECURE" in err and "WITHOUT AUTHENTICATION" in err


@pytest.mark.parametrize("text,needle", [
    ("auth:\n  jwt:\n    algorithms: [none]\n", "tally.yml:3"),
    ("auth:\n  jwt:\n    algorithms: [RS256]\n", "needs public_key_file or jwks_file"),
    ("auth:\n  jwts: {}\n", "unknown key 'jwts' under auth"),
    ("policies:\n  - row_filters: []\n", "tally.yml:2: a policy needs a `role:`"),
    ("policies:\n  - role: x\n    metrics: {deny: 5}\n", "list of names"),
    ("auth: [\n", "invalid YAML"),
])
def test_config_mistakes_name_the_file_and_line(project, warehouse, text, needle):
    (project / "tally.yml").write_text(text)
    out = tally(project, warehouse, "serve", "--port", "1", TALLY_JWT_SECRET="x" * 40)
    assert out.returncode == 2, out.stderr
    assert needle in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
