"""The project file tally.yml (beside dbt_project.yml), its `validate:` section:

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

from tally.errors import CallerError, ConfigurationError, suggestion_suffix
from tally.project.tally_file import TallyFile, YamlReader, read_tally_file
from tally.validate.findings import RULES, Finding, Severity


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
    """`path`, else <project_dir>/tally.yml, else the defaults. A mistake is the caller's
    (ConfigError, exit 2), one line naming file and line."""
    if path is not None and not path.exists():
        raise ConfigError(f"Config file {path} does not exist.")
    try:
        return _read(read_tally_file(project_dir, path))
    except ConfigurationError as e:
        raise ConfigError(str(e)) from None


def _read(file: TallyFile) -> ValidateConfig:
    if not file.exists:
        return ValidateConfig()
    reader = file.reader
    node = file.section("validate")
    section = reader.mapping(node, "`validate:`")
    reader.known(section, ("require_owner", "rules"), "validate")
    require_owner = reader.boolean(section.get("require_owner"), "validate.require_owner", False)
    rules_node = section.get("rules")
    if not reader.empty(rules_node) and not isinstance(rules_node, yaml.MappingNode):
        kind = "list" if isinstance(rules_node, yaml.SequenceNode) else "single value"
        raise reader.error(rules_node, "validate.rules must be a mapping of rule id to setting "
                           f"(e.g. `snake_case_name: warning`), not a {kind}")  # fmt: skip
    rules = {
        rule_id: _rule_config(reader, rule_id, value)
        for rule_id, value in reader.mapping(rules_node, "validate.rules").items()
    }
    return ValidateConfig(path=file.path, require_owner=require_owner, rules=rules)


def _rule_config(reader: YamlReader, rule_id: str, node: Any) -> RuleConfig:
    if rule_id not in RULES:
        hint, _ = suggestion_suffix(rule_id, RULES)
        raise reader.error(node, f"unknown rule '{rule_id}'.{hint} (`tally validate "
                           "--list-rules` lists them)")  # fmt: skip
    value = reader.plain(node)
    if value is False or value == "off":  # YAML reads a bare `off` as False
        return RuleConfig(enabled=False)
    if value is True:
        return RuleConfig()
    if isinstance(value, str):
        return RuleConfig(severity=_severity(reader, node, rule_id, value))
    if not isinstance(value, dict) or set(value) - {"enabled", "severity"}:
        raise reader.error(node, f"rule '{rule_id}' takes {{enabled: true|false, severity: "
                           "error|warning}} or one of off, warning, error")  # fmt: skip
    enabled = value.get("enabled", True)
    if not isinstance(enabled, bool):
        raise reader.error(node, f"rules.{rule_id}.enabled must be true or false")
    severity = value.get("severity")
    return RuleConfig(
        enabled=enabled, severity=_severity(reader, node, rule_id, severity) if severity else None
    )


def _severity(reader: YamlReader, node: Any, rule_id: str, value: str) -> Severity:
    try:
        return Severity(str(value).lower())
    except ValueError:
        raise reader.error(node, f"rules.{rule_id}: severity must be error or warning, not "
                           f"{value!r}") from None  # fmt: skip
