"""tally.yml, the project's own file beside dbt_project.yml: authentication and access policies
(`auth:`, `policies:`), where notifications go (`webhooks:`, `email:`) and validate's rules
(`validate:`). Read here, once per change of the file, for every section; each section's reader
(service/security/config.py, notify/config.py, validate/config.py) walks its part with
`YamlReader`, so that every mistake reads alike:

    <path>:<line>: <key>: <what is wrong> (<the fix>).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tally.errors import ConfigurationError, suggestion_suffix

CONFIG_FILE = "tally.yml"
SECTIONS = ("auth", "policies", "webhooks", "email", "validate")


class _Entries(dict):
    """A mapping's values by key, with the key nodes kept for their line numbers."""

    key_nodes: dict[str, Any]


class YamlReader:
    """Reads composed YAML nodes into plain values, with file:line in every error."""

    def __init__(self, file: Path) -> None:
        self.file = file

    def where(self, node: Any) -> str:
        mark = getattr(node, "start_mark", None)
        return f"{self.file}:{mark.line + 1}" if mark is not None else str(self.file)

    def error(self, node: Any, message: str) -> ConfigurationError:
        end = "" if message.endswith(("?", ".")) else "."
        return ConfigurationError(f"{self.where(node)}: {message}{end}")

    @staticmethod
    def empty(node: Any) -> bool:
        """No node, or a YAML null (`key:` with nothing after it)."""
        return node is None or (
            isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"
        )

    def mapping(self, node: Any, what: str) -> dict[str, Any]:
        """A mapping's entries by key; an empty node is an empty mapping."""
        if self.empty(node):
            return {}
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, f"{what} must be a mapping")
        entries = _Entries((str(k.value), v) for k, v in node.value)
        entries.key_nodes = {str(k.value): k for k, _ in node.value}
        return entries

    def sequence(self, node: Any, what: str) -> list[Any]:
        if self.empty(node):
            return []
        if not isinstance(node, yaml.SequenceNode):
            raise self.error(node, f"{what} must be a list")
        return list(node.value)

    def known(self, mapping: dict[str, Any], keys: set[str] | tuple[str, ...], what: str) -> None:
        unknown = sorted(set(mapping) - set(keys))
        if unknown:
            # The key's own line: its value may start lines below (a list, a mapping).
            node = getattr(mapping, "key_nodes", {}).get(unknown[0], mapping[unknown[0]])
            hint, _ = suggestion_suffix(unknown[0], keys)
            raise self.error(node, f"unknown key {unknown[0]!r} under {what} (known: "
                             f"{', '.join(sorted(keys))}).{hint}")  # fmt: skip

    def plain(self, node: Any) -> Any:
        return yaml.safe_load(yaml.serialize(node)) if node is not None else None

    def string(self, node: Any, what: str) -> str | None:
        value = self.plain(node)
        if value is not None and not isinstance(value, str):
            raise self.error(node, f"{what} must be text")
        return value

    def strings(self, node: Any, what: str) -> list[str] | None:
        value = self.plain(node)
        if value is None:
            return None
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(node, f"{what} must be a list of names")
        return value

    def boolean(self, node: Any, what: str, default: bool) -> bool:
        value = self.plain(node)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(node, f"{what} must be true or false")
        return value

    def number(self, node: Any, what: str, default: float) -> float:
        value = self.plain(node)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise self.error(node, f"{what} must be a number of seconds")
        return float(value)

    def path(self, node: Any, project_dir: Path, what: str) -> Path | None:
        value = self.string(node, what)
        if not value:
            return None
        path = Path(value).expanduser()
        return path if path.is_absolute() else project_dir / path


@dataclass(frozen=True)
class TallyFile:
    """The file as read: its top-level sections as composed YAML nodes (line numbers kept)."""

    path: Path
    exists: bool
    sections: dict[str, Any]

    @property
    def reader(self) -> YamlReader:
        return YamlReader(self.path)

    def section(self, name: str) -> Any:
        """A section's node, or None when the file has none."""
        return self.sections.get(name)


_cache: dict[Path, tuple[str | None, TallyFile]] = {}
_lock = threading.Lock()


def read_tally_file(project_dir: Path, path: Path | None = None) -> TallyFile:
    """<project_dir>/tally.yml (or `path`), parsed once per change of its text (a stat stamp
    could miss two same-size writes within one clock tick); a file that does not exist has no
    sections. ConfigurationError, naming file and line, when it does not read or names a
    section tally does not know."""
    path = (path or project_dir / CONFIG_FILE).resolve()
    try:
        text: str | None = path.read_text()
    except FileNotFoundError:
        text = None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigurationError(f"{path}: cannot be read: {e}.") from None
    with _lock:
        cached = _cache.get(path)
        if cached is not None and cached[0] == text:
            return cached[1]
    read = TallyFile(path, False, {}) if text is None else _parse(path, text)
    with _lock:
        _cache[path] = (text, read)
    return read


def _parse(path: Path, text: str) -> TallyFile:
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as e:
        raise ConfigurationError(f"{yaml_problem(path, e)}.") from None
    if root is None:
        return TallyFile(path, True, {})
    reader = YamlReader(path)
    top = reader.mapping(root, "the file")
    reader.known(top, SECTIONS, "the file")
    return TallyFile(path, True, top)


def yaml_problem(path: Path, e: yaml.YAMLError) -> str:
    """One line: file:line: invalid YAML: what is wrong (PyYAML's own message spans several)."""
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    context = getattr(e, "context", None)
    text = f"{context}, {problem}" if context else problem
    return f"{where}: invalid YAML: {' '.join(str(text).split())}"
