"""What the client raises.

Every error the gateway answers is `{"error": {"code": "...", "message": "..."}}`; the client raises it as an
`APIError` subclass chosen by its stable `code` when the client knows the code (`PermissionNotFunded`), else by its
HTTP status (`PaymentRequired`), so callers can catch either the precise case or the family. Unknown codes still
arrive intact in `.code`.
"""

from __future__ import annotations

import email.utils
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar


class PayGoError(Exception):
    """Base of every error this client raises."""


class APIError(PayGoError):
    """The gateway refused the request. `code` is the API's stable error code (switch on it), `status` the HTTP
    status, `retry_after` the seconds the gateway asked to wait (429 and 503), `request_id` names the request in the
    gateway's logs."""

    STATUS: ClassVar[int | None] = None
    CODE: ClassVar[str | None] = None

    def __init__(self, status: int, code: str, message: str, *, request_id: str | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.retry_after = retry_after


# --- by HTTP status ------------------------------------------------------------------------------------------------

class BadRequest(APIError):
    STATUS = 400


class Unauthorized(APIError):
    """Credentials missing or not valid (a permission token, a vendor key)."""

    STATUS = 401


class PaymentRequired(APIError):
    """The permission cannot pay for this: not funded, expired, exhausted or otherwise not active."""

    STATUS = 402


class Forbidden(APIError):
    STATUS = 403


class NotFound(APIError):
    STATUS = 404


class Conflict(APIError):
    STATUS = 409


class PayloadTooLarge(APIError):
    STATUS = 413


class InvalidRequest(APIError):
    """The request is not valid; the message names the field and the problem."""

    STATUS = 422


class RateLimited(APIError):
    """Too many requests; `retry_after` says when to come back. Raised once the client's retries are spent."""

    STATUS = 429


class ServiceUnavailable(APIError):
    """A dependency of the gateway (database, node, card processor) is down or not configured; raised once the
    client's retries are spent, or at once when `retry_after` is longer than the client is willing to wait."""

    STATUS = 503


class ServerError(APIError):
    """Any other 5xx: a bug in the gateway (its message carries the request id)."""


# --- by stable code ------------------------------------------------------------------------------------------------

class MissingToken(Unauthorized):
    CODE = "missing_token"


class InvalidToken(Unauthorized):
    CODE = "invalid_token"


class PermissionNotFunded(PaymentRequired):
    CODE = "permission_not_funded"


class PermissionExpired(PaymentRequired):
    CODE = "permission_expired"


class PermissionExhausted(PaymentRequired):
    CODE = "permission_exhausted"


class PermissionNotActive(PaymentRequired):
    CODE = "permission_not_active"


class WalletMismatch(Forbidden):
    CODE = "wallet_mismatch"


class PermissionNotFound(NotFound):
    CODE = "permission_not_found"


class SessionNotFound(NotFound):
    CODE = "session_not_found"


class VendorNotFound(NotFound):
    CODE = "vendor_not_found"


class DeliveryNotFound(NotFound):
    CODE = "delivery_not_found"


class IdempotencyKeyInProgress(Conflict):
    """The first request with this Idempotency-Key is still running (the client retries these by itself)."""

    CODE = "idempotency_key_in_progress"


class PaymentAlreadyUsed(Conflict):
    CODE = "payment_already_used"


class DeliveryPending(Conflict):
    CODE = "delivery_pending"


class IdempotencyKeyReused(InvalidRequest):
    """The Idempotency-Key was already used with another body."""

    CODE = "idempotency_key_reused"


class IdempotencyKeyTooShort(InvalidRequest):
    CODE = "idempotency_key_too_short"


class InvalidAmount(InvalidRequest):
    CODE = "invalid_amount"


class InvalidAddress(InvalidRequest):
    CODE = "invalid_address"


class SignerMismatch(InvalidRequest):
    """The EIP-712 signature was made by another key than the wallet's, or over other terms."""

    CODE = "signer_mismatch"


class NonceReused(InvalidRequest):
    CODE = "nonce_reused"


class WrongChainId(InvalidRequest):
    CODE = "wrong_chain_id"


class AuthorizationExpired(InvalidRequest):
    CODE = "authorization_expired"


class WebhooksNotConfigured(InvalidRequest):
    CODE = "webhooks_not_configured"


class DatabaseUnavailable(ServiceUnavailable):
    CODE = "database_unavailable"


class CardPaymentsNotConfigured(ServiceUnavailable):
    CODE = "card_payments_not_configured"


class CardProcessorUnavailable(ServiceUnavailable):
    CODE = "card_processor_unavailable"


# --- raised by the client itself -----------------------------------------------------------------------------------

class TransportError(PayGoError):
    """The gateway could not be reached (or the connection dropped) and the retries are spent; the httpx error is
    the `__cause__`."""


class UnexpectedResponse(PayGoError):
    """The gateway answered something this client cannot read (a gateway of another API version?); the validation
    error is the `__cause__`."""


class WaitTimeout(PayGoError, TimeoutError):
    """A wait (`wait_until_active`) ran out of time; `last` is the last state seen."""

    def __init__(self, message: str, last: Any) -> None:
        super().__init__(message)
        self.last = last


class PermissionNotActivated(PayGoError):
    """The permission left `pending_payment` without becoming active (it expired unpaid, or was closed)."""

    def __init__(self, message: str, permission: Any) -> None:
        super().__init__(message)
        self.permission = permission


class WebhookVerificationError(PayGoError):
    """A webhook's `PayGo-Signature` is missing, malformed, too old, or does not sign its body."""


class APIVersionWarning(UserWarning):
    """The gateway's API has another major version than this client was written for (or does not say which)."""


def _error_classes(base: type[APIError]) -> list[type[APIError]]:
    found = []
    for subclass in base.__subclasses__():
        found += [subclass, *_error_classes(subclass)]
    return found


BY_CODE: dict[str, type[APIError]] = {cls.CODE: cls for cls in _error_classes(APIError) if cls.CODE}
BY_STATUS: dict[int, type[APIError]] = {cls.STATUS: cls for cls in APIError.__subclasses__() if cls.STATUS}


def retry_after_seconds(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds: a number of seconds or an HTTP date; None when absent or unreadable."""
    raw = headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        return max(0.0, float(int(raw)))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def error_from_response(status: int, body: bytes, headers: Mapping[str, str]) -> APIError:
    """The exception for an error answer: by code when known, else by status. A body that is not the API's error
    shape (a proxy's page) still gives an error, with code `http_<status>`."""
    code, message = f"http_{status}", body.decode("utf-8", "replace")[:500]
    try:
        error = json.loads(body)["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        pass
    cls = BY_CODE.get(code)
    if cls is None or status != cls.STATUS:
        cls = BY_STATUS.get(status, ServerError if status >= 500 else APIError)
    return cls(status, code, message, request_id=headers.get("x-request-id"),
               retry_after=retry_after_seconds(headers))
