"""How deep a caller's expression would parse, measured on its tokens before any parser runs.

Parsers and the code that walks their trees recurse once or more per level of the tree: sqlglot
through some twenty functions per parenthesis, Python's `ast` and tally's own checks once or
twice per operator of a chain like `1+1+...` or `a.b.c...`. Text deep enough exhausts Python's
recursion limit (a RecursionError, a 500 or INTERNAL) and a long chain costs time quadratic in
its length in some walks. So the depth is bounded first, in one linear pass over the tokens
(from the language's own tokenizer, so a quote or a comment can never hide a bracket):

* nesting: brackets within one another (and CASE ... END), plus prefix operators in a row
  (`NOT NOT x`, `- - 1`): what a parser recurses through;
* depth: the nesting plus the binary operators chained within each operand along the way
  (`1+1+...`, `a.b.c`, `x AND y AND ...`): how deep the tree is.

Commas separate operands, so a long list (`IN ('a', 'b', ...)`) is wide, not deep."""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum


class Kind(Enum):
    OPEN = "open"  # ( [ { CASE
    CLOSE = "close"  # ) ] } END
    SEP = "sep"  # , and what separates operands as a comma does (WHEN, THEN, ELSE)
    PREFIX = "prefix"  # NOT, or - + ~ where no operand precedes them
    OP = "op"  # a binary operator: = AND + . :: LIKE ...
    VALUE = "value"  # a name, a literal


class TooDeep(Exception):
    """The text nests or chains more than allowed; `message` says which, for the caller."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def check(kinds: Iterable[Kind], max_nesting: int, max_depth: int) -> None:
    """Raise TooDeep when the tokens (their kinds, in order) nest deeper than `max_nesting` or
    chain deeper than `max_depth`. Linear in the number of tokens; stops at the first excess."""
    # Per enclosing bracket: the counts at its opening, restored at its close.
    stack: list[tuple[int, int, int, int]] = []
    nesting = depth = 0  # of the enclosing brackets
    # Within the current operand: prefix operators in a row (a parser recurses through each),
    # and operators of either kind (each one more level of the tree).
    prefixes = chain = 0
    for kind in kinds:
        if kind is Kind.OPEN:
            stack.append((nesting, depth, prefixes, chain))
            nesting, depth = nesting + 1 + prefixes, depth + 1 + chain
            prefixes = chain = 0
        elif kind is Kind.CLOSE:
            if stack:  # an unbalanced close is the parser's to report
                nesting, depth, prefixes, chain = stack.pop()
        elif kind is Kind.SEP:
            prefixes = chain = 0
        elif kind is Kind.PREFIX:
            prefixes += 1
            chain += 1
        elif kind is Kind.OP:  # a parser loops over a chain of binary operators
            prefixes = 0
            chain += 1
        if nesting + prefixes > max_nesting:
            raise TooDeep(f"it nests brackets or operators like NOT more than {max_nesting} "
                          "deep")
        if depth + chain > max_depth:
            raise TooDeep(f"it chains operators more than {max_depth} deep (e.g. a long "
                          "1+1+... or a.b.c...)")
