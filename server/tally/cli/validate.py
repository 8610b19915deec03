"""`tally validate` and `tally diff`: the command-line side of tally.validate. Mistakes in flags
or in the project file exit 2 (CallerError), like every command."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tally.cli.common import project_flags
from tally.errors import CallerError, TallyError


def register(sub: argparse._SubParsersAction) -> None:
    v = sub.add_parser(
        "validate",
        help="check the semantic layer: dbt parse, MetricFlow, tally's rules, the warehouse",
        description="Exit 0 when clean, 1 on errors (and warnings with --strict), 2 on a "
        "usage error. Rules are configured in <project>/tally.yml (validate: section).",
    )
    project_flags(v)
    v.add_argument("--skip-dw", action="store_true", help="skip the warehouse checks")
    v.add_argument("--format", choices=("text", "github", "json"), default="text")
    v.add_argument("--junit", type=Path, default=None, metavar="FILE",
                   help="also write a JUnit XML report to FILE")  # fmt: skip
    v.add_argument("--strict", action="store_true", help="warnings fail too (exit 1)")
    v.add_argument("--manifest", type=Path, default=None,
                   help="validate this semantic_manifest.json instead of parsing the project "
                   "(manifest.json is read from the same folder)")  # fmt: skip
    v.add_argument("--parse", action="store_true", dest="force_parse",
                   help="always run dbt parse (default: reuse a fresh target/ parse)")  # fmt: skip
    v.add_argument("--target-path", type=Path, default=None,
                   help="where dbt parse writes (default: a temporary folder; the project's "
                   "target/ is only read)")  # fmt: skip
    v.add_argument("--config", type=Path, default=None,
                   help="project file (default <project-dir>/tally.yml)")  # fmt: skip
    v.add_argument("--list-rules", action="store_true", help="list the rules and exit")
    v.set_defaults(handler=_cmd_validate)

    d = sub.add_parser(
        "diff",
        help="metrics and dimensions added, removed and changed between two manifests",
        description="BASE and HEAD are each a semantic_manifest.json, a folder holding one, "
        "or a git ref (its dbt project is parsed in a temporary folder). Exit 0, or 1 with "
        "--fail-on-breaking when a change is breaking.",
    )
    d.add_argument("base", help="manifest file, folder, or git ref (e.g. origin/main)")
    d.add_argument("head", help="manifest file, folder, or git ref (e.g. HEAD)")
    project_flags(d)
    d.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    d.add_argument("--values", action="store_true",
                   help="query changed metrics with both definitions on the warehouse and "
                   "report the numbers that move")  # fmt: skip
    d.add_argument("--fail-on-breaking", action="store_true",
                   help="exit 1 when a change is breaking")  # fmt: skip
    d.set_defaults(handler=_cmd_diff)


def _project_dir(args: argparse.Namespace) -> Path:
    """The project the way dbt finds it (tally.project): a wrong one is a usage error."""
    from tally.project import find_project_dir

    try:
        return find_project_dir(args.project_dir or os.environ.get("TALLY_PROJECT_DIR"))
    except TallyError as e:
        raise CallerError(e.message) from None


def _profiles_dir(args: argparse.Namespace) -> Path | None:
    from tally.project import find_profiles_dir

    value = args.profiles_dir or os.environ.get("TALLY_PROFILES_DIR")
    try:
        return find_profiles_dir(_project_dir(args), value)
    except TallyError as e:
        raise CallerError(e.message) from None


def _cmd_validate(args: argparse.Namespace) -> int:
    from tally.validate import report as render
    from tally.validate.findings import use_color
    from tally.validate.runner import ValidateOptions, validate

    if args.list_rules:
        print(render.rules_table())
        return 0
    if args.manifest is not None and (args.force_parse or args.target_path is not None):
        raise CallerError("--manifest validates a given manifest: it cannot be combined with "
                          "--parse or --target-path.")  # fmt: skip
    options = ValidateOptions(
        project_dir=_project_dir(args),
        profiles_dir=_profiles_dir(args),
        target=args.target or os.environ.get("TALLY_TARGET") or None,
        skip_dw=args.skip_dw,
        manifest=args.manifest,
        target_path=args.target_path,
        force_parse=args.force_parse,
        config_path=args.config,
    )
    created = _probe_writable(args.junit) if args.junit is not None else False
    try:
        report = validate(options)
    except BaseException:
        if created:
            args.junit.unlink(missing_ok=True)
        raise
    if args.junit is not None:
        args.junit.write_text(render.to_junit(report, args.strict))
        print(f"JUnit report written to {args.junit}", file=sys.stderr)
    if args.format == "json":
        print(render.to_json(report, args.strict))
    elif args.format == "github":
        print(render.to_github(report, args.strict))
    else:
        print(render.to_text(report, color=use_color(sys.stdout), strict=args.strict))
    return report.exit_code(args.strict)


def _probe_writable(path: Path) -> bool:
    """Fail before the run (exit 2), not after it, when the report cannot be written. Returns
    whether the probe created the file (removed again if the run does not get to fill it)."""
    if path.is_dir():
        raise CallerError(f"--junit {path} is a folder: give a file name, e.g. {path}/tally.xml.")
    existed = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a"):
            pass
    except OSError as e:
        raise CallerError(f"--junit {path} cannot be written: {e.strerror or e}.") from None
    return not existed


def _cmd_diff(args: argparse.Namespace) -> int:
    import json
    import tempfile

    from tally.validate import diff_report
    from tally.validate.diff import compare
    from tally.validate.diff_sides import resolve_sides

    project_dir = _project_dir(args).resolve()
    profiles_dir = _profiles_dir(args)
    with tempfile.TemporaryDirectory(prefix="tally-diff-") as tmp:
        base, head = resolve_sides([args.base, args.head], project_dir, profiles_dir,
                                   args.target, Path(tmp))  # fmt: skip
        result = compare(base, head)
        if args.values:
            from tally.validate.diff_values import value_diffs

            result.values = value_diffs(result, base, head, project_dir, profiles_dir,
                                        args.target)  # fmt: skip
    if args.format == "json":
        print(json.dumps(diff_report.to_dict(result), indent=2, default=str))
    elif args.format == "markdown":
        print(diff_report.to_markdown(result))
    else:
        print(diff_report.to_text(result))
    return 1 if args.fail_on_breaking and result.breaking else 0
