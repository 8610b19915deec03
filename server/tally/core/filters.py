"""Safe where clauses.

A where clause is MetricFlow's template SQL: `{{ Dimension('customer__country') }} = 'US'`.
It ends up inside the generated SQL, so nothing passes unchecked: the template references are
parsed (only Dimension / TimeDimension / Entity / Metric with literal arguments), every other
piece of Jinja is refused, and the rest is parsed with sqlglot and must be a single boolean
expression built from an allow-list (comparisons, AND/OR/NOT, IN, BETWEEN, LIKE, IS NULL, CAST,
arithmetic, a few scalar functions) whose only columns are those references. No subqueries, no
statements, no bare column names, no functions outside the list.

Structured filters ({"dimension": ..., "op": "in", "values": [...]}) are compiled here too, with
values quoted by sqlglot, so callers never write SQL at all.
"""

from __future__ import annotations

import ast
import functools
import re
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import Token, TokenType

from tally.core import depth
from tally.core.grains import split_date_part, split_grain
from tally.errors import InvalidFilter, shorten

_REF = re.compile(
    r"\{\{\s*(?P<kind>Dimension|TimeDimension|Entity|Metric)\s*\((?P<args>[^{}]*?)\)"
    r"(?P<methods>(?:\s*\.\s*\w+\s*\([^{}()]*\))*)\s*\}\}"
)
# MetricFlow's object syntax: Dimension('x').grain('month').date_part('year').
_METHOD = re.compile(r"\s*\.\s*(?P<method>\w+)\s*\(\s*(?P<q>['\"])(?P<value>\w+)(?P=q)\s*\)")
_MAX_NAME = 128
_JINJA = re.compile(r"\{\{|\}\}|\{%|%\}|\{#|#\}")


def _placeholder_format(clause: str) -> str:
    """A column name that stands for the i-th reference while sqlglot parses the clause. It
    carries a random token absent from the clause, so a string literal can never contain it
    and be rewritten when the references are put back."""
    while True:
        token = secrets.token_hex(6)
        if token not in clause:
            return f"__tally_ref_{token}_{{}}__"

_ALLOWED_NODES: tuple[type[exp.Expression], ...] = (
    exp.Column,
    exp.Identifier,
    exp.Literal,
    exp.Boolean,
    exp.Null,
    exp.Paren,
    exp.Tuple,
    exp.EQ,
    exp.NEQ,
    exp.GT,
    exp.GTE,
    exp.LT,
    exp.LTE,
    exp.NullSafeEQ,
    exp.NullSafeNEQ,
    exp.And,
    exp.Or,
    exp.Not,
    exp.In,
    exp.Between,
    exp.Is,
    exp.Like,
    exp.ILike,
    exp.Escape,
    exp.Neg,
    exp.Add,
    exp.Sub,
    exp.Mul,
    exp.Div,
    exp.Mod,
    exp.Cast,
    exp.TryCast,
    exp.DataType,
    exp.Interval,
    exp.Var,
    exp.Lower,
    exp.Upper,
    exp.Trim,
    exp.Coalesce,
    exp.Abs,
    exp.Round,
    exp.Length,
    exp.CurrentDate,
    exp.CurrentTimestamp,
    exp.DateTrunc,
    exp.TimestampTrunc,
    exp.Extract,
    exp.Concat,
    exp.DPipe,
    exp.Substring,
    exp.If,
    exp.Case,
)


@dataclass(frozen=True)
class FilterReference:
    """One `{{ Dimension(...) }}`-style reference of a where clause, as written. `name` joins
    the entity path and the name (`Dimension('station__city_name', entity_path=['bike'])` is
    bike__station__city_name), so it is the same name a group-by uses."""

    kind: str  # Dimension | TimeDimension | Entity | Metric
    name: str
    grain: str | None = None
    date_part: str | None = None
    group_by: tuple[str, ...] = ()

    def group_by_name(self) -> str:
        """The group-by spelling of this reference: name + __grain or __extract_<part>."""
        if self.date_part:
            return f"{self.name}__extract_{self.date_part}"
        return f"{self.name}__{self.grain}" if self.grain else self.name

    def template(self) -> str:
        """A spelling that does not depend on the project (for cache keys); the compiler
        writes each reference the way MetricFlow needs it for the project's catalog."""
        if self.kind == "Metric":
            items = ", ".join(f"'{g}'" for g in self.group_by)
            return f"{{{{ Metric('{self.name}', group_by=[{items}]) }}}}"
        if self.date_part:
            return f"{{{{ TimeDimension('{self.name}', date_part_name='{self.date_part}') }}}}"
        if self.grain:
            return f"{{{{ TimeDimension('{self.name}', '{self.grain}') }}}}"
        return f"{{{{ {self.kind}('{self.name}') }}}}"


@dataclass(frozen=True)
class CheckedFilter:
    """A where clause that passed the checks, with what it references. `sql` spells each
    reference with `template()`; `render` puts other spellings in their places."""

    sql: str
    references: tuple[FilterReference, ...]
    skeleton: str = ""  # the SQL with a placeholder per reference
    placeholder: str = ""
    literals: tuple[str, ...] = ()  # each value exactly as written (see literal_spellings)

    def render(self, templates: list[str]) -> str:
        sql = self.skeleton
        for i, template in enumerate(templates):
            sql = sql.replace(self.placeholder.format(i), template)
        return sql


# How deep a where clause may nest and chain (tally.core.depth), checked on its tokens before
# anything parses it: sqlglot recurses ten to twenty frames per parenthesis or NOT (measured:
# about 45 parentheses exhaust Python's limit), so 20 levels stay well inside it; 256 lets a
# filter chain a hundred conditions (a = 1 OR b = 2 OR ...) while no walk of the tree comes
# near the limit, and bounds the checks below that take time quadratic in a chain's length.
MAX_FILTER_NESTING = 20
MAX_FILTER_DEPTH = 256
_OPEN = {TokenType.L_PAREN, TokenType.L_BRACKET, TokenType.L_BRACE, TokenType.BLOCK_START,
         TokenType.CASE}
_CLOSE = {TokenType.R_PAREN, TokenType.R_BRACKET, TokenType.R_BRACE, TokenType.BLOCK_END,
          TokenType.END}
_SEP = {TokenType.COMMA, TokenType.SEMICOLON, TokenType.WHEN, TokenType.THEN, TokenType.ELSE}
_OPERAND = {TokenType.VAR, TokenType.NUMBER, TokenType.IDENTIFIER, TokenType.NULL,
            TokenType.TRUE, TokenType.FALSE, TokenType.PARAMETER, TokenType.PLACEHOLDER,
            *(t for t in TokenType if t.name.endswith("STRING"))}
_SIGNS = {TokenType.DASH, TokenType.PLUS, TokenType.TILDE}


def check_depth(clause: str, dialect: str = "duckdb") -> None:
    """InvalidFilter when the clause nests or chains deeper than a parser may safely go; one
    linear pass over the dialect's tokens, before any parsing (tally.core.depth)."""
    _check_token_depth(_tokens(clause, clause, dialect), clause)


def _tokens(text: str, clause: str, dialect: str) -> list[Token]:
    try:
        return Dialect.get_or_raise(dialect).tokenize(text)
    except TokenError:
        raise InvalidFilter(
            f"Cannot parse filter {shorten(clause, 300)}: a quote or comment is not closed."
        ) from None


def _check_token_depth(tokens: list[Token], clause: str) -> None:
    def kinds() -> Iterator[depth.Kind]:
        previous = depth.Kind.SEP
        for token in tokens:
            kind = token.token_type
            if kind in _OPEN:
                previous = depth.Kind.OPEN
            elif kind in _CLOSE:
                previous = depth.Kind.CLOSE
            elif kind in _SEP:
                previous = depth.Kind.SEP
            elif kind in _OPERAND:
                previous = depth.Kind.VALUE
            elif (kind is TokenType.NOT or kind in _SIGNS) and previous not in (
                depth.Kind.VALUE, depth.Kind.CLOSE
            ):
                previous = depth.Kind.PREFIX
            else:
                previous = depth.Kind.OP
            yield previous

    try:
        depth.check(kinds(), MAX_FILTER_NESTING, MAX_FILTER_DEPTH)
    except depth.TooDeep as e:
        raise InvalidFilter(
            f"Filter {shorten(clause, 300)} is too deep to read: {e.message}."
        ) from None


def check_where(clause: str, dialect: str = "duckdb") -> CheckedFilter:
    """The clause checked (InvalidFilter says why not), with its references."""
    return _checked_where(clause, dialect)


# Parsed once: one request's filter is checked by access control, rollup routing (once per
# candidate rollup), the compiler and the cache key; a large `in` list costs a parse each time.
@functools.lru_cache(maxsize=256)
def _checked_where(clause: str, dialect: str) -> CheckedFilter:
    references: list[FilterReference] = []
    placeholder = _placeholder_format(clause)
    placeholder_name = re.compile(re.escape(placeholder).replace(r"\{\}", r"\d+"))

    def substitute(match: re.Match[str]) -> str:
        references.append(_parse_reference(match))
        return placeholder.format(len(references) - 1)

    body = _REF.sub(substitute, clause)
    if _JINJA.search(body):
        raise InvalidFilter(
            f"Filter {shorten(clause, 300)} has template code other than "
            "{{ Dimension('...') }}, {{ TimeDimension('...', 'grain') }}, {{ Entity('...') }} "
            "or {{ Metric('...', group_by=['...']) }}."
        )
    if not references:
        raise InvalidFilter(
            f"Filter {shorten(clause, 300)} references no dimension. Write e.g. "
            "\"{{ Dimension('<entity>__<dimension>') }} = 'value'\"."
        )
    # Tokenized once: the depth bound, the values as written and the parse all read these.
    tokens = _tokens(body, clause, dialect)
    _check_token_depth(tokens, clause)
    literals = tuple(body[t.start : t.end + 1] for t in tokens if t.token_type in _VALUE_TOKENS)
    tree = _parse_expression(body, clause, dialect, tokens)
    for node in tree.walk():
        if isinstance(node, exp.Column):
            name = node.name
            if node.table or not placeholder_name.fullmatch(name):
                raise InvalidFilter(
                    f"Filter {shorten(clause, 300)} names column "
                    f"{shorten(node.sql(dialect=dialect))} directly: wrap names in "
                    "{{ Dimension('...') }}."
                )
        elif not isinstance(node, _ALLOWED_NODES):
            what = node.key.upper() if isinstance(node, exp.Func) else type(node).__name__
            raise InvalidFilter(
                f"Filter {shorten(clause, 300)} uses {what}, which filters may not contain "
                "(allowed: comparisons, AND/OR/NOT, IN, BETWEEN, LIKE, IS NULL, CAST, arithmetic, "
                "lower/upper/trim/coalesce/abs/round/length/date_trunc/extract)."
            )
    _refuse_constant_conditions(tree, clause)
    # comments=False: a comment's text must not survive into the SQL.
    skeleton = tree.sql(dialect=dialect, comments=False)
    checked = CheckedFilter("", tuple(references), skeleton, placeholder)
    return CheckedFilter(
        checked.render([r.template() for r in references]), tuple(references), skeleton,
        placeholder, literals,
    )


_CONDITIONS = (exp.Predicate, exp.Escape)


def _refuse_constant_conditions(tree: exp.Expression, clause: str) -> None:
    """Every condition must involve a reference: `'1' = '1'`, `1 = 1` or a bare TRUE are the
    tautologies of SQL injection, and say nothing about any dimension."""
    for node in tree.walk():
        refers = any(isinstance(n, exp.Column) for n in node.walk())
        constant = (isinstance(node, _CONDITIONS) and not refers) or (
            isinstance(node, exp.Boolean) and not isinstance(node.parent, _CONDITIONS)
        )
        if constant:
            raise InvalidFilter(
                f"Filter {shorten(clause, 300)} has a condition on constants only "
                f"({shorten(node.sql(), 60)[1:-1]}): each condition must involve a "
                "{{ Dimension(...) }}, {{ TimeDimension(...) }}, {{ Entity(...) }} or "
                "{{ Metric(...) }}."
            )


def _parse_reference(match: re.Match[str]) -> FilterReference:
    kind, args_src, source = match.group("kind"), match.group("args"), match.group(0)
    try:
        call = ast.parse(f"f({args_src})", mode="eval").body
    except (SyntaxError, RecursionError, MemoryError, ValueError):
        raise InvalidFilter(f"Cannot read the arguments of {shorten(source)}.") from None
    assert isinstance(call, ast.Call)
    positional = [_literal(a, source) for a in call.args]
    keywords = {k.arg: _literal(k.value, source) for k in call.keywords}
    if not positional or not isinstance(positional[0], str):
        raise InvalidFilter(f"{shorten(source)} needs a name as its first argument.")
    name = positional[0].strip().lower()
    if len(name) > _MAX_NAME or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise InvalidFilter(f"Invalid name {shorten(positional[0])} in {shorten(source)}.")
    allowed_keywords = {
        "Dimension": {"entity_path"},
        "Entity": {"entity_path"},
        "TimeDimension": {"time_granularity_name", "entity_path", "date_part_name"},
        "Metric": {"group_by"},
    }[kind]
    unknown = set(keywords) - allowed_keywords
    if unknown:
        raise InvalidFilter(f"{shorten(source)} has unknown argument(s) {sorted(unknown)}.")
    methods = {m.group("method"): m.group("value").lower()
               for m in _METHOD.finditer(match.group("methods"))}
    if _METHOD.sub("", match.group("methods")).strip() or set(methods) - {"grain", "date_part"}:
        raise InvalidFilter(
            f"{shorten(source)}: only .grain('...') and .date_part('...') may follow a name."
        )
    if kind in ("Entity", "Metric") and methods:
        raise InvalidFilter(f"{shorten(source)}: an {kind} has no grain or date part.")
    path = keywords.get("entity_path") or []
    if not isinstance(path, list | tuple) or not all(
        isinstance(p, str) and re.fullmatch(r"[a-zA-Z][a-zA-Z0-9_]*", p) for p in path
    ):
        raise InvalidFilter(f"{shorten(source)}: entity_path must be a list of entity names.")
    name = "__".join((*(p.lower() for p in path), name))
    grain = methods.get("grain")
    date_part = methods.get("date_part") or keywords.get("date_part_name")
    group_by: tuple[str, ...] = ()
    if kind == "TimeDimension":
        extra = positional[1] if len(positional) > 1 else keywords.get("time_granularity_name")
        grain = grain or extra
        if len(positional) > 2:
            raise InvalidFilter(f"{shorten(source)} takes a name and a grain.")
    elif len(positional) > 1:
        raise InvalidFilter(f"{shorten(source)} takes one name.")
    if kind == "Metric":
        raw = keywords.get("group_by", positional[1] if len(positional) > 1 else None)
        if not isinstance(raw, list | tuple) or not raw or not all(isinstance(g, str) for g in raw):
            raise InvalidFilter(f"{shorten(source)} needs group_by=['entity', ...].")
        group_by = tuple(g.strip().lower() for g in raw)
    for what, value in (("grain", grain), ("date part", date_part)):
        if value is not None and (
            not isinstance(value, str) or not re.fullmatch(r"[a-z_]+", value.lower())
        ):
            raise InvalidFilter(f"Invalid {what} {shorten(value)} in {shorten(source)}.")
    grain = grain.lower() if grain else None
    date_part = date_part.lower() if date_part else None
    if kind in ("Dimension", "TimeDimension") and not grain and not date_part:
        # One spelling per meaning: TimeDimension('x__month') and Dimension('x__month') are
        # TimeDimension('x', 'month') (MetricFlow itself would read the latter at the default
        # grain, which is never what was meant). Custom grains are resolved by the compiler.
        name, grain = split_grain(name)
        if grain is None:
            name, date_part = split_date_part(name)
    if grain or date_part:
        kind = "TimeDimension"
    return FilterReference(
        kind=kind, name=name, grain=grain, date_part=date_part, group_by=group_by
    )


def _literal(node: ast.expr, where: str) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        raise InvalidFilter(f"Only literal arguments are allowed in {shorten(where)}.") from None


def _parse_expression(
    body: str, clause: str, dialect: str, tokens: list[Token] | None = None
) -> exp.Expression:
    try:
        if tokens is None:
            trees = sqlglot.parse(body, dialect=dialect)
        else:
            trees = Dialect.get_or_raise(dialect).parser().parse(tokens, body)
    except TokenError:
        raise InvalidFilter(
            f"Cannot parse filter {shorten(clause, 300)}: a quote or comment is not closed."
        ) from None
    except (RecursionError, MemoryError):
        raise InvalidFilter(f"Filter {shorten(clause, 300)} is nested too deeply.") from None
    except ParseError as e:
        first = e.errors[0]["description"] if e.errors else str(e)
        missing = re.match(r"Required keyword: '\w+' missing for <class '[\w.]*\.(\w+)'>", first)
        if missing:  # sqlglot's wording names its own classes; say what the caller wrote wrong
            operator = {"EQ": "=", "NEQ": "!=", "GT": ">", "GTE": ">=", "LT": "<", "LTE": "<="}
            what = operator.get(missing.group(1), missing.group(1).upper())
            first = f"'{what}' is missing the value on its right"
        raise InvalidFilter(f"Cannot parse filter {shorten(clause, 300)}: {first}.") from None
    trees = [t for t in trees if t is not None]
    if len(trees) != 1:
        raise InvalidFilter(
            f"Filter {shorten(clause, 300)} must be one expression, not several statements."
        )
    tree = trees[0]
    if not _is_boolean(tree):
        raise InvalidFilter(
            f"Filter {shorten(clause, 300)} must be a condition such as \"... = 'value'\"."
        )
    return tree


def _is_boolean(node: exp.Expression) -> bool:
    """Whether the top of the expression yields true/false (a bare column or value does not)."""
    if isinstance(node, exp.Paren):
        return _is_boolean(node.this)
    if isinstance(node, exp.Not):
        return _is_boolean(node.this)
    if isinstance(node, exp.Connector):
        return _is_boolean(node.left) and _is_boolean(node.right)
    # A bare reference is a condition when the dimension is boolean (`{{ Dimension('x__is_y')
    # }}`); on any other type the warehouse refuses it, which is the caller's mistake.
    return isinstance(node, exp.Predicate | exp.Boolean | exp.Escape | exp.Column)


# Structured filters -----------------------------------------------------------------------

STRUCTURED_OPS = (
    "=",
    "!=",
    "in",
    "not_in",
    ">",
    ">=",
    "<",
    "<=",
    "between",
    "is_null",
    "is_not_null",
    "contains",
)


@dataclass(frozen=True)
class StructuredFilter:
    """{"dimension": "customer__country", "op": "in", "values": ["US", "DE"]}, checked for
    shape. The compiler writes it as a where clause for its warehouse's dialect (`to_where`),
    with values as quoted literals, so no value can break out of its quotes."""

    dimension: str
    op: str = "="
    values: tuple[str | int | float | bool, ...] = ()
    grain: str | None = None

    # Python holds True == 1 == 1.0, but they are different filters (`= TRUE`, `= 1`, `= 1.0`;
    # contains '%true%' vs '%1%'): equality and hash see each value's type, so no cache keyed
    # on a request (compiled SQL, result keys) can mistake one for another.
    def _identity(self) -> tuple[Any, ...]:
        typed = tuple((type(v).__name__, v) for v in self.values)
        return (self.dimension, self.op, typed, self.grain)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StructuredFilter):
            return NotImplemented
        return self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    @classmethod
    def parse(cls, item: Mapping[str, Any]) -> StructuredFilter:
        if not isinstance(item, Mapping):
            raise InvalidFilter(f"A structured filter must be an object, got {shorten(item)}.")
        item = {k: v for k, v in item.items() if v is not None}
        unknown = set(item) - {"dimension", "op", "value", "values", "grain"}
        if unknown:
            raise InvalidFilter(
                f"Unknown key(s) {shorten(sorted(unknown))} in filter {shorten(item)}."
            )
        name = item.get("dimension")
        op = str(item.get("op", "=")).lower()
        if (
            not isinstance(name, str)
            or len(name) > _MAX_NAME
            or not re.fullmatch(r"[a-z][a-z0-9_]*", name.strip().lower())
        ):
            raise InvalidFilter(
                f"Filter {shorten(item)} needs a 'dimension' name such as '<entity>__<dimension>'."
            )
        if "values" in item and not isinstance(item["values"], list | tuple):
            raise InvalidFilter("values: Input should be a valid list")
        if op not in STRUCTURED_OPS:
            raise InvalidFilter(
                f"Unknown filter op {op!r}; use one of {', '.join(STRUCTURED_OPS)}."
            )
        grain = item.get("grain")
        if grain is not None and (
            not isinstance(grain, str) or not re.fullmatch(r"[a-z_]+", grain.lower())
        ):
            raise InvalidFilter(f"Invalid grain {shorten(grain)} in filter {shorten(item)}.")
        return cls(
            dimension=name.strip().lower(),
            op=op,
            values=tuple(_values(item, op)),
            grain=grain.lower() if grain else None,
        )

    def to_where(self, dialect: str = "duckdb") -> str:
        return _structured_where(self, dialect)

    def write_where(self, dialect: str) -> str:
        name, op, values = self.dimension, self.op, self.values
        if name == "metric_time" or name.endswith("__metric_time") or self.grain:
            ref = FilterReference("TimeDimension", name, self.grain or "day")
        else:
            ref = FilterReference("Dimension", name)
        placeholder = _placeholder_format(repr(self)).format(0)
        col = exp.column(placeholder)
        condition: exp.Expression
        if op == "is_null":
            condition = exp.Is(this=col, expression=exp.Null())
        elif op == "is_not_null":
            condition = exp.not_(exp.Is(this=col, expression=exp.Null()))
        elif op in ("in", "not_in"):
            condition = exp.In(this=col, expressions=[_lit(v) for v in values])
            if op == "not_in":
                condition = exp.not_(condition)
        elif op == "between":
            condition = exp.Between(this=col, low=_lit(values[0]), high=_lit(values[1]))
        elif op == "contains":
            needle = str(values[0]).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            like = exp.Like(
                this=exp.Lower(this=col), expression=exp.Literal.string(f"%{needle.lower()}%")
            )
            condition = exp.Escape(this=like, expression=exp.Literal.string("\\"))
        else:
            cls = {"=": exp.EQ, "!=": exp.NEQ, ">": exp.GT, ">=": exp.GTE, "<": exp.LT,
                   "<=": exp.LTE}
            condition = cls[op](this=col, expression=_lit(values[0]))
        return condition.sql(dialect=dialect, comments=False).replace(placeholder, ref.template())


@functools.lru_cache(maxsize=256)
def _structured_where(structured: StructuredFilter, dialect: str) -> str:
    return structured.write_where(dialect)


def structured_to_where(item: Mapping[str, Any], dialect: str = "duckdb") -> str:
    """{"dimension": "customer__country", "op": "in", "values": ["US", "DE"]} -> a where clause."""
    return StructuredFilter.parse(item).to_where(dialect)


def _values(item: Mapping[str, Any], op: str) -> list[Any]:
    if op in ("is_null", "is_not_null"):
        return []
    if "values" in item:
        values = item["values"]
        if not isinstance(values, list | tuple):
            values = [values]
    elif "value" in item:
        values = [item["value"]]
    else:
        raise InvalidFilter(f"Filter {shorten(item)} needs 'value' or 'values'.")
    values = list(values)
    wanted = {"between": 2}.get(op)
    if op in ("in", "not_in"):
        if not values:
            raise InvalidFilter(f"Filter {shorten(item)}: '{op}' needs at least one value.")
    elif wanted and len(values) != wanted:
        raise InvalidFilter(f"Filter {shorten(item)}: 'between' needs exactly two values.")
    elif not wanted and len(values) != 1:
        raise InvalidFilter(f"Filter {shorten(item)}: '{op}' takes one value.")
    for v in values:
        if not isinstance(v, str | int | float | bool) or v is None:
            raise InvalidFilter(f"Filter values must be strings, numbers or booleans, got {v!r}.")
        if isinstance(v, str) and any("\ud800" <= c <= "\udfff" for c in v):
            raise InvalidFilter("A filter value holds a character that is not valid Unicode (a "
                                "lone surrogate); send text as UTF-8.")  # fmt: skip
    return values


def _lit(value: Any) -> exp.Expression:
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int | float):
        return exp.Literal.number(value)
    return exp.Literal.string(str(value))


# Token types whose text is a value the caller wrote (strings of every kind, numbers).
_VALUE_TOKENS = frozenset(
    t for t in TokenType if t is TokenType.NUMBER or t.name.endswith("STRING")
)


def literal_spellings(clause: str, dialect: str = "duckdb") -> tuple[str, ...]:
    """Each value of a where clause exactly as written, quotes and escapes included, in order
    (the references' own arguments left out). Cache keys add these to the parsed clause, so two
    clauses that differ in any value never share a key, whatever a dialect's parser makes of
    an escape (`'It''s'` is one string in DuckDB and two concatenated ones in Spark)."""
    try:
        return check_where(clause, dialect).literals  # the tokens of its one check
    except InvalidFilter:
        pass
    body = _REF.sub(" ", clause)
    try:
        tokens = Dialect.get_or_raise(dialect).tokenize(body)
    except (TokenError, RecursionError, MemoryError):
        return (body,)
    return tuple(body[t.start : t.end + 1] for t in tokens if t.token_type in _VALUE_TOKENS)
