"""Wallet-signed spending authorizations (EIP-712), in the manner of Coinbase Spend Permissions.

The wallet signs typed data naming itself, the gateway's service address as spender, the asset (token contract,
or the zero address for ETH), the allowance, the rate per hour, the duration, an expiry, a nonce and (in the
domain) the chain id. The gateway rebuilds the same typed data from the request it receives and recovers the signer
with eth-account, so any tampered field recovers another address. A nonce authorizes one permission only: the
UNIQUE constraint of `ethereum_authorizations` (migration 0003) refuses a second use, whatever the number of
gateway replicas. The signature and the typed data are kept there for audit.

uint256 values are written as decimal strings in the JSON (wallets accept them, and JavaScript numbers cannot hold
them); `chainId` is a JSON integer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_keys.exceptions import BadSignature, ValidationError

from kernel.errors import InvalidRequest

DOMAIN_NAME = "PayGo"
DOMAIN_VERSION = "1"
PRIMARY_TYPE = "SpendPermission"
TYPES: dict[str, list[dict[str, str]]] = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
    ],
    PRIMARY_TYPE: [
        {"name": "wallet", "type": "address"},
        {"name": "spender", "type": "address"},
        {"name": "asset", "type": "address"},
        {"name": "allowance", "type": "uint256"},
        {"name": "ratePerHour", "type": "uint256"},
        {"name": "durationDays", "type": "uint32"},
        {"name": "expiry", "type": "uint64"},
        {"name": "nonce", "type": "uint256"},
    ],
}
MAX_UINT256 = 2**256 - 1
MAX_UINT64 = 2**64 - 1


@dataclass(frozen=True, slots=True)
class SpendAuthorization:
    """The terms a wallet signs. Amounts are minor units of the asset; `expiry` is in Unix seconds (the last
    moment the signed authorization may be presented to create the permission)."""

    chain_id: int
    wallet: str
    spender: str
    asset: str  # token contract, or the zero address for ETH
    allowance: int
    rate_per_hour: int
    duration_days: int
    expiry: int
    nonce: int

    def typed_data(self) -> dict[str, Any]:
        """The exact JSON a wallet passes to `eth_signTypedData_v4`."""
        return {
            "types": TYPES,
            "primaryType": PRIMARY_TYPE,
            "domain": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": self.chain_id},
            "message": {
                "wallet": self.wallet,
                "spender": self.spender,
                "asset": self.asset,
                "allowance": str(self.allowance),
                "ratePerHour": str(self.rate_per_hour),
                "durationDays": self.duration_days,
                "expiry": self.expiry,
                "nonce": str(self.nonce),
            },
        }


def parse_uint(value: object, field: str, maximum: int) -> int:
    """A whole number from 0 to `maximum`, given as a JSON integer or a decimal string (nonces exceed 2**53)."""
    text = value.strip() if isinstance(value, str) else ""
    if text and len(text) <= len(str(maximum)) and text.isascii() and text.isdigit():
        number = int(text)  # ASCII digits only, and short enough to be in range, checked before converting
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        raise InvalidRequest(f"{field} must be a whole number (a JSON integer or a decimal string)",
                             code=f"invalid_{field}")
    if not 0 <= number <= maximum:
        raise InvalidRequest(f"{field} must be from 0 to {maximum}", code=f"invalid_{field}")
    return number


def recover_signer(authorization: SpendAuthorization, signature: str) -> str:
    """The EIP-55 address that signed `authorization`'s typed data, or InvalidRequest if the signature is malformed."""
    text = signature.strip()
    raw = text[2:] if text.startswith(("0x", "0X")) else text
    if len(raw) != 130 or any(c not in "0123456789abcdefABCDEF" for c in raw):
        raise InvalidRequest("signature must be 65 bytes as 0x-prefixed hex", code="invalid_signature")
    message = encode_typed_data(full_message=authorization.typed_data())
    try:
        return Account.recover_message(message, signature=bytes.fromhex(raw))
    except (BadSignature, ValidationError, ValueError) as error:
        raise InvalidRequest(f"signature cannot be recovered: {error}", code="invalid_signature") from None


def check_authorization(authorization: SpendAuthorization, signature: str, *, signed_chain_id: int,
                        now: int) -> None:
    """Refuse (422) an authorization signed for another chain, past its expiry, or not signed by its wallet.

    `signed_chain_id` is the chain the client says it signed for; a mismatch is named rather than left to show up
    as a wrong signer."""
    if signed_chain_id != authorization.chain_id:
        raise InvalidRequest(
            f"the authorization is for chain {signed_chain_id}; this gateway accepts chain {authorization.chain_id}",
            code="wrong_chain_id",
        )
    if authorization.expiry <= now:
        raise InvalidRequest("the signed authorization has expired: sign a new one", code="authorization_expired")
    signer = recover_signer(authorization, signature)
    if signer != authorization.wallet:
        raise InvalidRequest(
            f"the signature was made by {signer}, not by {authorization.wallet} for these terms (a wrong key, or a "
            "field that differs from what was signed)",
            code="signer_mismatch",
        )


async def record_authorization(conn: asyncpg.Connection, permission_id: UUID,
                               authorization: SpendAuthorization, signature: str) -> None:
    """Keep the signed authorization of a new permission (in the transaction that inserts it). A nonce the wallet
    already used on this chain is refused by the database's UNIQUE constraint."""
    try:
        await conn.execute(
            """
            INSERT INTO ethereum_authorizations (permission_id, chain_id, wallet, nonce, expiry, typed_data,
                                                 signature)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            """,
            permission_id, authorization.chain_id, authorization.wallet, authorization.nonce,
            authorization.expiry, authorization.typed_data(), signature.strip().lower(),
        )
    except asyncpg.UniqueViolationError:
        raise InvalidRequest(
            f"nonce {authorization.nonce} was already used by {authorization.wallet}: sign again with a new nonce",
            code="nonce_reused",
        ) from None
