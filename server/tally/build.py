"""`tally build`: rebuild the project while tally serves it, with nothing half-built ever served.

1. `dbt build` (the caller's selection and `--vars` passed through), then `dbt parse` with the
   same vars, into a side target folder, never over the served one.
2. On a file warehouse (DuckDB), dbt builds into a side copy of the served file (same name, in
   <project>/.tally/build/), through a profile that differs from the user's only in that path;
   on other warehouses dbt builds in place (each model is replaced by dbt atomically).
3. Rollups (tally.rollups) are built for the new data and definitions: in the side copy, or on
   other warehouses in place, after dbt, each rollup swapped in by one transaction.
4. Only when all succeed: the new data file is renamed over the served one (one atomic step),
   then the new target folder over dbt's target path, so a running server never pairs a new
   manifest with old data. Its next query sees the new data version (the file's inode, dbt's
   run_results.json) and misses the cache.
5. A failed build or parse changes nothing that is served: the side files are removed and the
   exit code is 1, with dbt's own summary above it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from tally.core.engine import EngineSpec
from tally.errors import CallerError, ServerFault
from tally.project import read_profile_target, read_project
from tally.settings import Settings

SIDE_DIR = ".tally/build"


class BuildFailed(ServerFault):
    code = "build_failed"


@dataclass(frozen=True)
class BuildPlan:
    project_dir: Path
    profiles_dir: Path
    target_name: str
    profile_name: str
    output: dict
    target_path: Path  # dbt's served target folder
    served_file: Path | None  # the served DuckDB file (None: build in place)
    # The warehouse engine, for building rollups after dbt (None: no rollups).
    engine: EngineSpec | None = None


def plan(settings: Settings, data_file: Path | None) -> BuildPlan:
    project_dir = settings.resolved_project_dir()
    profiles_dir = settings.resolved_profiles_dir()
    output = read_profile_target(project_dir, profiles_dir, settings.target)
    project = read_project(project_dir, profiles_dir, settings.target)
    return BuildPlan(
        project_dir=project_dir,
        profiles_dir=profiles_dir,
        target_name=output["target_name"],
        profile_name=project.profile,
        output={k: v for k, v in output.items() if k != "target_name"},
        target_path=project.target_path,
        served_file=data_file,
    )


def run_build(
    build: BuildPlan,
    dbt_args: Sequence[str],
    vars_arg: str | None,
    start_from: Path | None = None,
    say=print,
) -> None:
    """Build, parse and swap in (see the module's docstring); BuildFailed on a dbt failure."""
    side = build.project_dir / SIDE_DIR
    shutil.rmtree(side, ignore_errors=True)
    side.mkdir(parents=True)
    side_target = side / "target"
    side_target.mkdir()
    try:
        partial = build.target_path / "partial_parse.msgpack"
        if partial.exists():  # dbt re-reads only what changed (keyed on project and vars)
            shutil.copy2(partial, side_target / partial.name)
        profiles_dir = build.profiles_dir
        side_file = None
        if build.served_file is not None:
            side_file = side / build.served_file.name
            _stage(say, "side copy of the served file", lambda: _prepare(
                build.served_file, side_file, start_from))  # fmt: skip
            profiles_dir = _side_profile(build, side_file, side)
        vars_args = ["--vars", vars_arg] if vars_arg else []
        common = ["--project-dir", str(build.project_dir), "--profiles-dir", str(profiles_dir),
                  "--target", build.target_name, "--target-path", str(side_target)]  # fmt: skip
        _stage(say, "dbt build", lambda: _dbt(["build", *common, *vars_args, *dbt_args], say))
        _stage(say, "dbt parse", lambda: _dbt(["parse", *common, *vars_args, "--quiet"], say))
        if build.engine is not None:
            engine = build.engine
            # On a file warehouse, into the side copy; otherwise in the served database.
            output = build.output if side_file is None else {**build.output,
                                                             "path": str(side_file)}
            _stage(say, "rollups", lambda: _rollups(build, engine, output, side_target, say))
        _stage(say, "swap in", lambda: _swap(build, side_file, side_target))
    finally:
        shutil.rmtree(side, ignore_errors=True)


def _rollups(build: BuildPlan, engine: EngineSpec, output: dict, side_target: Path, say) -> None:
    """Rollups (saved queries with cache enabled) for the new data and definitions, before the
    new target folder is swapped in (tally.rollups)."""
    from tally.core.compiler import Compiler
    from tally.core.semantic_manifest import load_manifest
    from tally.rollups.build import build_rollups, open_writer, supports_rollups
    from tally.rollups.definitions import rollups_of

    compiler = Compiler(load_manifest(side_target / "semantic_manifest.json"), engine)
    if not rollups_of(compiler):
        say("  no rollups declared")
        return
    if not supports_rollups(engine):
        say(f"  rollups are not built on {engine.adapter_type} (DuckDB and PostgreSQL only): "
            "their queries run on the source tables")
        return
    writer = open_writer(engine, output, build.project_dir)
    try:
        build_rollups(compiler, writer, side_target, progress=lambda m: say(f"  {m}"))
    finally:
        writer.close()


def _stage(say, name: str, fn) -> None:
    started = time.perf_counter()
    say(f"tally build: {name}...")
    fn()
    say(f"tally build: {name} done in {time.perf_counter() - started:.1f} s")


def _prepare(served: Path, side_file: Path, start_from: Path | None) -> None:
    if start_from is not None:
        if not start_from.is_file():
            raise CallerError(f"--from {start_from}: no such file.")
        shutil.move(str(start_from), side_file)
    elif served.exists():
        # Sources loaded into the served file (by an EL tool) must survive the rebuild.
        result = subprocess.run(["cp", "--reflink=auto", str(served), str(side_file)],
                                capture_output=True, text=True)  # fmt: skip
        if result.returncode != 0:
            shutil.copyfile(served, side_file)


def _side_profile(build: BuildPlan, side_file: Path, side: Path) -> Path:
    """A profiles.yml that is the user's target with only the DuckDB path changed."""
    folder = Path(tempfile.mkdtemp(prefix="profile-", dir=side))
    os.chmod(folder, 0o700)
    profile = {build.profile_name: {"target": build.target_name, "outputs": {
        build.target_name: {**build.output, "path": str(side_file)}}}}  # fmt: skip
    (folder / "profiles.yml").write_text(yaml.safe_dump(profile))
    return folder


def _dbt(args: list[str], say) -> None:
    """dbt from this Python's environment; its progress streams through as it runs."""
    dbt = Path(sys.executable).parent / "dbt"
    command = [str(dbt) if dbt.exists() else "dbt", *args]
    env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)  # fmt: skip
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        say(f"  {line}")
        tail = [*tail, line][-20:]
    if proc.wait() != 0:
        summary = [t for t in tail if "ERROR" in t or "Error" in t or "Done." in t]
        raise BuildFailed(
            f"dbt {args[0]} failed: nothing served was changed. "
            + " | ".join(summary[-4:] or tail[-3:])
        )


def _swap(build: BuildPlan, side_file: Path | None, side_target: Path) -> None:
    if side_file is not None and build.served_file is not None:
        build.served_file.parent.mkdir(parents=True, exist_ok=True)
        os.replace(side_file, build.served_file)  # the data first...
    old = build.target_path.with_name(build.target_path.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if build.target_path.exists():
        os.replace(build.target_path, old)
    os.replace(side_target, build.target_path)  # ...then the manifest that describes it
    shutil.rmtree(old, ignore_errors=True)


def summary(build: BuildPlan) -> str:
    where = build.served_file or f"the {build.output.get('type')} warehouse (in place)"
    run_results = build.target_path / "run_results.json"
    counts = ""
    try:
        results = json.loads(run_results.read_text()).get("results", [])
        counts = f", {len(results)} dbt nodes"
    except (OSError, ValueError):
        pass
    return f"tally build: ready: {where}, manifest {build.target_path}{counts}"
