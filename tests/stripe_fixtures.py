"""Pytest fixtures for card credits: the Stripe API stand-in over HTTP and a gateway wired to it, with webhook
events signed exactly as Stripe signs them (`Stripe-Signature: t=<unix>,v1=<HMAC-SHA256(secret, "t.body")>`).

Registered in tests/conftest.py with `pytest_plugins`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from regtest.stripe_api import RunningStripe, StripeStandIn, start_stripe_api
from regtest.zcash_node import RunningNode
from tests.conftest import Gateway

STRIPE_SECRET_KEY = "sk_test_" + secrets.token_hex(16)
STRIPE_WEBHOOK_SECRET = "whsec_" + secrets.token_hex(16)
SUCCESS_URL = "https://shop.example/paid"


def stripe_signature(payload: bytes, secret: str, timestamp: int) -> str:
    signed = f"{timestamp}.".encode() + payload
    return f"t={timestamp},v1={hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()}"


def card_env(stripe_url: str, **extra: str) -> dict[str, str]:
    return {
        "STRIPE_SECRET_KEY": STRIPE_SECRET_KEY,
        "STRIPE_WEBHOOK_SECRET": STRIPE_WEBHOOK_SECRET,
        "STRIPE_API_BASE": stripe_url,
        "STRIPE_TIMEOUT_SECONDS": "1",
        "STRIPE_SUCCESS_URL": SUCCESS_URL,
        "CARD_MIN_PURCHASE": "1.00",
        "CARD_MAX_PURCHASE": "500.00",
        **extra,
    }


@dataclass
class CardGateway:
    """A gateway with card credits on, the Stripe stand-in it talks to, and the card flows as helpers."""

    gw: Gateway
    stripe: StripeStandIn

    async def create(self, amount: object = "10.00", rate: object = "2.50", *, email: str = "buyer@example.com",
                     headers: dict[str, str] | None = None, **fields: Any) -> tuple[int, Any]:
        body = {"user_wallet_address": email, "requested_amount": amount, "rate_per_hour": rate, **fields}
        return await self.gw.call("POST", "/api/v1/card/permissions", json=body, headers=headers)

    async def created(self, amount: object = "10.00", rate: object = "2.50", **fields: Any) -> dict[str, Any]:
        status, body = await self.create(amount, rate, **fields)
        assert status == 201, body
        return body

    def session_id(self, permission: dict[str, Any]) -> str:
        [session_id] = [s for s, v in self.stripe.sessions.items()
                        if v["metadata"].get("permission_id") == permission["permission_id"]]
        return session_id

    async def send(self, event: dict[str, Any], *, secret: str = STRIPE_WEBHOOK_SECRET,
                   timestamp: int | None = None, body: bytes | None = None,
                   signature: str | None = None) -> tuple[int, Any]:
        """POST an event as Stripe would: `body` replaces the signed bytes (tampering), `signature` the header."""
        payload = json.dumps(event).encode()
        header = signature if signature is not None else stripe_signature(
            payload, secret, timestamp if timestamp is not None else int(time.time()))
        sent = body if body is not None else payload
        response = await self.gw.client.post("/api/v1/webhooks/stripe", data=sent,
                                             headers={"Stripe-Signature": header,
                                                      "Content-Type": "application/json"})
        return response.status, await response.json()

    async def deliver(self, event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
        event = self.stripe.event(event_type, obj)
        status, body = await self.send(event)
        assert status == 200, body
        return event

    async def paid(self, amount: object = "10.00", rate: object = "2.50", **fields: Any) -> dict[str, Any]:
        """A card permission paid through Checkout and funded by its webhook."""
        permission = await self.created(amount, rate, **fields)
        await self.deliver("checkout.session.completed", self.stripe.pay_session(self.session_id(permission)))
        shown = await self.show(permission)
        assert shown["status"] == "active", shown
        return permission

    def payment_intent(self, permission: dict[str, Any]) -> str:
        return self.stripe.sessions[self.session_id(permission)]["payment_intent"]

    async def show(self, permission: dict[str, Any]) -> dict[str, Any]:
        status, body = await self.gw.call("GET", f"/api/v1/card/permissions/{permission['permission_id']}",
                                          token=permission["permission_token"])
        assert status == 200, body
        return body

    async def refund(self, permission: dict[str, Any], **call: Any) -> tuple[int, Any]:
        call.setdefault("token", permission["permission_token"])
        return await self.gw.call("POST", f"/api/v1/card/permissions/{permission['permission_id']}/refund", **call)


@pytest.fixture
async def stripe_api() -> AsyncIterator[RunningStripe]:
    running = await start_stripe_api(STRIPE_SECRET_KEY)
    yield running
    await running.stop()


@pytest.fixture
async def card(make_gateway: Callable[..., Any], zcash_regtest: tuple[RunningNode, str],
               stripe_api: RunningStripe) -> CardGateway:
    node, password = zcash_regtest
    gw = await make_gateway(node, password, **card_env(stripe_api.url))
    return CardGateway(gw, stripe_api.stand_in)
