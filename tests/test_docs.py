"""The documentation site (mkdocs.yml, docs/): the references written at build time list every
setting and every subcommand, the hand-written pages name every REST route, error code and
format the code has, the README stays short and maps every page, no file points outside the
repository, and `mkdocs build --strict` passes (a broken link or anchor fails it)."""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.paths import ROOT

DOCS = ROOT / "docs"


def _load_hooks():
    spec = importlib.util.spec_from_file_location("tally_docs_hooks", DOCS / "hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hooks = _load_hooks()


def _page(name: str) -> str:
    return (DOCS / name).read_text()


def test_the_settings_page_lists_every_setting_with_its_description():
    from tally.settings import Settings

    page = hooks.settings_page()
    for name, field in Settings.model_fields.items():
        assert f"### `TALLY_{name.upper()}`" in page, name
        assert field.description, f"Settings.{name} needs a description for the settings page"
    assert "*int*, default `100000` (" not in page  # only byte sizes get a unit
    assert "### `TALLY_CACHE_MAX_BYTES`\n\n*int*, default `268435456` (256 MiB)." in page


def _names_in(paths: list[Path]) -> set[str]:
    pattern = re.compile(r"\bTALLY_[A-Z0-9_]*[A-Z0-9]\b")
    return {name for path in paths for name in pattern.findall(path.read_text())}


def test_every_tally_variable_the_code_reads_is_on_the_settings_page():
    read = _names_in([*(ROOT / "server").rglob("*.py"), ROOT / "dbt_project" / "profiles.yml"])
    page = hooks.settings_page()
    assert not {n for n in read if f"`{n}`" not in page}
    # The variables listed by hand are still read somewhere (a stale entry fails here).
    anywhere = read | _names_in([*(ROOT / "clients").glob("dashboard/example/*.py")])
    assert not set(hooks.OTHER_VARIABLES) - anywhere
    tests_and_make = _names_in([*(ROOT / "tests").rglob("*.py"), ROOT / "Makefile"])
    development = _page("development.md")
    for name in hooks.TEST_VARIABLES:
        assert name in tests_and_make and name in development, name


def _walk(parser: argparse.ArgumentParser, prefix: str) -> list[tuple[str, Any]]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += [(f"{prefix} {name}", sub), *_walk(sub, f"{prefix} {name}")]
    return out


def test_the_cli_page_lists_every_subcommand_and_flag():
    from tally.cli import parser
    from tally.datagen.__main__ import parser as generate_parser

    page = hooks.cli_page()
    commands = _walk(parser(), "tally")
    assert len(commands) >= 18
    for full, sub in commands:
        assert f"\n## {full}\n" in page, full
        if full == "tally generate":
            sub = generate_parser()
        for action in sub._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert f"`{option}" in page, (full, option)
    section = page[page.index("## tally generate"):page.index("## tally rollups")]
    assert "`--scale SCALE`" in section and "`--anomalies ANOMALIES`" in section


def test_the_graphql_page_has_both_schemas():
    page = hooks.graphql_page()
    assert "## `/graphql`" in page and "## `/api/graphql`" in page
    assert "createQuery" in page and "savedQueries" in page


def _routes() -> set[str]:
    from fastapi import APIRouter

    from tally.api import dashboards
    from tally.api.rest import (
        admin,
        catalog,
        embed,
        exports,
        queries,
        query,
        refresh,
        saved_queries,
    )

    paths = set()
    for module in (admin, catalog, embed, exports, queries, query, refresh, saved_queries,
                   dashboards):  # fmt: skip
        for value in vars(module).values():
            if isinstance(value, APIRouter):
                paths |= {route.path for route in value.routes}
    return paths


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


def test_the_api_page_names_every_rest_route():
    page = _shape(_page("api.md"))
    routes = _routes()
    assert "/api/v1/query" in routes and "/api/v1/queries/{query_id}/result" in routes
    assert not {r for r in routes if _shape(r) not in page}


def test_the_api_page_names_every_error_code_and_format():
    import importlib
    import pkgutil

    import tally
    from tally import errors
    from tally.core import formats

    # Every module, so that every error class exists whatever this process imported before.
    for module in pkgutil.walk_packages(tally.__path__, "tally."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    page = _page("api.md")
    seen, todo = set(), [errors.TallyError]
    while todo:
        cls = todo.pop()
        seen.add(cls.code)
        todo += cls.__subclasses__()
    assert not {code for code in seen if f"`{code}`" not in page}
    for fmt in (*formats.answers(), *formats.exports()):
        assert f"`{fmt.name}`" in page and f"`{fmt.media_type}`" in page, fmt.name


def _nav_pages(nav: list) -> list[str]:
    pages = []
    for item in nav:
        for value in (item.values() if isinstance(item, dict) else [item]):
            pages += _nav_pages(value) if isinstance(value, list) else [value]
    return pages


def test_the_readme_is_short_and_maps_every_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    links = re.findall(r"\]\(([^)#\s]+)", readme)
    assert all((ROOT / link).exists() for link in links), links
    nav = _nav_pages(yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"])
    for page in nav:
        if page in hooks.GENERATED:
            continue  # made at build time: the home page, the references
        assert (DOCS / page).exists(), page
        assert f"(docs/{page})" in readme, f"README's map of the docs lacks docs/{page}"
    assert "(ARCHITECTURE.md)" in readme
    on_disk = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert on_disk <= set(nav), "a page under docs/ that the nav does not list"


def test_no_file_of_the_repository_points_outside_it():
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()
    outside = ("../" + "shared", "DESIGN" + ".md", "GLOSSARY" + ".md")
    found = []
    for name in files:
        path = ROOT / name
        if not path.is_file() or path.suffix in (".png", ".duckdb", ".parquet"):
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        found += [f"{name}: {word}" for word in outside if word in text]
    assert not found


def test_mkdocs_builds_the_site_strictly(tmp_path: Path):
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
         "--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(site)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    took = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert took < 60, f"mkdocs build took {took:.0f} s"
    settings = (site / "reference" / "settings" / "index.html").read_text()
    assert "TALLY_QUERY_TIMEOUT_SECONDS" in settings
    assert "tally rollups build" in (site / "reference" / "cli" / "index.html").read_text()
    home = (site / "index.html").read_text()
    assert "On your own dbt project" in home and 'href="api/"' in home
    assert "Where to add" in (site / "architecture" / "index.html").read_text()


@pytest.mark.parametrize("text, expected", [
    ("[api](docs/api.md#errors)", "[api](api.md#errors)"),
    ("[a](ARCHITECTURE.md)", "[a](architecture.md)"),
    ("[r](README.md)", "[r](index.md)"),
    ("[x](https://example.com/docs/a.md)", "[x](https://example.com/docs/a.md)"),
])  # fmt: skip
def test_root_files_links_become_the_sites(text: str, expected: str):
    assert hooks.mirror(text) == expected
