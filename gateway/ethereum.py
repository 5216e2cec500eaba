"""Ethereum routes: the generic permission family (gateway.permissions) with a wallet-signed create and a verify
that takes transaction hashes, plus the typed data to sign and wallet balances.

- `GET  /api/v1/ethereum/permissions/typed-data?...` the EIP-712 JSON for `eth_signTypedData_v4`;
- `POST /api/v1/ethereum/permissions` with the terms, `chain_id`, `nonce`, `expiry` and the wallet's `signature`;
- `POST /api/v1/ethereum/permissions/{id}/verify` with `{"tx_hashes": [...]}` (optional: known payments are
  always re-checked, so a reorg that drops one is noticed);
- `GET  /api/v1/ethereum/balance/{address}?asset=ETH&rate_per_hour=...` what the node says the wallet holds.
"""

from __future__ import annotations

import secrets
import time
from typing import Annotated, Any

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from billing.eip712 import (
    MAX_UINT64,
    MAX_UINT256,
    SpendAuthorization,
    check_authorization,
    parse_uint,
    record_authorization,
)
from billing.errors import Conflict, InvalidRequest
from billing.money import format_amount, format_hours, hours_for, parse_amount
from billing.permissions import Permission
from billing.service import BillingService, OnInsert, PermissionRequest, PermissionState
from chains.ethereum import EthereumFundingSource, normalise_tx_hash
from gateway.http import json_response, read_body
from gateway.keys import BILLING
from gateway.models import AmountString, CreatePermissionRequest, HoursString, RequestModel
from gateway.openapi import Operation, Parameter, describe
from gateway.permissions import permission_routes

FUNDING_SOURCE = "ethereum"
DEFAULT_AUTHORIZATION_SECONDS = 3600  # how long typed data made without an `expiry` may be presented
MAX_TX_HASHES = 20
TxHash = Annotated[str, StringConstraints(min_length=1, max_length=70, strip_whitespace=True)]
TYPED_DATA_EXAMPLE = SpendAuthorization(
    chain_id=1, wallet="0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    spender="0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC", asset="0x0000000000000000000000000000000000000000",
    allowance=5 * 10**17, rate_per_hour=10**16, duration_days=30, expiry=1767225600, nonce=1,
).typed_data()
# TYPED_DATA_EXAMPLE signed by its wallet (the first anvil/Hardhat development account after the deployer, whose
# key is public): the create example is a request the gateway accepts on that chain before the expiry.
TYPED_DATA_EXAMPLE_SIGNATURE = ("0x280a3a2e95ca2cbcebde045e5c9b12067efc1bd5756cf84bd94e256ad0eaec76533f6f8087f019ff8d"
                                "dd3e2da9ac6f318b885e52463cc6f43e9666b2012a0dea1c")


class EthereumCreatePermissionRequest(CreatePermissionRequest):
    """The create body: the terms (as for every source) and the signed authorization's own fields."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "user_wallet_address": TYPED_DATA_EXAMPLE["message"]["wallet"], "asset": "ETH", "requested_amount": "0.5",
        "rate_per_hour": "0.01", "duration_days": 30, "chain_id": 1, "nonce": "1",
        "expiry": TYPED_DATA_EXAMPLE["message"]["expiry"], "signature": TYPED_DATA_EXAMPLE_SIGNATURE}]})

    chain_id: Annotated[int, Field(strict=True, description="The chain the wallet signed for (domain chainId)")]
    nonce: Annotated[Any, Field(description="uint256 as a JSON integer or a decimal string")]
    expiry: Annotated[Any, Field(description="Unix seconds, as signed")]
    signature: Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]


class VerifyRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"tx_hashes": ["0x" + "ab" * 32]}]})

    tx_hashes: Annotated[list[TxHash], Field(max_length=MAX_TX_HASHES)] = Field(default_factory=list)


class EthereumBalanceView(BaseModel):
    """A wallet's balance of one asset as the node reports it (field names as in the Zcash balance)."""

    wallet_address: str
    asset: str
    total_balance: AmountString
    visible_balance: AmountString
    can_stream: bool | None
    estimated_hours: HoursString | None
    block_number: int


def _ethereum(billing: BillingService) -> EthereumFundingSource:
    source = billing.source(FUNDING_SOURCE)
    assert isinstance(source, EthereumFundingSource)
    return source


def _authorization(billing: BillingService, *, wallet: str, asset_code: str, requested_amount: object,
                   rate_per_hour: object, duration_days: int | None, expiry: object, nonce: object
                   ) -> SpendAuthorization:
    """The terms as the wallet signs them, parsed and normalised exactly as the permission will store them."""
    source = _ethereum(billing)
    asset = billing.asset_for(FUNDING_SOURCE, asset_code)
    maximum = billing.max_amount_units.get(asset.code)
    return SpendAuthorization(
        chain_id=source.chain_id,
        wallet=source.validate_address(wallet),
        spender=source.service_address,
        asset=source.asset_contract(asset.code),
        allowance=parse_amount(requested_amount, asset, "requested_amount", maximum),
        rate_per_hour=parse_amount(rate_per_hour, asset, "rate_per_hour", maximum),
        duration_days=duration_days if duration_days is not None else billing.default_duration_days,
        expiry=parse_uint(expiry, "expiry", MAX_UINT64),
        nonce=parse_uint(nonce, "nonce", MAX_UINT256),
    )


@describe(Operation(
    summary="The EIP-712 typed data a wallet signs (eth_signTypedData_v4) to create a permission", tag="ethereum",
    response={"type": "object", "required": ["types", "primaryType", "domain", "message"],
              "examples": [TYPED_DATA_EXAMPLE]}, errors=(422, 503),
    query=(Parameter("user_wallet_address", "The paying wallet", {"type": "string", "examples": [
               "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"]}, required=True),
           Parameter("requested_amount", "Allowance in units of the asset", {"type": "string", "examples": ["0.5"]},
                     required=True),
           Parameter("rate_per_hour", "Price per hour", {"type": "string", "examples": ["0.01"]}, required=True),
           Parameter("duration_days", "Days the permission lasts", {"type": "string", "pattern": "^[0-9]+$"}),
           Parameter("asset", "ETH (default) or an accepted ERC-20 symbol", {"type": "string"}),
           Parameter("expiry", "Unix seconds until which the signature may be presented (default: in an hour)"),
           Parameter("nonce", "uint256 (default: random)"))))
async def typed_data(request: web.Request) -> web.Response:
    """The EIP-712 typed data for the terms in the query; a fresh random nonce and an expiry one hour from now
    unless the query names them."""
    billing = request.app[BILLING]
    query = request.query
    missing = [name for name in ("user_wallet_address", "requested_amount", "rate_per_hour") if name not in query]
    if missing:
        raise InvalidRequest(f"query parameters missing: {', '.join(missing)}", code="invalid_request")
    duration = query.get("duration_days")
    if duration is not None and not duration.isdigit():
        raise InvalidRequest("duration_days must be a whole number", code="invalid_duration")
    authorization = _authorization(
        billing, wallet=query["user_wallet_address"], asset_code=query.get("asset", "ETH"),
        requested_amount=query["requested_amount"], rate_per_hour=query["rate_per_hour"],
        duration_days=int(duration) if duration is not None else None,
        expiry=query.get("expiry", int(time.time()) + DEFAULT_AUTHORIZATION_SECONDS),
        nonce=query.get("nonce", secrets.randbits(128)),
    )
    return json_response(authorization.typed_data())


async def authorize(request: web.Request, body: EthereumCreatePermissionRequest,
                    permission_request: PermissionRequest) -> OnInsert:
    """Refuse a create whose signature does not authorize exactly these terms; keep the authorization with the
    permission (where a reused nonce is refused)."""
    authorization = _authorization(
        request.app[BILLING], wallet=body.user_wallet_address, asset_code=permission_request.asset,
        requested_amount=body.requested_amount, rate_per_hour=body.rate_per_hour,
        duration_days=body.duration_days, expiry=body.expiry, nonce=body.nonce,
    )
    check_authorization(authorization, body.signature, signed_chain_id=body.chain_id, now=int(time.time()))

    async def record(conn: asyncpg.Connection, permission: Permission) -> None:
        await record_authorization(conn, permission.id, authorization, body.signature)

    return record


async def verify_hints(request: web.Request, state: PermissionState) -> tuple[str, ...]:
    """The transactions to check: those in the body, and the permission's payments not credited yet. A
    transaction that already funds another permission is refused (409)."""
    billing = request.app[BILLING]
    given = (await read_body(request, VerifyRequest)).tx_hashes if await request.read() else []
    offered = list(dict.fromkeys(normalise_tx_hash(tx_hash) for tx_hash in given))
    claimed = await billing.payments_claimed_elsewhere(FUNDING_SOURCE, offered, state.permission.id)
    if claimed:
        raise Conflict(f"transaction {', '.join(claimed)} already funds another permission",
                       code="payment_already_used")
    pending = [payment.txid for payment in state.payments if payment.status in ("seen", "orphaned")]
    return tuple(dict.fromkeys([*offered, *pending]))


@describe(Operation(
    summary="A wallet's ETH or token balance as the node reports it, and the hours it could buy", tag="ethereum",
    response=EthereumBalanceView, errors=(422, 503), path_parameters={"address": "A 0x address"},
    query=(Parameter("asset", "ETH (default) or an accepted ERC-20 symbol"),
           Parameter("rate_per_hour", "Price per hour, to estimate the hours", {"type": "string", "examples": ["0.01"]}))))
async def balance(request: web.Request) -> web.Response:
    """A wallet's ETH (or `asset` token) balance and the streaming it could buy at `rate_per_hour`."""
    billing = request.app[BILLING]
    source = _ethereum(billing)
    asset = billing.asset_for(FUNDING_SOURCE, request.query.get("asset", "ETH"))
    address = source.validate_address(request.match_info["address"])
    raw_rate = request.query.get("rate_per_hour")
    rate = parse_amount(raw_rate, asset, "rate_per_hour") if raw_rate is not None else None
    units, block_number = await source.balance(address, asset.code)
    return json_response(EthereumBalanceView(
        wallet_address=address,
        asset=asset.code,
        total_balance=format_amount(units, asset),
        visible_balance=format_amount(units, asset),
        can_stream=(units >= rate) if rate else None,
        estimated_hours=format_hours(hours_for(units, rate)) if rate else None,
        block_number=block_number,
    ))


def routes() -> list[web.RouteDef]:
    """Every Ethereum route; the typed-data route comes before the permission family's `/{id}`."""
    return [
        web.get(f"/api/v1/{FUNDING_SOURCE}/permissions/typed-data", typed_data),
        *permission_routes(FUNDING_SOURCE, create_body=EthereumCreatePermissionRequest, authorize=authorize,
                           verify_hints=verify_hints, verify_body=VerifyRequest),
        web.get(f"/api/v1/{FUNDING_SOURCE}/balance/{{address}}", balance),
    ]
