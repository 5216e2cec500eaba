"""Request and response bodies (pydantic). Amounts are exact decimal strings out, JSON numbers or strings in.

Request bodies are decoded strictly (gateway.http.decode_json): a number with a fraction arrives here as its text
(kernel.money.JsonNumber), so an amount is parsed to minor units by kernel.money with one grammar whether it was
sent as a number or a string. Every string has a length bound; text that can reach a terminal or a log (a vendor's
name) is refused if it holds control characters.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema

from billing.permission_service import PermissionRequest
from kernel.money import AMOUNT_PATTERN, MAX_AMOUNT_LENGTH


def _printable(text: str) -> str:
    """Refuse control and formatting characters (ANSI escapes, bidi overrides, line breaks) in text that is shown
    in terminals and logs."""
    if not text.isprintable():
        raise ValueError("must not contain control characters")
    return text


PlainText = AfterValidator(_printable)

# Any JSON value is let through to kernel.money.parse_amount, which gives the precise reason for a refusal.
AmountInput = Annotated[
    Any,
    WithJsonSchema({"anyOf": [{"type": "number", "exclusiveMinimum": 0},
                              {"type": "string", "pattern": rf"^\s*{AMOUNT_PATTERN}\s*$",
                               "maxLength": MAX_AMOUNT_LENGTH}]}),
    Field(description="An amount of the asset as a JSON number or a decimal string, e.g. \"10.5\""),
]
Address = Annotated[str, StringConstraints(min_length=1, max_length=512, strip_whitespace=True)]
MAX_TX_HASHES = 20
TxHash = Annotated[str, StringConstraints(min_length=1, max_length=70, strip_whitespace=True)]
AmountString = Annotated[str, Field(description="Exact decimal string in units of the asset", examples=["10.00000000"])]
HoursString = Annotated[str, Field(description="Hours, truncated to 6 decimals", examples=["4.000000"])]


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


EXAMPLE_ZCASH_WALLET = "t1HsdDMzmJfq4vc7T17XYjEkLMLvbgM1fCi"
EXAMPLE_VENDOR_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"


class CreatePermissionRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "user_wallet_address": EXAMPLE_ZCASH_WALLET, "requested_amount": "10", "rate_per_hour": "2.5",
        "duration_days": 30}]})

    user_wallet_address: Address
    requested_amount: AmountInput
    rate_per_hour: AmountInput
    duration_days: Annotated[int, Field(strict=True)] | None = None
    asset: Annotated[str, StringConstraints(min_length=1, max_length=16), PlainText] | None = None
    notify_url: Annotated[str, StringConstraints(min_length=1, max_length=2048, strip_whitespace=True)] | None = Field(
        default=None, description="http(s) URL that receives the permission's reminders as signed webhooks")
    pricing_currency: Annotated[str, StringConstraints(min_length=1, max_length=8, strip_whitespace=True)] | None = (
        Field(default=None, description="USD: `requested_amount` and `rate_per_hour` are dollars, converted to the "
                                        "asset at a locked rate", examples=["USD"]))
    quote_id: Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True)] | None = Field(
        default=None, description="The quote (`POST /api/v1/quotes`) to convert at, within its lock window "
                                  "(required for Ethereum, whose wallet signs the converted amounts)")

    def permission_request(self, funding_source: str, default_asset: str) -> PermissionRequest:
        """What billing checks and stores; sources with richer bodies add their own parts."""
        return PermissionRequest(
            funding_source=funding_source, asset=self.asset or default_asset,
            user_wallet_address=self.user_wallet_address, requested_amount=self.requested_amount,
            rate_per_hour=self.rate_per_hour, duration_days=self.duration_days, notify_url=self.notify_url,
            pricing_currency=self.pricing_currency, quote_id=self.quote_id,
        )


class VerifyRequest(RequestModel):
    """Transactions the payer says paid the permission (sources that cannot list payments by address)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"tx_hashes": ["0x" + "ab" * 32]}]})

    tx_hashes: Annotated[list[TxHash], Field(max_length=MAX_TX_HASHES)] = Field(default_factory=list)


class RefundRequest(RequestModel):
    """Where a Zcash refund goes (default: the permission's wallet). An Ethereum refund always goes to the wallet
    that signed the permission."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"refund_address": EXAMPLE_ZCASH_WALLET}]})

    refund_address: Address | None = None


class CreateQuoteRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"asset": "ZEC", "pricing_currency": "USD"}]})

    asset: Annotated[str, StringConstraints(min_length=1, max_length=16, strip_whitespace=True)]
    pricing_currency: Annotated[str, StringConstraints(min_length=1, max_length=8, strip_whitespace=True)]


class ResolvePayoutRequest(RequestModel):
    """The operator's word on a send whose outcome the node cannot tell."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "outcome": "sent", "txid": "4f" * 32, "note": "found in the wallet after the node's restart"}]})

    outcome: Literal["sent", "not_sent"] = Field(
        description="`sent` (name its txid) or `not_sent` (it is sent again by the refunds job)")
    txid: Annotated[str, StringConstraints(min_length=1, max_length=70, strip_whitespace=True)] | None = None
    note: Annotated[str, StringConstraints(max_length=500, strip_whitespace=True)] = ""


class OfferPayoutTransactionRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"tx_hash": "0x" + "ab" * 32}]})

    tx_hash: TxHash


class CreateSessionRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "user_wallet_address": EXAMPLE_ZCASH_WALLET, "vendor_id": EXAMPLE_VENDOR_ID}]})

    user_wallet_address: Address
    vendor_id: Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True), PlainText]


class EndSessionRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"session_code": "K7QX2MZP4RHT9WBN3DCV6FJA"}]})

    session_code: Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True)]


class CreateVendorRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "Acme Streams",
                                                               "direct_charge_grace_seconds": 600}]})

    name: Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True), PlainText]
    direct_charge_grace_seconds: Annotated[int, Field(strict=True, ge=0, le=86400)] = Field(
        0, description="How long a session may go on, paid by a direct on-chain charge, after its permission "
                       "ran dry (0: it ends at once)")


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


class PaymentView(BaseModel):
    txid: str
    output_index: int
    amount: AmountString
    confirmations: int
    block_height: int | None
    status: Literal["seen", "credited", "late", "orphaned"]
    memo: str | None = Field(default=None, description="The payment's ZIP 302 text memo, if it had one")
    memo_permission_id: str | None = Field(
        default=None, description="The permission its memo names, when it names one (the payment still counts for "
                                  "the permission whose address it reached)")


PayoutStatusName = Literal["not_needed", "pending", "sending", "submitted", "unknown", "sent", "paid"]


class PayoutView(BaseModel):
    """A refund's payout: what left the permission, what goes where, and how far it got."""

    payout_id: str
    permission_id: str
    funding_source: str
    asset: str
    method: Literal["gateway_send", "operator_payout"] = Field(
        description="`gateway_send`: the gateway sends it (Zcash); `operator_payout`: the operator pays it from the "
                    "service address (Ethereum; the gateway holds no key)")
    status: PayoutStatusName = Field(
        description="not_needed (nothing to send); gateway sends: pending, sending, submitted, unknown "
                    "(being reconciled with the node), sent; operator payouts: pending, paid")
    destination: str
    refund_amount: AmountString = Field(description="What left the permission's balance")
    network_fee: AmountString = Field(description="Kept back for the network fee of the send (Zcash)")
    amount: AmountString = Field(description="What reaches the destination")
    memo: str | None
    txid: str | None
    block_height: int | None
    operation_id: str | None
    attempts: int
    last_error: str | None
    resolved_note: str | None
    created_at: str
    updated_at: str
    completed_at: str | None


class PayoutListView(BaseModel):
    payouts: list[PayoutView]


class QuoteView(BaseModel):
    quote_id: str
    asset: str
    pricing_currency: str
    rate: str = Field(description="Units of the currency per one whole unit of the asset, exactly as the provider "
                                  "gave it", examples=["30.00"])
    rate_source: str = Field(description="The URL the rate was read from")
    rate_time: str = Field(description="When the rate held (the provider's answer time)")
    locked_until: str = Field(description="Amounts converted at this rate hold until then")


class PricingView(BaseModel):
    """A fiat-priced permission's terms in its currency and the quote its amounts were converted at."""

    pricing_currency: str
    requested_amount: str = Field(examples=["20.00"])
    rate_per_hour: str = Field(examples=["5.00"])
    quote: QuoteView
    locked: bool = Field(description="Whether the quote's lock window is still open")
    requotes: int = Field(description="How often the permission was re-quoted (unpaid past the window)")
    amount_due: AmountString = Field(description="The crypto amount due at this quote (`amount_to_pay`)")


class ReminderView(BaseModel):
    kind: str = Field(examples=["expires_in_72h", "expires_in_24h", "low_balance"])
    queued_at: str
    delivery_status: Literal["pending", "delivered", "dead"]
    delivered_at: str | None


class PermissionView(BaseModel):
    """One permission as every permission endpoint shows it (a superset of the seed's fields)."""

    id: str
    permission_id: str
    funding_source: str
    asset: str
    status: str
    user_wallet_address: str
    approved_amount: AmountString
    amount_to_pay: AmountString
    rate_per_hour: AmountString
    remaining_amount: AmountString
    charged_amount: AmountString
    max_streaming_hours: HoursString
    remaining_hours: HoursString
    used_hours: HoursString
    used_streaming_hours: HoursString
    payment_address: str | None
    amount_received: AmountString
    amount_confirmed: AmountString
    amount_missing: AmountString
    confirmations_required: int
    confirmations_seen: int | None
    payments: list[PaymentView]
    created_at: str
    activated_at: str | None
    expires_at: str
    payment_due_at: str | None = Field(default=None, description="A pending permission expires unpaid after this")
    notify_url: str | None = None
    renewal_due: bool = Field(default=False, description="Expiring within the first reminder lead, low or exhausted")
    projected_run_out_at: str | None = Field(
        default=None, description="When the balance runs out if the open sessions go on; null when none is open")
    reminders: list[ReminderView] = Field(default_factory=list)
    checkout_url: str | None = Field(
        default=None, description="Where a payer pays: the gateway's checkout page (card: the Stripe Checkout page)")
    payment_uri: str | None = Field(
        default=None, description="ZIP-321 (Zcash, with a memo naming the permission) or EIP-681 (Ethereum) URI "
                                  "for a wallet or a QR code: what is still missing, or any amount (a top-up) once "
                                  "funded; null for card",
        examples=["zcash:u1qqq...?amount=10&memo=UGF5R28gcGVybWlzc2lvbiAuLi4"])
    refund: PayoutView | None = Field(default=None, description="The refund of its unused balance, once asked for")
    pricing: PricingView | None = Field(default=None, description="Set when it was asked for in a fiat currency")


class CreatedPermissionView(PermissionView):
    permission_token: str = Field(description="Shown only in this answer; send as `Authorization: Bearer ...`")
    notify_secret: str | None = Field(
        default=None, description="Shown only in this answer, when notify_url is set: verifies PayGo-Signature")


class CardPermissionFields(BaseModel):
    """What every answer about a card permission adds to the permission view."""

    checkout_url: str | None = Field(description="Stripe Checkout page where the buyer pays")
    unfunded_reason: str | None
    refunded_amount: AmountString
    debt_amount: AmountString
    disputed_at: str | None
    refund_status: str | None


class BalanceView(BaseModel):
    wallet_address: str
    asset: str
    transparent_balance: AmountString | None
    shielded_balance: AmountString | None
    shielded_balance_reason: str | None
    total_balance: AmountString | None
    visible_balance: AmountString
    can_stream: bool | None
    estimated_hours: HoursString | None


class SessionCreatedView(BaseModel):
    session_code: str
    session_id: str
    status: str
    started_at: str


class DirectChargeView(BaseModel):
    """What a session owes on chain after its permission ran dry (hybrid fallback)."""

    id: str
    status: Literal["accruing", "pending_payment", "paid", "waived"]
    amount: AmountString
    paid_amount: AmountString
    payment_address: str | None = Field(description="null until the funding source gave one; retry shortly")


class SessionEndView(BaseModel):
    id: str
    session_id: str
    amount: AmountString
    asset: str
    duration_minutes: int
    duration_seconds: int
    status: str
    uncovered_amount: AmountString
    direct_charge: DirectChargeView | None = None


class SessionView(BaseModel):
    session_id: str
    status: str
    asset: str
    rate_per_hour: AmountString
    started_at: str
    ended_at: str | None
    duration_seconds: int
    charged_amount: AmountString
    owed_amount: AmountString
    remaining_amount: AmountString
    remaining_hours: HoursString
    permission_id: str
    permission_status: str
    direct_charge: DirectChargeView | None = None


class VendorCreatedView(BaseModel):
    vendor_id: str
    name: str
    api_key: str = Field(description="Shown only in this answer; send as `X-API-Key`")


class HealthCheckView(BaseModel):
    """One dependency's check; the other fields depend on the check (latency_ms, height, lag_seconds, ...)."""

    model_config = ConfigDict(extra="allow")

    ok: bool


class HealthView(BaseModel):
    status: Literal["ok", "degraded", "down"]
    checks: dict[str, HealthCheckView] = Field(
        examples=[{"database": {"ok": True, "latency_ms": 0.4}, "redis": {"ok": True, "enabled": True}}])


class StatusView(BaseModel):
    status: str = Field(examples=["ready"])
