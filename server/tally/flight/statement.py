"""The dbt Semantic Layer's statement dialect over Flight SQL (what its JDBC driver and its SDK's
ADBC client send): `select * from {{ semantic_layer.query(metrics=['revenue'],
group_by=[Dimension('metric_time').grain('month')], where=["{{ Dimension('x') }} = 'y'"],
order_by=[Metric('revenue').descending(True)], limit=10) }}`, with or without `select * from`,
and the catalog calls `semantic_layer.metrics()`, `dimensions(metrics=[...])` and so on.

The text inside `{{ }}` is read with Python's `ast` module and a restricted walk: one call on
`semantic_layer`, keyword arguments whose values are literals (strings, numbers, booleans,
None), lists of them, and the helpers Dimension(...), TimeDimension(...), Entity(...),
Metric(...) with `.grain()`, `.date_part()`, `.descending()`. Nothing is evaluated: no `eval`,
no template engine runs on the caller's text. Before `ast` parses it, the text's depth is
bounded on its tokens (tally.core.depth): `ast`, the walk and the messages that quote a piece of
the statement all recurse per level, and a statement is never more than a few levels deep."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tally.core import depth
from tally.core.request import QueryRequest
from tally.core.semantic_layer import GroupBy, OrderBy, build_request
from tally.errors import CallerError, cut

MAX_STATEMENT = 32_000
MAX_NODES = 4_000
# A statement's brackets within one another, and operators chained along the way (see
# tally.core.depth); the deepest statement of the dialect is some ten levels.
MAX_NESTING = 20
MAX_DEPTH = 64
_SELECT = re.compile(r"^\s*select\s+\*\s+from\s+", re.IGNORECASE)

# call -> the keyword arguments it takes
CALLS: dict[str, tuple[str, ...]] = {
    "query": ("metrics", "group_by", "where", "order_by", "limit", "saved_query", "compile",
              "read_cache"),
    "dimension_values": ("group_by", "metrics", "limit"),
    "metrics": (),
    "dimensions": ("metrics",),
    "entities": ("metrics",),
    "measures": ("metrics",),
    "saved_queries": (),
    "queryable_granularities": ("metrics",),
    "metrics_for_dimensions": ("group_by",),
}
_HELPERS = {"Dimension": "dimension", "TimeDimension": "time_dimension", "Entity": "entity",
            "Metric": "metric"}


class InvalidStatement(CallerError):
    code = "invalid_statement"


@dataclass(frozen=True)
class Item:
    """Dimension('x'), TimeDimension('x', 'month'), Entity('x'), Metric('x'), as written."""

    kind: str  # dimension | time_dimension | entity | metric
    name: str
    grain: str | None = None
    date_part: str | None = None
    entity_path: tuple[str, ...] = ()
    descending: bool = False

    def group_by(self) -> GroupBy:
        name = "__".join((*self.entity_path, self.name))
        return GroupBy(name, grain=self.grain, date_part=self.date_part)


@dataclass(frozen=True)
class Statement:
    call: str
    args: tuple[tuple[str, Any], ...]

    def get(self, name: str, default: Any = None) -> Any:
        return dict(self.args).get(name, default)


def parse(text: str) -> Statement:
    """The statement, or InvalidStatement saying what is wrong and where."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidStatement(_usage("The statement is empty."))
    if len(text) > MAX_STATEMENT:
        raise InvalidStatement(f"The statement is too long ({len(text)} characters).")
    body = _SELECT.sub("", text.strip().rstrip(";").strip(), count=1)
    if not (body.startswith("{{") and body.endswith("}}")):
        raise InvalidStatement(_usage(f"Cannot read {cut(text.strip(), 80)!r}."))
    inner = body[2:-2].strip()
    _check_depth(inner)
    try:
        tree = ast.parse(inner, mode="eval")
    except SyntaxError as e:
        raise InvalidStatement(
            f"The expression inside {{{{ }}}} does not parse: {e.msg} at column "
            f"{(e.offset or 0)}: {cut(inner, 80)!r}."
        ) from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise InvalidStatement("The statement has too many parts.")
    call = tree.body
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
            and isinstance(call.func.value, ast.Name)
            and call.func.value.id == "semantic_layer"):
        raise InvalidStatement(_usage("Expected a call like semantic_layer.query(...)."))
    name = call.func.attr
    if name not in CALLS:
        raise InvalidStatement(
            f"semantic_layer.{cut(name, 40)}() is not a call tally serves; it serves "
            f"{', '.join(f'semantic_layer.{c}()' for c in CALLS)}."
        )
    if call.args:
        raise InvalidStatement(
            f"semantic_layer.{name}() takes keyword arguments only ({_takes(name)})."
        )
    args = []
    for keyword in call.keywords:
        if keyword.arg is None or keyword.arg not in CALLS[name]:
            raise InvalidStatement(
                f"semantic_layer.{name}() got an unexpected argument "
                f"{cut(str(keyword.arg or '**'), 40)!r}; it takes {_takes(name)}."
            )
        args.append((keyword.arg, _value(keyword.value)))
    return Statement(name, tuple(args))


def to_request(statement: Statement, saved_group_bys: tuple[str, ...] = ()) -> QueryRequest:
    """The QueryRequest of a semantic_layer.query(...) statement."""
    metrics = [_name(m, "metrics") for m in _list(statement.get("metrics"), "metrics")]
    group_by = [_group_by(g) for g in _list(statement.get("group_by"), "group_by")]
    where = statement.get("where")
    if where is not None and not isinstance(where, str | list):
        raise InvalidStatement("where takes a filter string or a list of them.")
    orders = [_order_by(o) for o in _list(statement.get("order_by"), "order_by")]
    saved = statement.get("saved_query")
    if saved is not None and not isinstance(saved, str):
        raise InvalidStatement("saved_query takes a saved query's name.")
    return build_request(
        metrics=metrics, group_by=group_by, where=where, order_by=orders,
        limit=statement.get("limit"), saved_query=saved, saved_group_bys=saved_group_bys,
    )


def flag(statement: Statement, name: str, default: bool) -> bool:
    value = statement.get(name, default)
    if not isinstance(value, bool):
        raise InvalidStatement(f"{name} takes True or False, got {cut(repr(value), 40)}.")
    return value


def names(statement: Statement, arg: str) -> tuple[str, ...]:
    """A list argument of plain names (metrics=[...], group_by=[...]) as tally names."""
    out = []
    for value in _list(statement.get(arg), arg):
        out.append(_group_by(value).tally_name() if arg == "group_by" else _name(value, arg))
    return tuple(out)


def dimension_of(statement: Statement) -> str:
    """dimension_values(group_by=...): one group-by, as a string, helper or one-item list."""
    value = statement.get("group_by")
    if isinstance(value, list):
        if len(value) != 1:
            raise InvalidStatement(
                f"dimension_values() takes one group_by, got {len(value)}."
            )
        value = value[0]
    if value is None:
        raise InvalidStatement("dimension_values() needs group_by='<dimension>'.")
    return _group_by(value).tally_name()


# The bound before parsing, and the restricted walk -------------------------------------

_KEYWORD_OPERATORS = {"and", "or", "in", "is", "if", "else", "lambda", "for", "await"}
_OPEN, _CLOSE, _SEP = set("([{"), set(")]}"), {",", ";"}


def _check_depth(inner: str) -> None:
    """InvalidStatement when the text nests or chains deeper than MAX_NESTING / MAX_DEPTH."""
    try:
        depth.check(_kinds(inner), MAX_NESTING, MAX_DEPTH)
    except depth.TooDeep as e:
        raise InvalidStatement(f"The statement is too deep to read: {e.message}.") from None
    except (tokenize.TokenError, SyntaxError) as e:
        message = e.args[0] if e.args else "unreadable"
        raise InvalidStatement(
            f"The expression inside {{{{ }}}} does not parse: {message}."
        ) from None


def _kinds(text: str) -> Iterator[depth.Kind]:
    """The kinds of the text's Python tokens (tokenize is linear and never recurses)."""
    previous = depth.Kind.SEP
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        kind, value = token.type, token.string
        sign = kind == tokenize.OP and value in ("-", "+", "~")
        negation = kind == tokenize.NAME and value == "not"
        if kind == tokenize.OP and value in _OPEN:
            previous = depth.Kind.OPEN
        elif kind == tokenize.OP and value in _CLOSE:
            previous = depth.Kind.CLOSE
        elif kind == tokenize.OP and value in _SEP:
            previous = depth.Kind.SEP
        elif (sign or negation) and previous not in (depth.Kind.VALUE, depth.Kind.CLOSE):
            previous = depth.Kind.PREFIX
        elif kind == tokenize.OP or negation or value in _KEYWORD_OPERATORS:
            previous = depth.Kind.OP
        elif kind in (tokenize.NAME, tokenize.NUMBER, tokenize.STRING, tokenize.ERRORTOKEN):
            previous = depth.Kind.VALUE
        else:  # NEWLINE, NL, COMMENT, INDENT, DEDENT, ENDMARKER: not part of the tree
            continue
        yield previous


def _value(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and (
        node.value is None or isinstance(node.value, str | int | float | bool)
    ):
        return node.value
    if isinstance(node, ast.List | ast.Tuple):
        return [_value(e) for e in node.elts]
    if (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub)
            and isinstance(node.operand, ast.Constant)
            and isinstance(node.operand.value, int | float)
            and not isinstance(node.operand.value, bool)):
        return -node.operand.value
    if isinstance(node, ast.Call):
        return _helper(node)
    raise InvalidStatement(
        f"Unsupported expression {cut(ast.unparse(node), 60)!r} at column "
        f"{getattr(node, 'col_offset', 0) + 1}: arguments are literals, lists, and "
        "Dimension(...), TimeDimension(...), Entity(...), Metric(...) with .grain(), "
        ".date_part(), .descending()."
    )


def _helper(node: ast.Call) -> Item:
    func = node.func
    if isinstance(func, ast.Attribute):  # Dimension('x').grain('month') and friends
        base = _value(func.value)
        if not isinstance(base, Item):
            raise InvalidStatement(f"{cut(ast.unparse(node), 60)!r}: .{func.attr}() follows "
                                   "Dimension(...), TimeDimension(...), Entity(...) or "
                                   "Metric(...).")
        args = [_value(a) for a in node.args] + [_value(k.value) for k in node.keywords]
        if len(args) != 1:
            raise InvalidStatement(f".{func.attr}() takes one argument.")
        (arg,) = args
        if func.attr == "grain" and isinstance(arg, str):
            return _replace(base, grain=arg)
        if func.attr == "date_part" and isinstance(arg, str):
            return _replace(base, date_part=arg)
        if func.attr == "descending" and isinstance(arg, bool):
            return _replace(base, descending=arg)
        raise InvalidStatement(
            f"Unsupported {cut(ast.unparse(node), 60)!r}: use .grain('month'), "
            ".date_part('year') or .descending(True)."
        )
    if not isinstance(func, ast.Name) or func.id not in _HELPERS:
        raise InvalidStatement(
            f"Unknown function {cut(ast.unparse(func), 40)!r}: use Dimension, TimeDimension, "
            "Entity or Metric."
        )
    kind = _HELPERS[func.id]
    positional = [_value(a) for a in node.args]
    keywords = {k.arg: _value(k.value) for k in node.keywords if k.arg}
    if not positional or not isinstance(positional[0], str):
        raise InvalidStatement(f"{func.id}(...) takes a name first, e.g. {func.id}('name').")
    name = positional[0]
    grain = positional[1] if len(positional) > 1 else None
    if len(positional) > 2 and kind != "time_dimension":
        raise InvalidStatement(f"{func.id}(...) takes one name (and keywords).")
    grain = keywords.pop("time_granularity_name", keywords.pop("grain", grain))
    date_part = keywords.pop("date_part_name", None)
    path = keywords.pop("entity_path", [])
    descending = keywords.pop("descending", False)
    if keywords:
        raise InvalidStatement(
            f"{func.id}(...) got an unexpected argument {cut(next(iter(keywords)), 40)!r}."
        )
    if not isinstance(path, list) or not all(isinstance(p, str) for p in path):
        raise InvalidStatement("entity_path takes a list of entity names.")
    for value in (grain, date_part):
        if value is not None and not isinstance(value, str):
            raise InvalidStatement(f"{func.id}(...): a grain or date part is a name.")
    return Item(kind, name, grain, date_part, tuple(path), bool(descending))


def _replace(item: Item, **changes: Any) -> Item:
    return Item(**{**item.__dict__, **changes})


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _name(value: Any, what: str) -> str:
    if isinstance(value, Item):
        return value.name
    if not isinstance(value, str):
        raise InvalidStatement(f"{what} takes names, got {cut(repr(value), 40)}.")
    return value


def _group_by(value: Any) -> GroupBy:
    if isinstance(value, Item):
        if value.kind == "metric":
            raise InvalidStatement(f"Metric({value.name!r}) is not a group-by.")
        return value.group_by()
    if isinstance(value, str):
        return GroupBy(value)
    raise InvalidStatement(f"group_by takes names or Dimension(...), got {cut(repr(value), 40)}.")


def _order_by(value: Any) -> OrderBy:
    if isinstance(value, Item):
        name = value.name if value.kind == "metric" else value.group_by().tally_name()
        return OrderBy(name, value.descending)
    if isinstance(value, str):
        text = value.strip()
        return OrderBy(text.lstrip("-+").strip(), text.startswith("-"))
    raise InvalidStatement(f"order_by takes names or Metric(...)/Dimension(...), got "
                           f"{cut(repr(value), 40)}.")


def _takes(call: str) -> str:
    return ", ".join(CALLS[call]) or "no arguments"


def _usage(problem: str) -> str:
    return (
        f"{problem} Write a statement as `select * from {{{{ semantic_layer.query("
        "metrics=['<metric>'], group_by=['metric_time__month']) }}` (or the catalog calls "
        "semantic_layer.metrics(), dimensions(metrics=[...]), ...)."
    )
