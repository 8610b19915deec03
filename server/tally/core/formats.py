"""Output formats: the one table of them. Each `Format` says its name (`--format`, an export's
`"format"`, MCP's `format`), its media type (Accept, Content-Type), its file extensions (the
CLI's `--output FILE`, an export's file name) and its encoders (core/encoding.py).

Every reader asks this table: content negotiation (api/negotiation.py), exports (REST and the
CLI), the CLI's `--format`, MCP's `format`, the OpenAPI document. To add a format, add one entry
to FORMATS (and its encoders to core/encoding.py): nothing else names formats.

What a format can do follows from the encoders it has: a whole-result encoder makes it a query's
answer (Accept on /query, job results, dimension values, the CLI's standard output); a stream
writer makes it an export (POST /api/v1/exports, `tally query --output`); a charset makes it
text (printable to a terminal, carried inside MCP's JSON answers).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tally.errors import InvalidRequest, did_you_mean, shorten

if TYPE_CHECKING:
    import pyarrow as pa

    from tally.core.results import QueryResult


def _encoder(name: str) -> Callable[..., Any]:
    """core/encoding.<name>, imported on first use: the CLI reads this table to parse its
    arguments, and `tally --help` need not load pyarrow (and Parquet) for that."""

    def call(*args: Any) -> Any:
        from tally.core import encoding

        return getattr(encoding, name)(*args)

    call.__name__ = call.__qualname__ = name
    return call


@dataclass(frozen=True)
class Format:
    name: str  # lower case, as asked for: `--format ndjson`, `"format": "ndjson"`
    media_type: str  # without parameters: what Accept names, what Content-Type says
    extensions: tuple[str, ...]  # with their dot; the first is the one an export file gets
    summary: str  # a few words for help texts and the OpenAPI document
    # Text formats: their charset; None for binary ones (not for a terminal, nor inside JSON).
    charset: str | None = None
    # The whole table at once (None: not offered as a query's answer).
    table: Callable[[pa.Table], bytes] | None = None
    # A whole result with what the table alone does not say, when the format carries more
    # (JSON's envelope: SQL, cache, timings) or can reuse what the cache kept (rows' JSON text).
    result: Callable[[QueryResult], bytes] | None = None
    # Batches in, bytes out as they arrive (None: no exports in this format).
    stream: Callable[[pa.Schema, Iterable[pa.RecordBatch]], Iterator[bytes]] | None = None

    @property
    def text(self) -> bool:
        return self.charset is not None

    @property
    def answers(self) -> bool:
        """Offered as a query's answer (a result held whole)."""
        return self.result is not None or self.table is not None

    @property
    def streams(self) -> bool:
        """Offered as an export (written as the batches arrive, any size)."""
        return self.stream is not None

    @property
    def content_type(self) -> str:
        # text/* defaults to US-ASCII (RFC 6838), so its charset is said; JSON-based types are
        # UTF-8 by definition (RFC 8259) and take no charset parameter.
        if self.charset and self.media_type.startswith("text/"):
            return f"{self.media_type}; charset={self.charset}"
        return self.media_type

    def encode(self, result: QueryResult) -> bytes:
        """A whole result as this format's bytes (a query's answer)."""
        if self.result is not None:
            return self.result(result)
        if self.table is None:
            raise ValueError(f"{self.name} is not offered as a query's answer")
        return self.table(result.table)


FORMATS: tuple[Format, ...] = (
    # The first is the default answer (no Accept, */*, application/*).
    Format("json", "application/json", (".json",), "the result with its metadata",
           charset="utf-8", result=_encoder("json_answer")),
    Format("csv", "text/csv", (".csv",), "comma-separated values with a header",
           charset="utf-8", table=_encoder("to_csv"), stream=_encoder("stream_csv")),
    Format("arrow", "application/vnd.apache.arrow.stream", (".arrows", ".arrow"),
           "Arrow IPC stream", table=_encoder("to_arrow_stream"),
           stream=_encoder("stream_arrow")),
    # A file format: exports and --output only (a reader needs the footer, written last).
    Format("parquet", "application/vnd.apache.parquet", (".parquet",),
           "Parquet, one row group per batch", stream=_encoder("stream_parquet")),
    Format("ndjson", "application/x-ndjson", (".ndjson", ".jsonl"),
           "one JSON object per row and line", charset="utf-8", table=_encoder("to_ndjson"),
           result=_encoder("result_ndjson"), stream=_encoder("stream_ndjson")),
)  # fmt: skip

JSON = FORMATS[0]


def named(name: str) -> Format | None:
    return next((f for f in FORMATS if f.name == name), None)


def answers() -> tuple[Format, ...]:
    """The formats a query's answer comes in, the default (JSON) first."""
    return tuple(f for f in FORMATS if f.answers)


def exports() -> tuple[Format, ...]:
    """The formats a result of any size is streamed in."""
    return tuple(f for f in FORMATS if f.streams)


def names(formats: Iterable[Format] | None = None) -> list[str]:
    return [f.name for f in (FORMATS if formats is None else formats)]


def listed(words: Iterable[str], last: str = "or") -> str:
    """"csv, arrow, parquet or ndjson": for messages and help texts."""
    words = list(words)
    return ", ".join(words[:-1]) + f" {last} {words[-1]}" if len(words) > 1 else "".join(words)


def find(
    name: str | None, among: Sequence[Format] | None = None, *, what: str = "format"
) -> Format:
    """The format called `name` (any case) among `among` (default: all); else InvalidRequest
    naming the ones there are, with a suggestion when one is close (a name, or an extension:
    jsonl -> ndjson). `what`: the word for it in the message ("export format")."""
    among = FORMATS if among is None else among
    asked = (name or "").strip().lower()
    for f in among:
        if f.name == asked:
            return f
    known = names(among)
    if named(asked) is not None:  # a format, but not one for this use
        article = "an" if what[:1] in "aeiou" else "a"
        raise InvalidRequest(
            f"{asked} is not offered as {article} {what} here: use one of {', '.join(known)}.",
            supported=known)  # fmt: skip
    close = suggest(asked, among)
    hint = f" Did you mean '{close.name}'?" if close else ""
    raise InvalidRequest(
        f"Unknown {what} {shorten(name)}: use one of {', '.join(known)}.{hint}",
        supported=known)  # fmt: skip


def suggest(word: str, among: Sequence[Format] | None = None) -> Format | None:
    """The format a misspelt name or media type most likely means: one whose files end in it
    (jsonl, arrows), else the closest name or media subtype (parqet, application/ndjson). Media
    types are compared by their subtype: their shared "application/" would make any two close."""
    among = FORMATS if among is None else among
    word = word.strip().lower().rsplit("/", 1)[-1]
    for f in among:
        if f".{word}" in f.extensions:
            return f
    spellings = {s: f for f in among for s in (f.name, f.media_type.rsplit("/", 1)[-1])}
    best = did_you_mean(word, spellings)
    return spellings[best] if best else None


def by_extension(suffix: str) -> Format | None:
    """The format whose files end in `suffix` (".parquet", any case)."""
    suffix = suffix.lower()
    return next((f for f in FORMATS if suffix in f.extensions), None)


def extensions(formats: Iterable[Format]) -> list[str]:
    return [e for f in formats for e in f.extensions]
