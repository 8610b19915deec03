"""tally.yml has one owner (tally.project.tally_file): read once per change of its text, its
top-level sections checked, and every section's mistakes reported alike, `file:line: key: what
is wrong.`, on one line. The model paths (dashboards, monitors, what validate locates) have one
rule too: dbt's, else the file's own text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tally.errors import ConfigurationError
from tally.notify.config import load_notify_config
from tally.project import model_paths
from tally.project.tally_file import read_tally_file
from tally.service.security.config import load_security
from tally.validate.config import ConfigError, load_config

ONE_LINE = re.compile(r"^(?P<file>/\S+tally\.yml):(?P<line>\d+): [^\n]+[.?]$")


def _write(folder: Path, text: str) -> Path:
    path = folder / "tally.yml"
    path.write_text(text)
    return path


def _one_line(error: Exception, path: Path, line: int) -> str:
    message = str(error)
    match = ONE_LINE.match(message)
    assert match, message
    assert Path(match["file"]) == path.resolve() and int(match["line"]) == line, message
    return message


def test_an_unknown_section_names_its_line_and_the_section_meant(tmp_path):
    path = _write(tmp_path, "auth:\n  api_keys: true\npolices:\n  - role: '*'\n")
    with pytest.raises(ConfigurationError) as raised:
        read_tally_file(tmp_path)
    message = _one_line(raised.value, path, 3)
    assert "unknown key 'polices'" in message and "Did you mean 'policies'?" in message
    # Every reader of the file refuses it the same way, whichever section it wants.
    for load in (load_security, load_notify_config):
        with pytest.raises(ConfigurationError) as again:
            load(tmp_path)
        assert str(again.value) == message
    with pytest.raises(ConfigError) as from_validate:
        load_config(tmp_path)
    assert message in str(from_validate.value)


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("auth:\n  api_keys: 'yes please'\n", 2, "auth.api_keys must be true or false"),
        ("auth:\n  jwt:\n    issuer: [a, b]\n", 3, "must be text"),
        ("policies:\n  - role: analyst\n    row_filter: x\n", 3, "Did you mean 'row_filters'?"),
        ("webhooks:\n  - url: ftp://example.com/hook\n", 2, "http"),
        ("webhooks:\n  - url: https://h.io\n    events: [build.faild]\n", 3, "Did you mean"),
        ("email:\n  to: 42\n", 2, "email.to"),
        ("validate:\n  rules: [owners]\n", 2, "must be a mapping of rule id to setting"),
    ],
)
def test_every_section_reports_its_mistakes_alike(tmp_path, text, line, words):
    path = _write(tmp_path, text)
    section = text.split(":", 1)[0]
    load = {"auth": load_security, "policies": load_security, "webhooks": load_notify_config,
            "email": load_notify_config, "validate": load_config}[section]  # fmt: skip
    with pytest.raises((ConfigurationError, ConfigError)) as raised:
        load(tmp_path)
    assert words in _one_line(raised.value, path, line)


def test_invalid_yaml_is_one_line_with_its_place(tmp_path):
    path = _write(tmp_path, "auth:\n  api_keys: true\n policies: [\n")
    with pytest.raises(ConfigurationError) as raised:
        read_tally_file(tmp_path)
    message = str(raised.value)
    assert "\n" not in message and message.startswith(f"{path.resolve()}:")
    assert "invalid YAML" in message


def test_empty_sections_and_an_empty_file_are_the_defaults(tmp_path):
    _write(tmp_path, "auth:\npolicies:\nwebhooks:\nemail:\nvalidate:\n")
    security = load_security(tmp_path)
    assert security.policies == () and security.api_keys and security.jwt is None
    notify = load_notify_config(tmp_path)
    assert notify.webhooks == () and not notify.email
    assert load_config(tmp_path).rules == {}
    _write(tmp_path, "")
    assert read_tally_file(tmp_path).sections == {}
    missing = read_tally_file(tmp_path / "elsewhere")
    assert not missing.exists and missing.sections == {}


def test_the_file_is_read_again_when_its_text_changes_even_at_the_same_size(tmp_path):
    _write(tmp_path, "policies:\n  - role: aa\n")
    first = load_security(tmp_path)
    assert [p.role for p in first.policies] == ["aa"]
    assert read_tally_file(tmp_path) is read_tally_file(tmp_path)  # parsed once
    _write(tmp_path, "policies:\n  - role: bb\n")  # same size, same second
    assert [p.role for p in load_security(tmp_path).policies] == ["bb"]


def test_an_explicit_validate_config_that_does_not_exist_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"does not exist"):
        load_config(tmp_path, tmp_path / "nowhere.yml")


PROJECT = """name: shaped
version: '1.0'
config-version: 2
profile: shaped
model-paths: ["marts", "semantic"]
"""
PROFILES = """shaped:
  target: dev
  outputs:
    dev:
      type: duckdb
      path: shaped.duckdb
"""


def test_model_paths_are_dbt_s_and_the_file_s_own_when_dbt_cannot_load_it(tmp_path):
    (tmp_path / "dbt_project.yml").write_text(PROJECT)
    (tmp_path / "profiles.yml").write_text(PROFILES)
    expected = [(tmp_path / "marts").resolve(), (tmp_path / "semantic").resolve()]
    assert model_paths(tmp_path) == expected
    # A project dbt refuses (a version it does not meet) still has its folders found.
    (tmp_path / "dbt_project.yml").write_text(PROJECT + "require-dbt-version: '>=99.0.0'\n")
    assert model_paths(tmp_path) == expected
    (tmp_path / "dbt_project.yml").write_text("name: [unclosed\n")
    assert model_paths(tmp_path) == [(tmp_path / "models").resolve()]


def test_dashboards_and_monitors_are_found_in_every_model_path(tmp_path):
    from tally.core.dashboards import dashboard_dirs
    from tally.monitor.config import monitor_files

    (tmp_path / "dbt_project.yml").write_text(PROJECT)
    (tmp_path / "profiles.yml").write_text(PROFILES)
    (tmp_path / "semantic" / "monitors").mkdir(parents=True)
    (tmp_path / "semantic" / "monitors" / "m.yml").write_text("monitors: []\n")
    assert dashboard_dirs(tmp_path) == [
        (tmp_path / "marts" / "dashboards").resolve(),
        (tmp_path / "semantic" / "dashboards").resolve(),
    ]
    assert monitor_files(tmp_path) == [(tmp_path / "semantic" / "monitors" / "m.yml").resolve()]
