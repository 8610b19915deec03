"""dbt_project.yml and the profile read by dbt's own loader (tally.project): what dbt renders
when it loads a project is rendered, the rest stays text; what dbt refuses, tally refuses with
dbt's words, the file, the key and the fix, on one line. Cross-checked against what dbt itself
did with the same files (its manifest.json, its compiled SQL, its own refusals)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tally.errors import ConfigurationError
from tally.project import read_profile_target, read_project
from tests.support.corpus import in_folder


def _one_line_error(run) -> str:
    assert run.returncode == 2, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    [line] = run.stderr.strip().splitlines()
    return line


def test_hooks_vars_and_query_comment_stay_text_what_dbt_renders_is_rendered(corpus):
    project = corpus("hooks_and_flags")
    config = read_project(project.project_dir)
    raw = config.raw
    assert raw["on-run-end"] == ["{{ log('done') }}"]  # dbt's own normalising, not rendered
    assert raw["on-run-start"] == ["{{ log('starting ' ~ project_name, info=true) }}"]
    assert raw["query-comment"]["comment"].startswith("tally corpus: {{ node.unique_id")
    models = raw["models"]["hooks_and_flags"]
    assert models["+post-hook"] == ["select '{{ this.name }}' as hooked_model"]
    assert models["+pre-hook"] == "{{ log('building ' ~ this.name) }}"
    # Rendered at load time with the profile's target, as dbt did for its build:
    assert models["+materialized"] == "table"
    manifest = json.loads((project.project_dir / "target" / "manifest.json").read_text())
    orders = manifest["nodes"]["model.hooks_and_flags.orders"]["config"]
    assert orders["materialized"] == "table"
    assert [h["sql"] for h in orders["post-hook"]] == ["select '{{ this.name }}' as hooked_model"]
    assert config.target is not None and config.target["name"] == "dev"


def test_a_project_whose_vars_call_macros_is_read(corpus):
    project = corpus("macro_vars")
    config = read_project(project.project_dir)
    assert config.vars["truncate_timespan_to"] == "{{ current_timestamp() }}"
    assert config.vars["dbt_date:time_zone"] == "America/Los_Angeles"
    assert config.target_path == project.project_dir / "target"


def test_profile_filters_and_env_vars_as_dbt_renders_them(corpus, monkeypatch):
    project = corpus("profile_env")
    with in_folder(project.project_dir, monkeypatch):
        dev = read_profile_target(project.project_dir)
        assert dev == {"target_name": "dev", "type": "duckdb", "path": "corpus.duckdb",
                       "threads": 2, "disable_transactions": False}  # fmt: skip
        assert type(dev["threads"]) is int and type(dev["disable_transactions"]) is bool
        monkeypatch.setenv("PROFILE_ENV_THREADS", "3")
        monkeypatch.setenv("PROFILE_ENV_NO_TRANSACTIONS", "True")
        changed = read_profile_target(project.project_dir)
        assert changed["threads"] == 3 and changed["disable_transactions"] is True
        monkeypatch.setenv("PROFILE_ENV_TARGET", "copy")  # the profile's target: a variable
        assert read_profile_target(project.project_dir)["path"] == "copies/corpus.duckdb"
        monkeypatch.setenv("DBT_TARGET", "dev")  # dbt's variable before the profile's own
        assert read_profile_target(project.project_dir)["target_name"] == "dev"
        assert read_profile_target(project.project_dir, target="copy")["target_name"] == "copy"


def test_an_unset_env_var_without_default_is_one_line_naming_file_key_and_variable(corpus,
                                                                                   tmp_path):
    # (Another profile of the same file needs variables that are not set either: dbt renders
    # only the chosen target of the project's own profile, and so does tally; test_corpus runs
    # this project from its folder.)
    project = corpus("profile_env")
    line = _one_line_error(project.tally("list", "metrics", "--target", "needs_env"))
    assert str(project.project_dir / "profiles.yml") in line
    assert "profile_env.outputs.needs_env.path" in line
    assert "PROFILE_ENV_REQUIRED_PATH" in line and "Set it" in line
    dbt = project.dbt("parse", "--target", "needs_env", "--target-path", tmp_path / "t",
                      "--log-path", tmp_path / "logs")
    assert dbt.returncode != 0 and "PROFILE_ENV_REQUIRED_PATH" in dbt.stdout  # dbt refuses too


def test_a_password_dbt_cannot_render_is_kept_as_written(tmp_path, monkeypatch):
    """dbt's profile renderer keeps a `password` it cannot render as it is (passwords may hold
    characters that look like Jinja): tally reads it exactly so."""
    (tmp_path / "dbt_project.yml").write_text("name: p\nprofile: p\n")
    (tmp_path / "profiles.yml").write_text(
        "p:\n  target: dev\n  outputs:\n    dev:\n      type: postgres\n      host: h\n"
        "      user: u\n      port: 5432\n      dbname: d\n      schema: s\n"
        "      password: \"{{ env_var('NOT_SET_ANYWHERE') }}\"\n")
    with in_folder(tmp_path, monkeypatch):
        output = read_profile_target(tmp_path)
    assert output["password"] == "{{ env_var('NOT_SET_ANYWHERE') }}"


def test_a_profile_without_target_uses_dbts_default(tmp_path, monkeypatch):
    (tmp_path / "dbt_project.yml").write_text("name: p\nprofile: p\n")
    (tmp_path / "profiles.yml").write_text(
        "p:\n  outputs:\n    dev: {type: duckdb, path: a.duckdb}\n"
        "    default: {type: duckdb, path: b.duckdb}\n")
    with in_folder(tmp_path, monkeypatch):
        assert read_profile_target(tmp_path)["path"] == "b.duckdb"
        (tmp_path / "profiles.yml").write_text(
            "p:\n  outputs:\n    dev: {type: duckdb, path: a.duckdb}\n")
        with pytest.raises(ConfigurationError) as e:
            read_profile_target(tmp_path)
    assert "Target 'default'" in e.value.message and "no `target:`" in e.value.message
    assert "targets: dev" in e.value.message


def test_require_dbt_version_mismatch_gives_dbts_words(corpus, tmp_path, monkeypatch):
    project = corpus("hooks_and_flags").copy_to(tmp_path)
    path = project.project_dir / "dbt_project.yml"
    text = path.read_text()
    path.write_text(text.replace('require-dbt-version: [">=1.10.0", "<2.0.0"]',
                                 'require-dbt-version: ">=99.0.0"'))  # fmt: skip
    dbt = project.dbt("parse")
    assert dbt.returncode != 0
    said = "This version of dbt is not supported with the 'hooks_and_flags' package."
    assert said in dbt.stdout
    line = _one_line_error(project.tally("list", "metrics"))
    assert line.startswith(f"error: {path}: require-dbt-version: {said}")
    assert "Required version of dbt for 'hooks_and_flags': ['>=99.0.0']" in line
    assert "DBT_VERSION_CHECK=false" in line
    # dbt's own ways to skip the check (its variable, the project's flags) work for tally too.
    with in_folder(project.project_dir, monkeypatch, DBT_VERSION_CHECK="false"):
        assert read_project(project.project_dir).name == "hooks_and_flags"
    path.write_text(path.read_text().replace("\nflags:\n", "\nflags:\n  version_check: false\n"))
    with in_folder(project.project_dir, monkeypatch):
        assert read_project(project.project_dir).name == "hooks_and_flags"


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("name: p\nprofile: p\nmodel-paths: models\n",
         ["at path ['model-paths']", "dbt refuses it too"]),
        ("name: p\nprofile: p\nmodels:\n  p:\n    +schema: \"{{ target.nam.x }}\"\n",
         ["models.p.+schema", "'dict object' has no attribute 'nam'", "fix the expression"]),
        ("name: p\nprofile: p\ntarget-path: \"{{ env_var('P_TARGET_DIR') }}\"\n",
         ["target-path needs environment variable P_TARGET_DIR"]),
        ("name: p\nprofile: p\ntarget-path: \"{{ var('where') }}\"\n",
         ["target-path calls var('where')", "--vars"]),
        ("name: p\nprofile: [p\n", ["is not valid YAML: line 3: did not find expected ','"]),
        ("profile: p\n", ["has no `name:`"]),
        ("name: p\n", ["names no `profile:`"]),
        ("name: p\nprofile: p\nsource-paths: [a]\nmodel-paths: [b]\n",
         ["source-paths and model-paths cannot both be defined"]),
    ],
)  # fmt: skip
def test_what_dbt_refuses_is_one_line_with_file_and_key(tmp_path, monkeypatch, text, needles):
    (tmp_path / "dbt_project.yml").write_text(text)
    (tmp_path / "profiles.yml").write_text(
        "p:\n  target: dev\n  outputs:\n    dev: {type: duckdb, path: p.duckdb}\n")
    with in_folder(tmp_path, monkeypatch), pytest.raises(ConfigurationError) as e:
        read_project(tmp_path)
    message = e.value.message
    assert str(tmp_path / "dbt_project.yml") in message and "\n" not in message
    for needle in needles:
        assert needle in message


def test_a_failure_of_tallys_own_is_a_bug_of_tallys(tmp_path, monkeypatch):
    """What dbt's loader does not refuse but tally fails on is reported as tally's bug, never
    as the project's mistake."""
    from tally.project import dbt_calls

    (tmp_path / "dbt_project.yml").write_text("name: p\nprofile: p\n")

    def broken(project_dir: Path):
        raise KeyError("something tally did not expect")

    monkeypatch.setattr(dbt_calls, "read_partial", broken)
    with in_folder(tmp_path, monkeypatch), pytest.raises(Exception) as e:
        read_project(tmp_path)
    message = str(e.value)
    assert "bug in tally, not in your project" in message and "dbt parse" in message
    assert str(tmp_path / "dbt_project.yml") in message
