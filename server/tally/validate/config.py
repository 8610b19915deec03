"""The project file (`dbt_project/tally.yml`), its `validate:` section:

    validate:
      require_owner: true          # every metric's meta names an owner
      rules:
        snake_case_name: {severity: warning}
        duplicate_metric: {enabled: false}
        dbt_warning: off           # shorthand: off | warning | error

A mistake in the file is the caller's (exit code 2), with a suggestion for a misspelt rule id.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from tally.errors import CallerError, suggestion_suffix
from tally.validate.findings import RULES, Finding, Severity

CONFIG_FILE = "tally.yml"


class ConfigError(CallerError):
    code = "invalid_config"


@dataclass(frozen=True)
class RuleConfig:
    enabled: bool = True
    severity: Severity | None = None  # None: the rule's default


@dataclass(frozen=True)
class ValidateConfig:
    path: Path | None = None
    require_owner: bool = False
    rules: dict[str, RuleConfig] = field(default_factory=dict)

    def enabled(self, rule_id: str) -> bool:
        return self.rules.get(rule_id, RuleConfig()).enabled

    def apply(self, findings: list[Finding]) -> list[Finding]:
        """Drop findings of disabled rules; give the others their configured severity."""
        out = []
        for f in findings:
            rc = self.rules.get(f.rule, RuleConfig())
            if not rc.enabled:
                continue
            out.append(replace(f, severity=rc.severity) if rc.severity else f)
        return out


def load_config(project_dir: Path, path: Path | None = None) -> ValidateConfig:
    """`path`, else <project_dir>/tally.yml, else the defaults."""
    explicit = path is not None
    path = path or project_dir / CONFIG_FILE
    if not path.exists():
        if explicit:
            raise ConfigError(f"Config file {path} does not exist.")
        return ValidateConfig()
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(_yaml_error(path, e)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot be read: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with a `validate:` section.")
    section = data.get("validate") or {}
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: `validate:` must be a mapping.")
    unknown = set(section) - {"require_owner", "rules"}
    if unknown:
        raise ConfigError(
            f"{path}: unknown key(s) under validate: {', '.join(sorted(unknown))} "
            "(known: require_owner, rules)."
        )
    require_owner = section.get("require_owner", False)
    if not isinstance(require_owner, bool):
        raise ConfigError(f"{path}: validate.require_owner must be true or false.")
    rules_section = section.get("rules") or {}
    if not isinstance(rules_section, dict):
        kind = "list" if isinstance(rules_section, list) else type(rules_section).__name__
        raise ConfigError(
            f"{path}: validate.rules must be a mapping of rule id to setting (e.g. "
            f"`snake_case_name: warning`), not a {kind}."
        )
    rules = {
        rule_id: _rule_config(path, str(rule_id), value)
        for rule_id, value in rules_section.items()
    }
    return ValidateConfig(path=path, require_owner=require_owner, rules=rules)


def _yaml_error(path: Path, e: yaml.YAMLError) -> str:
    """One line: file:line: what is wrong (PyYAML's own message spans several)."""
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    context = getattr(e, "context", None)
    text = f"{context}, {problem}" if context else problem
    return f"{where}: invalid YAML: {' '.join(text.split())}"


def _rule_config(path: Path, rule_id: str, value: Any) -> RuleConfig:
    if rule_id not in RULES:
        hint, _ = suggestion_suffix(rule_id, RULES)
        raise ConfigError(
            f"{path}: unknown rule '{rule_id}'.{hint} (`tally validate --list-rules` lists them)"
        )
    if value is False or value == "off":  # YAML reads a bare `off` as False
        return RuleConfig(enabled=False)
    if value is True:
        return RuleConfig()
    if isinstance(value, str):
        return RuleConfig(severity=_severity(path, rule_id, value))
    if not isinstance(value, dict) or set(value) - {"enabled", "severity"}:
        raise ConfigError(
            f"{path}: rule '{rule_id}' takes {{enabled: true|false, severity: error|warning}} "
            "or one of off, warning, error."
        )
    enabled = value.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{path}: rules.{rule_id}.enabled must be true or false.")
    severity = value.get("severity")
    return RuleConfig(
        enabled=enabled, severity=_severity(path, rule_id, severity) if severity else None
    )


def _severity(path: Path, rule_id: str, value: str) -> Severity:
    try:
        return Severity(str(value).lower())
    except ValueError:
        raise ConfigError(
            f"{path}: rules.{rule_id}: severity must be error or warning, not {value!r}."
        ) from None
