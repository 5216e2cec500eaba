"""Pieces of the multi-step helpers (wait until active, live balance, paging) that the sync and the async client
share; only their waiting and sending differ."""

from __future__ import annotations

from httpx_sse import ServerSentEvent

from paygo_client.errors import PermissionNotActivated
from paygo_client.models import CreatedPermission, Permission, Session

SESSION_EVENT = "session"
# What a live-balance update is about (as the gateway decides when to send one); the owed amount and the duration
# grow by themselves between updates.
LIVE_FIELDS = ("status", "charged_amount", "remaining_amount", "remaining_hours", "permission_status", "ended_at")


def holder_token(permission: Permission, token: str | None) -> str | None:
    """The token to read `permission` with: the one given, else the one a create answer carries (else the client's
    own credentials apply)."""
    if token:
        return token
    return permission.permission_token if isinstance(permission, CreatedPermission) else None


def is_activated(permission: Permission) -> bool:
    """True once active, False while it waits for payment; raises `PermissionNotActivated` when it can no longer
    become active (expired unpaid, closed, ...)."""
    if permission.status == "active":
        return True
    if permission.status == "pending_payment":
        return False
    raise PermissionNotActivated(f"permission {permission.permission_id} is {permission.status}, not active",
                                 permission)


def session_of(event: ServerSentEvent) -> Session | None:
    """The session state a live-balance event carries (None for other events)."""
    return Session.model_validate_json(event.data) if event.event == SESSION_EVENT else None


def is_news(last: Session | None, current: Session) -> bool:
    """Whether `current` says something `last` did not (a reopened stream starts with the state it already sent)."""
    return last is None or any(getattr(last, name) != getattr(current, name) for name in LIVE_FIELDS)
