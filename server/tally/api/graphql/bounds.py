"""Bounds on a GraphQL document, checked before graphql-core's validation rules run: its size
(characters and tokens, while parsing), how deeply its fields nest, how many fields and aliases
it has once its fragments are expanded, and how deeply a request's variables nest.

Why our own walk: strawberry's QueryDepthLimiter and MaxAliasesLimiter re-walk a fragment at
every spread of it, so 25 fragments spreading the next one twice cost 2^25 visits (minutes of
CPU for a 2 KB document), and a long chain of fragments overflowed the stack. This walk visits
each fragment once (its totals are kept) and never recurses along a fragment chain."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from strawberry.extensions import SchemaExtension

from tally.errors import CallerError

MAX_DEPTH = 10  # fields nested in one another (introspection's own nesting aside)
MAX_ALIASES = 30  # 500 aliased catalog fields took seconds
MAX_FIELDS = 1_000  # fields once every fragment spread is expanded
MAX_TOKENS = 4_000  # tokens the parser reads before it gives up (comments count)
MAX_CHARACTERS = 100_000  # the document's text (its string literals included)
MAX_VARIABLE_DEPTH = 32  # lists and objects nested in a request's variables


@dataclass(frozen=True)
class Shape:
    """What a selection set adds up to, its fragment spreads expanded: the longest chain of
    nested fields (introspection fields count 0: MaxIntrospectionDepthRule bounds those), the
    number of fields and of aliases."""

    depth: int = 0
    fields: int = 0
    aliases: int = 0

    def __add__(self, other: Shape) -> Shape:
        # Counts saturate: a fan-out of fragments could otherwise build numbers with
        # thousands of digits before the limit is compared.
        return Shape(max(self.depth, other.depth), min(self.fields + other.fields, _CAP),
                     min(self.aliases + other.aliases, _CAP))  # fmt: skip


_CAP = 1 << 32
_EMPTY = Shape()


def shape_of(document: DocumentNode, operation: OperationDefinitionNode) -> Shape:
    """The shape of one operation of `document`. A spread of an unknown fragment, or one that
    closes a cycle, adds nothing: validation reports those."""
    fragments = {d.name.value: d for d in document.definitions
                 if isinstance(d, FragmentDefinitionNode)}  # fmt: skip
    shapes: dict[str, Shape] = {}
    for name in _dependency_order(fragments):
        shapes[name] = _shape(fragments[name].selection_set, shapes)
    return _shape(operation.selection_set, shapes)


def _spreads(selection_set: SelectionSetNode) -> Iterator[str]:
    # Recursion here follows one definition's own nesting, which the parser bounds (200).
    for selection in selection_set.selections:
        if isinstance(selection, FragmentSpreadNode):
            yield selection.name.value
        elif selection.selection_set is not None:  # type: ignore[attr-defined]
            yield from _spreads(selection.selection_set)  # type: ignore[attr-defined]


def _dependency_order(fragments: dict[str, FragmentDefinitionNode]) -> list[str]:
    """Fragment names, each after the fragments it spreads (depth-first, with a stack of our
    own: a chain of fragments is as long as the document lets it be)."""
    order: list[str] = []
    done: set[str] = set()
    for root in fragments:
        if root in done:
            continue
        path = [(root, _spreads(fragments[root].selection_set))]
        on_path = {root}
        while path:
            name, spreads = path[-1]
            for spread in spreads:
                if spread in fragments and spread not in done and spread not in on_path:
                    path.append((spread, _spreads(fragments[spread].selection_set)))
                    on_path.add(spread)
                    break
            else:
                path.pop()
                on_path.discard(name)
                done.add(name)
                order.append(name)
    return order


def _shape(selection_set: SelectionSetNode, fragments: dict[str, Shape]) -> Shape:
    total = _EMPTY
    for selection in selection_set.selections:
        if isinstance(selection, FragmentSpreadNode):
            total += fragments.get(selection.name.value, _EMPTY)
        elif isinstance(selection, InlineFragmentNode):
            total += _shape(selection.selection_set, fragments)
        elif isinstance(selection, FieldNode):
            inner = _EMPTY
            if selection.selection_set is not None:
                inner = _shape(selection.selection_set, fragments)
            depth = 0 if selection.name.value.startswith("__") else 1 + inner.depth
            total += Shape(depth, inner.fields + 1, inner.aliases + bool(selection.alias))
    return total


def problem(shape: Shape) -> str | None:
    """What is wrong with an operation of this shape, or None."""
    if shape.depth > MAX_DEPTH:
        return f"The document nests fields {shape.depth} deep; at most {MAX_DEPTH} are allowed."
    if shape.fields > MAX_FIELDS:
        return (f"The document asks for {_count(shape.fields)} fields once its fragments are "
                f"expanded; at most {MAX_FIELDS} are allowed.")  # fmt: skip
    if shape.aliases > MAX_ALIASES:
        return (f"The document has {_count(shape.aliases)} aliases once its fragments are "
                f"expanded; at most {MAX_ALIASES} are allowed.")  # fmt: skip
    return None


def _count(n: int) -> str:
    return f"more than {_CAP}" if n >= _CAP else str(n)


class TooComplex(CallerError):
    """A GraphQL document over one of the server's bounds (size, nesting, fields, aliases,
    costly fields)."""

    code = "graphql_too_complex"


class DocumentBounds(SchemaExtension):
    """The parser's limits (characters, tokens), then every operation's shape, before the
    validation rules run: a document over a bound is refused with `graphql_too_complex` and
    the rules never see it."""

    def on_parse(self) -> Iterator[None]:
        options = self.execution_context.parse_options
        options["max_tokens"] = MAX_TOKENS
        options["max_source_length"] = MAX_CHARACTERS
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None and context.pre_execution_errors is None:
            for definition in document.definitions:
                if isinstance(definition, OperationDefinitionNode):
                    message = problem(shape_of(document, definition))
                    if message is not None:
                        # Set before validation: strawberry then skips the rules (validation
                        # "already run by an extension") and answers with this error.
                        error = TooComplex(message)
                        context.pre_execution_errors = [GraphQLError(message, original_error=error)]
                        break
        yield


def nesting_problem(value: object) -> str | None:
    """Whether a request's JSON (its variables) nests lists and objects too deeply: walked
    with a stack of our own, so no depth overflows ours."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_VARIABLE_DEPTH:
            return (f"The request's JSON nests lists and objects more than {MAX_VARIABLE_DEPTH} "
                    "deep.")  # fmt: skip
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return None
