"""Streaming sessions: open against an active permission, charge what they owe, end exactly once.

Opening and ending are one database call each: the SQL functions `open_session` and `end_session`
(migrations/0013_scale.sql) authenticate, check, lock and write in one transaction, and answer JSON read here. The
charge rule (README, "Money rules") is the function `charge_sessions` (billing/charging.py explains it), shared by
the billing tick and the final charge. Locks are always taken permission first, then session, by every path (end,
tick), so they cannot deadlock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid4

import asyncpg
from pydantic import TypeAdapter

from billing.idempotency import KEY_TTL, IdempotencyClaim, recorded_outcome, seal
from billing.permissions import Permission
from billing.secrets import new_session_code, secret_hash
from kernel.errors import NotFound, PayGoError, PaymentRequired, Unauthorized


class SessionStatus(StrEnum):
    ACTIVE = "active"
    ENDED = "ended"
    EXHAUSTED = "exhausted"
    PENDING_PAYMENT = "pending_payment"
    CONFIRMED = "confirmed"


@dataclass(frozen=True, slots=True)
class Session:
    id: UUID
    permission_id: UUID
    vendor_id: UUID
    status: SessionStatus
    rate_per_hour: int
    started_at: datetime
    ended_at: datetime | None
    charged_amount: int
    uncovered_amount: int

    def elapsed_seconds(self, until: datetime) -> int:
        """Whole seconds from start to `until` (or to the end, for an ended session)."""
        end = self.ended_at or until
        return max(0, int((end - self.started_at).total_seconds()))


@dataclass(frozen=True, slots=True)
class OpenedSession:
    session: Session
    session_code: str  # shown once; only its hash is stored
    replayed: bool = False  # the answer an Idempotency-Key recorded, given again


@dataclass(frozen=True, slots=True)
class WalletDiffers:
    """The token's permission names another spelling of a wallet than the caller sent (or another wallet): only
    its funding source can tell which."""

    funding_source: str
    wallet: str


_SESSION = TypeAdapter(Session)
_PERMISSION = TypeAdapter(Permission)

# Why a session could not be opened, by the outcome `open_session` (the SQL function) names: the error and message.
_REFUSALS: dict[str, tuple[type[PayGoError], str]] = {
    "invalid_token": (Unauthorized, "the permission token is not valid"),
    "permission_expired": (PaymentRequired, "the spending permission has expired"),
    "permission_not_funded": (PaymentRequired, "the spending permission is not funded yet"),
    "permission_exhausted": (PaymentRequired, "the spending permission has nothing left"),
    "vendor_not_found": (NotFound, "no vendor with this vendor_id is registered"),
}


async def open_session(conn: asyncpg.Connection, token_hash: bytes, wallet: str, vendor_id: UUID,
                       once: IdempotencyClaim | None = None) -> OpenedSession | WalletDiffers:
    """Open a session on the permission whose token hashes to `token_hash`, if it is `wallet`'s and can pay for it
    (402 with a stable code when it cannot): one call of the SQL function `open_session`, which locks the permission,
    checks it, and writes the session with its `session.started` vendor event. Under an Idempotency-Key (`once`) the
    same call claims the key and records the outcome, or answers the first call's outcome again."""
    code = new_session_code()
    if once is None:
        answer = await conn.fetchval("SELECT open_session($1, $2, $3, $4, $5)", token_hash, wallet, vendor_id,
                                     uuid4(), secret_hash(code))
        return _opened(answer, code, replayed=False)
    answer = await conn.fetchval("SELECT open_session_once($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)", token_hash,
                                 wallet, vendor_id, uuid4(), secret_hash(code), once.scope, once.key_id,
                                 once.request_hash, KEY_TTL, seal(once, code))
    if answer["outcome"] != "replay":
        return _opened(answer, code, replayed=False)
    recorded = recorded_outcome(once, answer["record"])
    return _opened(recorded.outcome, recorded.secret or "", replayed=True)


def _opened(answer: dict[str, Any], code: str, *, replayed: bool) -> OpenedSession | WalletDiffers:
    """What `open_session` answered, as the session opened with `code`, or why not (raised)."""
    outcome = answer["outcome"]
    if outcome == "opened":
        return OpenedSession(_SESSION.validate_python(answer["session"]), code, replayed)
    if outcome == "wallet_differs":
        return WalletDiffers(answer["funding_source"], answer["wallet"])
    if outcome == "permission_not_active":
        refusal: PayGoError = PaymentRequired(f"the spending permission is {answer['status']}",
                                              code="permission_not_active")
    else:
        error, message = _REFUSALS[outcome]
        refusal = error(message, code=outcome)
    refusal.replayed = replayed
    raise refusal


@dataclass(frozen=True, slots=True)
class EndedSession:
    """A session ended (or found ended), its permission and the instant; `replayed` when this is the answer an
    Idempotency-Key recorded."""

    session: Session
    permission: Permission
    now: datetime
    replayed: bool = False


async def end_session(conn: asyncpg.Connection, session_code: str,
                      once: IdempotencyClaim | None = None) -> EndedSession:
    """End a session with its final charge (one call of the SQL function `end_session`, which under an
    Idempotency-Key also claims it and records the outcome). Ending an ended session changes nothing and returns
    it as it is."""
    if once is None:
        answer = await conn.fetchval("SELECT end_session($1)", secret_hash(session_code))
        replayed = False
    else:
        answer = await conn.fetchval("SELECT end_session_once($1, $2, $3, $4, $5)", secret_hash(session_code),
                                     once.scope, once.key_id, once.request_hash, KEY_TTL)
        replayed = answer["outcome"] == "replay"
        if replayed:
            answer = recorded_outcome(once, answer["record"]).outcome
    if answer["outcome"] == "session_not_found":
        refusal = NotFound("no session with this session_code", code="session_not_found")
        refusal.replayed = replayed
        raise refusal
    return EndedSession(_SESSION.validate_python(answer["session"]), _PERMISSION.validate_python(answer["permission"]),
                        datetime.fromisoformat(answer["now"]), replayed)


# A session by its code with its permission and the database's `now`, and (when a token hash is given) the
# permission that token opens: one statement, so that a token holder's read is one round trip.
_SESSION_WITH_HOLDER = """
SELECT (SELECT id FROM permissions WHERE token_hash = $2) AS holder, now() AS now,
       to_json(s) AS session, to_json(p) AS permission
  FROM (SELECT 1) AS one
  LEFT JOIN live_sessions s ON s.code_hash = $1
  LEFT JOIN permissions p ON p.id = s.permission_id
"""


@dataclass(frozen=True, slots=True)
class SessionRead:
    holder: UUID | None  # the permission the token opens, when a token was given and is valid
    session: Session | None
    permission: Permission | None
    now: datetime


async def read_session(conn: asyncpg.Connection, session_code: str, token: str | None) -> SessionRead:
    row = await conn.fetchrow(_SESSION_WITH_HOLDER, secret_hash(session_code),
                              secret_hash(token) if token is not None else None)
    if row["session"] is None:
        return SessionRead(row["holder"], None, None, row["now"])
    return SessionRead(row["holder"], _SESSION.validate_python(row["session"]),
                       _PERMISSION.validate_python(row["permission"]), row["now"])
