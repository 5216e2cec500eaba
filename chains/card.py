"""Card credits through Stripe, behind the same `FundingSource` interface as the chains.

`prepare_funding` creates a Stripe Checkout Session (its id is the locator, its URL the checkout URL);
`find_payments` retrieves a session and reports it as one payment once Stripe says it is paid; `refund` gives
back part of a payment. Every call goes through `stripe.StripeClient`'s async methods with a pinned API version,
a tight timeout and an idempotency key built from our own ids, so a retry never creates a second session or
refund. A Stripe that is down, slow or refusing our key is `ServiceUnavailable` (503) for our clients.

A card user is identified by an email address (normalised to lower case), stored as the permission's
`user_wallet_address` and given to Stripe as the checkout's `customer_email`, so the receipt reaches them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Mapping, Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import stripe

from kernel.assets import USD
from kernel.errors import (
    InvalidAddress,
    InvalidAmount,
    InvalidEvent,
    InvalidRequest,
    InvalidSignature,
    ServiceUnavailable,
)
from kernel.funding import (
    FundingInstructions,
    FundingRequest,
    Payment,
    PaymentTarget,
    RefundReceipt,
    SourceStatus,
)
from kernel.money import format_amount

# The API version whose object shapes this adapter (and regtest/stripe_api.py) reads; stripe 16's own version.
STRIPE_API_VERSION = "2026-10-28.endive"
STRIPE_CURRENCY = "usd"
SIGNATURE_HEADER = "Stripe-Signature"
CHECKOUT_PRODUCT_NAME = "PayGo streaming credit"
MAX_EMAIL_LENGTH = 254
MAX_URL_LENGTH = 2048
_EMAIL = re.compile(r"[^@\s\"<>(),;:\\\[\]]{1,64}"  # the local part
                    r"@[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+")


def checkout_idempotency_key(reference: str) -> str:
    return f"paygo-checkout-{reference}"


def refund_idempotency_key(reference: str) -> str:
    return f"paygo-refund-{reference}"


def normalise_email(address: str) -> str:
    """The card user's identifier: a syntactically valid email address, lower-cased; `InvalidAddress` otherwise."""
    email = address.strip().lower()
    if len(email) > MAX_EMAIL_LENGTH or _EMAIL.fullmatch(email) is None:
        raise InvalidAddress("a card permission's user_wallet_address must be the buyer's email address")
    return email


def checked_redirect_url(url: str, field: str, allowed_hosts: frozenset[str] | None = None) -> str:
    """An absolute http(s) URL; with `allowed_hosts`, only on one of those hosts (422 `url_not_allowed`), so a
    checkout cannot send a payer on to a page of someone else's choosing."""
    parts = urlsplit(url)
    if (len(url) > MAX_URL_LENGTH or parts.scheme not in ("http", "https") or not parts.netloc
            or not url.isprintable()):
        raise InvalidRequest(f"{field} must be an absolute http(s) URL", code="invalid_url")
    if allowed_hosts is not None and (parts.hostname or "").rstrip(".") not in allowed_hosts:
        raise InvalidRequest(f"{field} must be on one of the gateway's redirect hosts (CARD_REDIRECT_HOSTS)",
                             code="url_not_allowed")
    return url


def payment_from_session(session: Mapping[str, Any]) -> Payment | None:
    """A paid Checkout Session as the one payment it is (identified by its PaymentIntent); None until paid."""
    if session.get("payment_status") != "paid" or session.get("currency") != STRIPE_CURRENCY:
        return None
    amount = session.get("amount_total")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        return None
    return Payment(txid=session.get("payment_intent") or session["id"], output_index=0, amount_units=amount,
                   confirmations=1)


class CardFundingSource:
    """Stripe as a funding source. Amounts are USD cents; a checkout outside [minimum, maximum] is refused."""

    name = "card"
    min_confirmations = 1  # Stripe says "paid" once; there is nothing deeper to wait for

    def __init__(
        self,
        secret_key: str,
        *,
        webhook_secret: str,
        webhook_tolerance_seconds: int,
        api_base: str | None,
        timeout_seconds: float,
        min_amount_units: int,
        max_amount_units: int,
        success_url: str | None,
        cancel_url: str | None,
        redirect_hosts: Sequence[str] = (),
        max_network_retries: int = 1,
    ) -> None:
        self.min_amount_units = min_amount_units
        self._webhook_secret = webhook_secret
        self._webhook_tolerance_seconds = webhook_tolerance_seconds
        self.max_amount_units = max_amount_units
        self.success_url = success_url
        self.cancel_url = cancel_url
        # hosts a request's own success_url/cancel_url may name: the configured ones and those of the defaults
        self.redirect_hosts = frozenset(
            [host.lower() for host in redirect_hosts]
            + [(urlsplit(url).hostname or "") for url in (success_url, cancel_url) if url])
        self._http = stripe.AIOHTTPClient(timeout=aiohttp.ClientTimeout(total=timeout_seconds))
        self._client = stripe.StripeClient(
            secret_key,
            stripe_version=STRIPE_API_VERSION,
            base_addresses={"api": api_base} if api_base else None,
            http_client=self._http,
            max_network_retries=max_network_retries,
        )

    def validate_address(self, address: str) -> str:
        return normalise_email(address)

    async def prepare_funding(self, request: FundingRequest) -> FundingInstructions:
        if request.asset != USD.code:
            raise InvalidRequest(f"card payments are in {USD.code}", code="invalid_asset")
        if not self.min_amount_units <= request.amount_units <= self.max_amount_units:
            raise InvalidAmount("requested_amount", f"must be from {format_amount(self.min_amount_units, USD)} to "
                                f"{format_amount(self.max_amount_units, USD)} {USD.code} for a card purchase")
        for name in ("success_url", "cancel_url"):
            if name in request.extra:
                checked_redirect_url(request.extra[name], name, self.redirect_hosts)
        success_url = request.extra.get("success_url") or self.success_url
        cancel_url = request.extra.get("cancel_url") or self.cancel_url or success_url
        if success_url is None or cancel_url is None:
            raise InvalidRequest("success_url is required (or set STRIPE_SUCCESS_URL on the gateway)",
                                 code="invalid_url")
        metadata = {"permission_id": request.reference}
        params: Any = {  # stripe.checkout.SessionCreateParams
            "mode": "payment",
            "line_items": [{
                "quantity": 1,
                "price_data": {"currency": STRIPE_CURRENCY, "unit_amount": request.amount_units,
                               "product_data": {"name": CHECKOUT_PRODUCT_NAME}},
            }],
            "success_url": checked_redirect_url(success_url, "success_url"),
            "cancel_url": checked_redirect_url(cancel_url, "cancel_url"),
            "client_reference_id": request.reference,
            "metadata": metadata,
            "payment_intent_data": {"metadata": metadata},
        }
        if request.payer:
            params["customer_email"] = request.payer
        session = await self._call(self._client.v1.checkout.sessions.create_async(
            params, options={"idempotency_key": checkout_idempotency_key(request.reference)}))
        return FundingInstructions(payment_address=None, locator=session["id"], checkout_url=session["url"])

    async def find_payments(self, targets: Sequence[PaymentTarget]) -> dict[str, list[Payment]]:
        """Each target's Checkout Session, retrieved one by one (Stripe has no batch read for sessions)."""
        found: dict[str, list[Payment]] = {}
        for target in targets:
            session = await self._call(self._client.v1.checkout.sessions.retrieve_async(target.locator))
            payment = payment_from_session(session)
            found[target.key] = [payment] if payment else []
        return found

    async def refund(self, payment_txid: str, amount_units: int, reference: str) -> RefundReceipt:
        """Give `amount_units` of the payment (a PaymentIntent) back to the card; the same `reference` never
        refunds twice."""
        refund = await self._call(self._client.v1.refunds.create_async(
            {"payment_intent": payment_txid, "amount": amount_units, "metadata": {"reference": reference}},
            options={"idempotency_key": refund_idempotency_key(reference)}))
        return RefundReceipt(refund_id=refund["id"], status=refund["status"], amount_units=refund["amount"])

    def verified_event(self, payload: bytes, signature_header: str) -> dict[str, Any]:
        """Stripe's event, verified on the raw body (HMAC-SHA256 and timestamp tolerance, as Stripe signs it)
        before anything is parsed; then parsed with `parse_float=Decimal` (which is why `verify_header` is used
        rather than `construct_event`, which would parse floats)."""
        if not signature_header.isascii():  # stripe compares with hmac.compare_digest, which raises on non-ASCII
            raise InvalidSignature(f"the {SIGNATURE_HEADER} header is not ASCII")
        try:
            stripe.WebhookSignature.verify_header(payload, signature_header, self._webhook_secret,
                                                  self._webhook_tolerance_seconds)
        except (stripe.SignatureVerificationError, UnicodeDecodeError):
            raise InvalidSignature(f"the {SIGNATURE_HEADER} header does not sign this body (or is too old)") from None
        try:
            event = json.loads(payload, parse_float=Decimal)
        except ValueError:
            raise InvalidEvent("the body is not JSON") from None
        if not isinstance(event, dict):
            raise InvalidEvent("the body is not a Stripe event")
        return event

    def payment_of_checkout(self, checkout: Mapping[str, Any]) -> Payment | None:
        return payment_from_session(checkout)

    async def status(self) -> SourceStatus:
        try:
            balance = (await self._client.v1.balance.retrieve_async()).to_dict()
        except stripe.StripeError as exc:
            return SourceStatus(name=self.name, reachable=False, detail=_describe(exc))
        return SourceStatus(name=self.name, reachable=True, synced=True,
                            detail="live mode" if balance.get("livemode") else "test mode")

    async def close(self) -> None:
        await self._http.close_async()

    async def _call(self, call: Awaitable[stripe.StripeObject]) -> dict[str, Any]:
        """Await a Stripe call and give its object as a plain dict, turning failures into our client errors."""
        try:
            return (await call).to_dict()
        except stripe.InvalidRequestError as exc:
            raise InvalidRequest(f"Stripe refused the request: {exc.user_message or exc.code}",
                                 code="card_request_refused") from None
        except stripe.StripeError as exc:
            raise ServiceUnavailable(f"the card processor is unavailable: {_describe(exc)}",
                                     code="card_processor_unavailable") from None


def _describe(exc: stripe.StripeError) -> str:
    if isinstance(exc, stripe.APIConnectionError):
        return "no answer in time" if isinstance(exc.__cause__, TimeoutError) else "cannot connect"
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        return "the secret key was refused"
    return f"HTTP {exc.http_status}" if exc.http_status else type(exc).__name__
