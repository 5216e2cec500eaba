"""Stripe webhooks and card money against the stand-in: funding through a session and its charge, signatures
(tampered body, old timestamp, wrong secret, missing header), duplicate and concurrent deliveries, events out of
order, refunds (ours: full, after usage, idempotent; Stripe's: partial, full, beyond the balance) and disputes.
Every money test ends with the ledger invariant."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from typing import Any

from billing.ledger import recompute_balances
from tests.conftest import ADMIN_KEY
from tests.stripe_fixtures import STRIPE_WEBHOOK_SECRET, CardGateway, stripe_signature

REFUNDS = "/v1/refunds"


async def ledger(card: CardGateway, permission: dict[str, Any]) -> list[tuple[str, int]]:
    rows = await card.gw.db.fetch("SELECT kind, amount FROM ledger_entries WHERE permission_id = $1 ORDER BY id",
                                  permission["permission_id"])
    return [(row["kind"], row["amount"]) for row in rows]


async def assert_ledger_agrees(card: CardGateway) -> None:
    assert await recompute_balances(card.gw.db) == []


async def test_happy_path_through_a_session_and_its_charge(card: CardGateway) -> None:
    vendor = await card.gw.create_vendor("card-streamer")
    permission = await card.created("10.00", "2.50", email="fan@example.com")
    session = card.stripe.pay_session(card.session_id(permission))
    await card.deliver("checkout.session.completed", session)
    shown = await card.show(permission)
    assert shown["status"] == "active" and shown["remaining_amount"] == "10.00"
    assert shown["remaining_hours"] == "4.000000" and shown["amount_confirmed"] == "10.00"
    assert shown["payments"][0]["txid"] == session["payment_intent"]
    assert await ledger(card, permission) == [("funding", 1000)]

    status, opened = await card.gw.call("POST", "/api/v1/sessions", token=permission["permission_token"], json={
        "user_wallet_address": "fan@example.com", "vendor_id": vendor["vendor_id"]})
    assert status == 201, opened
    await card.gw.backdate_session(opened["session_id"], 3600)
    status, ended = await card.gw.end_session(opened["session_code"])
    assert status == 200 and ended["amount"] == "2.50" and ended["asset"] == "USD"
    assert (await card.show(permission))["remaining_amount"] == "7.50"
    await assert_ledger_agrees(card)


async def test_an_asynchronous_payment_funds_when_it_succeeds(card: CardGateway) -> None:
    permission = await card.created("20.00", "1.00")
    session_id = card.session_id(permission)
    await card.deliver("checkout.session.completed", card.stripe.pay_session(session_id, asynchronous=True))
    assert (await card.show(permission))["status"] == "pending_payment"
    await card.deliver("checkout.session.async_payment_succeeded",
                       card.stripe.settle_async_payment(session_id, succeeded=True))
    assert (await card.show(permission))["status"] == "active"
    await assert_ledger_agrees(card)


async def test_failed_and_expired_checkouts_leave_the_permission_unfunded_with_a_reason(card: CardGateway) -> None:
    failing = await card.created()
    session_id = card.session_id(failing)
    card.stripe.pay_session(session_id, asynchronous=True)
    await card.deliver("checkout.session.async_payment_failed",
                       card.stripe.settle_async_payment(session_id, succeeded=False))
    shown = await card.show(failing)
    assert shown["status"] == "pending_payment" and shown["unfunded_reason"] == "payment_failed"
    assert shown["remaining_amount"] == "0.00"

    expiring = await card.created()
    await card.deliver("checkout.session.expired", card.stripe.expire_session(card.session_id(expiring)))
    assert (await card.show(expiring))["unfunded_reason"] == "checkout_expired"
    assert await ledger(card, failing) == [] and await ledger(card, expiring) == []


async def test_a_duplicate_event_is_processed_once(card: CardGateway) -> None:
    permission = await card.created()
    event = card.stripe.event("checkout.session.completed", card.stripe.pay_session(card.session_id(permission)))
    assert (await card.send(event)) == (200, {"received": True, "outcome": "applied"})
    assert (await card.send(event)) == (200, {"received": True, "outcome": "duplicate"})
    answers = await asyncio.gather(*(card.send(event) for _ in range(5)))
    assert all(answer == (200, {"received": True, "outcome": "duplicate"}) for answer in answers)
    assert await ledger(card, permission) == [("funding", 1000)]
    assert await card.gw.db.fetchval("SELECT count(*) FROM stripe_events WHERE event_id = $1", event["id"]) == 1
    await assert_ledger_agrees(card)


async def test_concurrent_first_deliveries_of_one_event_apply_it_once(card: CardGateway) -> None:
    permission = await card.created()
    event = card.stripe.event("checkout.session.completed", card.stripe.pay_session(card.session_id(permission)))
    answers = await asyncio.gather(*(card.send(event) for _ in range(6)))
    outcomes = sorted(body["outcome"] for status, body in answers if status == 200)
    assert outcomes == ["applied"] + ["duplicate"] * 5
    assert await ledger(card, permission) == [("funding", 1000)]
    await assert_ledger_agrees(card)


async def test_events_out_of_order(card: CardGateway) -> None:
    # A partial refund and its charge arrive before the checkout's own event: applied when funding arrives.
    early_refund = await card.created("10.00", "1.00")
    session_id = card.session_id(early_refund)
    paid = card.stripe.pay_session(session_id)
    await card.deliver("charge.refunded", card.stripe.refund_on_dashboard(paid["payment_intent"], 300))
    assert (await card.show(early_refund))["status"] == "pending_payment"
    await card.deliver("checkout.session.completed", paid)
    shown = await card.show(early_refund)
    assert shown["status"] == "active" and shown["remaining_amount"] == "7.00"
    assert await ledger(card, early_refund) == [("funding", 1000), ("reversal", -300)]

    # An older charge.refunded (smaller cumulative amount) after a newer one changes nothing.
    newer = card.stripe.refund_on_dashboard(paid["payment_intent"], 200)
    older = {**newer, "amount_refunded": 300}
    await card.deliver("charge.refunded", newer)
    await card.deliver("charge.refunded", older)
    assert (await card.show(early_refund))["remaining_amount"] == "5.00"

    # async_payment_succeeded before checkout.session.completed (unpaid); an "expired" after funding.
    late_completion = await card.created("10.00", "1.00")
    session_id = card.session_id(late_completion)
    unpaid = card.stripe.pay_session(session_id, asynchronous=True)
    await card.deliver("checkout.session.async_payment_succeeded",
                       card.stripe.settle_async_payment(session_id, succeeded=True))
    await card.deliver("checkout.session.completed", unpaid)
    await card.deliver("checkout.session.expired", {**unpaid, "status": "expired"})
    shown = await card.show(late_completion)
    assert shown["status"] == "active" and shown["unfunded_reason"] is None

    # A dispute before the funding: the permission is funded and suspended at once.
    early_dispute = await card.created("10.00", "1.00")
    paid = card.stripe.pay_session(card.session_id(early_dispute))
    await card.deliver("charge.dispute.created", card.stripe.dispute(paid["payment_intent"]))
    await card.deliver("checkout.session.completed", paid)
    assert (await card.show(early_dispute))["status"] == "suspended"
    await assert_ledger_agrees(card)


async def test_bad_signatures_are_refused_and_write_nothing(card: CardGateway) -> None:
    permission = await card.created()
    event = card.stripe.event("checkout.session.completed", card.stripe.pay_session(card.session_id(permission)))
    payload = json.dumps(event).encode()
    now = int(time.time())
    tampered = payload.replace(b'"amount_total": 1000', b'"amount_total": 9000')
    assert tampered != payload
    cases = {
        "tampered body": dict(body=tampered),
        "old timestamp": dict(timestamp=now - 301),
        "wrong secret": dict(secret="whsec_not_the_one"),
        "missing header": dict(signature=""),
        "garbage header": dict(signature="v1=abc"),
        "signature of another time": dict(signature=stripe_signature(payload, STRIPE_WEBHOOK_SECRET, now)
                                          .replace(f"t={now}", f"t={now + 1}")),
    }
    for name, options in cases.items():
        status, body = await card.send(event, **options)
        assert status == 400 and body["error"]["code"] == "invalid_signature", name
    assert await card.gw.db.fetchval("SELECT count(*) FROM stripe_events") == 0
    assert await ledger(card, permission) == []
    assert (await card.send(event, timestamp=now - 299))[0] == 200


async def test_our_refund_of_an_unused_permission(card: CardGateway) -> None:
    permission = await card.paid("10.00", "2.50")
    status, refunded = await card.refund(permission)
    assert status == 200, refunded
    assert refunded["status"] == "closed" and refunded["refund_amount"] == "10.00"
    assert refunded["refund_status"] == "submitted" and refunded["stripe_status"] == "succeeded"
    [request] = card.stripe.created(REFUNDS)
    assert request.idempotency_key == f"paygo-refund-{permission['permission_id']}"
    assert request.params["amount"] == "1000"
    assert request.params["payment_intent"] == card.payment_intent(permission)
    # Stripe's charge.refunded for our own refund takes nothing more.
    await card.deliver("charge.refunded", card.stripe.charge(card.payment_intent(permission)))
    assert await ledger(card, permission) == [("funding", 1000), ("refund", -1000)]
    # Asking again (token or operator) returns the same refund and calls Stripe no more.
    status, again = await card.refund(permission, token=None, api_key=ADMIN_KEY)
    assert status == 200 and again == refunded
    assert len(card.stripe.created(REFUNDS)) == 1
    shown = await card.show(permission)
    assert shown["status"] == "closed" and shown["refunded_amount"] == "10.00" and shown["refund_status"] == "submitted"
    await assert_ledger_agrees(card)


async def _half_an_hour_streamed(card: CardGateway) -> tuple[dict[str, Any], dict[str, Any]]:
    """A paid card permission (10.00 at 2.50 an hour) and a session on it that started 30 minutes ago."""
    vendor = await card.gw.create_vendor()
    permission = await card.paid("10.00", "2.50")
    status, opened = await card.gw.call("POST", "/api/v1/sessions", token=permission["permission_token"], json={
        "user_wallet_address": "buyer@example.com", "vendor_id": vendor["vendor_id"]})
    assert status == 201
    await card.gw.backdate_session(opened["session_id"], 1800)
    return permission, opened


async def test_our_refund_after_usage_gives_back_what_is_left(card: CardGateway) -> None:
    permission, opened = await _half_an_hour_streamed(card)
    assert (await card.gw.end_session(opened["session_code"]))[0] == 200
    status, refunded = await card.refund(permission)
    assert status == 200 and refunded["refund_amount"] == "8.75" and refunded["remaining_amount"] == "0.00"
    assert card.stripe.charge(card.payment_intent(permission))["amount_refunded"] == 875
    await card.deliver("charge.refunded", card.stripe.charge(card.payment_intent(permission)))
    assert await ledger(card, permission) == [("funding", 1000), ("charge", -125), ("refund", -875)]
    await assert_ledger_agrees(card)


async def test_our_refund_ends_open_sessions_first(card: CardGateway) -> None:
    """A session still streaming is ended and charged what it owes before the rest goes back to the card, so the
    vendor is paid for it and nothing streams on a closed permission."""
    permission, opened = await _half_an_hour_streamed(card)
    status, refunded = await card.refund(permission)
    assert status == 200 and refunded["status"] == "closed"
    charged = 1000 - int(Decimal(refunded["refund_amount"]) * 100)
    assert charged >= 125  # 30 minutes at 2.50 an hour, and the seconds the test took
    session = await card.gw.db.fetchrow("SELECT status, charged_amount, uncovered_amount FROM live_sessions "
                                        "WHERE id = $1", opened["session_id"])
    assert dict(session) == {"status": "ended", "charged_amount": charged, "uncovered_amount": 0}
    assert await ledger(card, permission) == [("funding", 1000), ("charge", -charged), ("refund", charged - 1000)]
    await assert_ledger_agrees(card)


async def test_our_refund_when_stripe_is_down_is_retried_with_the_same_key(card: CardGateway) -> None:
    permission = await card.paid("10.00", "2.50")
    card.stripe.fail_with(503)
    status, body = await card.refund(permission)
    assert status == 503 and body["error"]["code"] == "card_processor_unavailable"
    card.stripe.fail_with(None)
    status, refunded = await card.refund(permission)
    assert status == 200 and refunded["refund_status"] == "submitted"
    keys = {request.idempotency_key for request in card.stripe.created(REFUNDS)}
    assert keys == {f"paygo-refund-{permission['permission_id']}"}
    assert card.stripe.charge(card.payment_intent(permission))["amount_refunded"] == 1000
    assert await ledger(card, permission) == [("funding", 1000), ("refund", -1000)]
    await assert_ledger_agrees(card)


async def test_refunds_on_stripe_partial_then_full(card: CardGateway) -> None:
    permission = await card.paid("10.00", "2.50")
    payment_intent = card.payment_intent(permission)
    await card.deliver("charge.refunded", card.stripe.refund_on_dashboard(payment_intent, 400))
    shown = await card.show(permission)
    assert shown["status"] == "active" and shown["remaining_amount"] == "6.00" and shown["refunded_amount"] == "4.00"
    await card.deliver("charge.refunded", card.stripe.refund_on_dashboard(payment_intent, 600))
    shown = await card.show(permission)
    assert shown["status"] == "closed" and shown["remaining_amount"] == "0.00" and shown["debt_amount"] == "0.00"
    assert await ledger(card, permission) == [("funding", 1000), ("reversal", -400), ("reversal", -600)]
    await assert_ledger_agrees(card)


async def test_a_refund_beyond_the_balance_is_a_debt_and_suspends(card: CardGateway) -> None:
    vendor = await card.gw.create_vendor()
    permission = await card.paid("10.00", "2.50")
    status, opened = await card.gw.call("POST", "/api/v1/sessions", token=permission["permission_token"], json={
        "user_wallet_address": "buyer@example.com", "vendor_id": vendor["vendor_id"]})
    await card.gw.backdate_session(opened["session_id"], 3600)
    assert (await card.gw.end_session(opened["session_code"]))[0] == 200
    await card.deliver("charge.refunded", card.stripe.refund_on_dashboard(card.payment_intent(permission), 1000))
    shown = await card.show(permission)
    assert shown["status"] == "suspended" and shown["remaining_amount"] == "0.00"
    assert shown["debt_amount"] == "2.50"
    assert await ledger(card, permission) == [("funding", 1000), ("charge", -250), ("reversal", -750)]
    status, body = await card.refund(permission)
    assert status == 409 and body["error"]["code"] == "permission_not_refundable"
    await assert_ledger_agrees(card)


async def test_a_dispute_suspends_and_stops_billing_open_sessions(card: CardGateway) -> None:
    vendor = await card.gw.create_vendor()
    permission = await card.paid("10.00", "2.50")
    status, opened = await card.gw.call("POST", "/api/v1/sessions", token=permission["permission_token"], json={
        "user_wallet_address": "buyer@example.com", "vendor_id": vendor["vendor_id"]})
    assert status == 201
    await card.deliver("charge.dispute.created", card.stripe.dispute(card.payment_intent(permission)))
    shown = await card.show(permission)
    assert shown["status"] == "suspended" and shown["disputed_at"] is not None
    await card.gw.backdate_session(opened["session_id"], 3600)
    status, ended = await card.gw.end_session(opened["session_code"])
    assert status == 200 and ended["amount"] == "0.00" and ended["uncovered_amount"] == "2.50"
    status, _body = await card.gw.call("POST", "/api/v1/sessions", token=permission["permission_token"], json={
        "user_wallet_address": "buyer@example.com", "vendor_id": vendor["vendor_id"]})
    assert status == 402
    assert await ledger(card, permission) == [("funding", 1000)]
    await assert_ledger_agrees(card)


async def test_events_for_unknown_permissions_or_types_are_recorded_and_ignored(card: CardGateway) -> None:
    foreign = {"id": "cs_test_elsewhere", "object": "checkout.session", "payment_status": "paid", "currency": "usd",
               "amount_total": 500, "payment_intent": "pi_test_elsewhere", "metadata": {}}
    for event_type, obj in [("checkout.session.completed", foreign), ("customer.created", {"id": "cus_1"})]:
        status, body = await card.send(card.stripe.event(event_type, obj))
        assert status == 200 and body["outcome"] == "ignored"
    status, body = await card.send({"id": "evt_x", "object": "event"})
    assert status == 400 and body["error"]["code"] == "invalid_event"


async def test_a_checkout_session_funds_its_permission_once_whatever_payment_intents_arrive(
        card: CardGateway) -> None:
    """A second signed `checkout.session.completed` for the same Checkout Session naming another payment intent
    (and a fresh event id) funds nothing; concurrent ones neither."""
    permission = await card.created("10.00", "2.50")
    session = card.stripe.pay_session(card.session_id(permission))
    await card.deliver("checkout.session.completed", session)
    second = {**session, "payment_intent": "pi_another_one"}
    assert (await card.send(card.stripe.event("checkout.session.completed", second)))[1]["outcome"] == "ignored"
    others = [card.stripe.event("checkout.session.async_payment_succeeded", {**session, "payment_intent": f"pi_{n}"})
              for n in range(4)]
    await asyncio.gather(*(card.send(event) for event in others))
    assert await ledger(card, permission) == [("funding", 1000)]
    assert (await card.show(permission))["remaining_amount"] == "10.00"
    await assert_ledger_agrees(card)
