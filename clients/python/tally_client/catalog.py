"""The catalog as typed objects (unknown fields from a newer server are kept in `extra`)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

T = TypeVar("T")


def _build(cls: type[T], data: dict[str, Any]) -> T:
    known = {f.name for f in fields(cls)} - {"extra"}  # type: ignore[arg-type]
    values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in known}
    return cls(**values, extra={k: v for k, v in data.items() if k not in known})  # type: ignore[call-arg]


@dataclass(frozen=True)
class Dimension:
    name: str
    label: str = ""
    description: str = ""
    type: str = "categorical"
    grains: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Entity:
    name: str
    label: str = ""
    description: str = ""
    type: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Metric:
    name: str
    label: str = ""
    description: str = ""
    type: str = ""
    meta: dict[str, Any] = field(default_factory=dict, compare=False)
    dimensions: tuple[Dimension, ...] = ()
    entities: tuple[Entity, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def format(self) -> str | None:
        """`currency`, `percent`... from the metric's meta, when it says."""
        value = self.meta.get("format")
        return value if isinstance(value, str) else None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Metric:
        data = dict(data)
        dims = tuple(_build(Dimension, d) for d in data.pop("dimensions", []) or [])
        ents = tuple(_build(Entity, e) for e in data.pop("entities", []) or [])
        metric = _build(cls, data)
        return Metric(**{**{f.name: getattr(metric, f.name) for f in fields(cls)},
                         "dimensions": dims, "entities": ents})  # fmt: skip


@dataclass(frozen=True)
class SavedQuery:
    name: str
    label: str = ""
    description: str = ""
    metrics: tuple[str, ...] = ()
    group_by: tuple[str, ...] = ()
    where: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


def dimension(data: dict[str, Any]) -> Dimension:
    return _build(Dimension, data)


def entity(data: dict[str, Any]) -> Entity:
    return _build(Entity, data)


def saved_query(data: dict[str, Any]) -> SavedQuery:
    return _build(SavedQuery, data)
