"""Card permissions over HTTP against the Stripe stand-in: Checkout creation (idempotency key, metadata, pinned
API version), limits, the buyer's email, Stripe down or slow, our own Idempotency-Key, and the card endpoints
without a key."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from billing.ledger import recompute_balances
from chains.card import STRIPE_API_VERSION
from regtest.stripe_api import RunningStripe
from regtest.zcash_node import RunningNode
from tests.conftest import Gateway
from tests.stripe_fixtures import SUCCESS_URL, CardGateway, card_env

CHECKOUT = "/v1/checkout/sessions"


async def permission_rows(gw: Gateway) -> int:
    return await gw.db.fetchval("SELECT count(*) FROM permissions WHERE funding_source = 'card'")


async def test_create_answers_a_pending_permission_with_its_checkout(card: CardGateway) -> None:
    created = await card.created("10.00", "2.50", email="Buyer@Example.com", duration_days=7,
                                 cancel_url="https://shop.example/cancelled")
    assert created["status"] == "pending_payment" and created["asset"] == "USD"
    assert created["amount_to_pay"] == "10.00" and created["max_streaming_hours"] == "4.000000"
    assert created["user_wallet_address"] == "buyer@example.com"
    assert created["permission_token"].startswith("pgp_") and created["payment_address"] is None
    session_id = card.session_id(created)
    assert created["checkout_url"] == card.stripe.sessions[session_id]["url"]
    [request] = card.stripe.created(CHECKOUT)
    assert request.idempotency_key == f"paygo-checkout-{created['permission_id']}"
    assert request.stripe_version == STRIPE_API_VERSION
    assert request.params["metadata"] == {"permission_id": created["permission_id"]}
    assert request.params["line_items"][0]["price_data"]["unit_amount"] == "1000"
    assert request.params["customer_email"] == "buyer@example.com"
    assert request.params["success_url"] == SUCCESS_URL
    assert request.params["cancel_url"] == "https://shop.example/cancelled"
    raw = await card.gw.db.fetchrow("SELECT approved_amount, rate_per_hour, payment_locator FROM permissions "
                                    "WHERE id = $1", created["permission_id"])
    assert (raw["approved_amount"], raw["rate_per_hour"], raw["payment_locator"]) == (1000, 250, session_id)
    shown = await card.show(created)
    assert shown["checkout_url"] == created["checkout_url"] and shown["unfunded_reason"] is None


async def test_amounts_outside_the_purchase_limits_are_refused(card: CardGateway) -> None:
    for amount in ("0.99", "500.01", "10.001", "0"):
        status, body = await card.create(amount, "1")
        assert status == 422, (amount, body)
        assert body["error"]["code"] == "invalid_amount"
    status, _ = await card.create("500.00", "1")
    assert status == 201
    assert len(card.stripe.created(CHECKOUT)) == 1


async def test_the_buyer_must_be_named_by_an_email_address(card: CardGateway) -> None:
    for email in ("not-an-email", "a@b", "two@@example.com", "x" * 250 + "@example.com"):
        status, body = await card.create(email=email)
        assert status == 422 and body["error"]["code"] == "invalid_address", email
    status, body = await card.create(success_url="javascript:alert(1)")
    assert status == 422 and body["error"]["code"] == "invalid_url"
    assert card.stripe.created(CHECKOUT) == []


async def test_stripe_down_answers_503_and_creates_no_permission(card: CardGateway) -> None:
    card.stripe.fail_with(503)
    status, body = await card.create()
    assert status == 503 and body["error"]["code"] == "card_processor_unavailable"
    assert await permission_rows(card.gw) == 0
    card.stripe.fail_with(None)
    assert (await card.create())[0] == 201


async def test_stripe_slow_answers_503_and_creates_no_permission(card: CardGateway) -> None:
    card.stripe.hold()
    status, body = await card.create()
    card.stripe.release()
    assert status == 503 and body["error"]["code"] == "card_processor_unavailable"
    assert "no answer in time" in body["error"]["message"]
    assert await permission_rows(card.gw) == 0


async def test_stripe_unreachable_answers_503(make_gateway: Callable[..., Any],
                                              zcash_regtest: tuple[RunningNode, str],
                                              stripe_api: RunningStripe) -> None:
    node, password = zcash_regtest
    await stripe_api.stop()
    gw = await make_gateway(node, password, **card_env(stripe_api.url))
    status, body = await gw.call("POST", "/api/v1/card/permissions", json={
        "user_wallet_address": "a@example.com", "requested_amount": "5", "rate_per_hour": "1"})
    assert status == 503 and body["error"]["code"] == "card_processor_unavailable"
    assert await permission_rows(gw) == 0


async def test_the_same_idempotency_key_creates_one_permission(card: CardGateway) -> None:
    headers = {"Idempotency-Key": "order-42-" + "0" * 32}
    first_status, first = await card.create("10", "2", headers=headers)
    again_status, again = await card.create("10", "2", headers=headers)
    assert first_status == again_status == 201
    assert again["permission_id"] == first["permission_id"]
    assert again["checkout_url"] == first["checkout_url"]
    assert len(card.stripe.created(CHECKOUT)) == 1 and await permission_rows(card.gw) == 1
    status, body = await card.create("11", "2", headers=headers)
    assert status == 422 and body["error"]["code"] == "idempotency_key_reused"
    racing = await asyncio.gather(*(card.create("12", "2", headers={"Idempotency-Key": "race-" + "1" * 32})
                                    for _ in range(4)))
    winners = {body["permission_id"] for status, body in racing if status == 201}
    assert len(winners) == 1 and all(status in (201, 409) for status, _ in racing)
    assert await permission_rows(card.gw) == 2


async def test_verify_reads_the_checkout_session(card: CardGateway) -> None:
    created = await card.created("10.00", "2.50")
    status, pending = await card.gw.call("POST", f"/api/v1/card/permissions/{created['permission_id']}/verify",
                                         token=created["permission_token"])
    assert status == 200 and pending["status"] == "pending_payment"
    card.stripe.pay_session(card.session_id(created))
    status, active = await card.gw.call("POST", f"/api/v1/card/permissions/{created['permission_id']}/verify",
                                        token=created["permission_token"])
    assert status == 200 and active["status"] == "active" and active["remaining_amount"] == "10.00"
    assert active["payments"][0]["txid"] == card.payment_intent(created)
    # The webhook for the same payment afterwards funds nothing more.
    await card.deliver("checkout.session.completed", card.stripe.sessions[card.session_id(created)])
    assert (await card.show(created))["remaining_amount"] == "10.00"
    assert await recompute_balances(card.gw.db) == []


async def test_without_a_key_every_card_endpoint_answers_503(gw: Gateway) -> None:
    some_id = "00000000-0000-0000-0000-000000000000"
    for method, path in [("POST", "/api/v1/card/permissions"), ("GET", f"/api/v1/card/permissions/{some_id}"),
                         ("POST", f"/api/v1/card/permissions/{some_id}/verify"),
                         ("POST", f"/api/v1/card/permissions/{some_id}/refund"),
                         ("GET", "/api/v1/card/permissions/wallet/a@example.com"),
                         ("POST", "/api/v1/webhooks/stripe")]:
        status, body = await gw.call(method, path, json={} if method == "POST" else None)
        assert status == 503 and body["error"]["code"] == "card_payments_not_configured", (path, body)
    assert (await gw.create_permission())["status"] == "pending_payment"
