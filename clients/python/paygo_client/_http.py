"""What the sync and the async client share about HTTP: credentials, idempotency keys, the retry policy, error
answers and the API version check. Only sending and sleeping differ between the two clients.
"""

from __future__ import annotations

import json
import random
import secrets
import warnings
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any

import httpx

from paygo_client._version import __version__
from paygo_client.errors import APIError, APIVersionWarning, error_from_response, retry_after_seconds

if TYPE_CHECKING:
    from paygo_client._calls import Call

API_VERSION = "1"  # the gateway API (OpenAPI `info.version`) this client is written for
OPENAPI_PATH = "/api/v1/openapi.json"
USER_AGENT = f"paygo-client-python/{__version__}"
IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_KEY_BYTES = 32  # token_urlsafe: 43 characters, above the gateway's minimum of 32

# Worth another try: the request may not have arrived, or its answer was lost. A POST is resent with the same
# Idempotency-Key, so the gateway applies it once (and replays its first answer).
RETRYABLE_TRANSPORT_ERRORS = (httpx.NetworkError, httpx.TimeoutException, httpx.RemoteProtocolError)
RETRYABLE_STATUSES = frozenset({429, 503})
# A live-balance stream is quiet between changes: the gateway sends a keepalive at least every ~20 s.
STREAM_READ_TIMEOUT_SECONDS = 60.0


def new_idempotency_key() -> str:
    return secrets.token_urlsafe(IDEMPOTENCY_KEY_BYTES)


class Auth(Enum):
    """The credential a call sends."""

    NONE = "none"
    PERMISSION_TOKEN = "permission_token"
    VENDOR_KEY = "vendor_key"
    OPERATOR_KEY = "operator_key"
    HOLDER = "holder"  # the permission token if there is one, else the operator key


@dataclass(frozen=True, repr=False)
class Credentials:
    """One client's credentials per role; any may be missing (the gateway then answers 401). Never printed."""

    permission_token: str | None = None
    vendor_key: str | None = None
    operator_key: str | None = None

    def headers(self, auth: Auth, token: str | None = None) -> dict[str, str]:
        """`token` replaces the client's permission token for one call."""
        bearer = token or self.permission_token
        if auth is Auth.PERMISSION_TOKEN or (auth is Auth.HOLDER and bearer):
            return {"Authorization": f"Bearer {bearer}"} if bearer else {}
        key = {Auth.VENDOR_KEY: self.vendor_key, Auth.OPERATOR_KEY: self.operator_key,
               Auth.HOLDER: self.operator_key}.get(auth)
        return {"X-API-Key": key} if key else {}

    def __repr__(self) -> str:
        held = [name for name in ("permission_token", "vendor_key", "operator_key") if getattr(self, name)]
        return f"Credentials({', '.join(held) or 'none'})"


@dataclass(frozen=True)
class RetryPolicy:
    """When to try again. Connection errors and timeouts, 429 and 503, and 409 `idempotency_key_in_progress` (the
    first attempt is still running on the gateway) are retried up to `max_retries` times; a `Retry-After` is
    honoured, and one longer than `max_retry_after` seconds is not waited for (the error is raised at once, with
    its `retry_after`). Without `Retry-After`, the wait grows exponentially from `backoff` up to `max_backoff`."""

    max_retries: int = 4
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 60.0

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.max_backoff, self.backoff * 2.0**attempt)
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def delay_after_error(self, attempt: int) -> float | None:
        """Seconds to wait before attempt `attempt + 1` after a transport error; None: give up."""
        return self._backoff(attempt) if attempt < self.max_retries else None

    def delay_after_response(self, attempt: int, response: httpx.Response) -> float | None:
        """Seconds to wait before attempt `attempt + 1` after this answer; None: keep it (success or final error).
        The body must have been read."""
        if attempt >= self.max_retries or not _retryable(response):
            return None
        retry_after = retry_after_seconds(response.headers)
        if retry_after is None:
            return self._backoff(attempt)
        return retry_after if retry_after <= self.max_retry_after else None


def _retryable(response: httpx.Response) -> bool:
    if response.status_code in RETRYABLE_STATUSES:
        return True
    return (response.status_code == 409 and IDEMPOTENCY_HEADER in response.request.headers
            and _error_code(response) == "idempotency_key_in_progress")


def _error_code(response: httpx.Response) -> str | None:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None


def build_request(http: httpx.Client | httpx.AsyncClient, call: Call[Any], credentials: Credentials, *,
                  stream: bool = False) -> httpx.Request:
    """The HTTP request for `call`: its credential, body, Idempotency-Key and Accept headers."""
    headers = credentials.headers(call.auth, call.token)
    if call.body is not None:
        headers["Content-Type"] = "application/json"
    if call.idempotency_key is not None:
        headers[IDEMPOTENCY_HEADER] = call.idempotency_key
    if call.accept is not None:
        headers["Accept"] = call.accept
    timeout = http.timeout
    if stream:
        timeout = httpx.Timeout(timeout.connect, read=STREAM_READ_TIMEOUT_SECONDS, write=timeout.write,
                                pool=timeout.pool)
    return http.build_request(call.method, call.path, params=call.params, content=call.body, headers=headers,
                              timeout=timeout)


def is_answer(call: Call[Any], response: httpx.Response) -> bool:
    """A success, or an error status this operation answers with (health's 503 report)."""
    return response.status_code < 400 or response.status_code in call.answers


def api_error(response: httpx.Response) -> APIError:
    return error_from_response(response.status_code, response.content, response.headers)


def version_checked(response: httpx.Response) -> bool:
    """Check the gateway's OpenAPI document (the answer to `GET OPENAPI_PATH`, read): warn (`APIVersionWarning`)
    when its `info.version` has another major version than `API_VERSION`, or names none. False when the gateway
    could not answer (a 5xx or a 429): check again on the next call."""
    if response.status_code >= 500 or response.status_code == 429:
        return False
    try:
        document = json.loads(response.content, parse_float=Decimal) if response.status_code == 200 else None
    except ValueError:
        document = None
    info = document.get("info") if isinstance(document, dict) else None
    version = info.get("version") if isinstance(info, dict) else None
    if not isinstance(version, str) or not version:
        warnings.warn("the gateway's OpenAPI document names no API version; this client speaks version "
                      f"{API_VERSION}", APIVersionWarning, stacklevel=2)
    elif version.split(".")[0] != API_VERSION.split(".")[0]:
        warnings.warn(f"the gateway speaks API version {version}, this client version {API_VERSION}: calls may "
                      "fail or be misread; use a paygo-client made for that version", APIVersionWarning,
                      stacklevel=2)
    return True
