"""Element -> file:line. The manifests dbt writes do not keep line numbers, so the project's YAML
(every model path: models/ and ../semantic) is read again as a node tree, whose marks have them.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from server.validate.findings import Location

# Top-level keys of dbt property files and the element kind of their items.
_TOP = {
    "semantic_models": "semantic_model",
    "metrics": "metric",
    "saved_queries": "saved_query",
    "exposures": "exposure",
    "models": "model",
}
# Lists inside a semantic model.
_ELEMENTS = {"entities": "entity", "dimensions": "dimension", "measures": "measure"}
_SKIP_DIRS = {"target", "dbt_packages", "logs", ".build", "node_modules"}


def model_paths(project_dir: Path) -> list[Path]:
    """The folders dbt reads models (and semantic YAML) from."""
    project_file = project_dir / "dbt_project.yml"
    paths = ["models"]
    try:
        config = yaml.safe_load(project_file.read_text()) or {}
        paths = config.get("model-paths") or paths
    except (OSError, yaml.YAMLError):
        pass
    return [(project_dir / p).resolve() for p in paths]


def yaml_files(roots: list[Path]) -> list[Path]:
    files: list[Path] = []
    for root in roots:
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*.y*ml")):
            if path.suffix in (".yml", ".yaml") and not _SKIP_DIRS & set(path.parts):
                files.append(path)
    return files


class Locator:
    """Where each element is defined: (kind, name) -> file, line of its `name:`, and the lines
    of its fields. Semantic model elements are keyed `model.element` and, for lookups by a bare
    name, also indexed by their own name."""

    def __init__(self, roots: list[Path]) -> None:
        self._at: dict[tuple[str, str], Location] = {}
        self._fields: dict[tuple[str, str], dict[str, int]] = {}
        self._by_bare: dict[tuple[str, str], list[str]] = {}
        self.files = yaml_files(roots)
        for path in self.files:
            self._index(path)

    @classmethod
    def for_project(cls, project_dir: Path) -> Locator:
        return cls(model_paths(project_dir))

    def _index(self, path: Path) -> None:
        try:
            root = yaml.compose(path.read_text(), Loader=yaml.SafeLoader)
        except (OSError, yaml.YAMLError):
            return  # dbt reports unreadable YAML itself
        if not isinstance(root, yaml.MappingNode):
            return
        for key, value in root.value:
            kind = _TOP.get(key.value)
            if kind is None or not isinstance(value, yaml.SequenceNode):
                continue
            for item in value.value:
                name = self._add(path, kind, item)
                if kind == "semantic_model" and name:
                    self._index_elements(path, name, item)

    def _index_elements(self, path: Path, model: str, node: yaml.MappingNode) -> None:
        for key, value in node.value:
            kind = _ELEMENTS.get(key.value)
            if kind and isinstance(value, yaml.SequenceNode):
                for item in value.value:
                    self._add(path, kind, item, prefix=f"{model}.")

    def _add(self, path: Path, kind: str, node: yaml.Node, prefix: str = "") -> str | None:
        if not isinstance(node, yaml.MappingNode):
            return None
        fields = {k.value: k.start_mark.line + 1 for k, _ in node.value if hasattr(k, "value")}
        name = next(
            (v.value for k, v in node.value if k.value == "name" and isinstance(v, yaml.ScalarNode)),
            None,
        )
        if not isinstance(name, str):
            return None
        key = (kind, prefix + name)
        self._at.setdefault(key, Location(path, fields.get("name", node.start_mark.line + 1)))
        self._fields.setdefault(key, fields)
        if prefix:
            self._by_bare.setdefault((kind, name), []).append(prefix + name)
        return name

    def find(self, kind: str, name: str, field: str | None = None) -> Location | None:
        """The line of `field` when the element has it, else of the element's name. A bare
        element name (no `model.`) matches the first semantic model that has it."""
        key = (kind, name)
        if key not in self._at and (kind, name) in self._by_bare:
            key = (kind, self._by_bare[(kind, name)][0])
        loc = self._at.get(key)
        if loc is None:
            return None
        if field and field in self._fields.get(key, {}):
            return Location(loc.path, self._fields[key][field])
        return loc

    def find_any(self, name: str, kinds: tuple[str, ...]) -> tuple[str, Location] | None:
        for kind in kinds:
            loc = self.find(kind, name)
            if loc is not None:
                return kind, loc
        return None

    def line_of(self, path: Path, pattern: str) -> int | None:
        """The first line of a file matching a regular expression (for messages that name a
        file and a value but no element)."""
        try:
            lines = path.read_text().splitlines()
        except OSError:
            return None
        rx = re.compile(pattern)
        return next((i + 1 for i, line in enumerate(lines) if rx.search(line)), None)
