"""Notifications: events of the refresh pipeline and the monitors, sent to webhooks (signed
with HMAC-SHA256, retried with backoff) and by email (SMTP), never blocking the sender."""

from tally.notify.config import NotifyConfig, load_notify_config
from tally.notify.events import EVENTS, Event
from tally.notify.notifier import Notifier

__all__ = ["EVENTS", "Event", "Notifier", "NotifyConfig", "load_notify_config"]
