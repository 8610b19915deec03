"""The corpus of dbt project shapes (tests/fixtures/corpus/), each built for real once per run:
copied into the run's shared folder (at the root of a git repository, or in a sub-folder of
one, for the layouts that need it), `dbt deps` when it has packages, `dbt build` (seeds,
models, hooks, and the semantic manifest). Tests run the real `tally` command from the
project's folder with no options, the in-process app from the same folder, and compare numbers
with SQL written by hand over the fixture's CSV file (read by DuckDB, never through dbt).

Every fixture holds the same orders (seeds/raw_orders.csv, or its package's)."""

from __future__ import annotations

import asyncio
import copy
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.support import shared
from tests.support.paths import DBT, ROOT, TALLY

FIXTURES = ROOT / "tests" / "fixtures" / "corpus"
# shape -> (fixture folder, layout). "repo_root": the project is the root of a git repository;
# "monorepo": it is analytics/dbt/ of one; "alone": no repository.
SHAPES: dict[str, tuple[str, str]] = {
    "macro_vars": ("macro_vars", "alone"),
    "hooks_and_flags": ("hooks_and_flags", "alone"),
    "profile_env": ("profile_env", "alone"),
    "repo_root": ("plain", "repo_root"),
    "monorepo": ("plain", "monorepo"),
    "target_paths": ("target_paths", "alone"),
    "legacy_spine": ("legacy_spine", "alone"),
    "yaml_spine": ("yaml_spine", "alone"),
    "local_package": ("local_package", "alone"),
}
_SUBDIR = {"alone": ".", "repo_root": ".", "monorepo": "analytics/dbt"}
_OUTPUTS = shutil.ignore_patterns("target", "out", "logs", "dbt_packages", "*.duckdb*", ".tally",
                                  "package-lock.yml", "__pycache__")  # fmt: skip


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without tally's and dbt's own variables: nothing but the folder tells
    them where the project is."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TALLY_", "DBT_"))}
    return {**env, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", **extra}


@dataclass(frozen=True)
class CorpusProject:
    name: str
    root: Path  # the repository (the project folder itself when it has none)
    project_dir: Path

    @property
    def csv(self) -> Path:
        """The orders: the project's seed, or its local package's."""
        for folder in (self.project_dir, self.project_dir / "packages" / "shop_metrics"):
            if (folder / "seeds" / "raw_orders.csv").exists():
                return folder / "seeds" / "raw_orders.csv"
        raise FileNotFoundError(f"no seeds/raw_orders.csv in {self.project_dir}")

    def tally(self, *args: str | Path, cwd: Path | None = None, timeout: float = 300,
              **env: str) -> subprocess.CompletedProcess:  # fmt: skip
        return subprocess.run([str(TALLY), *map(str, args)], cwd=cwd or self.project_dir,
                              env=clean_env(**env), capture_output=True, text=True,
                              timeout=timeout)  # fmt: skip

    def dbt(self, *args: str | Path, **env: str) -> subprocess.CompletedProcess:
        return run_dbt(self.project_dir, *args, **env)

    def hand(self, sql: str) -> list[tuple]:
        """Rows of hand-written SQL over the fixture's orders, a table `raw_orders` read from
        the CSV file by DuckDB."""
        con = duckdb.connect()
        try:
            con.execute(
                "create table raw_orders as select * from read_csv(?, header = true, columns = "
                "{'order_id': 'integer', 'customer_id': 'integer', 'ordered_at': 'date', "
                "'status': 'varchar', 'amount': 'decimal(10, 2)'})", [str(self.csv)])
            return [tuple(row) for row in con.sql(sql).fetchall()]
        finally:
            con.close()

    def copy_to(self, folder: Path) -> CorpusProject:
        """A private copy (files, times, the built warehouse and dbt's outputs) for a test that
        writes; dbt_packages (links) is not copied."""
        dest = folder / self.name
        shutil.copytree(self.root, dest, symlinks=True,
                        ignore=shutil.ignore_patterns("dbt_packages"))  # fmt: skip
        return CorpusProject(self.name, dest, dest / self.project_dir.relative_to(self.root))


def run_dbt(project_dir: Path, *args: str | Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(DBT), *map(str, args)], cwd=project_dir, env=clean_env(**env),
                          capture_output=True, text=True, timeout=600)  # fmt: skip


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=root,
                   check=True, capture_output=True)  # fmt: skip


def _build(config: pytest.Config, name: str, folder: Path) -> dict[str, str]:
    fixture, layout = SHAPES[name]
    root = folder / name
    project = (root / _SUBDIR[layout]).resolve()
    project.parent.mkdir(parents=True, exist_ok=True)
    built = None
    if layout == "monorepo":  # the repository-root build, moved into a sub-folder as it is
        built = corpus_project(config, "repo_root")
        shutil.copytree(built.project_dir, project,
                        ignore=shutil.ignore_patterns(".git*", ".tally", "logs"))
    else:
        shutil.copytree(FIXTURES / fixture, project, ignore=_OUTPUTS)
    if layout != "alone":
        if layout == "monorepo":  # other teams' code beside the dbt project
            (root / "services" / "api").mkdir(parents=True)
            (root / "services" / "api" / "main.py").write_text("print('hello')\n")
        (root / ".gitignore").write_text("target/\nout/\nlogs/\ndbt_packages/\n*.duckdb*\n"
                                         ".tally/\n")  # fmt: skip
        _git(root, "init", "-q")
        _git(root, "add", "-A")
        _git(root, "commit", "-qm", f"{name}: a dbt project")
    steps = [["deps"]] if (project / "packages.yml").exists() else []
    for args in [*steps, ["build"]] if built is None else []:
        done = run_dbt(project, *args)
        if done.returncode != 0:
            pytest.fail(f"dbt {args[0]} of corpus project {name} failed:\n"
                        f"{done.stdout[-4000:]}\n{done.stderr[-2000:]}")  # fmt: skip
    return {"root": str(root), "project_dir": str(project)}


def corpus_project(config: pytest.Config, name: str) -> CorpusProject:
    """The shape `name`, built once per run and shared read-only (copy_to for a private one)."""
    info = shared.build_once(config, f"corpus-{name}",
                             lambda folder: _build(config, name, folder))  # fmt: skip
    return CorpusProject(name, Path(info["root"]), Path(info["project_dir"]))


@contextmanager
def in_folder(project_dir: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> Iterator[None]:
    """This process as `tally` run from the project's folder with no options: its working
    folder, and no TALLY_/DBT_ variables but `env`."""
    for name in list(os.environ):
        if name.startswith(("TALLY_", "DBT_")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(project_dir)
    yield


def rest(body: dict[str, Any], path: str = "/api/v1/query") -> tuple[int, Any]:
    """POST `body` to the app of a service made from Settings() here (see in_folder), in
    process through httpx's ASGI transport: (status, JSON)."""
    import httpx

    from tally.server import create_app
    from tally.service import TallyService
    from tally.settings import Settings

    settings = Settings()
    service = TallyService(settings)
    app = create_app(settings, service=service)

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tally") as client:
            return await client.post(path, json=body)

    try:
        response = asyncio.run(send())
    finally:
        service.shutdown()
    return response.status_code, response.json()


def to_newer_spec(data: dict[str, Any], writer: str) -> dict[str, Any]:
    """A semantic manifest of dbt 1.11 in the newer metric spec dbt 1.12 writes (MetricFlow's
    own semantic interfaces), recorded as written by MetricFlow `writer` ("0.213.0"): no
    measures; each simple metric carries its own aggregation and expression; a cumulative
    metric names its input metric (the unfiltered simple metric of its measure)."""
    data = copy.deepcopy(data)
    measures: dict[str, tuple[str, dict[str, Any]]] = {}
    for model in data["semantic_models"]:
        measures.update({m["name"]: (model["name"], m) for m in model["measures"]})
        model["measures"] = []
    metric_of: dict[str, str] = {}
    for metric in data["metrics"]:
        params = metric["type_params"]
        if metric["type"] == "simple":
            model, measure = measures[params["measure"]["name"]]
            if metric.get("filter") is None:
                metric_of.setdefault(measure["name"], metric["name"])
            params.update(measure=None, input_measures=[],
                          expr=measure.get("expr") or measure["name"],
                          metric_aggregation_params={
                              "semantic_model": model, "agg": measure["agg"],
                              "agg_params": measure.get("agg_params"),
                              "agg_time_dimension": measure.get("agg_time_dimension"),
                              "non_additive_dimension": measure.get("non_additive_dimension")})
    for metric in data["metrics"]:
        params = metric["type_params"]
        if metric["type"] == "cumulative":
            source = metric_of[params["measure"]["name"]]
            params.update(measure=None, input_measures=[])
            params["cumulative_type_params"] = {
                **(params.get("cumulative_type_params") or {}),
                "metric": {"name": source, "filter": None, "alias": None,
                           "offset_window": None, "offset_to_grain": None}}
        elif metric["type"] != "simple":
            params["input_measures"] = []
    major, minor, patch = writer.split(".")
    data["project_configuration"]["dsi_package_version"] = {
        "major_version": major, "minor_version": minor, "patch_version": patch}
    return data

