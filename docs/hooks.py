"""MkDocs hooks (mkdocs.yml `hooks:`): the pages written from the code and the root files, at
build time, so that they can never drift from what they describe.

* `reference/settings.md`: every TALLY_* variable of `tally.settings.Settings` (name, type,
  default, description), then the few variables read outside it.
* `reference/cli.md`: every `tally` subcommand and its flags, from `tally.cli.parser()` (and
  `tally generate`'s own parser, `tally.datagen.__main__.parser()`).
* `reference/graphql.md`: both GraphQL schemas, as SDL, from the schemas the server serves.
* `index.md` and `architecture.md`: README.md and ARCHITECTURE.md as they are at the root,
  their links to `docs/...` rewritten to the site's own.

None of these pages is a file under docs/: each is made in memory (`File.generated`) on every
build. `tests/test_docs.py` reads the same functions.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _this_checkout() -> None:
    """The docs describe the code beside them, whatever `tally` the environment has installed
    (MkDocs restores sys.path after loading a hook, so this runs when a page is made)."""
    server = str(ROOT / "server")
    if sys.path[:1] != [server]:
        sys.path.insert(0, server)

# Root files shown as pages of the site: (file at the root, page in the site).
MIRRORED = {"README.md": "index.md", "ARCHITECTURE.md": "architecture.md"}

# TALLY_* variables read outside the Settings class, each with where it is read and what it
# does. tests/test_docs.py checks that every TALLY_* name in server/ and the demo profile is on
# the settings page, and that each of these is still read somewhere.
OTHER_VARIABLES: dict[str, str] = {
    "TALLY_TOKEN": "`tally mcp`: the API key or token whose access the agent gets (the same "
    "as `--token`).",
    "TALLY_LOG_LEVEL": "`tally serve`: `debug`, `info` (default), `warning` or `error` for "
    "tally's own log lines (the same as `--log-level`); `debug` also shows MetricFlow's, dbt's "
    "and the MCP SDK's.",
    "TALLY_DEBUG": "Any value: the CLI prints a traceback with an internal error, and "
    "MetricFlow's own log lines.",
    "TALLY_WEBHOOK_SECRET": "The secret that signs webhook deliveries (`X-Tally-Signature`): "
    "the variable a webhook of `tally.yml` reads unless its `secret_env` names another; "
    "unset: deliveries go unsigned.",
    "TALLY_URL": "`clients/dashboard/example/app.py` (the example product app): the tally "
    "server it mints embed tokens from (default `http://127.0.0.1:8080`).",
}
# Variables only the test suite and the Makefile read (documented on the development page).
TEST_VARIABLES: dict[str, str] = {
    "TALLY_BIG_TESTS": "`make test-big`: run the multi-million row export test.",
    "TALLY_TEST_SPARK": "`make test-spark`: run the correctness suite on a Spark cluster.",
}


# --- settings ---------------------------------------------------------------------------------


def _type_name(annotation: Any) -> str:
    text = repr(annotation) if not isinstance(annotation, type) else annotation.__name__
    text = re.sub(r"\b(typing|pathlib|pydantic(\.types)?|datetime)\.", "", text)
    text = text.replace("SecretStr", "secret").replace("Path", "path")
    text = text.replace("NoneType", "None").replace("Literal", "one of ")
    text = re.sub(r"one of \[(.*)\]", lambda m: "one of " + m.group(1).replace("'", ""), text)
    return text.replace(" | None", "").replace("list[str]", "JSON list of str")


def _default(field: Any) -> str:
    value = field.default_factory() if field.default_factory is not None else field.default
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, int) and value >= 1024 and value % 1024 == 0:
        for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
            if value % size == 0:
                return f"`{value}` ({value // size} {unit})"
    if isinstance(value, list):
        return f"`{value}`" if value else "`[]`"
    return f"`{value}`"


def settings_fields() -> list[tuple[str, str, str, str]]:
    """(variable, type, default, description) of every field of Settings, in its order."""
    from tally.settings import Settings

    prefix = Settings.model_config.get("env_prefix", "TALLY_")
    rows = []
    for name, field in Settings.model_fields.items():
        description = " ".join((field.description or "").split())
        rows.append((f"{prefix}{name.upper()}", _type_name(field.annotation), _default(field),
                     description))  # fmt: skip
    return rows


def _cell(text: str) -> str:
    """Text for a table cell: pipes escaped, and `<` `>` outside code spans too (help texts
    write `<entity>__<dimension>`, which markdown would take for HTML)."""
    parts = text.replace("\n", " ").split("`")
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts).replace("|", "\\|")


def profile_variables() -> list[tuple[str, str, str]]:
    """(variable, default, outputs) of every env_var() the demo's profiles.yml reads."""
    text = (ROOT / "dbt_project" / "profiles.yml").read_text()
    found: dict[str, tuple[str, list[str]]] = {}
    output = "every output"
    for line in text.splitlines():
        m = re.match(r"^    (\w+):\s*$", line)
        if m:
            output = m.group(1)
        for var, default in re.findall(r"env_var\('(TALLY_\w+)',\s*'([^']*)'\)", line):
            where = found.setdefault(var, (default, []))[1]
            if output not in where and not line.startswith("  target:"):
                where.append(output)
    return [(v, d, ", ".join(w) or "the profile's `target:`") for v, (d, w) in found.items()]


def settings_page() -> str:
    out = [
        "# Settings reference",
        "",
        "Every setting of `tally.settings.Settings`, written from the class itself when the",
        "site is built. Each resolves in this order: a command-line flag where the command has",
        "one (`--project-dir`, `--target`, `--host`, `--port`, `--flight-port`...), then the",
        "environment variable, then the default. A bad value is one line naming the setting and",
        "what it must be. Lists are JSON (`TALLY_CORS_ORIGINS='[\"https://app.example.com\"]'`);",
        "booleans are `true`/`false` (or `1`/`0`). Secrets are never printed or logged.",
        "",
        "tally finds the dbt project, profile and manifest as dbt does, so dbt's own variables",
        "work too: `DBT_PROJECT_DIR`, `DBT_PROFILES_DIR`, `DBT_TARGET` and `DBT_TARGET_PATH`",
        "(each after its `TALLY_*` counterpart).",
        "",
        "## The settings",
    ]
    for var, type_, default, description in settings_fields():
        text = _cell(f"*{type_}*, default {default}. {description}").rstrip()
        out += ["", f"### `{var}`", "", text]
    out += [
        "",
        "## Read outside the settings",
        "",
        "| variable | what it does |",
        "|---|---|",
    ]
    out += [f"| `{var}` | {_cell(text)} |" for var, text in OTHER_VARIABLES.items()]
    out += [
        "",
        "## The demo profile",
        "",
        "`dbt_project/profiles.yml` reads these (with `env_var()`, as dbt does), so the same",
        "project builds and serves on DuckDB, PostgreSQL or Spark:",
        "",
        "| variable | default | output |",
        "|---|---|---|",
    ]
    out += [f"| `{v}` | {f'`{d}`' if d else 'empty'} | {w} |" for v, d, w in profile_variables()]
    return "\n".join(out) + "\n"


# --- command line -----------------------------------------------------------------------------


def _subcommands(parser: argparse.ArgumentParser, prefix: str) -> list[tuple[str, str, Any]]:
    """(full name, help, parser) of every subcommand under `parser`, depth first."""
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                full = f"{prefix} {name}"
                out.append((full, helps.get(name, ""), sub))
                out.extend(_subcommands(sub, full))
    return out


def subcommands() -> list[tuple[str, str, argparse.ArgumentParser]]:
    """Every `tally` subcommand, as the parser has it; `tally generate` with its own parser."""
    from tally.cli import parser
    from tally.datagen.__main__ import parser as generate_parser

    out = []
    for full, help_, sub in _subcommands(parser(), "tally"):
        if full == "tally generate":
            sub = generate_parser(prog="tally generate")
        out.append((full, help_, sub))
    return out


def _is_group(parser: argparse.ArgumentParser) -> bool:
    return any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)


def _argument(action: argparse.Action) -> tuple[str, str]:
    """(the argument as typed, what it does) of one parser action."""
    if not action.option_strings:
        name = f"`{action.metavar or action.dest}`"
    elif action.nargs == 0 or action.choices is not None:
        name = ", ".join(f"`{o}`" for o in action.option_strings)
    else:
        metavar = action.metavar or action.dest.upper()
        name = ", ".join(f"`{o} {metavar}`" for o in action.option_strings)
    notes = [action.help or ""]
    if action.choices is not None:
        notes.append("one of " + ", ".join(f"`{c}`" for c in action.choices))
    default = action.default
    shown = action.option_strings and action.nargs != 0 and default not in (None, [], False)
    if shown and "default" not in (action.help or ""):
        notes.append(f"default `{default}`")
    if isinstance(action, argparse._AppendAction) and "repeatable" not in (action.help or ""):
        notes.append("repeatable")
    if action.required and action.option_strings:
        notes.append("required")
    text = "; ".join(n for n in notes if n)
    return name, " ".join(text.split())


def _project_flags() -> list[argparse.Action]:
    """The flags every project command takes (`tally.cli.common.project_flags`)."""
    from tally.cli.common import project_flags

    p = argparse.ArgumentParser(add_help=False)
    project_flags(p)
    return list(p._actions)


def _is_common(action: argparse.Action) -> bool:
    """One of the project flags, as `project_flags` declares it (`tally generate`'s own
    `--target` and `--project-dir` mean something else and are listed with it)."""
    return any(action.option_strings == a.option_strings and action.help == a.help
               for a in _project_flags())  # fmt: skip


def cli_page() -> str:
    from tally.cli import parser

    root = parser()
    out = [
        "# Command-line reference",
        "",
        "Every subcommand of `tally` and its arguments, written from the command's own parser",
        "(`tally.cli.parser()`) when the site is built; `tally <command> --help` prints the same.",
        "",
        f"{root.description}",
        "",
        "Exit codes: **0** success, **1** a server-side or warehouse fault (or, for `validate`,",
        "`monitor` and `diff --fail-on-breaking`, a finding), **2** the caller's mistake (a bad",
        "flag, an unknown metric, an invalid filter, a `--project-dir` or `--target` that does",
        "not exist). Errors are one line on stderr, never a traceback (`TALLY_DEBUG=1` shows one).",
        "",
        "## Flags every project command takes",
        "",
        "| argument | what |",
        "|---|---|",
    ]
    for action in _project_flags():
        name, help_ = _argument(action)
        out.append(f"| {name} | {_cell(help_)} |")
    for full, help_, sub in subcommands():
        out += ["", f"## {full}", ""]
        if help_:
            out += [help_[0].upper() + help_[1:] + ("" if help_.endswith(".") else "."), ""]
        if sub.description and sub.description != help_:
            out += [" ".join(sub.description.split()), ""]
        if _is_group(sub):
            names = [f"`{f}`" for f, _, s in subcommands() if f.startswith(full + " ")]
            out += [f"Subcommands: {', '.join(names)}.", ""]
            continue
        formatter = argparse.HelpFormatter(sub.prog, width=80)
        formatter.add_usage(None, [a for a in sub._actions if not _is_common(a)], [], prefix="")
        out += ["```text", formatter.format_help().strip(), "```", ""]
        rows = []
        common = False
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if _is_common(action):
                common = True
                continue
            rows.append(_argument(action))
        if rows:
            out += ["| argument | what |", "|---|---|"]
            out += [f"| {n} | {_cell(h)} |" for n, h in rows]
            out.append("")
        if common:
            out += ["With the [project flags](#flags-every-project-command-takes).", ""]
        if sub.epilog:
            out += [" ".join(sub.epilog.split()), ""]
    return "\n".join(out).rstrip() + "\n"


# --- GraphQL ----------------------------------------------------------------------------------


def graphql_page() -> str:
    from tally.api.dbtsl.schema import schema as semantic_layer
    from tally.api.graphql.schema import schema as analyst

    return "\n".join([
        "# GraphQL schemas",
        "",
        "Both schemas as the server serves them, written from the schemas themselves when the",
        "site is built (GraphiQL at either path shows the same, with its documentation).",
        "",
        "## `/graphql`",
        "",
        "tally's own schema: the catalog and one `query` field over the request model of REST",
        "(see [the API](../api.md#graphql)).",
        "",
        "```graphql",
        str(analyst).strip(),
        "```",
        "",
        "## `/api/graphql`",
        "",
        "The dbt Semantic Layer's GraphQL API, for its existing clients (see",
        "[dbt Semantic Layer clients](../dbt-semantic-layer.md)).",
        "",
        "```graphql",
        str(semantic_layer).strip(),
        "```",
        "",
    ])  # fmt: skip


# --- root files -------------------------------------------------------------------------------


def mirror(text: str) -> str:
    """A root file's markdown as a page of the site: `docs/x.md` links become `x.md`, and links
    to the other mirrored files point at their pages."""

    def link(m: re.Match[str]) -> str:
        target = m.group(2)
        path, _, anchor = target.partition("#")
        if path.startswith("docs/"):
            path = path.removeprefix("docs/")
        elif path in MIRRORED:
            path = MIRRORED[path]
        return f"]({m.group(1) or ''}{path}{'#' + anchor if anchor else ''})"

    return re.sub(r"\]\((\./)?([^)\s]+)\)", link, text)


GENERATED = {
    "reference/settings.md": settings_page,
    "reference/cli.md": cli_page,
    "reference/graphql.md": graphql_page,
    **{page: (lambda f=f: mirror((ROOT / f).read_text())) for f, page in MIRRORED.items()},
}


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    _this_checkout()
    for src_uri, make in GENERATED.items():
        if files.get_file_from_path(src_uri) is not None:
            raise ValueError(f"docs/{src_uri} is generated at build time: remove the file")
        files.append(File.generated(config, src_uri, content=make()))
    return files
