"""The MCP server over one TallyService: tools named like dbt's MCP semantic-layer tools plus
tally's own (explain_metric, query_saved_query), the catalog and each metric's definition as
resources, and one prompt. Every handler runs as the caller of the message: over HTTP the one
authenticated from its bearer token (tally.mcp.http), over stdio the one of `tally mcp --token`
(or anonymous)."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, TextContent
from pydantic import Field

from tally.core import formats
from tally.core.caller import Caller
from tally.errors import TallyError
from tally.mcp.answers import FORMATS
from tally.mcp.errors import error_body, nearest
from tally.mcp.prompts import ANSWER_PROMPT, answer_prompt
from tally.mcp.tools import GroupByParam, OrderByParam, Tools
from tally.service import TallyService

#: The caller of the message being handled, set by the transport (tally.mcp.http) per request.
current_caller: ContextVar[Caller | None] = ContextVar("tally_mcp_caller", default=None)

Metrics = Annotated[list[str], Field(description="Metric names, e.g. from list_metrics.")]
Search = Annotated[str | None, Field(description="Case-insensitive text to look for.")]
Where = Annotated[
    str | list[str] | None,
    Field(description="Filter(s) in the semantic layer's template SQL, e.g. "
          "\"{{ Dimension('<entity>__<dimension>') }} = 'value'\" or "
          "\"{{ TimeDimension('metric_time', 'day') }} >= '2025-01-01'\"."),
]  # fmt: skip
Limit = Annotated[int | None, Field(description="Most rows to show (the answer says if cut).")]
Format = Annotated[str, Field(description=f"{FORMATS[0].name} (records) or the rows as text: "
                              f"{formats.listed(formats.names(FORMATS[1:]))}.")]
GroupBys = Annotated[list[GroupByParam] | None, Field(description="What to group by.")]
OrderBys = Annotated[list[OrderByParam] | None, Field(description="Sort order.")]


def _text(body: dict[str, Any], is_error: bool = False) -> CallToolResult:
    text = json.dumps(body, ensure_ascii=False, default=str)
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=body,
        is_error=is_error,
    )


def build_server(
    service: TallyService, default_caller: Callable[[], Caller]
) -> MCPServer:
    """The MCP server. `default_caller`: who calls when the transport set no caller (stdio)."""
    tools = Tools(service)
    # MCPServer() calls logging.basicConfig (a Rich handler at INFO on the root logger) when
    # the root logger has no handler yet: building the API app must not configure the
    # process's logging, so a placeholder handler makes that call a no-op.
    root, placeholder = logging.getLogger(), logging.NullHandler()
    if not root.handlers:
        root.addHandler(placeholder)
    try:
        mcp = _new_server()
    finally:
        root.removeHandler(placeholder)

    mcp.middleware.append(functools.partial(_sdk_errors_in_one_shape, mcp))

    def caller() -> Caller:
        return current_caller.get() or default_caller()

    _tools(mcp, service, tools, caller)
    _resources(mcp, service, tools, caller)

    @mcp.prompt(name=ANSWER_PROMPT, description="Answer a business question with tally's "
                "metrics: pick metrics, check dimensions, state the filters.")  # fmt: skip
    def answer_question(question: str) -> str:
        return answer_prompt(question)

    return mcp


async def _sdk_errors_in_one_shape(mcp: MCPServer, ctx: Any, call_next: Any) -> Any:
    """Tool errors the SDK writes itself (arguments that fail the tool's schema, an unknown
    tool) in tally's one error shape too, so an agent parses every error the same way."""
    result = await call_next(ctx)
    if ctx.method != "tools/call" or not isinstance(result, dict) or not result.get("isError"):
        return result
    content = result.get("content") or [{}]
    text = content[0].get("text", "") if isinstance(content[0], dict) else ""
    if not text or text.lstrip().startswith("{"):
        return result
    lines = [line for line in text.splitlines() if "errors.pydantic.dev" not in line]
    message = "\n".join(lines).replace("Error executing tool ", "Bad arguments for tool ", 1)
    body: dict[str, Any] = {"error": {"code": "invalid_arguments", "message": message}}
    if text.startswith("Unknown tool"):
        names = sorted(t.name for t in await mcp.list_tools())
        asked = str((ctx.params or {}).get("name", ""))
        body["error"].update(code="unknown_tool", suggestions=nearest(asked, names),
                             valid_tools=names)  # fmt: skip
    return {**result, "content": [{"type": "text", "text": json.dumps(body)}],
            "structuredContent": body}  # fmt: skip


def _new_server() -> MCPServer:
    return MCPServer(
        "tally",
        title="tally metrics",
        instructions=(
            "Governed business metrics. Find metrics with list_metrics, check what they can be "
            "grouped and filtered by with get_dimensions, then query_metrics; state the "
            "filters and time range the answer echoes back. explain_metric tells what a "
            "metric means."
        ),
        version="0.1.0",
    )


def _tools(
    mcp: MCPServer, service: TallyService, tools: Tools, caller: Callable[[], Caller]
) -> None:
    """The tools; each runs as `caller()` and answers a TallyError as a tool error."""

    async def run(
        work: Callable[[Caller], Awaitable[dict[str, Any]]],
        asked: str | None = None,
        metrics: list[str] | None = None,
    ) -> CallToolResult:
        who: Caller | None = None
        try:
            who = caller()
            return _text(await work(who))
        except TallyError as e:
            if who is None:
                return _text(e.to_dict(), is_error=True)
            error, seen_by = e, who
            body = await service.run(
                lambda: error_body(error, service, seen_by, asked=asked, metrics=metrics or ())
            )
            return _text(body, is_error=True)

    @mcp.tool(description="List the metrics you may query, with their type and unit.")
    async def list_metrics(search: Search = None) -> CallToolResult:
        return await run(lambda c: tools.list_metrics(c, search))

    @mcp.tool(description="List saved queries (named, reviewed questions) you may run.")
    async def list_saved_queries(search: Search = None) -> CallToolResult:
        return await run(lambda c: tools.list_saved_queries(c, search))

    @mcp.tool(description="The dimensions the metrics can be grouped and filtered by (all of "
              "them together); time dimensions list their grains.")  # fmt: skip
    async def get_dimensions(metrics: Metrics, search: Search = None) -> CallToolResult:
        return await run(lambda c: tools.get_dimensions(c, metrics, search), metrics=metrics)

    @mcp.tool(description="The entities (join keys) of the metrics.")
    async def get_entities(metrics: Metrics, search: Search = None) -> CallToolResult:
        return await run(lambda c: tools.get_entities(c, metrics, search), metrics=metrics)

    @mcp.tool(description="The distinct values of a dimension (optionally those the metrics "
              "reach); `truncated` says when more exist than `limit`.")  # fmt: skip
    async def get_dimension_values(
        dimension: Annotated[str, Field(description="e.g. <entity>__<dimension>")],
        metrics: Annotated[list[str] | None, Field(description="Metric names.")] = None,
        limit: Limit = None,
    ) -> CallToolResult:
        ms = metrics or []
        return await run(lambda c: tools.get_dimension_values(c, dimension, ms, limit),
                         asked=dimension, metrics=ms)  # fmt: skip

    @mcp.tool(description="Query metrics: numbers with column types and units, the filters "
              "and time range applied, and `truncated` + `total_rows` when rows were "
              "cut.")  # fmt: skip
    async def query_metrics(
        metrics: Metrics,
        group_by: GroupBys = None,
        order_by: OrderBys = None,
        where: Where = None,
        limit: Limit = None,
        format: Format = formats.JSON.name,
        start: Annotated[str | None, Field(description="First metric_time (ISO date).")] = None,
        end: Annotated[str | None, Field(description="Last metric_time (ISO date).")] = None,
    ) -> CallToolResult:
        return await run(lambda c: tools.query_metrics(c, metrics, group_by, order_by, where,
                                                       limit, format, start, end),
                         metrics=metrics)  # fmt: skip

    @mcp.tool(description="The SQL tally runs for a query_metrics call (same arguments).")
    async def get_metrics_compiled_sql(
        metrics: Metrics,
        group_by: GroupBys = None,
        order_by: OrderBys = None,
        where: Where = None,
        limit: Limit = None,
    ) -> CallToolResult:
        return await run(lambda c: tools.compiled_sql(c, metrics, group_by, order_by, where,
                                                      limit), metrics=metrics)  # fmt: skip

    @mcp.tool(description="What a metric means: its definition in words, type, unit, inputs "
              "and filters, the dbt models it reads, what it can be cut by, and the SQL of a "
              "default query.")  # fmt: skip
    async def explain_metric(
        name: Annotated[str, Field(description="A metric name.")],
    ) -> CallToolResult:
        return await run(lambda c: tools.explain_metric(c, name), asked=name)

    @mcp.tool(description="Run a saved query by name, with extra filters and a row limit.")
    async def query_saved_query(
        name: Annotated[str, Field(description="A saved query name.")],
        where: Where = None,
        limit: Limit = None,
        format: Format = formats.JSON.name,
    ) -> CallToolResult:
        return await run(lambda c: tools.query_saved_query(c, name, where, limit, format),
                         asked=name)  # fmt: skip



def _resources(
    mcp: MCPServer, service: TallyService, tools: Tools, caller: Callable[[], Caller]
) -> None:
    """tally://catalog (every metric and saved query the caller may see) and
    tally://metrics/{name} (one metric's explanation)."""

    async def as_json(work: Awaitable[dict[str, Any]]) -> str:
        try:
            return json.dumps(await work, ensure_ascii=False, default=str)
        except TallyError as e:
            from mcp.server.mcpserver.exceptions import ResourceError

            raise ResourceError(json.dumps(e.to_dict())) from None

    @mcp.resource("tally://catalog", name="catalog", mime_type="application/json",
                  description="The metrics and saved queries you may use.")  # fmt: skip
    async def catalog() -> str:
        async def both() -> dict[str, Any]:
            who = caller()
            return {**await tools.list_metrics(who, None),
                    **await tools.list_saved_queries(who, None)}  # fmt: skip

        return await as_json(both())

    @mcp.resource("tally://metrics/{name}", name="metric", mime_type="application/json",
                  description="One metric's definition (as explain_metric).")  # fmt: skip
    async def metric(name: str) -> str:
        return await as_json(tools.explain_metric(caller(), name))
