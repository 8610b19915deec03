"""Where notifications go: the `webhooks:` and `email:` parts of the project file `tally.yml`.

    webhooks:
      - url: https://hooks.example.com/tally
        events: [build.succeeded, build.failed, cache.warmed, monitor.alert, monitor.recovered]
        secret_env: TALLY_WEBHOOK_SECRET   # the variable holding the signing secret (default)
    email:
      to: [data-oncall@example.com]
      events: [build.failed, monitor.alert, monitor.recovered]

Secrets never live in the file: a webhook's HMAC secret is read from the environment variable
it names; the SMTP server and its credentials are settings (TALLY_SMTP_*).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tally.errors import suggestion_suffix
from tally.notify.events import EVENTS
from tally.project.tally_file import YamlReader, read_tally_file

DEFAULT_SECRET_ENV = "TALLY_WEBHOOK_SECRET"


@dataclass(frozen=True)
class Webhook:
    url: str
    events: tuple[str, ...]
    secret_env: str = DEFAULT_SECRET_ENV

    def secret(self) -> bytes | None:
        value = os.environ.get(self.secret_env)
        return value.encode() if value else None


@dataclass(frozen=True)
class EmailRoute:
    to: tuple[str, ...]
    events: tuple[str, ...]


@dataclass(frozen=True)
class NotifyConfig:
    webhooks: tuple[Webhook, ...] = ()
    email: EmailRoute | None = None


def load_notify_config(project_dir: Path) -> NotifyConfig:
    file = read_tally_file(project_dir)
    reader = file.reader
    webhooks = tuple(
        _webhook(reader, i, node)
        for i, node in enumerate(reader.sequence(file.section("webhooks"), "webhooks"))
    )
    email = None
    node = file.section("email")
    if not reader.empty(node):
        fields = reader.mapping(node, "email (to, events)")
        reader.known(fields, ("to", "events"), "email")
        to = reader.strings(fields.get("to"), "email.to")
        if not to or not all("@" in t for t in to):
            raise reader.error(fields.get("to", node), "email.to must be one or more addresses")
        email = EmailRoute(tuple(to), _events(reader, fields.get("events"), "email.events"))
    return NotifyConfig(webhooks=webhooks, email=email)


def _webhook(reader: YamlReader, i: int, node: Any) -> Webhook:
    what = f"webhooks[{i}]"
    fields = reader.mapping(node, f"{what} (url, events, secret_env)")
    reader.known(fields, ("url", "events", "secret_env"), what)
    url = reader.plain(fields.get("url"))
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise reader.error(fields.get("url", node),
                           f"{what}.url must be an http(s) URL, got {url!r}")  # fmt: skip
    secret_env = reader.plain(fields.get("secret_env")) or DEFAULT_SECRET_ENV
    if not isinstance(secret_env, str):
        raise reader.error(fields["secret_env"], f"{what}.secret_env must name a variable")
    return Webhook(url, _events(reader, fields.get("events"), f"{what}.events"), secret_env)


def _events(reader: YamlReader, node: Any, what: str) -> tuple[str, ...]:
    names = reader.strings(node, what)
    if names is None:
        return EVENTS
    for name in names:
        if name not in EVENTS:
            hint, _ = suggestion_suffix(name, EVENTS)
            raise reader.error(node, f"{what}: unknown event {name!r} (known: "
                               f"{', '.join(EVENTS)}).{hint}")  # fmt: skip
    return tuple(names)
