"""Bodies of the vendor API and of the operator's vendor-key routes (pydantic). Amounts are exact decimal strings."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from gateway.models import AmountString, RequestModel


class VendorSessionView(BaseModel):
    """One of the vendor's sessions; also the columns of the CSV export, in this order."""

    session_id: str
    status: str
    started_at: str
    ended_at: str | None
    duration_seconds: int
    asset: str
    rate_per_hour: AmountString
    charged_amount: AmountString
    uncovered_amount: AmountString
    funding_source: str
    permission_id: str
    user_wallet_address: str


class VendorSessionPage(BaseModel):
    sessions: list[VendorSessionView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")


class ChargeLineView(BaseModel):
    """A ledger entry of the session: a charge is negative (money taken from the payer's permission)."""

    id: int
    kind: Literal["funding", "charge", "refund", "adjustment", "reversal"]
    amount: AmountString
    memo: str | None
    created_at: str


class VendorSessionDetailView(VendorSessionView):
    charges: list[ChargeLineView]


class ChargesSummaryRow(BaseModel):
    """Net earnings (charges minus reversals) of one UTC day and asset, or of one asset."""

    day: str | None = Field(description="YYYY-MM-DD (UTC) with group_by=day; null with group_by=asset")
    asset: str
    charges: int
    sessions: int
    amount: AmountString


class ChargesSummaryView(BaseModel):
    group_by: Literal["day", "asset"]
    rows: list[ChargesSummaryRow]


class RotateVendorKeyRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"overlap_seconds": 3600}]})

    overlap_seconds: Annotated[int, Field(strict=True)] | None = Field(
        default=None, description="How long the vendor's current keys stay valid; default from the settings")


class RevokeVendorKeyRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"key_prefix": "pgv_AbCd"}]})

    key_prefix: Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True)] | None = None
    all: bool = Field(default=False, description="Revoke every live key of the vendor (instead of key_prefix)")


class RotatedVendorKeyView(BaseModel):
    vendor_id: str
    api_key: str = Field(description="Shown only in this answer; send as `X-API-Key`")
    key_prefix: str
    previous_keys_expire_at: str | None


class RevokedVendorKeysView(BaseModel):
    vendor_id: str
    revoked: int


class VendorKeyView(BaseModel):
    key_prefix: str
    created_at: str
    expires_at: str | None
    revoked_at: str | None
    live: bool


class VendorKeysView(BaseModel):
    vendor_id: str
    keys: list[VendorKeyView]
