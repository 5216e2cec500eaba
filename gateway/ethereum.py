"""Ethereum routes: the generic permission family (gateway.permissions) with a wallet-signed create and a verify
that takes transaction hashes, plus the typed data to sign and wallet balances.

- `GET  /api/v1/ethereum/permissions/typed-data?...` the EIP-712 JSON for `eth_signTypedData_v4`;
- `POST /api/v1/ethereum/permissions` with the terms, `chain_id`, `nonce`, `expiry` and the wallet's `signature`;
- `POST /api/v1/ethereum/permissions/{id}/verify` with `{"tx_hashes": [...]}` (optional: known payments are
  always re-checked, so a reorg that drops one is noticed);
- `GET  /api/v1/ethereum/balance/{address}?asset=ETH&rate_per_hour=...` what the node says the wallet holds.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from billing.eip712 import SpendAuthorization
from billing.permission_service import PermissionRequest, SignedTerms
from gateway.http import bounded_int, json_response
from gateway.keys import SERVICES
from gateway.models import AmountString, CreatePermissionRequest, HoursString, VerifyRequest
from gateway.openapi import Operation, Parameter, describe
from gateway.permissions import routes as permission_routes
from kernel.errors import InvalidRequest
from kernel.money import format_amount, format_hours, hours_for

FUNDING_SOURCE = "ethereum"
MAX_DURATION_DAYS = 2**32 - 1  # uint32 in the signed terms
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

    def permission_request(self, funding_source: str, default_asset: str) -> PermissionRequest:
        signed = SignedTerms(chain_id=self.chain_id, nonce=self.nonce, expiry=self.expiry, signature=self.signature)
        return replace(super().permission_request(funding_source, default_asset), signed=signed)


class EthereumBalanceView(BaseModel):
    """A wallet's balance of one asset as the node reports it (field names as in the Zcash balance)."""

    wallet_address: str
    asset: str
    total_balance: AmountString
    visible_balance: AmountString
    can_stream: bool | None
    estimated_hours: HoursString | None
    block_number: int


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
           Parameter("nonce", "uint256 (default: random)"),
           Parameter("pricing_currency", "USD: the amounts are dollars, converted at the quote named",
                     {"type": "string", "examples": ["USD"]}),
           Parameter("quote_id", "The quote (`POST /api/v1/quotes`) to convert at, with pricing_currency",
                     {"type": "string", "format": "uuid"}))))
async def typed_data(request: web.Request) -> web.Response:
    """The EIP-712 typed data for the terms in the query (in the asset, or in USD converted at a quote); a fresh
    random nonce and an expiry one hour from now unless the query names them."""
    query = request.query
    missing = [name for name in ("user_wallet_address", "requested_amount", "rate_per_hour") if name not in query]
    if missing:
        raise InvalidRequest(f"query parameters missing: {', '.join(missing)}", code="invalid_request")
    raw_duration = query.get("duration_days")
    duration = bounded_int(raw_duration, MAX_DURATION_DAYS) if raw_duration is not None else None
    if raw_duration is not None and duration is None:
        raise InvalidRequest(f"duration_days must be a whole number up to {MAX_DURATION_DAYS}",
                             code="invalid_duration")
    return json_response(await request.app[SERVICES].permissions.typed_data(
        FUNDING_SOURCE, wallet=query["user_wallet_address"], asset_code=query.get("asset", "ETH"),
        requested_amount=query["requested_amount"], rate_per_hour=query["rate_per_hour"],
        duration_days=duration, expiry=query.get("expiry"),
        nonce=query.get("nonce"), pricing_currency=query.get("pricing_currency"), quote_id=query.get("quote_id"),
    ))


@describe(Operation(
    summary="A wallet's ETH or token balance as the node reports it, and the hours it could buy", tag="ethereum",
    response=EthereumBalanceView, errors=(422, 503), path_parameters={"address": "A 0x address"},
    query=(Parameter("asset", "ETH (default) or an accepted ERC-20 symbol"),
           Parameter("rate_per_hour", "Price per hour, to estimate the hours",
                     {"type": "string", "examples": ["0.01"]}))))
async def balance(request: web.Request) -> web.Response:
    """A wallet's ETH (or `asset` token) balance and the streaming it could buy at `rate_per_hour`."""
    report = await request.app[SERVICES].permissions.wallet_balance(
        FUNDING_SOURCE, request.match_info["address"], request.query.get("asset", "ETH"),
        request.query.get("rate_per_hour"))
    units, rate, asset = report.balance.units or 0, report.rate_per_hour, report.asset
    return json_response(EthereumBalanceView(
        wallet_address=report.wallet_address,
        asset=asset.code,
        total_balance=format_amount(units, asset),
        visible_balance=format_amount(units, asset),
        can_stream=(units >= rate) if rate else None,
        estimated_hours=format_hours(hours_for(units, rate)) if rate else None,
        block_number=report.balance.block_number or 0,
    ))


def routes() -> list[web.RouteDef]:
    """Every Ethereum route; the typed-data route comes before the permission family's `/{id}`."""
    return [
        web.get(f"/api/v1/{FUNDING_SOURCE}/permissions/typed-data", typed_data),
        *permission_routes(FUNDING_SOURCE, create_body=EthereumCreatePermissionRequest, verify_body=VerifyRequest,
                           refunds=True),
        web.get(f"/api/v1/{FUNDING_SOURCE}/balance/{{address}}", balance),
    ]
