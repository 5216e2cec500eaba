"""Card-credit routes: the card permission family (through `permission_routes`), Stripe's webhook, and refunds.

Without STRIPE_SECRET_KEY every route here answers 503 `card_payments_not_configured`; nothing else changes.
The webhook's raw body is verified (HMAC-SHA256 signature and timestamp tolerance, as Stripe signs it) before
anything is parsed; a bad or missing signature is a 400 and writes nothing.
"""

from __future__ import annotations

import functools
from dataclasses import replace

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from billing.permission_service import PermissionRequest
from billing.sources import NOT_CONFIGURED_RETRY_AFTER_SECONDS
from gateway.auth import parse_uuid, require_permission_access
from gateway.http import Handler, json_response
from gateway.keys import SERVICES, SETTINGS
from gateway.models import AmountString, CardPermissionFields, CreatePermissionRequest
from gateway.openapi import Auth, Operation, Parameter, describe
from gateway.permissions import routes as permission_routes
from kernel.errors import ServiceUnavailable
from kernel.money import format_amount

WEBHOOK_PATH = "/api/v1/webhooks/stripe"
SIGNATURE_HEADER = "Stripe-Signature"


class CreateCardPermissionRequest(CreatePermissionRequest):
    """A card permission: `user_wallet_address` is the buyer's email; Stripe sends them back to these URLs."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "user_wallet_address": "buyer@example.com", "requested_amount": "10.00", "rate_per_hour": "2.50",
        "duration_days": 30, "success_url": "https://shop.example/paid", "cancel_url": "https://shop.example/"}]})

    success_url: str | None = Field(default=None, max_length=2048, description="where Checkout sends a payer")
    cancel_url: str | None = Field(default=None, max_length=2048, description="where Checkout sends a quitter")

    def permission_request(self, funding_source: str, default_asset: str) -> PermissionRequest:
        urls = {name: url for name, url in (("success_url", self.success_url), ("cancel_url", self.cancel_url))
                if url}
        return replace(super().permission_request(funding_source, default_asset), funding_extra=urls)


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


def routes() -> list[web.RouteDef]:
    family = permission_routes("card", create_body=CreateCardPermissionRequest, extra_view=CardPermissionFields)
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


@describe(Operation(
    summary="Stripe's webhook: checkout, refund and dispute events", tag="card",
    body={"type": "object", "examples": [{
        "id": "evt_1PayGoExample", "object": "event", "type": "checkout.session.completed",
        "data": {"object": {"id": "cs_test_a1PayGoExample", "object": "checkout.session", "payment_status": "paid",
                            "amount_total": 1000, "currency": "usd", "payment_intent": "pi_1PayGoExample",
                            "metadata": {"permission_id": "1b4e28ba-2fa1-41d2-883f-0016d3cca427"}}}}]},
    response=StripeWebhookAnswer, errors=(400, 422), rate_limited=False,
    headers=(Parameter("Stripe-Signature", "`t=<unix>,v1=<HMAC-SHA256(webhook secret, \"t.body\")>`",
                       required=True),),
    description="The raw body is verified against Stripe-Signature before anything is read; each event id is "
                "applied once (a repeat answers 200 too)."))
async def stripe_webhook(request: web.Request) -> web.Response:
    """Stripe's events, verified on the raw body; each event id is applied once (a repeat answers 200 too, so
    Stripe stops resending it)."""
    result = await request.app[SERVICES].card.handle_webhook(await request.read(),
                                                             request.headers.get(SIGNATURE_HEADER, ""))
    return json_response({"received": True, "outcome": str(result.outcome)})


@describe(Operation(
    summary="Refund the unused balance to the card and close the permission", tag="card",
    auth=(Auth.PERMISSION_TOKEN, Auth.OPERATOR_KEY), response=RefundView, errors=(403, 404, 409),
    path_parameters={"id": "The permission's id"}))
async def refund(request: web.Request) -> web.Response:
    """Refund the unused balance to the card and close the permission (the permission's token or the operator)."""
    permission_id = parse_uuid(request.match_info["id"], "permission")
    await require_permission_access(request, permission_id)
    services = request.app[SERVICES]
    record = await services.card.refund_unused(permission_id)
    state = await services.permissions.state(permission_id)
    asset = state.asset
    return json_response({
        "permission_id": str(permission_id),
        "status": state.permission.status_at(state.now),
        "remaining_amount": format_amount(state.permission.balance, asset),
        "refund_amount": format_amount(record.amount, asset),
        "refund_status": record.status,
        "stripe_refund_id": record.stripe_refund_id,
        "stripe_status": record.stripe_status,
    })
