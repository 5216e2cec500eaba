"""`verify_webhook` against real deliveries (a vendor event and a reminder, sent by the outbox job to a local
receiver), the delivery log and redelivery through the client, and the header's edge cases signed by the gateway's
own signer."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from paygo_client import WebhookVerificationError, errors, verify_webhook

from billing.delivery import deliver_due
from billing.outbound import WebhookSender
from billing.outbox import RetryPolicy
from billing.reminders import ReminderPolicy, enqueue_due_reminders
from billing.webhooks import sign
from tests.conftest import ADMIN_KEY, MIN_CONFIRMATIONS, Gateway, new_wallet
from tests.webhook_fixtures import WEBHOOK_SIGNING_KEY, WebhookReceiver

OUTBOX_POLICY = RetryPolicy(max_attempts=3, base_seconds=30, cap_seconds=90)
SECRET = "whsec_" + "ab" * 32


async def _deliver(gw: Gateway, now: datetime) -> None:
    sender = WebhookSender(allow_private=True)  # the receivers of these tests listen on 127.0.0.1
    try:
        await deliver_due(gw.database, sender, signing_key=WEBHOOK_SIGNING_KEY, policy=OUTBOX_POLICY, now=now,
                          timeout_seconds=2)
    finally:
        await sender.close()


async def test_real_deliveries_verify_and_can_be_redelivered(signing_gw: Gateway, webhook_receiver: WebhookReceiver,
                                                             client_for: Any) -> None:
    gw = signing_gw
    operator = client_for(gw.client, operator_key=ADMIN_KEY)
    vendor = await operator.create_vendor("hooked")
    setting = await operator.set_vendor_webhook(vendor.vendor_id, webhook_receiver.url)
    assert setting.secret.startswith("whsec_") and setting.signature_header == "PayGo-Signature"
    user = client_for(gw.client)
    created = await user.create_zcash_permission(new_wallet(), "10", "2.5", notify_url=webhook_receiver.url)
    assert created.notify_secret and created.notify_secret != setting.secret
    await gw.pay(created.payment_address, "10")
    await gw.mine(MIN_CONFIRMATIONS)
    await user.wait_until_active(created, timeout=10, interval=0.05)
    opened = await user.open_session(created.user_wallet_address, vendor.vendor_id, token=created.permission_token)

    await _deliver(gw, datetime.now(UTC) + timedelta(seconds=1))
    [started] = webhook_receiver.received
    event = verify_webhook(setting.secret, started.headers, started.body)
    assert (event.type, event.id) == ("session.started", f"session.started:{opened.session_id}")
    assert event.data["session_id"] == opened.session_id and event.delivery_id == started.headers["PayGo-Delivery"]
    for secret, body, now in ((setting.secret, started.body + b" ", None),  # a changed body
                              (created.notify_secret, started.body, None),  # another receiver's secret
                              (setting.secret, started.body, time.time() + 301)):  # replayed too late
        with pytest.raises(WebhookVerificationError):
            verify_webhook(secret, started.headers, body, now=now)

    due = created.expires_at - timedelta(hours=2)
    assert await enqueue_due_reminders(gw.database, policy=ReminderPolicy(lead_hours=(72, 24), low_balance_percent=20),
                                       now=due) == 1
    await _deliver(gw, due)
    reminder = webhook_receiver.received[-1]
    event = verify_webhook(created.notify_secret, reminder.headers, reminder.body, now=due.timestamp())
    assert event.type == "permission.expiring" and event.data["reminder"] == "expires_in_24h"
    assert event.data["remaining_amount"] == "10.00000000" and event.data["permission_id"] == created.permission_id

    hooked = client_for(gw.client, vendor_key=vendor.api_key)
    [delivery] = [d async for d in hooked.iter_webhook_deliveries(status="delivered", page_size=1)]
    assert delivery.event_id == f"session.started:{opened.session_id}" and delivery.log[0].outcome == "delivered"
    assert delivery.payload == json.loads(started.body)
    again = await hooked.redeliver_webhook(delivery.id)
    assert (again.status, again.redeliveries) == ("pending", 1)
    with pytest.raises(errors.DeliveryPending):
        await operator.redeliver_any_webhook(delivery.id)
    with pytest.raises(errors.DeliveryNotFound):
        await hooked.redeliver_webhook("99999999")


def _signed(body: bytes, header: str | None = None, **extra: str) -> dict[str, str]:
    return {"PayGo-Signature": header if header is not None else sign(SECRET, int(time.time()), body), **extra}


def test_a_valid_signature_gives_the_event_with_exact_amounts() -> None:
    body = b'{"id":"e1","type":"session.ended","created_at":"2026-12-01T10:00:00Z","data":{"amount":"2.50000000"}}'
    event = verify_webhook(SECRET, {"paygo-signature": sign(SECRET, int(time.time()), body),
                                    "PAYGO-DELIVERY": "7"}, body)
    assert event.data["amount"] == "2.50000000" and event.delivery_id == "7" and event.created_at.tzinfo


def test_a_rotated_secret_may_sign_next_to_the_old_one() -> None:
    body = b'{"id":"e1","type":"t","created_at":"2026-12-01T10:00:00Z","data":{}}'
    now = int(time.time())
    header = f"t={now},v1={'0' * 64},v1={sign(SECRET, now, body).partition(',v1=')[2]}"
    assert verify_webhook(SECRET, _signed(body, header), body).id == "e1"


@pytest.mark.parametrize("header", ["", "v1=abc", "t=abc,v1=abc", "t=1,t=2,v1=abc", f"t={int(time.time())}",
                                    f"t={int(time.time())},v1=é"])
def test_malformed_signatures_are_refused(header: str) -> None:
    with pytest.raises(WebhookVerificationError):
        verify_webhook(SECRET, _signed(b"{}", header), b"{}")


def test_a_signed_body_that_is_not_an_event_is_refused() -> None:
    with pytest.raises(WebhookVerificationError):
        verify_webhook(SECRET, _signed(b"[1, 2]"), b"[1, 2]")
    with pytest.raises(WebhookVerificationError):
        verify_webhook(SECRET, {}, b"{}")
