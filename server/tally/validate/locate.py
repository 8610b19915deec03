"""Element -> file:line. The manifests dbt writes do not keep line numbers, so the project's YAML
(every model path: models/ and ../semantic) is read again as a node tree, whose marks have them.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tally.project import model_paths
from tally.validate.findings import Location

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


def yaml_files(roots: list[Path]) -> list[Path]:
    files: list[Path] = []
    for root in roots:
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*.y*ml")):
            if path.suffix in (".yml", ".yaml") and not _SKIP_DIRS & set(path.parts):
                files.append(path)
    return files


_NAMES = re.compile(r"`([\w.]+)`|'([\w.]+)'|\"([\w.]+)\"|:\s*([a-z_][\w]*)")


def message_names(message: str) -> list[str]:
    """The names a message quotes (`x`, 'x', "x") or gives after a colon, in order."""
    return [next(g for g in m.groups() if g) for m in _NAMES.finditer(message)]


class Locator:
    """Where each element is defined: (kind, name) -> file, line of its `name:`, and the lines
    of its fields. Semantic model elements are keyed `model.element` and, for lookups by a bare
    name, also indexed by their own name."""

    def __init__(self, roots: list[Path]) -> None:
        self._at: dict[tuple[str, str], Location] = {}
        self._fields: dict[tuple[str, str], dict[str, int]] = {}
        self._by_bare: dict[tuple[str, str], list[str]] = {}
        self._nodes: dict[tuple[str, str], yaml.MappingNode] = {}
        self.roots = list(roots)
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
        names = [v.value for k, v in node.value
                 if k.value == "name" and isinstance(v, yaml.ScalarNode)]  # fmt: skip
        name = names[0] if names else None
        if not isinstance(name, str):
            return None
        key = (kind, prefix + name)
        self._at.setdefault(key, Location(path, fields.get("name", node.start_mark.line + 1)))
        self._fields.setdefault(key, fields)
        self._nodes.setdefault(key, node)
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

    def value_line(self, kind: str, name: str, value: str) -> Location | None:
        """The line of the first scalar equal to `value` inside an element (a metric named in an
        exposure's meta, say), or quoting it (a saved query's "Dimension('value')"), else the
        element's own line."""
        loc = self.find(kind, name)
        key = (kind, name)
        if key not in self._nodes and key in self._by_bare:
            key = (kind, self._by_bare[key][0])
        node = self._nodes.get(key)
        if loc is None or node is None:
            return loc
        scalars: list[yaml.ScalarNode] = []
        stack: list[yaml.Node] = [node]
        while stack:
            current = stack.pop(0)
            if isinstance(current, yaml.ScalarNode):
                scalars.append(current)
            elif isinstance(current, yaml.MappingNode):
                stack.extend(v for _, v in current.value)
            elif isinstance(current, yaml.SequenceNode):
                stack.extend(current.value)
        quoted = re.compile(rf"""['"]{re.escape(value)}['"]""")
        for match in (lambda s: s == value, quoted.search):
            hit = next((s for s in scalars if isinstance(s.value, str) and match(s.value)), None)
            if hit is not None:
                return Location(loc.path, hit.start_mark.line + 1)
        return loc

    def names(self, *kinds: str) -> set[str]:
        """Every element name of these kinds (bare names for semantic model elements)."""
        out = {name for kind, name in self._at if kind in kinds and "." not in name}
        return out | {name for kind, name in self._by_bare if kind in kinds}

    def refine(self, kind: str, name: str, message: str) -> Location | None:
        """The element's location, narrowed to the line of a value its message names (the
        unknown measure of a metric rather than the metric's first line)."""
        loc = self.find(kind, name)
        if loc is None:
            return None
        short = name.rsplit(".", 1)[-1]
        for token in message_names(message):
            if token == short:
                continue
            found = self.value_line(kind, name, token)
            if found is not None and found.line != loc.line:
                return found
        return loc

    def containing(self, kind: str, value: str) -> tuple[str, Location] | None:
        """The first element of a kind with a scalar equal to `value` (the saved query that
        has a given group-by), and that scalar's line."""
        for k, name in self._nodes:
            if k != kind:
                continue
            loc = self.value_line(kind, name, value)
            if loc is not None and loc != self.find(kind, name):
                return name, loc
        return None

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
