"""MCP (Model Context Protocol) transport: the tools, resources and prompt an AI agent uses to
ask tally's governed metrics, over stdio (`tally mcp`) and streamable HTTP (`/mcp` on the API
server). A thin adapter over TallyService, like REST and GraphQL: it parses the tool's
arguments, authenticates the caller, calls the service and shapes an answer an agent cannot
misread (units, echoed filters, explicit truncation)."""
