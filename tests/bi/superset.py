"""Apache Superset as its operators run it: its own virtualenv (.venv-superset, `make
superset-venv`), a config file (SQLite metadata in a temporary folder, a secret key, no examples),
`superset db upgrade`, `fab create-admin` and `init`, then its web server under gunicorn on a
free loopback port; driven through its REST API with the JWT of /api/v1/security/login.

The SQL Superset sends to a registered database is in its log: the database is registered with
the engine parameter logging_name=LOGGED, and the config logs that engine's statements and those
of charts (its QUERY_LOGGER)."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.paths import ROOT
from tests.support.processes import free_port

VENV = ROOT / ".venv-superset"
SUPERSET = VENV / "bin" / "superset"
GUNICORN = VENV / "bin" / "gunicorn"
ADMIN = ("admin", "superset-admin-password")
LOGGED = "bi"  # SQLAlchemy's logging_name of the databases the tests register

CONFIG = """
import logging

SECRET_KEY = {secret!r}
SQLALCHEMY_DATABASE_URI = {metadata!r}
WTF_CSRF_ENABLED = False
TALISMAN_ENABLED = False
CONTENT_SECURITY_POLICY_WARNING = False
# no Celery, no results backend: charts query synchronously
FEATURE_FLAGS = {{}}
# The statements of the registered databases' engines (logging_name={logged!r}: introspection),
# and of charts and SQL Lab (run on a raw DBAPI cursor, reported to QUERY_LOGGER), in the log.
_SQL = logging.getLogger("sqlalchemy.engine.Engine.{logged}")
_SQL.setLevel(logging.INFO)


def QUERY_LOGGER(database, query, schema=None, client=None, security_manager=None,
                 log_params=None):
    _SQL.info("%s", query)
"""


def require_superset() -> None:
    """The virtualenv must be there: a failure in CI (CI=true), a skip elsewhere."""
    if not SUPERSET.exists():
        message = f"Apache Superset is not installed in {VENV}: `make superset-venv`"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@dataclass
class Superset:
    url: str
    process: subprocess.Popen
    log: Path
    token: str = ""
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=300))

    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {self.token}"} if self.token else {}
        return self.client.request(method, f"{self.url}{path}", headers=headers, **kw)

    def ok(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        """The JSON of a 2xx answer; anything else fails the test with the answer and the
        end of Superset's log."""
        r = self.api(method, path, **kw)
        if not r.is_success:
            pytest.fail(f"Superset {method} {path}: {r.status_code} {r.text[:3000]}\n"
                        f"--- superset log ---\n{self.log_tail()}")
        return r.json()

    def log_tail(self, chars: int = 6000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def login(self) -> None:
        body = {"username": ADMIN[0], "password": ADMIN[1], "provider": "db", "refresh": True}
        self.token = ""
        self.token = self.ok("POST", "/api/v1/security/login", json=body)["access_token"]

    def add_database(self, name: str, uri: str) -> int:
        """Register a database (its connection is tested by Superset first); its id."""
        extra = {"engine_params": {"logging_name": LOGGED}}
        body = {"database_name": name, "sqlalchemy_uri": uri, "expose_in_sqllab": True,
                "extra": _json(extra)}
        return self.ok("POST", "/api/v1/database/", json=body)["id"]

    def add_dataset(self, database: int, schema: str, table: str) -> int:
        body = {"database": database, "schema": schema, "table_name": table}
        return self.ok("POST", "/api/v1/dataset/", json=body)["id"]

    def sql_logged(self) -> list[str]:
        """The statements Superset's registered engines ran, oldest first (SQLAlchemy's INFO
        lines of the engine named LOGGED, without its parameter and timing lines)."""
        marker = f"sqlalchemy.engine.Engine.{LOGGED}:"
        statements: list[list[str]] = []
        open_statement = False
        for line in self.log.read_text(errors="replace").splitlines():
            if marker in line:
                text = line.split(marker, 1)[1]
                open_statement = not text.startswith(("[", "BEGIN", "COMMIT", "ROLLBACK"))
                if open_statement:
                    statements.append([text])
            elif open_statement and not line[:4].isdigit():  # the statement's next line
                statements[-1].append(line)
            else:
                open_statement = False
        return ["\n".join(lines).strip() for lines in statements]


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


def _run(step: list[str], env: dict[str, str], log: Path) -> None:
    with log.open("a") as out:
        out.write(f"\n$ superset {' '.join(step)}\n")
        out.flush()
        done = subprocess.run([str(SUPERSET), *step], env=env, stdout=out,
                              stderr=subprocess.STDOUT, timeout=600)  # fmt: skip
    if done.returncode != 0:
        pytest.fail(f"superset {' '.join(step)} exited {done.returncode}:\n"
                    f"{log.read_text(errors='replace')[-4000:]}")


def start_superset(root: Path, ready_timeout: float = 180.0) -> Superset:
    """Superset set up from nothing in `root` and serving; logged in as its admin."""
    require_superset()
    root.mkdir(parents=True, exist_ok=True)
    config = root / "superset_config.py"
    config.write_text(CONFIG.format(secret="tally-bi-tests-" + os.urandom(16).hex(),
                                    metadata=f"sqlite:///{root / 'superset.db'}",
                                    logged=LOGGED))  # fmt: skip
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("TALLY_", "FLASK_"))},
           "SUPERSET_CONFIG_PATH": str(config), "SUPERSET_HOME": str(root / "home"),
           "FLASK_APP": "superset", "PYTHONUNBUFFERED": "1"}
    setup_log = root / "setup.log"
    _run(["db", "upgrade"], env, setup_log)
    _run(["fab", "create-admin", "--username", ADMIN[0], "--password", ADMIN[1],
          "--firstname", "Tally", "--lastname", "Tests", "--email", "admin@tally.test"],
         env, setup_log)  # fmt: skip
    _run(["init"], env, setup_log)
    port = free_port()
    log = root / "superset.log"
    process = subprocess.Popen(
        [str(GUNICORN), "--workers", "1", "--threads", "8", "--timeout", "300",
         "--no-control-socket", "--bind", f"127.0.0.1:{port}", "superset.app:create_app()"],
        env=env, cwd=root, stdout=log.open("w"), stderr=subprocess.STDOUT)  # fmt: skip
    superset = Superset(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + ready_timeout
    while True:
        try:
            if httpx.get(f"{superset.url}/health", timeout=5).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            stop_superset(superset)
            pytest.fail(f"Superset did not start:\n{superset.log_tail()}")
        time.sleep(0.5)
    superset.login()
    return superset


def stop_superset(superset: Superset) -> None:
    superset.client.close()
    if superset.process.poll() is None:
        superset.process.terminate()
        try:
            superset.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            superset.process.kill()
            superset.process.wait()
