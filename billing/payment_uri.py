"""Payment request URIs that wallets open from a link or a scanned QR code: ZIP-321 for Zcash, EIP-681 for Ethereum.

Pure functions of exact integers (minor units): no float, no I/O, so every caller (the checkout page, the API's
`payment_uri`, direct charges) builds the same URI for the same request.

- ZIP-321: `zcash:<address>?amount=<ZEC>[&memo=<base64url>][&message=<text>]`. The amount is decimal ZEC with at
  most 8 fraction digits, no exponent, no trailing zeros (`10`, `0.5`); a memo is base64url without `=` padding,
  at most 512 bytes, and only for a shielded recipient (a transparent address cannot receive one).
- EIP-681: `ethereum:<service address>@<chain id>?value=<wei>` for ETH, and
  `ethereum:<token contract>@<chain id>/transfer?address=<service address>&uint256=<token units>` for an ERC-20
  token. Amounts are plain integers of the smallest unit (EIP-681 numbers; no exponent, no decimal point).

An amount of None asks for "any amount" (a top-up): the wallet lets its user choose.

A Zcash payment request carries a ZIP-302 text memo naming its permission (`PayGo permission <id>`). The address
alone decides which permission a payment counts for (each has its own); a memo naming another permission is
recorded on the payment and shown (`permission_named_by`), never used to move money.
"""

from __future__ import annotations

import base64
import re
from urllib.parse import quote
from uuid import UUID

ZATOSHI_PER_ZEC = 100_000_000
MAX_ZEC_UNITS = 21_000_000 * ZATOSHI_PER_ZEC
MAX_MEMO_BYTES = 512
_ZCASH_ADDRESS = re.compile(r"[A-Za-z0-9]+")
_ETHEREUM_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
# ZIP-321 `qchar`: unreserved, percent-encoded, these delimiters, ":" and "@". "+" is left out (encoded as %2B) so
# that no parser can read it as a space.
_QCHAR_SAFE = "!$'()*,;:@"
_MEMO_PREFIX = "PayGo permission "
_NAMED_PERMISSION = re.compile(re.escape(_MEMO_PREFIX) + r"([0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12})")


def permission_memo(permission_id: UUID) -> str:
    """The ZIP-302 text memo a payment request for a permission carries."""
    return f"{_MEMO_PREFIX}{permission_id}"


def permission_named_by(memo: str | None) -> UUID | None:
    """The permission a payment's text memo names, if it names one."""
    found = _NAMED_PERMISSION.search(memo or "")
    return UUID(found.group(1)) if found else None


def zec_amount(units: int) -> str:
    """Zatoshi as ZIP-321 writes ZEC: `1000000000` → `10`, `50000000` → `0.5`, `1` → `0.00000001`."""
    if units < 0 or units > MAX_ZEC_UNITS:
        raise ValueError(f"a ZIP-321 amount is 0 to 21000000 ZEC, got {units} zatoshi")
    whole, fraction = divmod(units, ZATOSHI_PER_ZEC)
    digits = f"{fraction:08d}".rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)


def zip321_uri(address: str, amount_units: int | None = None, *, memo: bytes | None = None,
               message: str | None = None) -> str:
    """A ZIP-321 request for one payment to `address` (of `amount_units` zatoshi, when given)."""
    if not _ZCASH_ADDRESS.fullmatch(address):
        raise ValueError("a Zcash address is letters and digits only")
    params = []
    if amount_units is not None:
        params.append(f"amount={zec_amount(amount_units)}")
    if memo is not None:
        if address.startswith("t"):  # transparent (t1, t3, tm, t2) and TEX addresses carry no memo
            raise ValueError("a transparent address cannot receive a memo")
        if len(memo) > MAX_MEMO_BYTES:
            raise ValueError(f"a memo is at most {MAX_MEMO_BYTES} bytes")
        params.append("memo=" + base64.urlsafe_b64encode(memo).decode().rstrip("="))
    if message is not None:
        params.append("message=" + quote(message, safe=_QCHAR_SAFE))
    return f"zcash:{address}" + ("?" + "&".join(params) if params else "")


def eip681_uri(service_address: str, chain_id: int, amount_units: int | None = None, *,
               token_contract: str | None = None) -> str:
    """An EIP-681 request to pay `service_address` on `chain_id`: ETH (wei) when `token_contract` is None, else a
    `transfer` of that ERC-20 token (in its own smallest unit)."""
    for address in (service_address, token_contract):
        if address is not None and not _ETHEREUM_ADDRESS.fullmatch(address):
            raise ValueError(f"not an Ethereum address: {address!r}")
    if chain_id < 1:
        raise ValueError("the chain id is a positive integer")
    if amount_units is not None and amount_units < 0:
        raise ValueError("an amount is not negative")
    if token_contract is None:
        value = f"?value={amount_units}" if amount_units is not None else ""
        return f"ethereum:{service_address}@{chain_id}{value}"
    amount = f"&uint256={amount_units}" if amount_units is not None else ""
    return f"ethereum:{token_contract}@{chain_id}/transfer?address={service_address}{amount}"
