"""The events tally sends, and the one payload shape every channel carries."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

EVENTS = (
    "build.succeeded",
    "build.failed",
    "cache.warmed",
    "monitor.alert",
    "monitor.recovered",
)


@dataclass(frozen=True)
class Event:
    """`text` is a one-paragraph summary for people: a Slack incoming webhook shows the
    payload's `text` field as the message, so any webhook URL of Slack works unchanged."""

    name: str
    text: str
    data: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    timestamp: str = field(
        default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    )

    def __post_init__(self) -> None:
        if self.name not in EVENTS:
            raise ValueError(f"unknown event {self.name!r} (known: {', '.join(EVENTS)})")

    def payload(self) -> dict[str, Any]:
        return {
            "event": self.name,
            "id": self.id,
            "timestamp": self.timestamp,
            "text": self.text,
            "data": self.data,
        }
