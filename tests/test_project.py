"""Finding the dbt project, its profile, target and target path the way dbt does (tally.project),
each miss one line naming what was looked at."""

from __future__ import annotations

from pathlib import Path

import pytest

from tally.errors import ConfigurationError
from tally.project import find_profiles_dir, find_project_dir, read_profile_target, read_project
from tally.settings import Settings, load_settings


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in ("DBT_PROJECT_DIR", "DBT_PROFILES_DIR", "DBT_TARGET", "DBT_TARGET_PATH",
                 "TALLY_TARGET", "TALLY_PROJECT_DIR", "TALLY_PROFILES_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def project(at: Path, profile: str = "shop", extra: str = "") -> Path:
    at.mkdir(parents=True, exist_ok=True)
    (at / "dbt_project.yml").write_text(f"name: shop\nprofile: {profile}\n{extra}")
    return at


def profiles(at: Path, text: str | None = None) -> Path:
    at.mkdir(parents=True, exist_ok=True)
    (at / "profiles.yml").write_text(text or """
shop:
  target: dev
  outputs:
    dev: {type: duckdb, path: dev.duckdb}
    prod:
      type: duckdb
      path: "{{ env_var('SHOP_DB', 'prod.duckdb') }}"
      threads: "{{ env_var('SHOP_THREADS', '4') | as_number }}"
""")
    return at


def test_project_dir_order(clean_env, monkeypatch):
    here = project(clean_env)
    assert find_project_dir() == here.resolve()  # the current folder
    sub = project(clean_env / "elsewhere")
    monkeypatch.setenv("DBT_PROJECT_DIR", str(sub))
    assert find_project_dir() == sub.resolve()
    given = project(clean_env / "given")
    assert find_project_dir(given) == given.resolve()  # the flag wins


def test_project_dir_falls_back_to_dbt_project(clean_env):
    nested = project(clean_env / "dbt_project")
    assert find_project_dir() == nested.resolve()


def test_no_project_names_what_was_looked_at(clean_env):
    with pytest.raises(ConfigurationError) as e:
        find_project_dir()
    message = e.value.message
    assert "No dbt project found" in message and str(clean_env) in message
    assert "DBT_PROJECT_DIR (not set)" in message and "--project-dir" in message
    with pytest.raises(ConfigurationError, match="is not a dbt project"):
        find_project_dir(clean_env / "nowhere")


def test_profiles_dir_order(clean_env, monkeypatch):
    root = project(clean_env)
    home = profiles(clean_env / "home" / ".dbt")
    assert find_profiles_dir(root) == home.resolve()
    profiles(root)
    assert find_profiles_dir(root) == root.resolve()  # the project folder before ~/.dbt
    env = profiles(clean_env / "env-profiles")
    monkeypatch.setenv("DBT_PROFILES_DIR", str(env))
    assert find_profiles_dir(root) == env.resolve()
    flag = profiles(clean_env / "flag")
    assert find_profiles_dir(root, flag) == flag.resolve()


def test_no_profiles_names_each_place(clean_env):
    root = project(clean_env)
    with pytest.raises(ConfigurationError) as e:
        find_profiles_dir(root)
    assert "profiles.yml not found" in e.value.message
    assert str(clean_env / "home" / ".dbt") in e.value.message
    assert "DBT_PROFILES_DIR" in e.value.message


def test_target_order_and_env_var_rendering(clean_env, monkeypatch):
    root = project(clean_env)
    profiles(root)
    assert read_profile_target(root)["target_name"] == "dev"
    monkeypatch.setenv("DBT_TARGET", "prod")
    prod = read_profile_target(root)
    assert prod["target_name"] == "prod" and prod["path"] == "prod.duckdb"
    assert prod["threads"] == 4  # as_number
    monkeypatch.setenv("SHOP_DB", "/data/shop.duckdb")
    assert read_profile_target(root)["path"] == "/data/shop.duckdb"
    monkeypatch.setenv("TALLY_TARGET", "dev")  # tally's own setting before dbt's
    assert read_profile_target(root)["target_name"] == "dev"
    assert read_profile_target(root, target="prod")["target_name"] == "prod"  # the flag wins


def test_profile_errors_list_what_exists(clean_env):
    root = project(clean_env)
    profiles(root)
    with pytest.raises(ConfigurationError, match="targets: dev, prod"):
        read_profile_target(root, target="staging")
    other = project(clean_env / "other", profile="missing")
    profiles(other)
    with pytest.raises(ConfigurationError, match="profiles there: shop"):
        read_profile_target(other)


def test_a_required_env_var_is_named(clean_env):
    # As dbt reads profiles: without `target:` it looks for an output named "default", and a
    # `password` it cannot render is kept as written (tests/project/ shows both).
    root = project(clean_env)
    profiles(root, "shop:\n  target: dev\n  outputs:\n    dev:\n      type: postgres\n"
             "      host: \"{{ env_var('PG_PW') }}\"\n")
    with pytest.raises(ConfigurationError, match="environment variable PG_PW"):
        read_profile_target(root)


def test_target_path_from_the_project_and_the_environment(clean_env, monkeypatch):
    root = project(clean_env, extra="target-path: build\n")
    assert read_project(root).target_path == root / "build"
    monkeypatch.setenv("DBT_TARGET_PATH", "/tmp/elsewhere")
    assert read_project(root).target_path == Path("/tmp/elsewhere")
    monkeypatch.delenv("DBT_TARGET_PATH")
    settings = Settings(project_dir=root)
    assert settings.resolved_manifest_path() == (root / "build" / "semantic_manifest.json")


def test_bad_yaml_says_the_line(clean_env):
    root = project(clean_env)
    (root / "dbt_project.yml").write_text("name: shop\nprofile: [unclosed\n")
    with pytest.raises(ConfigurationError, match=r"line \d"):
        read_project(root)


def test_a_bad_setting_is_one_line(clean_env):
    with pytest.raises(ConfigurationError) as e:
        load_settings(port=0)
    assert "port" in e.value.message and "TALLY_PORT" in e.value.message
    assert "\n" not in e.value.message and "ValidationError" not in e.value.message
