"""Errors every layer raises and the gateway turns into `{"error": {"code", "message"}}` answers.

Each error names a stable `code` (clients switch on it) and the HTTP status it maps to. Errors that mean
"try again later" (a node or the database is down, a rate limit) carry `retry_after` seconds; `headers` are what
the answer adds (Retry-After, RateLimit).
"""

from __future__ import annotations

from typing import Any


class PayGoError(Exception):
    """Base of the errors shown to clients."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details or {}
        self.headers: dict[str, str] = {}
        self.replayed = False  # this refusal is the answer an Idempotency-Key recorded, given again


class InvalidRequest(PayGoError):
    status = 422
    code = "invalid_request"


class InvalidAmount(InvalidRequest):
    code = "invalid_amount"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field} {problem}", details={"field": field})


class InvalidAddress(InvalidRequest):
    code = "invalid_address"


class InvalidSignature(PayGoError):
    """A signed body (a processor's webhook) whose signature does not sign it, or is too old."""

    code = "invalid_signature"


class InvalidEvent(PayGoError):
    """A correctly signed body that is not an event we can read."""

    code = "invalid_event"


class Unauthorized(PayGoError):
    status = 401
    code = "unauthorized"


class Forbidden(PayGoError):
    status = 403
    code = "forbidden"


class NotFound(PayGoError):
    status = 404
    code = "not_found"


class Conflict(PayGoError):
    status = 409
    code = "conflict"


class PaymentRequired(PayGoError):
    """The permission cannot pay for what was asked (none active, expired, or nothing left)."""

    status = 402
    code = "payment_required"


class ServiceUnavailable(PayGoError):
    """A dependency (node, database, card processor) is down or too slow: the client should retry later."""

    status = 503
    code = "service_unavailable"

    def __init__(self, message: str, *, code: str | None = None, retry_after: int = 5) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after
        self.headers["Retry-After"] = str(retry_after)


class TooManyRequests(PayGoError):
    """A rate limit or a cap on live streams: retry after `retry_after` seconds."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, code: str | None = None, retry_after: int = 1,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after
        self.headers.update(headers or {})
        self.headers["Retry-After"] = str(retry_after)


class NetworkMismatch(ServiceUnavailable):
    """A node serves another network than the settings name: start-up stops; found later (the node was down at
    start-up), nothing more is asked of it and requests answer 503 until the operator fixes one or the other."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="network_mismatch", retry_after=3600)
