"""The outbox delivery job: POST due messages as signed webhooks, retry failures with backoff.

One run claims a batch (billing.outbox.claim_due), sends the batch concurrently with a tight timeout, and records
each result on its message and in the delivery log (billing.vendor_webhooks.record_attempts), in one transaction.
Each message's body is the JSON of its payload, signed with the receiver's derived secret
(billing.webhooks): the permission's for reminders, the vendor's for vendor webhooks. Messages are sent by
billing.outbound.WebhookSender, which refuses targets on private networks.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from billing.outbound import WebhookSender
from billing.outbox import OutboxMessage, RetryPolicy, claim_due, mark_delivered, mark_failed
from billing.unit_of_work import Database
from billing.vendor_webhooks import LoggedAttempt, record_attempts
from billing.webhooks import SIGNATURE_HEADER, permission_secret, sign, vendor_secret

DEFAULT_BATCH_SIZE = 100


@dataclass(frozen=True, slots=True)
class DeliverySummary:
    claimed: int
    delivered: int
    retrying: int
    dead: int


@dataclass(frozen=True, slots=True)
class _Attempt:
    status_code: int | None  # None: no answer
    error: str | None  # None: delivered (then status_code is the 2xx received)
    duration_ms: int


def message_body(message: OutboxMessage) -> bytes:
    """The exact bytes sent and signed (compact JSON; amounts in payloads are strings)."""
    return json.dumps(message.payload, separators=(",", ":"), sort_keys=True, default=str).encode()


def _secret_for(message: OutboxMessage, signing_key: str) -> str:
    if message.permission_id is not None:
        return permission_secret(signing_key, message.permission_id)
    if message.vendor_id is not None:
        return vendor_secret(signing_key, message.vendor_id)
    raise ValueError(f"outbox message {message.id} has no receiver to sign for")


async def _post(sender: WebhookSender, message: OutboxMessage, signing_key: str, *, now: datetime,
                timeout_seconds: float) -> _Attempt:
    body = message_body(message)
    headers = {
        "Content-Type": "application/json",
        "PayGo-Event": message.event_type,
        "PayGo-Delivery": str(message.id),
        SIGNATURE_HEADER: sign(_secret_for(message, signing_key), int(now.timestamp()), body),
    }
    started = time.perf_counter()
    sent = await sender.post(message.target_url, body, headers, timeout_seconds=timeout_seconds)
    return _Attempt(sent.status_code, sent.error, int((time.perf_counter() - started) * 1000))


async def deliver_due(
    db: Database,
    sender: WebhookSender,
    *,
    signing_key: str | None,
    policy: RetryPolicy,
    now: datetime,
    timeout_seconds: float,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> DeliverySummary:
    """Deliver one batch of due messages. Without a signing key nothing is sent (no receiver can be configured
    without one, see WEBHOOK_SIGNING_KEY) and the messages wait. Permissions whose reminders were attempted are
    announced as changed (their views show the reminders' delivery status)."""
    if signing_key is None:
        return DeliverySummary(0, 0, 0, 0)
    lease = timedelta(seconds=timeout_seconds * 2 + 30)  # longer than any send, so a live holder keeps its lease
    async with db.transaction() as work:
        messages = await claim_due(work.conn, now=now, limit=batch_size, lease=lease)
    attempts = await asyncio.gather(
        *(_post(sender, message, signing_key, now=now, timeout_seconds=timeout_seconds) for message in messages)
    )
    delivered = retrying = dead = 0
    logged: list[LoggedAttempt] = []
    async with db.transaction() as work:
        conn = work.conn
        for message, attempt in zip(messages, attempts, strict=True):
            if attempt.error is None:
                applied = await mark_delivered(conn, message, now=now, status_code=attempt.status_code)
                delivered += applied
                outcome = "delivered" if applied else "superseded"
            else:
                status = await mark_failed(conn, message, now=now, policy=policy, error=attempt.error,
                                           status_code=attempt.status_code)
                retrying += status == "pending"
                dead += status == "dead"
                outcome = {"pending": "retrying", "dead": "dead", None: "superseded"}[status]
            logged.append(LoggedAttempt(message.id, message.attempts, outcome, attempt.status_code, attempt.error,
                                        attempt.duration_ms))
        await record_attempts(conn, logged, at=now)
        work.changed(permissions=[m.permission_id for m in messages if m.permission_id is not None])
    return DeliverySummary(len(messages), delivered, retrying, dead)
