"""A local stand-in for the part of Stripe's API PayGo uses, for tests (reached through STRIPE_API_BASE).

It answers `POST /v1/checkout/sessions`, `GET /v1/checkout/sessions/{id}`, `POST /v1/refunds` and
`GET /v1/balance` with Stripe's documented object shapes and error bodies (`{"error": {"type", "message", ...}}`),
reads Stripe's form encoding (`metadata[permission_id]=...`, `line_items[0][price_data][unit_amount]=...`),
checks the Bearer secret key, and honours `Idempotency-Key` like Stripe: the first answer is replayed (with
`Idempotent-Replayed: true`) and a reuse with other parameters is a 400 `idempotency_error`. Every request is
recorded. Tests drive what happens outside the API (a buyer paying, a dashboard refund, a dispute) with the
methods of `StripeStandIn`, build the webhook events Stripe would send with `event()`, and can make the API
"down" (`fail_with`) or "slow" (`hold` until `release`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from chains.card import STRIPE_API_VERSION


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    params: dict[str, Any]
    idempotency_key: str | None
    stripe_version: str | None


class StripeError(Exception):
    def __init__(self, status: int, error_type: str, message: str, *, code: str | None = None,
                 param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"type": error_type, "message": message, "code": code, "param": param}}


def decode_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's nested form encoding to nested dicts and lists (`a[b][0][c]=v`); values stay strings."""
    root: dict[str, Any] = {}
    for raw_key, value in pairs:
        head, _, rest = raw_key.partition("[")
        parts = [head, *(rest[:-1].split("][") if rest else [])]
        node: Any = root
        for part, following in zip(parts, [*parts[1:], None], strict=True):
            if following is None:
                node[part] = value
                break
            container: dict[str, Any] = node.setdefault(part, {})
            node = container
    return _lists(root)


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    if node and all(key.isdigit() for key in node):
        return [_lists(node[key]) for key in sorted(node, key=int)]
    return {key: _lists(value) for key, value in node.items()}


def _new_id(prefix: str) -> str:
    return f"{prefix}_test_{secrets.token_hex(12)}"


def _whole(params: dict[str, Any], name: str) -> int:
    raw = params.get(name)
    if not isinstance(raw, str) or not raw.isdigit():
        raise StripeError(400, "invalid_request_error", f"Invalid integer: {raw}", param=name)
    return int(raw)


@dataclass
class StripeStandIn:
    api_key: str
    requests: list[RecordedRequest] = field(default_factory=list)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    charges: dict[str, dict[str, Any]] = field(default_factory=dict)  # by payment intent
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    failure_status: int | None = None
    gate: asyncio.Event | None = None
    _idempotent: dict[str, tuple[str, int, dict[str, Any]]] = field(default_factory=dict)

    # --- test controls -------------------------------------------------------------------------------------
    def fail_with(self, status: int | None) -> None:
        """Answer every API call with this HTTP status and Stripe's api_error body (None: answer normally)."""
        self.failure_status = status

    def hold(self) -> None:
        """Keep every API call waiting (a slow Stripe) until `release()`."""
        self.gate = asyncio.Event()

    def release(self) -> None:
        if self.gate is not None:
            self.gate.set()
            self.gate = None

    def created(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST" and r.path == path]

    def pay_session(self, session_id: str, *, asynchronous: bool = False) -> dict[str, Any]:
        """The buyer completes Checkout: paid at once by card, or (asynchronous) completed with the payment to
        follow (`settle_async_payment`)."""
        session = self.sessions[session_id]
        payment_intent = _new_id("pi")
        session.update(status="complete", payment_intent=payment_intent,
                       payment_status="unpaid" if asynchronous else "paid")
        self.charges[payment_intent] = {
            "id": _new_id("ch"), "object": "charge", "amount": session["amount_total"],
            "amount_captured": session["amount_total"], "amount_refunded": 0, "captured": True,
            "currency": session["currency"], "paid": not asynchronous, "payment_intent": payment_intent,
            "refunded": False, "disputed": False, "status": "pending" if asynchronous else "succeeded",
            "metadata": {}, "created": int(time.time()), "livemode": False,
        }
        return dict(session)

    def settle_async_payment(self, session_id: str, *, succeeded: bool) -> dict[str, Any]:
        session = self.sessions[session_id]
        session["payment_status"] = "paid" if succeeded else "unpaid"
        charge = self.charges[session["payment_intent"]]
        charge.update(paid=succeeded, status="succeeded" if succeeded else "failed")
        return dict(session)

    def expire_session(self, session_id: str) -> dict[str, Any]:
        self.sessions[session_id]["status"] = "expired"
        return dict(self.sessions[session_id])

    def refund_on_dashboard(self, payment_intent: str, amount: int) -> dict[str, Any]:
        """A refund made outside PayGo (the dashboard); returns the charge as `charge.refunded` carries it."""
        self._refund(payment_intent, amount, {})
        return dict(self.charges[payment_intent])

    def charge(self, payment_intent: str) -> dict[str, Any]:
        return dict(self.charges[payment_intent])

    def dispute(self, payment_intent: str, reason: str = "fraudulent") -> dict[str, Any]:
        charge = self.charges[payment_intent]
        charge["disputed"] = True
        return {"id": _new_id("dp"), "object": "dispute", "amount": charge["amount"], "charge": charge["id"],
                "currency": charge["currency"], "payment_intent": payment_intent, "reason": reason,
                "status": "needs_response", "is_charge_refundable": False, "metadata": {},
                "created": int(time.time()), "livemode": False}

    @staticmethod
    def event(event_type: str, obj: dict[str, Any], *, created: int | None = None) -> dict[str, Any]:
        """A webhook event as Stripe sends it (snapshot payload)."""
        return {"id": _new_id("evt"), "object": "event", "api_version": STRIPE_API_VERSION,
                "created": created or int(time.time()), "data": {"object": obj}, "livemode": False,
                "pending_webhooks": 1, "request": {"id": None, "idempotency_key": None}, "type": event_type}

    # --- the API -------------------------------------------------------------------------------------------
    def create_session(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("mode") != "payment":
            raise StripeError(400, "invalid_request_error", "Only payment mode is supported here", param="mode")
        items = params.get("line_items")
        if not isinstance(items, list) or not items:
            raise StripeError(400, "invalid_request_error", "Missing required param: line_items.", param="line_items")
        total, currencies = 0, set()
        for index, item in enumerate(items):
            price = item.get("price_data", {})
            currencies.add(price.get("currency"))
            total += _whole(price, "unit_amount") * _whole(item, "quantity")
            if not price.get("product_data", {}).get("name"):
                raise StripeError(400, "invalid_request_error", "Missing required param: product_data[name].",
                                  param=f"line_items[{index}][price_data][product_data][name]")
        if len(currencies) != 1 or None in currencies:
            raise StripeError(400, "invalid_request_error", "line_items need one currency", param="line_items")
        if not params.get("success_url"):
            raise StripeError(400, "invalid_request_error", "Missing required param: success_url.",
                              param="success_url")
        session_id = _new_id("cs")
        now = int(time.time())
        session = {
            "id": session_id, "object": "checkout.session", "amount_subtotal": total, "amount_total": total,
            "cancel_url": params.get("cancel_url"), "success_url": params["success_url"],
            "client_reference_id": params.get("client_reference_id"), "currency": currencies.pop(),
            "customer": None, "customer_email": params.get("customer_email"), "created": now,
            "expires_at": now + 86400, "livemode": False, "metadata": params.get("metadata", {}), "mode": "payment",
            "payment_intent": None, "payment_method_types": ["card"], "payment_status": "unpaid", "status": "open",
            "url": f"https://checkout.stripe.com/c/pay/{session_id}",
        }
        self.sessions[session_id] = session
        return dict(session)

    def retrieve_session(self, session_id: str) -> dict[str, Any]:
        if session_id not in self.sessions:
            raise StripeError(404, "invalid_request_error", f"No such checkout.session: '{session_id}'",
                              code="resource_missing", param="session")
        return dict(self.sessions[session_id])

    def create_refund(self, params: dict[str, Any]) -> dict[str, Any]:
        payment_intent = params.get("payment_intent")
        if payment_intent not in self.charges:
            raise StripeError(404, "invalid_request_error", f"No such payment_intent: '{payment_intent}'",
                              code="resource_missing", param="payment_intent")
        charge = self.charges[payment_intent]
        amount = _whole(params, "amount") if "amount" in params else charge["amount"] - charge["amount_refunded"]
        return self._refund(payment_intent, amount, params.get("metadata", {}))

    def _refund(self, payment_intent: str, amount: int, metadata: dict[str, Any]) -> dict[str, Any]:
        charge = self.charges[payment_intent]
        if amount <= 0 or charge["amount_refunded"] + amount > charge["amount"]:
            raise StripeError(400, "invalid_request_error",
                              f"Refund amount ({amount}) is greater than unrefunded amount on charge "
                              f"({charge['amount'] - charge['amount_refunded']})", param="amount")
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        refund = {"id": _new_id("re"), "object": "refund", "amount": amount, "charge": charge["id"],
                  "currency": charge["currency"], "metadata": metadata, "payment_intent": payment_intent,
                  "reason": None, "status": "succeeded", "created": int(time.time())}
        self.refunds[refund["id"]] = refund
        return dict(refund)


STAND_IN_KEY = web.AppKey("stripe_stand_in", StripeStandIn)


async def _handle(request: web.Request) -> web.Response:
    stand_in = request.app[STAND_IN_KEY]
    params = decode_form(list((await request.post()).items())) if request.method == "POST" else {}
    key = request.headers.get("Idempotency-Key")
    stand_in.requests.append(RecordedRequest(request.method, request.path, params, key,
                                             request.headers.get("Stripe-Version")))
    if stand_in.gate is not None:
        await stand_in.gate.wait()
    if stand_in.failure_status is not None:
        return web.json_response({"error": {"type": "api_error", "message": "Stripe is unavailable (stand-in)"}},
                                 status=stand_in.failure_status)
    if request.headers.get("Authorization") != f"Bearer {stand_in.api_key}":
        return web.json_response({"error": {"type": "invalid_request_error",
                                            "message": "Invalid API Key provided"}}, status=401)
    fingerprint = hashlib.sha256(f"{request.method} {request.path} {json.dumps(params, sort_keys=True)}"
                                 .encode()).hexdigest()
    if key is not None and request.method == "POST" and key in stand_in._idempotent:
        stored_fingerprint, status, body = stand_in._idempotent[key]
        if stored_fingerprint != fingerprint:
            return web.json_response({"error": {
                "type": "idempotency_error",
                "message": "Keys for idempotent requests can only be used with the same parameters they were "
                           "first used with."}}, status=400)
        return web.json_response(body, status=status, headers={"Idempotent-Replayed": "true"})
    try:
        body, status = _route(stand_in, request, params), 200
    except StripeError as exc:
        body, status = exc.body, exc.status
    if key is not None and request.method == "POST":
        stand_in._idempotent[key] = (fingerprint, status, body)
    return web.json_response(body, status=status)


def _route(stand_in: StripeStandIn, request: web.Request, params: dict[str, Any]) -> dict[str, Any]:
    path, method = request.path, request.method
    if method == "POST" and path == "/v1/checkout/sessions":
        return stand_in.create_session(params)
    if method == "GET" and path.startswith("/v1/checkout/sessions/"):
        return stand_in.retrieve_session(path.rsplit("/", 1)[1])
    if method == "POST" and path == "/v1/refunds":
        return stand_in.create_refund(params)
    if method == "GET" and path == "/v1/balance":
        return {"object": "balance", "available": [{"amount": 0, "currency": "usd"}], "livemode": False,
                "pending": [{"amount": 0, "currency": "usd"}]}
    raise StripeError(404, "invalid_request_error", f"Unrecognized request URL ({method}: {path}).")


@dataclass
class RunningStripe:
    url: str
    stand_in: StripeStandIn
    runner: web.AppRunner

    async def stop(self) -> None:
        self.stand_in.release()
        await self.runner.cleanup()


async def start_stripe_api(api_key: str, host: str = "127.0.0.1", port: int = 0) -> RunningStripe:
    """Serve the stand-in on `host:port` (port 0: a free port); `url` is what STRIPE_API_BASE takes."""
    app = web.Application()
    stand_in = StripeStandIn(api_key)
    app[STAND_IN_KEY] = stand_in
    app.router.add_route("*", "/{tail:.*}", _handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_port = runner.addresses[0][1]
    return RunningStripe(f"http://{host}:{bound_port}", stand_in, runner)
