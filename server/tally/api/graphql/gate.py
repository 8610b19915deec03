"""Who asks, and what a GraphQL document costs, before any of it runs (both schemas).

* Every operation, introspection included, is asked by an authenticated caller: the caller is
  authenticated (and takes its one rate-limit token) before the document is even validated.
* Every root field after the first takes one more token from the caller's rate limit: thirty
  aliased `createQuery` fields are thirty queries, and thirty catalog fields thirty catalog
  calls, not one request (introspection's own fields are free).
* A root field that runs a query, creates a job or compiles SQL is *costly*: a document may
  hold at most TALLY_GRAPHQL_MAX_COSTLY_FIELDS of them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionNode,
    get_operation_ast,
)
from strawberry.extensions import SchemaExtension

from tally.api.graphql.bounds import TooComplex
from tally.core.caller import Caller
from tally.service import TallyService

CallerOf = Callable[[dict[str, Any]], Caller]


def costly_fields(
    document: DocumentNode, operation: OperationDefinitionNode, costly: frozenset[str]
) -> list[str]:
    """The response keys of the operation's root fields that are costly (see root_keys)."""
    return root_keys(document, operation, lambda name: name in costly)


def root_keys(
    document: DocumentNode, operation: OperationDefinitionNode, counted: Callable[[str], bool]
) -> list[str]:
    """The response keys of the operation's root fields whose name is `counted`: each runs
    once however often it is written (the same key twice is merged), so keys are counted, not
    fields. A field that @skip or @include would leave out is counted all the same."""
    fragments = {d.name.value: d for d in document.definitions
                 if isinstance(d, FragmentDefinitionNode)}  # fmt: skip
    keys: dict[str, None] = {}
    seen: set[str] = set()
    stack: list[SelectionNode] = list(operation.selection_set.selections)
    while stack:
        selection = stack.pop()
        if isinstance(selection, FieldNode):
            if counted(selection.name.value):
                keys[(selection.alias or selection.name).value] = None
        elif isinstance(selection, InlineFragmentNode):
            stack.extend(selection.selection_set.selections)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name in fragments and name not in seen:  # a fragment's fields merge once
                seen.add(name)
                stack.extend(fragments[name].selection_set.selections)
    return list(keys)


class RequestGate(SchemaExtension):
    """Authenticates the caller when the operation starts (a TallyError raised here is the
    operation's one error), and charges its costly fields once it is valid, before it runs."""

    def __init__(self, *, costly: frozenset[str], caller_of: CallerOf) -> None:
        self.costly = costly
        self.caller_of = caller_of

    def on_operation(self) -> Iterator[None]:
        self.caller = self.caller_of(self.execution_context.context)
        yield

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        operation = get_operation_ast(document, context.operation_name) if document else None
        svc: TallyService = context.context["request"].app.state.service
        if document is not None and operation is not None and self.costly:
            keys = costly_fields(document, operation, self.costly)
            cap = svc.settings.graphql_max_costly_fields
            if len(keys) > cap:
                raise TooComplex(
                    f"The document has {len(keys)} root fields that run a query, create a job "
                    f"or compile SQL; at most {cap} are allowed in one request "
                    "(TALLY_GRAPHQL_MAX_COSTLY_FIELDS).",
                    costly_fields=len(keys), max_costly_fields=cap,
                )
        if document is not None and operation is not None:
            # Every root field does work (a catalog field with a new set of metrics builds
            # MetricFlow's group-by index under its global lock): each after the first takes
            # one more token; introspection is GraphQL's own and free.
            fields = root_keys(document, operation, lambda name: not name.startswith("__"))
            for _ in fields[1:]:  # the first is the request's own token, taken when it arrived
                svc.limits.admit(self.caller)
        yield
