"""Python client for the PayGo gateway.

- `PayGo` (blocking) and `AsyncPayGo` (asyncio): one method per API operation plus the seed's flows
  (`wait_until_active`, `live`, `iter_vendor_sessions`, `download_vendor_sessions_csv`, ...);
- typed results (`paygo_client.models`) with money as `Decimal`;
- errors as exceptions carrying the API's stable `code` (`paygo_client.errors`);
- `verify_webhook` for the gateway's signed webhooks.
"""

from paygo_client import errors, models
from paygo_client._calls import EXCLUDED_OPERATIONS, Amount, operations_of
from paygo_client._http import API_VERSION, RetryPolicy
from paygo_client._version import __version__
from paygo_client.async_client import AsyncPayGo
from paygo_client.client import PayGo
from paygo_client.errors import (
    APIError,
    APIVersionWarning,
    PayGoError,
    PermissionNotFunded,
    RateLimited,
    ServiceUnavailable,
    TransportError,
    WaitTimeout,
    WebhookVerificationError,
)
from paygo_client.models import CreatedPermission, Permission, Session, WebhookEvent
from paygo_client.webhooks import verify_webhook

__all__ = [
    "API_VERSION",
    "EXCLUDED_OPERATIONS",
    "APIError",
    "APIVersionWarning",
    "Amount",
    "AsyncPayGo",
    "CreatedPermission",
    "PayGo",
    "PayGoError",
    "Permission",
    "PermissionNotFunded",
    "RateLimited",
    "RetryPolicy",
    "ServiceUnavailable",
    "Session",
    "TransportError",
    "WaitTimeout",
    "WebhookEvent",
    "WebhookVerificationError",
    "__version__",
    "errors",
    "models",
    "operations_of",
    "verify_webhook",
]
