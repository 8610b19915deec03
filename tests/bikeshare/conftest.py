"""The second project (tests/fixtures/bikeshare), built for real: copied to a temporary folder
that becomes the root of its own git repository, its profile in a separate folder reached
through DBT_PROFILES_DIR, built and parsed by `tally build` (which runs dbt), then served.
Every expected number comes from SQL written by hand over its raw seed tables."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from tally.core.caller import ANONYMOUS

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "bikeshare"
TALLY = Path(sys.executable).parent / "tally"
RAW = "main_raw_bikes"  # dbt-duckdb's schema for the seeds' +schema: raw_bikes


@dataclass(frozen=True)
class Bikeshare:
    root: Path  # the project, at the root of its git repository
    profiles_dir: Path
    db: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TALLY_", "DBT_"))}
        # The profile's path is relative (dbt resolves it from the project folder): no
        # BIKESHARE_DB, so env_var's default is what dbt and tally both use.
        return {**env, "DBT_PROFILES_DIR": str(self.profiles_dir),
                "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", **extra}

    def tally(self, *args: str, cwd: Path | None = None, timeout: float = 600,
              **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(TALLY), *map(str, args)], cwd=cwd or self.root,
                              env=self.env(**env), capture_output=True, text=True,
                              timeout=timeout)

    @property
    def dbt(self) -> Path:
        return TALLY.parent / "dbt"

    def raw(self) -> duckdb.DuckDBPyConnection:
        return duckdb.connect(str(self.db), read_only=True)

    def git(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
                              cwd=self.root, capture_output=True, text=True, check=True)


def make_bikeshare(root: Path) -> Bikeshare:
    project = root / "bikeshare"
    shutil.copytree(FIXTURE / "project", project)
    profiles = root / "dbt-profiles"  # not in the project: reached through DBT_PROFILES_DIR
    shutil.copytree(FIXTURE / "profiles", profiles)
    shared = Bikeshare(root=project, profiles_dir=profiles, db=project / "bikeshare.duckdb")
    (project / ".gitignore").write_text("build/\nlogs/\n*.duckdb\n.tally/\n")
    shared.git("init", "-q")
    shared.git("add", "-A")
    shared.git("commit", "-qm", "bikeshare")
    built = shared.tally("build")
    if built.returncode != 0:
        pytest.fail(f"tally build failed:\n{built.stdout[-4000:]}\n{built.stderr[-2000:]}")
    return shared


@pytest.fixture(scope="session")
def bikeshare(tmp_path_factory: pytest.TempPathFactory) -> Bikeshare:
    return make_bikeshare(tmp_path_factory.mktemp("bikeshare"))


@pytest.fixture
def bikeshare_copy(tmp_path: Path) -> Bikeshare:
    """A project of the test's own, for tests that change it."""
    return make_bikeshare(tmp_path)


@pytest.fixture(scope="session")
def tally_command() -> Path:
    return TALLY


@pytest.fixture(scope="session")
def bike_raw(bikeshare: Bikeshare):
    con = bikeshare.raw()
    yield con
    con.close()


@pytest.fixture(scope="session")
def bike_service(bikeshare: Bikeshare):
    from tally.service import TallyService
    from tally.settings import Settings

    return TallyService(Settings(project_dir=bikeshare.root, profiles_dir=bikeshare.profiles_dir))


@pytest.fixture(scope="session")
def hand(bike_raw):
    """Rows of SQL written by hand over the raw seed tables ({raw} is their schema)."""

    def run(sql: str) -> list[tuple]:
        return [tuple(r) for r in bike_raw.sql(sql.format(raw=RAW)).fetchall()]

    return run


@pytest.fixture(scope="session", params=["core", "rest", "graphql"])
def served(request, bikeshare: Bikeshare):
    """A function (metrics, group_by, where, order_by, limit, saved_query) -> rows, through
    the core service, REST (Arrow IPC) or GraphQL (JSON rows), each with its own service."""
    import asyncio
    import io

    import httpx
    import pyarrow as pa

    from tally.core.request import QueryRequest
    from tally.server import create_app
    from tally.service import TallyService
    from tally.settings import Settings

    service = TallyService(Settings(project_dir=bikeshare.root,
                                    profiles_dir=bikeshare.profiles_dir))
    app = create_app(service.settings, service=service)

    def post(url: str, body: dict) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                return await client.post(url, json=body, headers={
                    "accept": "application/vnd.apache.arrow.stream"})
        return asyncio.run(send())

    def query(**kw) -> list[tuple]:
        if request.param == "core":
            return [tuple(r.values()) for r in
                    service.query(QueryRequest.create(**kw), ANONYMOUS).table.to_pylist()]
        if request.param == "rest":
            r = post("/api/v1/query", kw)
            assert r.status_code == 200, r.text
            table = pa.ipc.open_stream(io.BytesIO(r.content)).read_all()
            return [tuple(row.values()) for row in table.to_pylist()]
        wheres = kw.get("where", [])
        args = {"metrics": kw.get("metrics"), "groupBy": kw.get("group_by"),
                "where": [w for w in wheres if isinstance(w, str)],
                "filters": [w for w in wheres if isinstance(w, dict)],
                "orderBy": kw.get("order_by"), "savedQuery": kw.get("saved_query")}
        gql = """query($metrics: [String!], $groupBy: [String!], $where: [String!],
                       $filters: [Filter!], $orderBy: [String!], $savedQuery: String) {
                   query(metrics: $metrics, groupBy: $groupBy, where: $where, filters: $filters,
                         orderBy: $orderBy, savedQuery: $savedQuery) { columns { name } rows } }"""
        body = post("/graphql", {"query": gql, "variables": args}).json()
        assert "errors" not in body, body
        names = [c["name"] for c in body["data"]["query"]["columns"]]
        return [tuple(row[n] for n in names) for row in body["data"]["query"]["rows"]]

    query.transport = request.param  # type: ignore[attr-defined]
    return query
