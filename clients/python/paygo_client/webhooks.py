"""Verifying PayGo's signed webhooks (permission reminders and vendor events).

Each delivery carries `PayGo-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`, where the
HMAC key is the whole secret string (`whsec_...`, as the gateway showed it: `notify_secret` of a permission, or the
vendor's webhook `secret`). Verify the raw bytes as received, before parsing them; then drop events whose `id` you
already processed (a delivery may come more than once).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from decimal import Decimal

from pydantic import ValidationError

from paygo_client.errors import WebhookVerificationError
from paygo_client.models import WebhookEvent

SIGNATURE_HEADER = "PayGo-Signature"
DELIVERY_HEADER = "PayGo-Delivery"
DEFAULT_TOLERANCE_SECONDS = 300


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by name, whatever the mapping's case handling (a plain dict, aiohttp's or httpx's headers)."""
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), None)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex `v1` signature of `body` sent at `timestamp`."""
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def verify_webhook(secret: str, headers: Mapping[str, str], body: bytes, tolerance: int = DEFAULT_TOLERANCE_SECONDS,
                   *, now: float | None = None) -> WebhookEvent:
    """The event in `body` if `headers` carry a valid `PayGo-Signature` for it made within `tolerance` seconds of
    `now` (default: the current time); raises `WebhookVerificationError` otherwise. Amounts in the event's data stay
    exact decimal strings."""
    header = _header(headers, SIGNATURE_HEADER)
    if not header:
        raise WebhookVerificationError(f"the {SIGNATURE_HEADER} header is missing")
    timestamps: list[str] = []
    signatures: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            timestamps.append(value)
        elif name == "v1":
            signatures.append(value)
    if len(timestamps) != 1 or not timestamps[0].isdigit() or not signatures:
        raise WebhookVerificationError(f"the {SIGNATURE_HEADER} header is malformed")
    timestamp = int(timestamps[0])
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise WebhookVerificationError(f"the signature's timestamp is more than {tolerance} s away (a replay?)")
    expected = signature(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, given) for given in signatures if given.isascii()):
        raise WebhookVerificationError("the signature does not match this body and secret")
    try:
        payload = json.loads(body, parse_float=Decimal)
        return WebhookEvent.model_validate({**payload, "delivery_id": _header(headers, DELIVERY_HEADER)})
    except (ValueError, TypeError, ValidationError) as exc:
        raise WebhookVerificationError(f"the signed body is not a PayGo event: {exc}") from None
