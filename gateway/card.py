"""Card-credit routes: the card permission family (through `permission_routes`), Stripe's webhook, and refunds.

Without STRIPE_SECRET_KEY every route here answers 503 `card_payments_not_configured`; nothing else changes.
The webhook's raw body is verified (HMAC-SHA256 signature and timestamp tolerance, as Stripe signs it) before
anything is parsed; a bad or missing signature is a 400 and writes nothing.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import stripe
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from billing.card import InvalidEvent, card_details, process_event, refund_unused
from billing.errors import PayGoError, ServiceUnavailable
from billing.money import format_amount
from billing.service import PermissionState
from chains.card import CardFundingSource
from gateway.auth import require_permission_access
from gateway.http import Handler, json_response
from gateway.keys import BILLING, SETTINGS
from gateway.models import AmountString, CreatePermissionRequest
from gateway.openapi import Auth, Operation, Parameter, describe
from gateway.permissions import parse_uuid, permission_routes
from gateway.views import iso

WEBHOOK_PATH = "/api/v1/webhooks/stripe"
SIGNATURE_HEADER = "Stripe-Signature"
NOT_CONFIGURED_RETRY_AFTER_SECONDS = 3600


class CreateCardPermissionRequest(CreatePermissionRequest):
    """A card permission: `user_wallet_address` is the buyer's email; Stripe sends them back to these URLs."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "user_wallet_address": "buyer@example.com", "requested_amount": "10.00", "rate_per_hour": "2.50",
        "duration_days": 30, "success_url": "https://shop.example/paid", "cancel_url": "https://shop.example/"}]})

    success_url: str | None = Field(default=None, max_length=2048, description="where Checkout sends a payer")
    cancel_url: str | None = Field(default=None, max_length=2048, description="where Checkout sends a quitter")


class CardPermissionFields(BaseModel):
    """What every answer about a card permission adds to the permission view."""

    checkout_url: str | None = Field(description="Stripe Checkout page where the buyer pays")
    unfunded_reason: str | None
    refunded_amount: AmountString
    debt_amount: AmountString
    disputed_at: str | None
    refund_status: str | None


class StripeWebhookAnswer(BaseModel):
    received: bool
    outcome: str


class RefundView(BaseModel):
    permission_id: str
    status: str
    remaining_amount: AmountString
    refund_amount: AmountString
    refund_status: str
    stripe_refund_id: str | None
    stripe_status: str | None


class InvalidSignature(PayGoError):
    code = "invalid_signature"


def routes() -> list[web.RouteDef]:
    family = permission_routes("card", create_body=CreateCardPermissionRequest, funding_extra=_funding_extra,
                               extra_fields=_card_fields, extra_fields_view=CardPermissionFields)
    own = [web.post(WEBHOOK_PATH, stripe_webhook), web.post("/api/v1/card/permissions/{id}/refund", refund)]
    return [web.route(route.method, route.path, _configured_only(route.handler), **route.kwargs)
            for route in [*family, *own]]


def _configured_only(handler: Handler) -> Handler:
    @functools.wraps(handler)  # keeps the handler's API description
    async def guarded(request: web.Request) -> web.StreamResponse:
        if request.app[SETTINGS].card is None:
            raise ServiceUnavailable("card payments are not configured on this gateway (STRIPE_SECRET_KEY)",
                                     code="card_payments_not_configured",
                                     retry_after=NOT_CONFIGURED_RETRY_AFTER_SECONDS)
        return await handler(request)

    return guarded


def _funding_extra(body: CreateCardPermissionRequest) -> dict[str, str]:
    return {name: url for name, url in (("success_url", body.success_url), ("cancel_url", body.cancel_url)) if url}


async def _card_fields(request: web.Request, state: PermissionState) -> dict[str, Any]:
    billing = request.app[BILLING]
    async with billing.pool.acquire() as conn:
        details = await card_details(conn, state.permission.id)
    asset = billing.assets[state.permission.asset]
    return {
        "checkout_url": state.permission.checkout_url,
        "unfunded_reason": details.unfunded_reason,
        "refunded_amount": format_amount(details.refunded_amount, asset),
        "debt_amount": format_amount(details.debt_amount, asset),
        "disputed_at": iso(details.disputed_at),
        "refund_status": details.refund_status,
    }


@describe(Operation(
    summary="Stripe's webhook: checkout, refund and dispute events", tag="card",
    body={"type": "object", "examples": [{
        "id": "evt_1PayGoExample", "object": "event", "type": "checkout.session.completed",
        "data": {"object": {"id": "cs_test_a1PayGoExample", "object": "checkout.session", "payment_status": "paid",
                            "amount_total": 1000, "currency": "usd", "payment_intent": "pi_1PayGoExample",
                            "metadata": {"permission_id": "1b4e28ba-2fa1-41d2-883f-0016d3cca427"}}}}]},
    response=StripeWebhookAnswer, errors=(400, 422),
    headers=(Parameter("Stripe-Signature", "`t=<unix>,v1=<HMAC-SHA256(webhook secret, \"t.body\")>`",
                       required=True),),
    description="The raw body is verified against Stripe-Signature before anything is read; each event id is "
                "applied once (a repeat answers 200 too)."))
async def stripe_webhook(request: web.Request) -> web.Response:
    """Stripe's events, verified on the raw body; each event id is applied once (a repeat answers 200 too, so
    Stripe stops resending it)."""
    settings = request.app[SETTINGS].card
    assert settings is not None  # _configured_only
    payload = await request.read()
    signature = request.headers.get(SIGNATURE_HEADER, "")
    if not signature.isascii():  # stripe compares with hmac.compare_digest, which raises on non-ASCII text
        raise InvalidSignature(f"the {SIGNATURE_HEADER} header is not ASCII")
    try:
        stripe.WebhookSignature.verify_header(payload, signature,
                                              settings.webhook_secret, settings.webhook_tolerance_seconds)
    except (stripe.SignatureVerificationError, UnicodeDecodeError):
        raise InvalidSignature(f"the {SIGNATURE_HEADER} header does not sign this body (or is too old)") from None
    try:
        event = json.loads(payload, parse_float=Decimal)
    except ValueError:
        raise InvalidEvent("the body is not JSON") from None
    if not isinstance(event, Mapping):
        raise InvalidEvent("the body is not a Stripe event")
    billing = request.app[BILLING]
    async with billing.pool.acquire() as conn:
        result = await process_event(conn, event)
    if result.permission_id is not None:
        await billing.cache.invalidate(result.permission_id)
    return json_response({"received": True, "outcome": str(result.outcome)})


@describe(Operation(
    summary="Refund the unused balance to the card and close the permission", tag="card",
    auth=(Auth.PERMISSION_TOKEN, Auth.OPERATOR_KEY), response=RefundView, errors=(403, 404, 409),
    path_parameters={"id": "The permission's id"}))
async def refund(request: web.Request) -> web.Response:
    """Refund the unused balance to the card and close the permission (the permission's token or the operator)."""
    billing = request.app[BILLING]
    permission_id = parse_uuid(request.match_info["id"], "permission")
    await require_permission_access(request, permission_id)
    source = billing.source("card")
    assert isinstance(source, CardFundingSource)
    try:
        record = await refund_unused(billing.pool, source, permission_id)
    finally:
        await billing.cache.invalidate(permission_id)  # the balance may have moved even if Stripe did not answer
    state = await billing.permission_state(permission_id)
    asset = billing.assets[state.permission.asset]
    return json_response({
        "permission_id": str(permission_id),
        "status": state.permission.status_at(state.now),
        "remaining_amount": format_amount(state.permission.balance, asset),
        "refund_amount": format_amount(record.amount, asset),
        "refund_status": record.status,
        "stripe_refund_id": record.stripe_refund_id,
        "stripe_status": record.stripe_status,
    })
