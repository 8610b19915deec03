"""Assertions several test modules make: the one error shape, a Prometheus sample."""

from __future__ import annotations

import httpx


def assert_error(response: httpx.Response, status: int, code: str, *needles: str) -> dict:
    """The response is the error shape with this status and code, its message containing every
    needle, and no traceback anywhere; returns the error object."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), body
    assert body["error"]["code"] == code, body
    for needle in needles:
        assert needle in body["error"]["message"], body
    assert "Traceback" not in response.text
    return body["error"]


def prometheus_sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus's text format, by name and labels."""
    for line in text.splitlines():
        if line.startswith(name + ("{" if labels else " ")) and all(
                f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} {labels} not in /metrics")
