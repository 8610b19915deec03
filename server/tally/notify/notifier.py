"""The notifier: `notify(event)` returns at once; each destination (a webhook URL, the email
route) has a queue and a thread of its own that delivers its events in order, retrying with
exponential backoff. A destination that is down delays only its own later events, never the
build, the monitors or another destination. Failures are logged and counted in Prometheus."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter

from tally.notify.config import NotifyConfig
from tally.notify.delivery import DeliveryError, post_webhook, send_email
from tally.notify.events import Event
from tally.settings import Settings

log = logging.getLogger("tally.notify")

Send = Callable[[Event], None]


class NotifyMetrics:
    def __init__(self, registry: CollectorRegistry | None) -> None:
        kwargs = {"registry": registry} if registry is not None else {"registry": None}
        self.deliveries = Counter(
            "tally_notifications",
            "Notifications by channel, event and outcome (delivered, failed after retries).",
            ["channel", "event", "outcome"],
            **kwargs,
        )
        self.attempts_failed = Counter(
            "tally_notification_attempt_failures",
            "Delivery attempts that failed (each retry counts).",
            ["channel"],
            **kwargs,
        )


class _Destination:
    def __init__(self, name: str, channel: str, send: Send, notifier: Notifier) -> None:
        self.name, self.channel, self.send, self.notifier = name, channel, send, notifier
        self.queue: queue.Queue[Event | None] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name=f"tally-notify-{channel}",
                                       daemon=True)  # fmt: skip
        self.thread.start()

    def _run(self) -> None:
        while True:
            event = self.queue.get()
            try:
                if event is None:
                    return
                self._deliver(event)
            finally:
                self.queue.task_done()

    def _deliver(self, event: Event) -> None:
        n = self.notifier
        for attempt in range(1, n.max_attempts + 1):
            try:
                self.send(event)
            except DeliveryError as e:
                n.metrics.attempts_failed.labels(self.channel).inc()
                last = attempt == n.max_attempts or not e.retry
                log.warning("%s %s: %s delivery attempt %d/%d failed: %s%s", self.channel,
                            self.name, event.name, attempt, n.max_attempts, e,
                            "" if not last else " (giving up)")  # fmt: skip
                if last:
                    n.metrics.deliveries.labels(self.channel, event.name, "failed").inc()
                    return
                if n.stopping.wait(n.backoff_seconds * 2 ** (attempt - 1)):
                    n.metrics.deliveries.labels(self.channel, event.name, "failed").inc()
                    return
            except Exception as e:  # never kill the thread: the next event must still go
                log.exception("%s %s: %s delivery failed: %s", self.channel, self.name,
                              event.name, e)  # fmt: skip
                n.metrics.deliveries.labels(self.channel, event.name, "failed").inc()
                return
            else:
                n.metrics.deliveries.labels(self.channel, event.name, "delivered").inc()
                log.info("%s %s: %s delivered", self.channel, self.name, event.name)
                return


class Notifier:
    def __init__(
        self,
        config: NotifyConfig,
        settings: Settings,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.config = config
        self.max_attempts = settings.webhook_max_attempts
        self.backoff_seconds = settings.webhook_backoff_seconds
        self.timeout = settings.webhook_timeout_seconds
        self.metrics = NotifyMetrics(registry)
        self.stopping = threading.Event()
        self.sent: list[Event] = []  # what notify() accepted, newest last (bounded)
        self._routes: list[tuple[tuple[str, ...], _Destination]] = []
        for hook in config.webhooks:
            send = (lambda h: lambda e: post_webhook(h, e, self.timeout))(hook)
            self._routes.append((hook.events, _Destination(hook.url, "webhook", send, self)))
        if config.email is not None:
            if not settings.smtp_host:
                log.warning("tally.yml routes events to email but TALLY_SMTP_HOST is not set: "
                            "no email will be sent")  # fmt: skip
            else:
                smtp = {"host": settings.smtp_host, "port": settings.smtp_port,
                        "starttls": settings.smtp_starttls, "user": settings.smtp_user,
                        "password": settings.smtp_password.get_secret_value()
                        if settings.smtp_password else None}  # fmt: skip
                route = config.email

                def mail(event: Event) -> None:
                    send_email(smtp, settings.smtp_from, route.to, event, self.timeout)

                self._routes.append(
                    (route.events, _Destination(",".join(route.to), "email", mail, self))
                )

    @property
    def destinations(self) -> int:
        return len(self._routes)

    def notify(self, event: Event) -> None:
        """Queue the event for every destination subscribed to it; returns at once."""
        self.sent = [*self.sent[-99:], event]
        log.info("event %s: %s", event.name, event.text.splitlines()[0])
        for events, destination in self._routes:
            if event.name in events:
                destination.queue.put(event)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every queued event is delivered or given up (a CLI's last step)."""
        deadline = time.monotonic() + timeout
        for _, destination in self._routes:
            while destination.queue.unfinished_tasks:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.02)
        return True

    def close(self, timeout: float = 5.0) -> None:
        self.flush(timeout)
        self.stopping.set()
        for _, destination in self._routes:
            destination.queue.put(None)
        for _, destination in self._routes:
            destination.thread.join(timeout)
