"""Vendor webhooks: every event written once in the transaction that causes it (ticks run twice and concurrently),
only for vendors with a URL, with exact payloads; signatures checked with the documented recipe; retries with
backoff, dead letters, redelivery and the delivery log against a real local receiver; vendor isolation; and a
receiver that never answers not delaying the billing tick."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web

from billing.charging import billing_tick
from billing.delivery import DeliverySummary, deliver_due
from billing.outbound import WebhookSender
from billing.outbox import RetryPolicy
from billing.webhooks import vendor_secret
from tests.conftest import ADMIN_KEY, MIN_CONFIRMATIONS, Gateway
from tests.webhook_fixtures import WEBHOOK_SIGNING_KEY, WebhookReceiver

ZAT = 100_000_000
POLICY = RetryPolicy(max_attempts=3, base_seconds=30, cap_seconds=90)
DELIVERIES = "/api/v1/vendor/webhooks/deliveries"


@pytest.fixture
async def http() -> AsyncIterator[WebhookSender]:
    """What the delivery job sends with; the receivers of these tests listen on 127.0.0.1."""
    sender = WebhookSender(allow_private=True)
    yield sender
    await sender.close()


async def _vendor_with_webhook(gw: Gateway, url: str, name: str = "hooked", grace: int = 0) -> dict[str, Any]:
    status, vendor = await gw.call("POST", "/api/v1/admin/vendors", api_key=ADMIN_KEY,
                                   json={"name": name, "direct_charge_grace_seconds": grace})
    assert status == 201, vendor
    status, setting = await gw.call("PUT", f"/api/v1/admin/vendors/{vendor['vendor_id']}/webhook", api_key=ADMIN_KEY,
                                    json={"url": url})
    assert status == 200, setting
    return {**vendor, "secret": setting["secret"]}


async def _events(gw: Gateway, event_type: str | None = None) -> list[dict[str, Any]]:
    rows = await gw.db.fetch(
        "SELECT event_type, vendor_id, dedupe_key, payload FROM outbox WHERE kind = 'vendor_webhook'"
        " AND ($1::text IS NULL OR event_type = $1) ORDER BY id",
        event_type,
    )
    return [dict(row) for row in rows]


async def _deliver(gw: Gateway, http: WebhookSender, now: datetime, *,
                   timeout_seconds: float = 2) -> DeliverySummary:
    return await deliver_due(gw.database, http, signing_key=WEBHOOK_SIGNING_KEY, policy=POLICY, now=now,
                             timeout_seconds=timeout_seconds)


async def _started_at(gw: Gateway, session_id: str) -> datetime:
    return await gw.db.fetchval("SELECT started_at FROM sessions WHERE id = $1", session_id)


def receiver_checks_signature(secret: str, header: str, body: bytes, now: int) -> bool:
    """The README's verification snippet, written from the documentation only."""
    fields = dict(part.split("=", 1) for part in header.split(","))
    timestamp = int(fields["t"])
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return abs(now - timestamp) <= 300 and hmac.compare_digest(expected, fields["v1"])


# --- the operator's setting -------------------------------------------------------------------------------------

async def test_setting_a_webhook_answers_the_derived_secret(signing_gw: Gateway, gw: Gateway) -> None:
    vendor = await signing_gw.create_vendor()
    path = f"/api/v1/admin/vendors/{vendor['vendor_id']}/webhook"
    status, body = await signing_gw.call("PUT", path, api_key=ADMIN_KEY, json={"url": "https://v.example/hook"})
    assert status == 200, body
    assert body["secret"] == vendor_secret(WEBHOOK_SIGNING_KEY, vendor["vendor_id"])
    assert body["url"] == "https://v.example/hook" and body["signature_header"] == "PayGo-Signature"
    assert set(body["events"]) == {"session.started", "session.ended", "permission.exhausted", "payment.confirmed",
                                   "direct_charge.paid"}
    assert await signing_gw.db.fetchval("SELECT webhook_url FROM vendors WHERE id = $1",
                                        vendor["vendor_id"]) == "https://v.example/hook"

    for url in ("ftp://v.example/hook", "https://user:pw@v.example/", "not a url", "https://v.example/\x01"):
        status, refused = await signing_gw.call("PUT", path, api_key=ADMIN_KEY, json={"url": url})
        assert (status, refused["error"]["code"]) == (422, "invalid_webhook_url")
    status, refused = await signing_gw.call("PUT", path, api_key=ADMIN_KEY, json={"url": "https://v.example/\x00"})
    assert status == 422  # text PostgreSQL cannot store is refused with the body
    status, refused = await signing_gw.call("PUT", path, api_key=vendor["api_key"], json={"url": "https://x.example"})
    assert status == 403
    status, refused = await signing_gw.call("PUT", "/api/v1/admin/vendors/5b0e7c8e-0000-4000-8000-000000000000/webhook",
                                            api_key=ADMIN_KEY, json={"url": "https://v.example/hook"})
    assert (status, refused["error"]["code"]) == (404, "vendor_not_found")

    status, cleared = await signing_gw.call("PUT", path, api_key=ADMIN_KEY, json={"url": None})
    assert status == 200 and cleared["url"] is None and cleared["secret"] is None

    unsigned_vendor = await gw.create_vendor()  # a gateway without WEBHOOK_SIGNING_KEY
    status, refused = await gw.call("PUT", f"/api/v1/admin/vendors/{unsigned_vendor['vendor_id']}/webhook",
                                    api_key=ADMIN_KEY, json={"url": "https://v.example/hook"})
    assert (status, refused["error"]["code"]) == (422, "webhooks_not_configured")


# --- events: once each, in the causing transaction ------------------------------------------------------------

async def test_session_and_exhaustion_events_are_written_once(signing_gw: Gateway) -> None:
    gw = signing_gw
    hooked = await _vendor_with_webhook(gw, "https://hooked.example/paygo")
    plain = await gw.create_vendor("no webhook")
    permission = await gw.funded_permission("2", "1")
    _, theirs = await gw.open_session(permission, plain["vendor_id"])  # first in line for the balance
    _, mine = await gw.open_session(permission, hooked["vendor_id"])
    [started] = await _events(gw)
    assert started["event_type"] == "session.started" and str(started["vendor_id"]) == hooked["vendor_id"]
    payload = started["payload"]
    assert payload["id"] == f"session.started:{mine['session_id']}" and payload["type"] == "session.started"
    assert payload["data"]["rate_per_hour"] == "1.00000000" and payload["data"]["status"] == "active"
    assert payload["data"]["session_id"] == mine["session_id"]

    t0 = max(await _started_at(gw, mine["session_id"]), await _started_at(gw, theirs["session_id"]))
    await billing_tick(gw.database, at=t0 + timedelta(minutes=30))
    assert len(await _events(gw)) == 1
    ran_dry = t0 + timedelta(minutes=90)  # 1.5 owed by each session, 2 held: the second session is cut short
    await asyncio.gather(billing_tick(gw.database, at=ran_dry), billing_tick(gw.database, at=ran_dry))
    await billing_tick(gw.database, at=ran_dry)
    await billing_tick(gw.database, at=ran_dry + timedelta(minutes=5))

    [ended] = await _events(gw, "session.ended")
    assert str(ended["vendor_id"]) == hooked["vendor_id"]
    data = ended["payload"]["data"]
    assert ended["payload"]["id"] == f"session.ended:{mine['session_id']}"
    assert data["session_id"] == mine["session_id"] and data["status"] == "exhausted"
    assert (data["charged_amount"], data["uncovered_amount"]) == ("0.50000000", "1.00000000")
    assert data["duration_seconds"] == 5400 and data["asset"] == "ZEC"
    assert data["ended_at"] == ran_dry.isoformat(timespec="microseconds").replace("+00:00", "Z")
    [exhausted] = await _events(gw, "permission.exhausted")
    assert str(exhausted["vendor_id"]) == hooked["vendor_id"]
    assert exhausted["payload"]["data"]["permission_id"] == permission["permission_id"]
    assert exhausted["payload"]["data"]["session_ids"] == [mine["session_id"]]
    assert exhausted["payload"]["data"]["remaining_amount"] == "0.00000000"
    assert exhausted["payload"]["data"]["charged_amount"] == "2.00000000"

    other = await gw.funded_permission("10", "2.5")
    _, short = await gw.open_session(other, hooked["vendor_id"])
    for _ in range(2):
        status, body = await gw.end_session(short["session_code"])
        assert status == 200, body
    ended_by_client = [e for e in await _events(gw, "session.ended") if e["payload"]["data"]["session_id"]
                       == short["session_id"]]
    assert len(ended_by_client) == 1 and ended_by_client[0]["payload"]["data"]["status"] == "ended"
    assert len(await _events(gw)) == 5  # 2 started, 2 ended, 1 exhausted: nothing for the vendor without a URL


async def test_a_top_up_is_announced_to_vendors_that_streamed_on_the_permission(signing_gw: Gateway) -> None:
    gw = signing_gw
    hooked = await _vendor_with_webhook(gw, "https://hooked.example/paygo")
    permission = await gw.funded_permission("1", "1")
    assert await _events(gw, "payment.confirmed") == []  # its first payment: no vendor streamed on it yet
    _, opened = await gw.open_session(permission, hooked["vendor_id"])
    await billing_tick(gw.database, at=await _started_at(gw, opened["session_id"]) + timedelta(hours=2))
    assert await gw.db.fetchval("SELECT status FROM permissions WHERE id = $1",
                                permission["permission_id"]) == "exhausted"

    await gw.pay(permission["payment_address"], "0.75")
    await gw.mine(MIN_CONFIRMATIONS)
    await gw.verify(permission)
    await gw.verify(permission)
    [confirmed] = await _events(gw, "payment.confirmed")
    data = confirmed["payload"]["data"]
    assert str(confirmed["vendor_id"]) == hooked["vendor_id"]
    assert data["permission_id"] == permission["permission_id"] and data["amount"] == "0.75000000"
    assert data["permission_status"] == "active" and data["remaining_amount"] == "0.75000000"
    assert confirmed["payload"]["id"].startswith("payment.confirmed:")


async def test_a_paid_direct_charge_is_announced_once(signing_gw: Gateway) -> None:
    gw = signing_gw
    credit = await _vendor_with_webhook(gw, "https://credit.example/paygo", name="credit", grace=600)
    permission = await gw.funded_permission("1", "1")
    _, opened = await gw.open_session(permission, credit["vendor_id"])
    t0 = await _started_at(gw, opened["session_id"])
    await billing_tick(gw.database, at=t0 + timedelta(minutes=66))  # runs on credit: the permission is exhausted
    assert len(await _events(gw, "permission.exhausted")) == 1 and await _events(gw, "session.ended") == []
    assert await gw.jobs.allocate_direct_charge_addresses() == 1
    await billing_tick(gw.database, at=t0 + timedelta(minutes=76))  # grace over
    [ended] = await _events(gw, "session.ended")
    assert ended["payload"]["data"]["status"] == "pending_payment"
    assert ended["payload"]["data"]["uncovered_amount"] == "0.26666666"

    charge = await gw.db.fetchrow("SELECT id, payment_address FROM direct_charges")
    await gw.pay(charge["payment_address"], "0.26666666")
    await gw.mine(MIN_CONFIRMATIONS)
    for _ in range(2):
        await gw.jobs.watch_payments()
    [paid] = await _events(gw, "direct_charge.paid")
    assert paid["payload"]["id"] == f"direct_charge.paid:{charge['id']}"
    data = paid["payload"]["data"]
    assert data["session_id"] == opened["session_id"] and data["amount"] == data["paid_amount"] == "0.26666666"


# --- delivery ---------------------------------------------------------------------------------------------------

async def test_delivered_signed_with_the_documented_recipe(signing_gw: Gateway, webhook_receiver: WebhookReceiver,
                                                           http: WebhookSender) -> None:
    gw = signing_gw
    vendor = await _vendor_with_webhook(gw, webhook_receiver.url)
    permission = await gw.funded_permission("10", "2.5")
    _, opened = await gw.open_session(permission, vendor["vendor_id"])
    now = datetime.now(UTC)
    assert (await _deliver(gw, http, now)).delivered == 1
    [received] = webhook_receiver.received
    assert receiver_checks_signature(vendor["secret"], received.headers["PayGo-Signature"], received.body,
                                     int(now.timestamp()))
    assert not receiver_checks_signature(vendor["secret"], received.headers["PayGo-Signature"],
                                         received.body + b" ", int(now.timestamp()))
    event = json.loads(received.body, parse_float=Decimal)
    assert event["type"] == received.headers["PayGo-Event"] == "session.started"
    assert event["data"]["session_id"] == opened["session_id"]
    assert set(event) == {"id", "type", "created_at", "data"}
    [delivery] = (await gw.call("GET", DELIVERIES, api_key=vendor["api_key"]))[1]["deliveries"]
    assert received.headers["PayGo-Delivery"] == delivery["id"] and delivery["payload"] == event


async def test_retries_back_off_and_every_attempt_is_logged(signing_gw: Gateway, webhook_receiver: WebhookReceiver,
                                                            http: WebhookSender) -> None:
    gw = signing_gw
    webhook_receiver.failures = 2
    vendor = await _vendor_with_webhook(gw, webhook_receiver.url)
    await gw.open_session(await gw.funded_permission("10", "2.5"), vendor["vendor_id"])
    t0 = datetime.now(UTC)
    assert (await _deliver(gw, http, t0)).retrying == 1
    assert (await _deliver(gw, http, t0 + timedelta(seconds=29))).claimed == 0  # backing off 30 s
    assert (await _deliver(gw, http, t0 + timedelta(seconds=30))).retrying == 1
    assert (await _deliver(gw, http, t0 + timedelta(seconds=89))).claimed == 0  # then 60 s
    assert (await _deliver(gw, http, t0 + timedelta(seconds=90))).delivered == 1

    status, page = await gw.call("GET", DELIVERIES, api_key=vendor["api_key"])
    assert status == 200, page
    [delivery] = page["deliveries"]
    assert delivery["status"] == "delivered" and delivery["attempts"] == 3 and delivery["last_status_code"] == 200
    log = delivery["log"]
    assert [(a["attempt"], a["outcome"], a["status_code"]) for a in log] == [
        (1, "retrying", 500), (2, "retrying", 500), (3, "delivered", 200)]
    assert log[0]["error"].startswith("HTTP 500") and log[2]["error"] is None
    assert all(a["duration_ms"] >= 0 for a in log)
    assert [a["attempted_at"] for a in log] == [
        (t0 + timedelta(seconds=s)).isoformat().replace("+00:00", "Z") for s in (0, 30, 90)]


async def test_dead_after_the_last_try_then_redelivered(signing_gw: Gateway, webhook_receiver: WebhookReceiver,
                                                        http: WebhookSender) -> None:
    gw = signing_gw
    webhook_receiver.failures = POLICY.max_attempts
    webhook_receiver.fail_status = 503
    vendor = await _vendor_with_webhook(gw, webhook_receiver.url)
    await gw.open_session(await gw.funded_permission("10", "2.5"), vendor["vendor_id"])
    t0 = datetime.now(UTC)
    results = [await _deliver(gw, http, t0 + timedelta(seconds=s)) for s in (0, 30, 90)]
    assert [(r.retrying, r.dead) for r in results] == [(1, 0), (1, 0), (0, 1)]
    assert (await _deliver(gw, http, t0 + timedelta(days=1))).claimed == 0  # dead: never tried again on its own
    [dead] = (await gw.call("GET", DELIVERIES + "?status=dead", api_key=vendor["api_key"]))[1]["deliveries"]
    assert dead["attempts"] == 3 and [a["outcome"] for a in dead["log"]] == ["retrying", "retrying", "dead"]

    status, again = await gw.call("POST", f"{DELIVERIES}/{dead['id']}/redeliver", api_key=vendor["api_key"])
    assert status == 200, again
    assert (again["status"], again["attempts"], again["redeliveries"]) == ("pending", 0, 1)
    status, refused = await gw.call("POST", f"{DELIVERIES}/{dead['id']}/redeliver", api_key=vendor["api_key"])
    assert (status, refused["error"]["code"]) == (409, "delivery_pending")
    assert (await _deliver(gw, http, datetime.now(UTC) + timedelta(seconds=1))).delivered == 1
    [delivered] = (await gw.call("GET", DELIVERIES, api_key=vendor["api_key"]))[1]["deliveries"]
    assert delivered["status"] == "delivered" and delivered["attempts"] == 1
    assert [a["outcome"] for a in delivered["log"]] == ["retrying", "retrying", "dead", "delivered"]
    bodies = {r.body for r in webhook_receiver.received}
    assert len(webhook_receiver.received) == 4 and len(bodies) == 1  # the same event every time

    status, by_operator = await gw.call("POST", f"/api/v1/admin/webhooks/{dead['id']}/redeliver", api_key=ADMIN_KEY)
    assert status == 200 and by_operator["status"] == "pending" and by_operator["redeliveries"] == 2


async def test_a_vendor_sees_and_redelivers_only_its_own(signing_gw: Gateway, webhook_receiver: WebhookReceiver,
                                                         http: WebhookSender) -> None:
    gw = signing_gw
    first = await _vendor_with_webhook(gw, webhook_receiver.url, name="first")
    second = await _vendor_with_webhook(gw, webhook_receiver.url, name="second")
    permission = await gw.funded_permission("10", "2.5")
    for vendor in (first, first, second):
        await gw.open_session(permission, vendor["vendor_id"])
    assert (await _deliver(gw, http, datetime.now(UTC))).delivered == 3
    first_page = (await gw.call("GET", DELIVERIES, api_key=first["api_key"]))[1]["deliveries"]
    second_page = (await gw.call("GET", DELIVERIES, api_key=second["api_key"]))[1]["deliveries"]
    assert len(first_page) == 2 and len(second_page) == 1
    assert all(d["payload"]["data"]["vendor_id"] == first["vendor_id"] for d in first_page)
    assert second_page[0]["payload"]["data"]["vendor_id"] == second["vendor_id"]

    for delivery in first_page:
        status, refused = await gw.call("POST", f"{DELIVERIES}/{delivery['id']}/redeliver", api_key=second["api_key"])
        assert (status, refused["error"]["code"]) == (404, "delivery_not_found")
    assert await gw.db.fetchval("SELECT count(*) FROM outbox WHERE status = 'delivered'") == 3

    [older] = (await gw.call("GET", DELIVERIES + "?limit=1", api_key=first["api_key"]))[1]["deliveries"][:1]
    status, page = await gw.call("GET", f"{DELIVERIES}?limit=1&cursor={older['id']}", api_key=first["api_key"])
    assert status == 200 and [d["id"] for d in page["deliveries"]] == [first_page[1]["id"]]
    for query in ("?status=lost", "?event_type=nope", "?cursor=x", "?limit=0", "?other=1"):
        status, refused = await gw.call("GET", DELIVERIES + query, api_key=first["api_key"])
        assert status == 422, (query, refused)
    for path in (f"{DELIVERIES}/abc/redeliver", f"{DELIVERIES}/99999999999999999999/redeliver"):
        assert (await gw.call("POST", path, api_key=first["api_key"]))[0] == 404
    assert (await gw.call("GET", DELIVERIES))[0] == 401
    assert (await gw.call("GET", DELIVERIES, api_key="nope"))[0] == 401


# --- a receiver that never answers ------------------------------------------------------------------------------

@pytest.fixture
async def silent_receiver(aiohttp_server: Callable[..., Any]) -> AsyncIterator[tuple[str, asyncio.Event]]:
    """A receiver that takes requests and never answers them (until the test ends); yields its URL and an event
    set once a request arrived."""
    arrived = asyncio.Event()
    release = asyncio.Event()

    async def hang(_: web.Request) -> web.Response:
        arrived.set()
        await release.wait()
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook", hang)
    server = await aiohttp_server(app, host="127.0.0.1")
    yield str(server.make_url("/hook")), arrived
    release.set()


async def test_a_silent_receiver_does_not_delay_the_billing_tick(
        signing_gw: Gateway, silent_receiver: tuple[str, asyncio.Event], http: WebhookSender) -> None:
    gw = signing_gw
    url, arrived = silent_receiver
    vendor = await _vendor_with_webhook(gw, url)
    permission = await gw.funded_permission("1", "1")
    _, opened = await gw.open_session(permission, vendor["vendor_id"])
    delivery = asyncio.create_task(_deliver(gw, http, datetime.now(UTC), timeout_seconds=5))
    await asyncio.wait_for(arrived.wait(), 10)

    result = await billing_tick(gw.database, at=await _started_at(gw, opened["session_id"]) + timedelta(hours=2))
    assert result.sessions_ended == 1 and not delivery.done()  # the tick finished; the delivery still hangs
    assert len(await _events(gw, "session.ended")) == 1
    assert await gw.db.fetchval("SELECT status FROM outbox WHERE event_type = 'session.started'") == "pending"

    summary = await asyncio.wait_for(delivery, 10)
    assert summary.retrying == 1
    row = await gw.db.fetchrow("SELECT attempts, last_error FROM outbox WHERE event_type = 'session.started'")
    assert row["attempts"] == 1 and "Timeout" in row["last_error"]
