"""Delivering one event to one destination: a webhook POST signed with HMAC-SHA256, or an
email through SMTP. Retries with exponential backoff live in the notifier, which calls these."""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import urllib.error
import urllib.request
from email.message import EmailMessage

from tally.notify.config import Webhook
from tally.notify.events import Event

SIGNATURE_HEADER = "X-Tally-Signature"
EVENT_HEADER = "X-Tally-Event"
DELIVERY_HEADER = "X-Tally-Delivery"
TIMESTAMP_HEADER = "X-Tally-Timestamp"


class DeliveryError(Exception):
    """One attempt failed; `retry` says whether another attempt may succeed."""

    def __init__(self, message: str, retry: bool = True) -> None:
        super().__init__(message)
        self.retry = retry


def body_of(event: Event) -> bytes:
    return json.dumps(event.payload(), sort_keys=True, separators=(",", ":")).encode()


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256 over `<timestamp>.<body>`: the timestamp is signed too, so
    a receiver can refuse an old delivery replayed."""
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def post_webhook(hook: Webhook, event: Event, timeout: float) -> None:
    body = body_of(event)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "tally-webhooks/1",
        EVENT_HEADER: event.name,
        DELIVERY_HEADER: event.id,
        TIMESTAMP_HEADER: event.timestamp,
    }
    secret = hook.secret()
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, event.timestamp, body)
    request = urllib.request.Request(hook.url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as e:
        # A receiver's 4xx (but 408 and 429) will not change on a retry.
        retry = e.code >= 500 or e.code in (408, 429)
        raise DeliveryError(f"HTTP {e.code}", retry=retry) from None
    except (urllib.error.URLError, OSError) as e:
        raise DeliveryError(str(getattr(e, "reason", e))) from None


def send_email(
    smtp: dict, sender: str, to: tuple[str, ...], event: Event, timeout: float
) -> None:
    message = EmailMessage()
    message["Subject"] = f"[tally] {event.name}: {event.text.splitlines()[0][:120]}"
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["X-Tally-Event"] = event.name
    message.set_content(
        event.text + "\n\n" + json.dumps(event.payload(), indent=2, sort_keys=True)
    )
    try:
        with smtplib.SMTP(smtp["host"], smtp["port"], timeout=timeout) as client:
            if smtp.get("starttls"):
                client.starttls()
            if smtp.get("user"):
                client.login(smtp["user"], smtp.get("password") or "")
            client.send_message(message)
    except smtplib.SMTPResponseException as e:
        raise DeliveryError(f"SMTP {e.smtp_code}", retry=400 <= e.smtp_code < 500) from None
    except (smtplib.SMTPException, OSError) as e:
        raise DeliveryError(str(e) or type(e).__name__) from None
