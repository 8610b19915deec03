"""One validation run: dbt parse (or a fresh manifest) -> MetricFlow's semantic validations ->
MetricFlow loads it -> tally's rules -> warehouse checks; findings filtered and re-levelled by
the project file. Each stage that cannot run (no manifest after a failed parse, say) is recorded
as skipped, never silently passed."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tally.errors import CallerError, TallyError
from tally.project import read_project
from tally.service import TallyService
from tally.settings import load_settings
from tally.validate import dw, mf_rules, tally_rules
from tally.validate.config import ValidateConfig, load_config
from tally.validate.context import Context, check_shape, stderr_progress
from tally.validate.findings import (
    Finding,
    Location,
    Report,
    Severity,
    Stage,
    StageResult,
    display_path,
    make_finding,
)
from tally.validate.freshness import ParseOutcome, fresh_outcome, target_info
from tally.validate.locate import Locator
from tally.validate.parse import (
    DBT_PARSE,
    DBT_SEMANTIC,
    DBT_WARNING,
    event_findings,
    run_parse,
    semantic_messages,
)


@dataclass(frozen=True)
class ValidateOptions:
    project_dir: Path
    profiles_dir: Path | None = None
    target: str | None = None
    skip_dw: bool = False
    manifest: Path | None = None  # validate this semantic manifest; no parse
    target_path: Path | None = None  # where dbt parse writes (default: a temporary folder)
    force_parse: bool = False
    config_path: Path | None = None


@contextmanager
def _stage(report: Report, stage: Stage) -> Iterator[StageResult]:
    result = StageResult(stage, "ran")
    started = time.perf_counter()
    try:
        yield result
    finally:
        result.seconds = round(time.perf_counter() - started, 2)
        report.stages.append(result)


def validate(
    options: ValidateOptions, progress: Callable[[str], None] = stderr_progress
) -> Report:
    project_dir = options.project_dir.resolve()
    if not (project_dir / "dbt_project.yml").exists():
        raise CallerError(f"{project_dir} is not a dbt project (no dbt_project.yml).")
    profiles_dir = (options.profiles_dir or project_dir).resolve()
    config = load_config(project_dir, options.config_path)
    report = Report(project_dir=display_path(project_dir))
    locator = Locator.for_project(project_dir)
    with tempfile.TemporaryDirectory(prefix="tally-validate-") as tmp:
        dbt_messages: list[tuple[Severity, str]] = []
        if options.manifest is not None:
            manifest_path: Path | None = options.manifest.resolve()
            if not manifest_path.exists():
                raise CallerError(f"Semantic manifest {options.manifest} does not exist.")
            try:
                check_shape(str(options.manifest), json.loads(manifest_path.read_text()))
            except (OSError, UnicodeDecodeError, ValueError) as e:
                raise CallerError(f"{options.manifest} cannot be read as JSON: {e}") from None
            report.stages.append(StageResult(Stage.DBT, "skipped", detail="--manifest given"))
        else:
            with _stage(report, Stage.DBT) as stage:
                outcome = _parse(options, project_dir, profiles_dir, Path(tmp), stage, progress)
                report.findings += event_findings(outcome, project_dir, locator)
                _count_dbt_rules(report, outcome)
                dbt_messages = semantic_messages(outcome)
                manifest_path = outcome.manifest_path
                if manifest_path is None:
                    stage.status = "failed"
        if manifest_path is None:
            for stage_name in (Stage.METRICFLOW, Stage.TALLY, Stage.WAREHOUSE):
                report.stages.append(StageResult(stage_name, "skipped", detail="no manifest"))
        else:
            if not manifest_path.is_relative_to(Path(tmp).resolve()):
                report.manifest = display_path(manifest_path)
            _check_manifest(options, config, report, locator, manifest_path, dbt_messages,
                            project_dir, profiles_dir, progress)  # fmt: skip
    report.findings = config.apply(report.findings)
    report.checked = {k: n for k, n in report.checked.items() if config.enabled(k)}
    report.not_checked = {k: why for k, why in report.not_checked.items() if config.enabled(k)}
    report.sort()
    return report


def _parse(
    options: ValidateOptions, project_dir: Path, profiles_dir: Path, tmp: Path,
    stage: StageResult, progress: Callable[[str], None],
) -> ParseOutcome:  # fmt: skip
    """A fresh earlier parse (in --target-path, else dbt's target path: DBT_TARGET_PATH, the
    project's target-path, target/), else `dbt parse` into --target-path or a temporary
    folder."""
    target_dir = (options.target_path or _dbt_target_path(options, project_dir, profiles_dir)
                  ).resolve()  # fmt: skip
    target = target_info(project_dir, profiles_dir, options.target)
    outcome, why = None, "--parse asks for a full parse"
    if not options.force_parse:
        outcome, why = fresh_outcome(project_dir, target_dir, target)
    if outcome is not None:
        reused = display_path(outcome.target_dir)
        stage.detail = f"reused {reused}"
        progress(f"dbt parse: reusing the fresh parse in {reused}")
        return outcome
    if target_dir.exists() and options.target_path is None:
        progress(f"dbt parse: not reusing {display_path(target_dir)}: {why}")
    where = (options.target_path or tmp / "target").resolve()
    outcome = run_parse(project_dir, profiles_dir, where, options.target, progress)
    stage.detail = f"parsed in {outcome.seconds:.1f} s"
    return outcome


def _dbt_target_path(options: ValidateOptions, project_dir: Path, profiles_dir: Path) -> Path:
    try:
        return read_project(project_dir, profiles_dir, options.target).target_path
    except TallyError:  # dbt parse reports what is wrong with the project
        return project_dir / "target"


def _count_dbt_rules(report: Report, outcome: ParseOutcome) -> None:
    """dbt's rules that this parse checked. dbt's warnings are known only from a full parse by
    tally (or its stamp): a target/ that dbt wrote keeps none, a partial parse reports only
    the files it re-read."""
    report.count(DBT_PARSE.id)
    if outcome.success:
        report.count(DBT_SEMANTIC.id)
    if outcome.warnings_complete:
        report.count(DBT_WARNING.id)
    else:
        why = ("dbt's own target/ was reused, and it keeps no warnings" if outcome.dbt_target
               else "a partial parse reports only the warnings of the files it re-read")
        report.not_checked[DBT_WARNING.id] = f"{why}; `--parse` reports them all"


def _check_manifest(
    options: ValidateOptions,
    config: ValidateConfig,
    report: Report,
    locator: Locator,
    manifest_path: Path,
    dbt_messages: list[tuple[Severity, str]],
    project_dir: Path,
    profiles_dir: Path,
    progress: Callable[[str], None],
) -> None:
    with _stage(report, Stage.METRICFLOW) as stage:
        progress("semantic validations...")
        try:
            semantic = json.loads(manifest_path.read_text())
            raw = mf_rules.load_raw_manifest(manifest_path)
        except (OSError, ValueError) as e:
            report.findings.append(_unreadable(manifest_path, e))
            stage.status = "failed"
            for stage_name in (Stage.TALLY, Stage.WAREHOUSE):
                report.stages.append(StageResult(stage_name, "skipped", detail="no manifest"))
            return
        ctx = Context(
            project_dir=project_dir,
            manifest_path=manifest_path,
            semantic=semantic,
            raw=raw,
            dbt_manifest=Context.read_dbt_manifest(manifest_path),
            locator=locator,
            config=config,
            report=report,
            progress=progress,
        )
        mf_rules.run_metricflow_rules(raw, locator, report, config.enabled, dbt_messages)
        settings = load_settings(project_dir=project_dir, profiles_dir=profiles_dir,
                                 target=options.target, manifest_path=manifest_path)  # fmt: skip
        service = TallyService(settings)
        report.count(tally_rules.MANIFEST_LOADS.id)
        try:
            ctx.compiler = service.compiler
        except TallyError as e:
            ctx.add(tally_rules.MANIFEST_LOADS, f"MetricFlow cannot load the manifest: "
                    f"{e.message}")  # fmt: skip
    with _stage(report, Stage.TALLY):
        progress("tally rules...")
        tally_rules.run_tally_rules(ctx)
    if options.skip_dw:
        report.stages.append(StageResult(Stage.WAREHOUSE, "skipped", detail="--skip-dw"))
        return
    with _stage(report, Stage.WAREHOUSE):
        try:
            warehouse = service.warehouse
        except TallyError as e:
            ctx.add(dw.DW_CONNECTION, f"no warehouse: {e.message}")
            return
        dw.run_warehouse_checks(ctx, warehouse, settings.query_timeout_seconds)


def _unreadable(path: Path, e: Exception) -> Finding:
    return make_finding(tally_rules.MANIFEST_LOADS, f"the semantic manifest cannot be read: {e}",
                        location=Location(path))  # fmt: skip
