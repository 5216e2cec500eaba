"""Renewal reminders: notify_url on create, each reminder queued once (twice run, concurrent runs), the nearest
lead only, low balance, and what GET on the permission shows (renewal_due, projected_run_out_at, reminders)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from billing.reminders import ReminderPolicy, enqueue_due_reminders
from tests.conftest import Gateway
from tests.webhook_fixtures import WebhookReceiver

POLICY = ReminderPolicy(lead_hours=(72, 24), low_balance_percent=20)


async def _permission_with_url(gw: Gateway, url: str, amount: str = "10", rate: str = "2.5") -> dict:
    return await gw.funded_permission(amount, rate, notify_url=url)


async def _expires_at(gw: Gateway, permission: dict) -> datetime:
    return await gw.db.fetchval("SELECT expires_at FROM permissions WHERE id = $1", permission["permission_id"])


async def _reminder_kinds(gw: Gateway, permission: dict) -> list[str]:
    rows = await gw.db.fetch("SELECT kind FROM permission_reminders WHERE permission_id = $1 ORDER BY kind",
                             permission["permission_id"])
    return [row["kind"] for row in rows]


async def test_notify_url_is_accepted_with_a_signing_key_and_gives_a_secret_once(signing_gw: Gateway) -> None:
    created = await signing_gw.create_permission("10", "2.5", notify_url="https://example.com/paygo?x=1")
    assert created["notify_url"] == "https://example.com/paygo?x=1"
    assert created["notify_secret"].startswith("whsec_") and len(created["notify_secret"]) == 70
    due = datetime.fromisoformat(created["payment_due_at"])
    assert due - datetime.fromisoformat(created["created_at"]) == timedelta(hours=24)
    status, shown = await signing_gw.call("GET", f"/api/v1/zcash/permissions/{created['permission_id']}",
                                          token=created["permission_token"])
    assert status == 200 and "notify_secret" not in shown and shown["reminders"] == []
    for bad in ("ftp://example.com/x", "example.com/hook", "https://user:pw@example.com/", "https:///nohost",
                "https://example.com/\x01hook"):
        status, body = await signing_gw.call("POST", "/api/v1/zcash/permissions", json={
            "user_wallet_address": created["user_wallet_address"], "requested_amount": "1", "rate_per_hour": "1",
            "notify_url": bad})
        assert status == 422 and body["error"]["code"] == "invalid_notify_url", bad


async def test_notify_url_is_refused_when_webhooks_are_not_configured(gw: Gateway) -> None:
    status, body = await gw.call("POST", "/api/v1/zcash/permissions", json={
        "user_wallet_address": (await gw.create_permission())["user_wallet_address"], "requested_amount": "1",
        "rate_per_hour": "1", "notify_url": "https://example.com/hook"})
    assert status == 422 and body["error"]["code"] == "webhooks_not_configured"


async def test_expiry_reminders_are_queued_once_each_at_their_lead(signing_gw: Gateway,
                                                                   webhook_receiver: WebhookReceiver) -> None:
    gw = signing_gw
    permission = await _permission_with_url(gw, webhook_receiver.url)
    without_url = await gw.funded_permission("10", "2.5")
    expires_at = await _expires_at(gw, permission)

    assert await enqueue_due_reminders(gw.database, policy=POLICY, now=expires_at - timedelta(hours=73)) == 0
    assert await enqueue_due_reminders(gw.database, policy=POLICY, now=expires_at - timedelta(hours=70)) == 1
    assert await enqueue_due_reminders(gw.database, policy=POLICY, now=expires_at - timedelta(hours=70)) == 0
    assert await enqueue_due_reminders(gw.database, policy=POLICY, now=expires_at - timedelta(hours=30)) == 0
    assert await _reminder_kinds(gw, permission) == ["expires_in_72h"]

    # several replicas at the same instant: one message in all
    two_hours_before = expires_at - timedelta(hours=2)
    counts = await asyncio.gather(*(enqueue_due_reminders(gw.database, policy=POLICY, now=two_hours_before)
                                    for _ in range(5)))
    assert sum(counts) == 1
    assert await _reminder_kinds(gw, permission) == ["expires_in_24h", "expires_in_72h"]
    assert await _reminder_kinds(gw, without_url) == []

    message = await gw.db.fetchrow("SELECT * FROM outbox WHERE dedupe_key = $1",
                                   f"reminder:{permission['permission_id']}:expires_in_24h")
    assert message["target_url"] == webhook_receiver.url and message["event_type"] == "permission.expiring"
    assert message["payload"]["data"] == {
        "permission_id": permission["permission_id"], "reminder": "expires_in_24h", "asset": "ZEC",
        "remaining_amount": "10.00000000", "remaining_hours": "4.000000",
        "expires_at": expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


async def test_a_short_permission_gets_only_the_nearest_lead(signing_gw: Gateway,
                                                             webhook_receiver: WebhookReceiver) -> None:
    permission = await _permission_with_url(signing_gw, webhook_receiver.url)
    expires_at = await _expires_at(signing_gw, permission)
    assert await enqueue_due_reminders(signing_gw.database, policy=POLICY, now=expires_at - timedelta(hours=20)) == 1
    assert await _reminder_kinds(signing_gw, permission) == ["expires_in_24h"]


async def test_low_balance_reminder_and_the_permission_view(signing_gw: Gateway,
                                                            webhook_receiver: WebhookReceiver) -> None:
    gw = signing_gw
    vendor = await gw.create_vendor()
    permission = await _permission_with_url(gw, webhook_receiver.url)  # 10 ZEC at 2.5/h: 4 hours
    path = f"/api/v1/zcash/permissions/{permission['permission_id']}"
    _, opened = await gw.open_session(permission, vendor["vendor_id"])
    await gw.backdate_session(opened["session_id"], 3 * 3600)  # 7.5 ZEC owed, not charged yet
    _, shown = await gw.call("GET", path, token=permission["permission_token"])
    assert shown["renewal_due"] is False and shown["reminders"] == []
    run_out = datetime.fromisoformat(shown["projected_run_out_at"])
    assert timedelta(minutes=59) < run_out - datetime.fromisoformat(shown["created_at"]) < timedelta(hours=2)

    await gw.end_session(opened["session_code"])  # 2.5 ZEC left: 25 %, not below 20 %
    now = await gw.db.fetchval("SELECT now()")
    assert await enqueue_due_reminders(gw.database, policy=POLICY, now=now) == 0
    _, second = await gw.open_session(permission, vendor["vendor_id"])
    await gw.backdate_session(second["session_id"], 720)  # 0.5 ZEC more: 2 ZEC left, 20 %: not below
    await gw.end_session(second["session_code"])
    assert await enqueue_due_reminders(gw.database, policy=POLICY, now=now) == 0
    _, third = await gw.open_session(permission, vendor["vendor_id"])
    await gw.backdate_session(third["session_id"], 36)  # 0.025 ZEC more: below 20 %
    await gw.end_session(third["session_code"])
    _, before = await gw.call("GET", path, token=permission["permission_token"])  # cached for a few seconds
    assert before["reminders"] == []
    assert await enqueue_due_reminders(gw.database, policy=POLICY, now=now) == 1
    assert await enqueue_due_reminders(gw.database, policy=POLICY, now=now) == 0

    status, shown = await gw.call("GET", path, token=permission["permission_token"])
    assert status == 200 and shown["renewal_due"] is True and shown["projected_run_out_at"] is None
    assert [(r["kind"], r["delivery_status"], r["delivered_at"]) for r in shown["reminders"]] == [
        ("low_balance", "pending", None)]
