"""Request and response bodies (pydantic). Amounts are exact decimal strings out, JSON numbers or strings in.

Request bodies are decoded with `parse_float=Decimal` before validation, so an amount arrives here as an int,
a Decimal or a str and is parsed to minor units by billing.money (which knows the asset's decimals).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema

# Any JSON value is let through to billing.money.parse_amount, which gives the precise reason for a refusal.
AmountInput = Annotated[
    Any,
    WithJsonSchema({"anyOf": [{"type": "number"}, {"type": "string", "pattern": r"^\s*[0-9]*\.?[0-9]+\s*$"}]}),
    Field(description="An amount of the asset as a JSON number or a decimal string, e.g. \"10.5\""),
]
Address = Annotated[str, StringConstraints(min_length=1, max_length=512, strip_whitespace=True)]
AmountString = Annotated[str, Field(description="Exact decimal string in units of the asset", examples=["10.00000000"])]
HoursString = Annotated[str, Field(description="Hours, truncated to 6 decimals", examples=["4.000000"])]


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


class CreatePermissionRequest(RequestModel):
    user_wallet_address: Address
    requested_amount: AmountInput
    rate_per_hour: AmountInput
    duration_days: Annotated[int, Field(strict=True)] | None = None
    asset: Annotated[str, StringConstraints(min_length=1, max_length=16)] | None = None


class CreateSessionRequest(RequestModel):
    user_wallet_address: Address
    vendor_id: Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True)]


class EndSessionRequest(RequestModel):
    session_code: Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True)]


class CreateVendorRequest(RequestModel):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]


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


class CreatedPermissionView(PermissionView):
    permission_token: str = Field(description="Shown only in this answer; send as `Authorization: Bearer ...`")


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


class SessionEndView(BaseModel):
    id: str
    session_id: str
    amount: AmountString
    asset: str
    duration_minutes: int
    duration_seconds: int
    status: str
    uncovered_amount: AmountString


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


class VendorCreatedView(BaseModel):
    vendor_id: str
    name: str
    api_key: str = Field(description="Shown only in this answer; send as `X-API-Key`")
