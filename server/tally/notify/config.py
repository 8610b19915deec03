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

import yaml

from tally.errors import ConfigurationError
from tally.notify.events import EVENTS

CONFIG_FILE = "tally.yml"
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
    path = project_dir / CONFIG_FILE
    if not path.exists():
        return NotifyConfig()
    try:
        top = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigurationError(f"{path}: invalid YAML: {e}.") from None
    if not isinstance(top, dict):
        raise ConfigurationError(f"{path}: the file must be a mapping.")
    hooks = top.get("webhooks") or []
    if not isinstance(hooks, list):
        raise ConfigurationError(f"{path}: webhooks must be a list.")
    webhooks = tuple(_webhook(path, i, h) for i, h in enumerate(hooks))
    email = None
    if top.get("email") is not None:
        node = top["email"]
        if not isinstance(node, dict):
            raise ConfigurationError(f"{path}: email must be a mapping (to, events).")
        _known(path, node, {"to", "events"}, "email")
        to = node.get("to")
        to = [to] if isinstance(to, str) else to
        if not to or not all(isinstance(t, str) and "@" in t for t in to):
            raise ConfigurationError(f"{path}: email.to must be one or more addresses.")
        email = EmailRoute(tuple(to), _events(path, node.get("events"), "email.events"))
    return NotifyConfig(webhooks=webhooks, email=email)


def _webhook(path: Path, i: int, node: Any) -> Webhook:
    what = f"webhooks[{i}]"
    if not isinstance(node, dict):
        raise ConfigurationError(f"{path}: {what} must be a mapping (url, events, secret_env).")
    _known(path, node, {"url", "events", "secret_env"}, what)
    url = node.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ConfigurationError(f"{path}: {what}.url must be an http(s) URL, got {url!r}.")
    secret_env = node.get("secret_env", DEFAULT_SECRET_ENV)
    if not isinstance(secret_env, str) or not secret_env:
        raise ConfigurationError(f"{path}: {what}.secret_env must name a variable.")
    return Webhook(url, _events(path, node.get("events"), f"{what}.events"), secret_env)


def _events(path: Path, node: Any, what: str) -> tuple[str, ...]:
    if node is None:
        return EVENTS
    names = [node] if isinstance(node, str) else node
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigurationError(f"{path}: {what} must be a list of event names.")
    for name in names:
        if name not in EVENTS:
            import difflib

            close = difflib.get_close_matches(name, EVENTS, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigurationError(
                f"{path}: {what}: unknown event {name!r} (known: {', '.join(EVENTS)}).{hint}"
            )
    return tuple(names)


def _known(path: Path, node: dict, keys: set[str], what: str) -> None:
    unknown = sorted(set(node) - keys)
    if unknown:
        raise ConfigurationError(
            f"{path}: unknown key {unknown[0]!r} under {what} (known: {', '.join(sorted(keys))})."
        )
