"""Outbox delivery: signed webhooks to a real local receiver, retries with exponential backoff on a failing
receiver, `dead` after the last attempt, once-only delivery with concurrent deliverers, and the signature checked
with the documented recipe (an independent implementation here, as a receiver would write it)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest

from billing.delivery import deliver_due
from billing.outbound import WebhookSender
from billing.outbox import RetryPolicy
from billing.reminders import ReminderPolicy, enqueue_due_reminders
from billing.webhooks import verify_signature
from tests.conftest import Gateway
from tests.webhook_fixtures import WEBHOOK_SIGNING_KEY, WebhookReceiver

POLICY = RetryPolicy(max_attempts=4, base_seconds=30, cap_seconds=90)


@pytest.fixture
async def http() -> AsyncIterator[WebhookSender]:
    """What the delivery job sends with; the receivers of these tests listen on 127.0.0.1."""
    sender = WebhookSender(allow_private=True)
    yield sender
    await sender.close()


def receiver_checks_signature(secret: str, header: str, body: bytes, now: int) -> bool:
    """The README's recipe, written from the documentation only."""
    fields = dict(part.split("=", 1) for part in header.split(","))
    timestamp = int(fields["t"])
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return abs(now - timestamp) <= 300 and hmac.compare_digest(expected, fields["v1"])


async def _queued_reminder(gw: Gateway, url: str) -> tuple[dict, datetime]:
    """A permission with `url` as notify_url and its 24 h reminder queued; returns it and the queueing instant."""
    permission = await gw.funded_permission("10", "2.5", notify_url=url)
    expires_at = await gw.db.fetchval("SELECT expires_at FROM permissions WHERE id = $1", permission["permission_id"])
    now = expires_at - timedelta(hours=23)
    assert await enqueue_due_reminders(gw.database, policy=ReminderPolicy(), now=now) == 1
    return permission, now


async def _deliver(gw: Gateway, http: WebhookSender, now: datetime):
    return await deliver_due(gw.database, http, signing_key=WEBHOOK_SIGNING_KEY, policy=POLICY, now=now,
                             timeout_seconds=2)


async def test_retried_with_backoff_then_delivered_and_signed(signing_gw: Gateway, webhook_receiver: WebhookReceiver,
                                                              http: WebhookSender) -> None:
    gw = signing_gw
    webhook_receiver.failures = 2
    permission, t0 = await _queued_reminder(gw, webhook_receiver.url)

    first = await _deliver(gw, http, t0)
    assert (first.claimed, first.retrying) == (1, 1)
    row = await gw.db.fetchrow("SELECT * FROM outbox")
    assert row["status"] == "pending" and row["attempts"] == 1 and row["last_status_code"] == 500
    assert row["next_attempt_at"] == t0 + timedelta(seconds=30) and row["last_error"].startswith("HTTP 500")

    assert (await _deliver(gw, http, t0 + timedelta(seconds=29))).claimed == 0  # not due yet
    second = await _deliver(gw, http, t0 + timedelta(seconds=30))
    assert second.retrying == 1
    row = await gw.db.fetchrow("SELECT * FROM outbox")
    assert row["next_attempt_at"] == t0 + timedelta(seconds=30 + 60)  # doubled
    third = await _deliver(gw, http, t0 + timedelta(seconds=90))
    assert third.delivered == 1
    row = await gw.db.fetchrow("SELECT * FROM outbox")
    assert row["status"] == "delivered" and row["attempts"] == 3 and row["last_status_code"] == 200
    assert row["delivered_at"] == t0 + timedelta(seconds=90) and row["last_error"] is None
    assert (await _deliver(gw, http, t0 + timedelta(days=1))).claimed == 0
    assert len(webhook_receiver.received) == 3

    delivery = webhook_receiver.received[-1]
    header = delivery.headers["PayGo-Signature"]
    sent_at = int((t0 + timedelta(seconds=90)).timestamp())
    assert header.startswith(f"t={sent_at},v1=")
    assert receiver_checks_signature(permission["notify_secret"], header, delivery.body, sent_at)
    assert verify_signature(permission["notify_secret"], header, delivery.body, now=sent_at)
    assert not verify_signature(permission["notify_secret"], header, delivery.body + b" ", now=sent_at)
    assert not verify_signature(permission["notify_secret"], header, delivery.body, now=sent_at + 301)
    assert not receiver_checks_signature("whsec_" + "0" * 64, header, delivery.body, sent_at)
    event = json.loads(delivery.body)
    assert event["type"] == "permission.expiring" and delivery.headers["PayGo-Event"] == "permission.expiring"
    assert event["data"]["permission_id"] == permission["permission_id"]

    _, shown = await gw.call("GET", f"/api/v1/zcash/permissions/{permission['permission_id']}",
                             token=permission["permission_token"])
    assert [(r["kind"], r["delivery_status"]) for r in shown["reminders"]] == [("expires_in_24h", "delivered")]


async def test_dead_after_the_last_attempt_with_the_backoff_capped(signing_gw: Gateway,
                                                                   webhook_receiver: WebhookReceiver,
                                                                   http: WebhookSender) -> None:
    webhook_receiver.failures, webhook_receiver.fail_status = 100, 503
    _, now = await _queued_reminder(signing_gw, webhook_receiver.url)
    waits = []
    for _ in range(POLICY.max_attempts):
        summary = await _deliver(signing_gw, http, now)
        assert summary.claimed == 1
        row = await signing_gw.db.fetchrow("SELECT * FROM outbox")
        waits.append(row["next_attempt_at"] - now)
        now = row["next_attempt_at"]
    assert summary.dead == 1 and row["status"] == "dead" and row["attempts"] == POLICY.max_attempts
    assert row["last_status_code"] == 503 and "503" in row["last_error"]
    assert waits[:3] == [timedelta(seconds=30), timedelta(seconds=60), timedelta(seconds=90)]  # capped at 90
    assert (await _deliver(signing_gw, http, now + timedelta(days=1))).claimed == 0
    assert len(webhook_receiver.received) == POLICY.max_attempts


async def test_an_unreachable_receiver_is_an_error_without_status(signing_gw: Gateway,
                                                                  http: WebhookSender) -> None:
    _, now = await _queued_reminder(signing_gw, "http://127.0.0.1:9/nothing-listens-here")
    assert (await _deliver(signing_gw, http, now)).retrying == 1
    row = await signing_gw.db.fetchrow("SELECT * FROM outbox")
    assert row["last_status_code"] is None and row["last_error"] and row["attempts"] == 1


async def test_concurrent_deliverers_send_each_message_once(signing_gw: Gateway, webhook_receiver: WebhookReceiver,
                                                            http: WebhookSender) -> None:
    permissions = [await signing_gw.funded_permission("1", "1", notify_url=webhook_receiver.url) for _ in range(3)]
    expires_at = max([await signing_gw.db.fetchval("SELECT expires_at FROM permissions WHERE id = $1",
                                                   p["permission_id"]) for p in permissions])
    now = expires_at - timedelta(hours=1)
    assert await enqueue_due_reminders(signing_gw.database, policy=ReminderPolicy(), now=now) == 3
    summaries = await asyncio.gather(*(_deliver(signing_gw, http, now) for _ in range(4)))
    assert sum(s.claimed for s in summaries) == 3 and sum(s.delivered for s in summaries) == 3
    deliveries = [r.headers["PayGo-Delivery"] for r in webhook_receiver.received]
    assert len(deliveries) == 3 and len(set(deliveries)) == 3
    assert await signing_gw.db.fetchval("SELECT count(*) FROM outbox WHERE status = 'delivered'") == 3


async def test_without_a_signing_key_nothing_is_sent(signing_gw: Gateway, webhook_receiver: WebhookReceiver,
                                                     http: WebhookSender) -> None:
    _, now = await _queued_reminder(signing_gw, webhook_receiver.url)
    summary = await deliver_due(signing_gw.database, http, signing_key=None, policy=POLICY, now=now, timeout_seconds=2)
    assert summary.claimed == 0 and webhook_receiver.received == []
