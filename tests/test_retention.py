"""Retention (issue 10, finding 6): the prune job deletes expired idempotency records (404 answers included),
delivered and dead outbox messages past OUTBOX_RETENTION_DAYS (a reminder keeps its outcome) and prunes never-paid
permissions past their payment window and grace, keeping their address, audit trail and any late payment; the
ledger and payments are never touched. The scheduler runs it."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from billing.reminders import ReminderPolicy, enqueue_due_reminders
from billing.retention import RetentionPolicy, prune
from scheduler.runner import Intervals, schedule
from tests.conftest import Gateway, new_wallet
from tests.webhook_fixtures import WebhookReceiver


async def test_expired_idempotency_records_are_pruned(gw: Gateway) -> None:
    body = {"user_wallet_address": new_wallet(), "requested_amount": "1", "rate_per_hour": "1"}
    await gw.call("POST", "/api/v1/zcash/permissions", json=body, headers={"Idempotency-Key": secrets.token_hex(20)})
    vendor = await gw.create_vendor()
    status, _ = await gw.call("POST", "/api/v1/vendor/webhooks/deliveries/1/redeliver", api_key=vendor["api_key"],
                              headers={"Idempotency-Key": "a-404"})
    assert status == 404
    await gw.db.execute("UPDATE idempotency_keys SET created_at = created_at - interval '25 hours'")
    await gw.call("POST", "/api/v1/zcash/permissions", json={**body, "user_wallet_address": new_wallet()},
                  headers={"Idempotency-Key": secrets.token_hex(20)})
    summary = await gw.jobs.prune()
    assert summary.idempotency_keys == 2
    assert await gw.db.fetchval("SELECT count(*) FROM idempotency_keys") == 1  # the fresh one


async def test_old_delivered_messages_go_and_the_reminder_keeps_its_outcome(signing_gw: Gateway,
                                                                            webhook_receiver: WebhookReceiver) -> None:
    gw = signing_gw
    permission = await gw.funded_permission("10", "2.5", notify_url=webhook_receiver.url)
    expires_at = await gw.db.fetchval("SELECT expires_at FROM permissions WHERE id = $1", permission["permission_id"])
    queued_at = expires_at - timedelta(hours=23)
    assert await enqueue_due_reminders(gw.database, policy=ReminderPolicy(), now=queued_at) == 1
    assert (await gw.jobs.deliver(now=queued_at)).delivered == 1
    pending = await gw.db.fetchval(
        "INSERT INTO outbox (kind, event_type, dedupe_key, target_url, payload, permission_id, next_attempt_at) "
        "VALUES ('reminder', 'x', 'still-pending', 'https://example.com/', '{}', $1, $2) RETURNING id",
        permission["permission_id"], queued_at)
    ledger_rows = await gw.db.fetchval("SELECT count(*) FROM ledger_entries")

    assert (await prune(gw.database, RetentionPolicy(outbox_retention_days=30), now=queued_at + timedelta(days=29))
            ).outbox_messages == 0
    summary = await prune(gw.database, RetentionPolicy(outbox_retention_days=30), now=queued_at + timedelta(days=31))
    assert summary.outbox_messages == 1
    assert [row["id"] for row in await gw.db.fetch("SELECT id FROM outbox")] == [pending]  # pending is never pruned
    assert await gw.db.fetchval("SELECT count(*) FROM webhook_deliveries") == 0
    status, shown = await gw.call("GET", f"/api/v1/zcash/permissions/{permission['permission_id']}",
                                  token=permission["permission_token"])
    assert status == 200 and shown["reminders"][0]["delivery_status"] == "delivered"
    assert shown["reminders"][0]["delivered_at"] is not None
    assert await gw.db.fetchval("SELECT count(*) FROM ledger_entries") == ledger_rows


async def test_never_paid_permissions_are_pruned_keeping_address_audit_and_late_payments(gw: Gateway) -> None:
    unpaid = await gw.create_permission("1", "1")
    paid_late = await gw.create_permission("1", "1")
    await gw.pay(paid_late["payment_address"], "1")
    await gw.verify(paid_late)  # the payment is recorded (seen)
    recent = await gw.create_permission("1", "1")
    now = datetime.now(UTC)
    for permission, due in ((unpaid, now - timedelta(days=31)), (paid_late, now - timedelta(days=31)),
                            (recent, now - timedelta(days=29))):
        await gw.db.execute("UPDATE permissions SET status = 'expired', payment_due_at = $2 WHERE id = $1",
                            permission["permission_id"], due)
    audit_rows = await gw.db.fetchval("SELECT count(*) FROM permission_changes")

    summary = await gw.jobs.prune(now=now)
    assert summary.permissions == 1
    row = await gw.db.fetchrow("SELECT * FROM permissions WHERE id = $1", unpaid["permission_id"])
    assert row["pruned_at"] is not None and row["token_hash"] is None
    assert row["payment_address"] == unpaid["payment_address"]  # a late payment can still be matched
    status, body = await gw.call("GET", f"/api/v1/zcash/permissions/{unpaid['permission_id']}",
                                 token=unpaid["permission_token"])
    assert (status, body["error"]["code"]) == (401, "invalid_token")
    for kept in (paid_late, recent):
        assert await gw.db.fetchval("SELECT pruned_at FROM permissions WHERE id = $1", kept["permission_id"]) is None
    assert await gw.db.fetchval("SELECT count(*) FROM payments") == 1
    assert await gw.db.fetchval("SELECT count(*) FROM permission_changes") == audit_rows
    assert (await gw.jobs.prune(now=now)).permissions == 0  # once


async def test_the_scheduler_runs_the_prune_job(gw: Gateway) -> None:
    intervals = Intervals(billing_tick=60, expiry=30, watcher=5, hard_stop=1, prune=3600)
    jobs = {job.name: job for job in schedule(gw.jobs, intervals)}
    assert jobs["prune"].every_seconds == 3600
    await gw.jobs.recorded("prune", jobs["prune"].run)
    assert await gw.db.fetchval("SELECT last_succeeded_at FROM job_runs WHERE job_name = 'prune'") is not None
