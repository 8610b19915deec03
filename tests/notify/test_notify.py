"""Webhooks and email, against real receivers on loopback: signatures a subscriber can check,
retries with backoff on failures, no retry on a refusal, order kept, failures counted in
Prometheus, a destination that is down never blocking the sender; and tally.yml's errors."""

from __future__ import annotations

import time

import pytest
from prometheus_client import CollectorRegistry

from tally.errors import ConfigurationError
from tally.notify import Event, Notifier, NotifyConfig, load_notify_config
from tally.notify.config import EmailRoute, Webhook
from tally.settings import Settings
from tests.support.receivers import smtp_server, webhook_receiver
from tests.support.waiting import wait_until

SECRET_ENV = "TALLY_TEST_WEBHOOK_SECRET"


def settings(**overrides) -> Settings:
    base = {"webhook_backoff_seconds": 0.05, "webhook_timeout_seconds": 2.0}
    return Settings(**{**base, **overrides})


def sample(registry: CollectorRegistry, name: str, **labels) -> float:
    return registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
def receiver(monkeypatch):
    with webhook_receiver() as r:
        monkeypatch.setenv(SECRET_ENV, r.secret.decode())
        yield r


def notifier_for(receiver, events=None, **overrides) -> tuple[Notifier, CollectorRegistry]:
    registry = CollectorRegistry()
    hook = Webhook(receiver.url, tuple(events or ("build.succeeded", "build.failed",
                                                  "cache.warmed", "monitor.alert")), SECRET_ENV)
    return Notifier(NotifyConfig(webhooks=(hook,)), settings(**overrides), registry), registry


def test_payloads_are_signed_ordered_and_carry_a_slack_text(receiver):
    notifier, registry = notifier_for(receiver)
    sent = [Event("build.succeeded", "built", {"n": 1}), Event("cache.warmed", "warm", {}),
            Event("monitor.alert", "orders dropped", {"monitor": "daily_orders"})]
    for e in sent:
        notifier.notify(e)
    assert notifier.flush(10)
    notifier.close()
    got = receiver.accepted()
    assert [d.event for d in got] == [e.name for e in sent]
    assert all(d.signature_ok for d in got)
    assert [d.payload["id"] for d in got] == [e.id for e in sent]
    assert got[2].payload["text"] == "orders dropped"  # Slack incoming webhooks show `text`
    assert got[2].payload["data"] == {"monitor": "daily_orders"}
    assert got[0].headers["x-tally-event"] == "build.succeeded"
    assert sample(registry, "tally_notifications_total", channel="webhook",
                  event="monitor.alert", outcome="delivered") == 1


def test_a_wrong_secret_fails_the_subscribers_check(receiver, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, "another-secret")
    notifier, _ = notifier_for(receiver)
    notifier.notify(Event("build.failed", "x"))
    notifier.close()
    assert [d.signature_ok for d in receiver.accepted()] == [False]


def test_server_errors_are_retried_with_backoff_and_order_is_kept(receiver):
    receiver.fail_with = [500, 503]  # the first event fails twice, then gets through
    notifier, registry = notifier_for(receiver, webhook_backoff_seconds=0.1)
    started = time.monotonic()
    notifier.notify(Event("build.succeeded", "first"))
    notifier.notify(Event("cache.warmed", "second"))
    assert notifier.flush(10)
    elapsed = time.monotonic() - started
    notifier.close()
    assert [d.status for d in receiver.deliveries] == [500, 503, 200, 200]
    assert receiver.events() == ["build.succeeded", "cache.warmed"]
    assert elapsed >= 0.1 + 0.2  # backoff doubled between the two retries
    assert sample(registry, "tally_notification_attempt_failures_total", channel="webhook") == 2


def test_a_refusal_is_not_retried_and_is_counted_as_failed(receiver):
    receiver.fail_with = [400]
    notifier, registry = notifier_for(receiver)
    notifier.notify(Event("build.failed", "refused"))
    notifier.notify(Event("build.succeeded", "next"))
    notifier.close()
    assert [d.status for d in receiver.deliveries] == [400, 200]
    assert sample(registry, "tally_notifications_total", channel="webhook",
                  event="build.failed", outcome="failed") == 1


def test_giving_up_after_max_attempts(receiver):
    receiver.fail_with = [500] * 10
    notifier, registry = notifier_for(receiver, webhook_max_attempts=3)
    notifier.notify(Event("monitor.alert", "x"))
    notifier.close()
    assert len(receiver.deliveries) == 3
    assert sample(registry, "tally_notifications_total", channel="webhook",
                  event="monitor.alert", outcome="failed") == 1


def test_a_destination_that_is_down_never_blocks_the_sender():
    # Nothing listens on this port: every attempt fails, with backoff, on the notifier's thread.
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    registry = CollectorRegistry()
    hook = Webhook(f"http://127.0.0.1:{port}/", ("build.failed",), SECRET_ENV)
    notifier = Notifier(NotifyConfig(webhooks=(hook,)),
                        settings(webhook_backoff_seconds=0.5), registry)
    started = time.monotonic()
    for _ in range(5):
        notifier.notify(Event("build.failed", "x"))
    assert time.monotonic() - started < 0.1
    wait_until(lambda: sample(registry, "tally_notification_attempt_failures_total",
                              channel="webhook") >= 1)
    notifier.close(timeout=0.2)


def test_only_subscribed_events_are_sent(receiver):
    notifier, _ = notifier_for(receiver, events=["monitor.alert"])
    notifier.notify(Event("build.succeeded", "no"))
    notifier.notify(Event("monitor.alert", "yes"))
    notifier.close()
    assert receiver.events() == ["monitor.alert"]


def test_email_through_a_real_smtp_server():
    with smtp_server() as box:
        registry = CollectorRegistry()
        config = NotifyConfig(email=EmailRoute(("oncall@example.com",), ("monitor.alert",)))
        notifier = Notifier(config, settings(smtp_host=box.host, smtp_port=box.port,
                                             smtp_from="tally@example.com"), registry)
        notifier.notify(Event("monitor.alert", "tally monitor ALERT: daily_orders: -50%"))
        notifier.notify(Event("build.succeeded", "not routed to email"))
        notifier.close(10)
        assert len(box.messages) == 1
        message = box.messages[0]
        assert message["To"] == "oncall@example.com"
        assert message["X-Tally-Event"] == "monitor.alert"
        assert "daily_orders: -50%" in message["Subject"]
        assert sample(registry, "tally_notifications_total", channel="email",
                      event="monitor.alert", outcome="delivered") == 1


def test_tally_yml_is_read_and_mistakes_are_one_line_with_a_suggestion(tmp_path):
    (tmp_path / "tally.yml").write_text(
        "webhooks:\n  - url: https://hooks.example.com/x\n    events: [monitor.alert]\n"
        "email:\n  to: a@example.com\n"
    )
    config = load_notify_config(tmp_path)
    assert config.webhooks[0].events == ("monitor.alert",)
    assert config.email is not None and config.email.to == ("a@example.com",)
    (tmp_path / "tally.yml").write_text(
        "webhooks:\n  - url: https://hooks.example.com/x\n    events: [monitor.alrt]\n"
    )
    with pytest.raises(ConfigurationError, match=r"Did you mean 'monitor\.alert'"):
        load_notify_config(tmp_path)
    (tmp_path / "tally.yml").write_text("webhooks:\n  - url: ftp://x\n")
    with pytest.raises(ConfigurationError, match=r"webhooks\[0\]\.url must be an http"):
        load_notify_config(tmp_path)
    (tmp_path / "tally.yml").write_text("webhooks:\n  - url: http://x\n    secret: abc\n")
    with pytest.raises(ConfigurationError, match="unknown key 'secret'"):
        load_notify_config(tmp_path)


def test_unknown_event_names_cannot_be_sent():
    with pytest.raises(ValueError, match="unknown event"):
        Event("build.done", "x")
