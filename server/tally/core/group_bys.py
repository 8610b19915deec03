"""What a set of metrics can be grouped and filtered by: every name MetricFlow serves for them,
read from MetricFlow's own resolver (dimensions through any number of joins, entities reached
through a join, time dimensions at every standard and custom grain, date parts), plus the
shortest unambiguous spelling of each multi-hop name. One `GroupByIndex` per metric set,
owned by the compiler.

MetricFlow spells a multi-hop dimension `bike__station__city_name` in a group-by, but its where
filters take at most one entity link in a name (`Dimension('station__city_name',
entity_path=['bike'])`): `GroupByItem.template()` writes each name the way filters need it,
so every name works in every position.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from tally.core.catalog import DimensionInfo, EntityInfo, title
from tally.core.grains import EXTRACT


@dataclass(frozen=True)
class GroupByItem:
    name: str  # as asked and as the result column is named: bike__station__city_name__month
    kind: str  # dimension | time_dimension | entity
    links: tuple[str, ...]  # entity links: ("bike", "station")
    element: str  # city_name, metric_time, station
    grain: str | None = None
    date_part: str | None = None

    @property
    def base(self) -> str:
        """The name without its grain or date part."""
        return "__".join((*self.links, self.element))

    def template(self) -> str:
        """This item in MetricFlow's where-filter syntax."""
        path = self.links[:-1]
        name = "__".join((*self.links[-1:], self.element))
        extra = f", entity_path={list(path)!r}" if path else ""
        if self.kind == "entity":
            extra = f", entity_path={list(self.links)!r}" if self.links else ""
            return f"{{{{ Entity('{self.element}'{extra}) }}}}"
        if self.kind == "time_dimension":
            if self.date_part:
                part = f", date_part_name='{self.date_part}'"
                return f"{{{{ TimeDimension('{name}'{part}{extra}) }}}}"
            grain = f", '{self.grain}'" if self.grain else ""
            return f"{{{{ TimeDimension('{name}'{grain}{extra}) }}}}"
        return f"{{{{ Dimension('{name}'{extra}) }}}}"


@dataclass(frozen=True)
class GroupByIndex:
    """Every group-by name of a metric set, and the catalog entries they roll up into."""

    items: dict[str, GroupByItem]
    dimensions: tuple[DimensionInfo, ...]
    entities: tuple[EntityInfo, ...]
    # Shorter spellings of multi-hop names that match exactly one item (MetricFlow resolves
    # them to the same item): station__city_name for bike__station__city_name.
    aliases: dict[str, GroupByItem] = field(default_factory=dict)

    def resolve(self, name: str) -> GroupByItem | None:
        return self.items.get(name) or self.aliases.get(name)

    def names(self) -> list[str]:
        return [*self.items, *self.aliases]

    def time_dimension(self, base: str) -> DimensionInfo | None:
        for d in self.dimensions:
            if d.name == base and d.type == "time":
                return d
        return None


def build_index(
    specs: Iterable[tuple[str, str, tuple[str, ...], str, str | None, str | None]],
    describe: dict[str, tuple[str, str, str | None]],
    entity_describe: dict[str, tuple[str, str, str]],
) -> GroupByIndex:
    """The index from (name, kind, links, element, grain, date_part) tuples. `describe` maps a
    dimension's element name to (label, description, semantic model); `entity_describe` an
    entity's to (label, description, type)."""
    items: dict[str, GroupByItem] = {}
    grains: dict[str, list[str]] = defaultdict(list)
    parts: dict[str, list[str]] = defaultdict(list)
    kinds: dict[str, str] = {}
    for name, kind, links, element, grain, date_part in specs:
        item = GroupByItem(name, kind, links, element, grain, date_part)
        items.setdefault(name, item)
        if kind == "entity":
            continue
        base = item.base
        kinds[base] = kind
        if grain and grain not in grains[base]:
            grains[base].append(grain)
        if date_part and date_part not in parts[base]:
            parts[base].append(date_part)
    # A time dimension's bare name is its own finest grain.
    for base, kind in kinds.items():
        if kind == "time_dimension" and base not in items and grains[base]:
            finest = items[f"{base}__{grains[base][0]}"]
            items[base] = GroupByItem(base, kind, finest.links, finest.element, None, None)
    dimensions = []
    for base, kind in kinds.items():
        element = base.rpartition("__")[2]
        label, description, model = describe.get(element, ("", "", None))
        dimensions.append(
            DimensionInfo(
                name=base,
                label=label or title(base),
                description=description,
                type="time" if kind == "time_dimension" else "categorical",
                grains=tuple(grains[base]),
                semantic_model=model,
                date_parts=tuple(parts[base]),
                entity_path=items[base].links if base in items else (),
            )
        )
    entities = []
    for item in items.values():
        if item.kind == "entity":
            label, description, etype = entity_describe.get(item.element, ("", "", "foreign"))
            entities.append(
                EntityInfo(
                    name=item.name,
                    label=label or title(item.name),
                    description=description,
                    type=etype,
                )
            )
    return GroupByIndex(
        items=items,
        dimensions=tuple(sorted(dimensions, key=lambda d: (d.name != "metric_time", d.name))),
        entities=tuple(sorted(entities, key=lambda e: (len(e.name.split("__")), e.name))),
        aliases=_aliases(items),
    )


def _aliases(items: dict[str, GroupByItem]) -> dict[str, GroupByItem]:
    candidates: dict[str, list[GroupByItem]] = defaultdict(list)
    for item in items.values():
        # A dimension keeps at least one entity link (MetricFlow needs one); an entity can be
        # named alone.
        last = len(item.links) + (1 if item.kind == "entity" else 0)
        for start in range(1, last):
            candidates["__".join(item.name.split("__")[start:])].append(item)
    return {
        alias: found[0]
        for alias, found in candidates.items()
        if len(found) == 1 and alias not in items and not alias.startswith(EXTRACT)
    }
