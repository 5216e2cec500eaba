"""Signed webhooks: per-receiver secrets derived from one key, the `PayGo-Signature` header, URL checks.

No webhook secret is stored. Each receiver's secret is derived when needed as
`"whsec_" + hex(HMAC-SHA256(WEBHOOK_SIGNING_KEY, "permission:<id>"))` (or `"vendor:<id>"`), shown to its owner
once, and recomputed to sign every delivery. Rotating WEBHOOK_SIGNING_KEY therefore changes every secret.

Signature (Stripe-style): `PayGo-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}.{body}")>`, where
the HMAC key is the secret string's UTF-8 bytes (including `whsec_`) and `body` is the raw request body. A receiver
recomputes it, compares in constant time and refuses timestamps older than a few minutes (replays).
"""

from __future__ import annotations

import hashlib
import hmac
from uuid import UUID

from billing.outbound import check_target_url

SIGNATURE_HEADER = "PayGo-Signature"
SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_SECONDS = 300


def webhook_secret(signing_key: str, owner: str) -> str:
    """The secret of one receiver; `owner` is `"permission:<uuid>"` or `"vendor:<uuid>"`."""
    digest = hmac.new(signing_key.encode(), owner.encode(), hashlib.sha256).hexdigest()
    return SECRET_PREFIX + digest


def permission_secret(signing_key: str, permission_id: UUID) -> str:
    return webhook_secret(signing_key, f"permission:{permission_id}")


def vendor_secret(signing_key: str, vendor_id: UUID) -> str:
    return webhook_secret(signing_key, f"vendor:{vendor_id}")


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The `PayGo-Signature` header value for `body` sent at `timestamp` (unix seconds)."""
    signed = str(timestamp).encode() + b"." + body
    return f"t={timestamp},v1={hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()}"


def verify_signature(secret: str, header: str, body: bytes, *, now: int,
                     tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS) -> bool:
    """What a receiver does: parse the header, check the timestamp window, compare in constant time."""
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        fields.setdefault(name, []).append(value)
    timestamps = fields.get("t", [])
    if len(timestamps) != 1 or not timestamps[0].isdigit():
        return False
    timestamp = int(timestamps[0])
    if abs(now - timestamp) > tolerance_seconds:
        return False
    expected = sign(secret, timestamp, body).partition(",v1=")[2]
    return any(hmac.compare_digest(expected, given) for given in fields.get("v1", []))


def validate_notify_url(raw: str, *, allow_private: bool) -> str:
    """A receiver URL as billing.outbound accepts it; anything else is refused with 422 (`invalid_notify_url`, or
    `url_not_allowed` for a host on a private network)."""
    return check_target_url(raw, field="notify_url", allow_private=allow_private)
