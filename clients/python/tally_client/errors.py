"""Errors: the server's own (its stable code, message and did-you-mean suggestion), and a
server that cannot be reached."""

from __future__ import annotations

from typing import Any

import httpx


class TallyConnectionError(Exception):
    """The server could not be reached (after the retries)."""


class TallyAPIError(Exception):
    """An error answered by the server: `{"error": {"code", "message", "details"}}`."""

    def __init__(self, status: int, code: str, message: str,
                 details: dict[str, Any] | None = None) -> None:  # fmt: skip
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        suggestion = self.details.get("suggestion")
        self.suggestion: str | None = suggestion if isinstance(suggestion, str) else None

    @classmethod
    def from_response(cls, response: httpx.Response) -> TallyAPIError:
        try:
            error = response.json().get("error") or {}
        except (ValueError, AttributeError):
            error = {}
        if not isinstance(error, dict) or not error.get("code"):
            return cls(response.status_code, "http_error",
                       f"HTTP {response.status_code}: {response.text[:200]}")  # fmt: skip
        return cls(response.status_code, str(error["code"]), str(error.get("message", "")),
                   error.get("details") if isinstance(error.get("details"), dict) else None)
