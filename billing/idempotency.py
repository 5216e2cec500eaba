"""Idempotency-Key records: the first answer to a (caller, route, key) is replayed to that caller, and to no one else.

What is stored lets the same caller replay the same answer and nothing more; a database dump holds no usable secret:
- the row is found by `scope` = SHA-256(route, caller identity) and `key_id` = HMAC-SHA256(Idempotency-Key, scope),
  never by the key itself;
- the answer (which may hold a permission token, a session code, an API key or a webhook secret, shown once) is
  encrypted with AES-256-GCM under a key derived (HKDF-SHA256) from the caller's Idempotency-Key *and* the credential
  the caller presented. The database holds neither: credentials are stored only as SHA-256 hashes, and HKDF input is
  not that hash. On anonymous routes there is no credential, so the key alone must be unguessable: keys shorter
  than MIN_ANONYMOUS_KEY_LENGTH are refused (422 `idempotency_key_too_short`);
- `request_hash` is an HMAC of the request under a key derived the same way, so it reveals nothing of the body, and
  the same key sent with another body, or by the same caller with another credential (a rotated key), is refused
  (422 `idempotency_key_reused`) instead of running twice.

Two paths claim a key, both through the SQL function `claim_idempotency_key`:
- around a handler (the gateway's middleware, every POST but the hot path's): `claim` commits a row locked for a
  short lease, the handler runs, and `complete` stores its sealed answer (or `release` forgets it after a 5xx, so the
  client may retry). A retry with the same key and body gets the stored answer; while the first request is still
  running, a 409 (`idempotency_key_in_progress`). If a process dies mid-request, its lease runs out and a retry runs
  again — every money-moving operation behind it is idempotent by construction (see billing/sessions.py);
- inside the one call that does the work (opening and ending a session: `IdempotentCall`, migrations/0015): the
  SQL function claims the key, does the work and records its answer (`outcome`, no secret) in one transaction, so no
  round trip is added and nobody sees the record in progress (a simultaneous duplicate waits, then replays). The
  secret the answer shows once (a new session's code) is sealed here before the call, exactly as above.
Records expire KEY_TTL after their first use (a reuse after that runs as new) and the prune job deletes them
(billing/retention.py).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import asyncpg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from billing.unit_of_work import Database
from kernel.errors import Conflict, InvalidRequest

LEASE_SECONDS = 30
KEY_TTL = timedelta(hours=24)
MAX_KEY_LENGTH = 255
MIN_ANONYMOUS_KEY_LENGTH = 32
NONCE_BYTES = 12
ANONYMOUS = "anonymous"
_HKDF_INFO = b"paygo idempotency v1"


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    status_code: int
    body: str


@dataclass(frozen=True, slots=True)
class RecordedOutcome:
    """What a hot-path SQL function answered under a key (no secret), and the secret its answer showed once."""

    outcome: dict[str, Any]
    secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class IdempotentCall:
    """An Idempotency-Key that the service applies in the one database call doing the work (the hot path), rather
    than the gateway around the handler: the route, the key, and the request's body."""

    route: str
    key: str
    request: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sends a request, once authenticated: `identity` names the principal (`permission:<id>`, `vendor:<id>`,
    `operator`, or `anonymous`); `credential` is the secret they presented (empty when anonymous)."""

    identity: str
    credential: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True)
class IdempotencyClaim:
    """A claimed key: where its row is, and the keys (never stored) that seal and check its answer."""

    scope: bytes
    key_id: bytes
    request_hash: bytes
    cipher_key: bytes = field(repr=False)


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")  # header values may carry undecodable bytes as surrogates


def check_key(key: str, caller: Caller) -> None:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidRequest(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters",
                             code="invalid_idempotency_key")
    if caller.identity == ANONYMOUS and len(key) < MIN_ANONYMOUS_KEY_LENGTH:
        raise InvalidRequest(f"on a route without credentials the Idempotency-Key must be unguessable: at least "
                             f"{MIN_ANONYMOUS_KEY_LENGTH} random characters (a UUID4 without dashes, or more)",
                             code="idempotency_key_too_short")


def derive_claim(route: str, caller: Caller, key: str, request: bytes) -> IdempotencyClaim:
    """The row's address and the answer's keys for this caller, route, key and request (body)."""
    check_key(key, caller)
    scope = hashlib.sha256(_utf8(route) + b"\n" + _utf8(caller.identity)).digest()
    key_id = hmac.new(_utf8(key), scope, hashlib.sha256).digest()
    material = _utf8(key) + b"\x00" + _utf8(caller.credential)
    derived = HKDF(algorithm=hashes.SHA256(), length=64, salt=scope, info=_HKDF_INFO).derive(material)
    fingerprint_key, cipher_key = derived[:32], derived[32:]
    request_hash = hmac.new(fingerprint_key, request, hashlib.sha256).digest()
    return IdempotencyClaim(scope, key_id, request_hash, cipher_key)


def seal(claim: IdempotencyClaim, body: str) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(claim.cipher_key).encrypt(nonce, _utf8(body), claim.scope + claim.key_id)


def unseal(claim: IdempotencyClaim, sealed: bytes) -> str | None:
    """The stored answer, or None when these keys do not open it."""
    try:
        plain = AESGCM(claim.cipher_key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:],
                                                 claim.scope + claim.key_id)
    except (InvalidTag, ValueError):
        return None
    return plain.decode("utf-8", "surrogateescape")


def _held_request(claimed: IdempotencyClaim, held: dict[str, Any]) -> None:
    """Refuse a record that does not hold this very request: gone in the meantime (409, retry), or made by another
    body or credential (422)."""
    if held["request_hash"] is None:
        raise Conflict("a request with this Idempotency-Key is still being processed",
                       code="idempotency_key_in_progress")
    if not hmac.compare_digest(bytes.fromhex(held["request_hash"]), claimed.request_hash):
        raise InvalidRequest("this Idempotency-Key was used with a different request (or other credentials)",
                             code="idempotency_key_reused")


def _unsealed(claimed: IdempotencyClaim, sealed_hex: str) -> str:
    plain = unseal(claimed, bytes.fromhex(sealed_hex))
    if plain is None:
        raise InvalidRequest("this Idempotency-Key was used with a different request (or other credentials)",
                             code="idempotency_key_reused")
    return plain


def recorded_outcome(claimed: IdempotencyClaim, held: dict[str, Any]) -> RecordedOutcome:
    """What a hot-path call recorded under this key (`claim_idempotency_key`'s record), for its replay."""
    _held_request(claimed, held)
    if held["outcome"] is None:  # claimed by the other path, a version ago: as good as in progress
        raise Conflict("a request with this Idempotency-Key is still being processed",
                       code="idempotency_key_in_progress")
    secret = _unsealed(claimed, held["response"]) if held["response"] is not None else None
    return RecordedOutcome(held["outcome"], secret)


async def claim(conn: asyncpg.Connection, claimed: IdempotencyClaim) -> StoredAnswer | None:
    """Claim the key for this request, leased for LEASE_SECONDS; returns a stored answer to replay, or None when the
    caller should run. One statement (`claim_idempotency_key`, migrations/0015)."""
    held = await conn.fetchval("SELECT claim_idempotency_key($1, $2, $3, $4, $5)", claimed.scope, claimed.key_id,
                               claimed.request_hash, KEY_TTL, timedelta(seconds=LEASE_SECONDS))
    if held is None:
        return None  # newly claimed, expired, or an abandoned claim taken over
    _held_request(claimed, held)
    if held["status_code"] is None:
        raise Conflict("a request with this Idempotency-Key is still being processed",
                       code="idempotency_key_in_progress")
    return StoredAnswer(held["status_code"], _unsealed(claimed, held["response"]))


async def complete(conn: asyncpg.Connection, claimed: IdempotencyClaim, status_code: int, body: str) -> None:
    await conn.execute(
        "UPDATE idempotency_keys SET status_code = $3, response = $4 WHERE scope = $1 AND key_id = $2",
        claimed.scope, claimed.key_id, status_code, seal(claimed, body),
    )


async def release(conn: asyncpg.Connection, claimed: IdempotencyClaim) -> None:
    """Forget a claim whose request failed on our side (5xx), so a retry runs again."""
    await conn.execute(
        "DELETE FROM idempotency_keys WHERE scope = $1 AND key_id = $2 AND status_code IS NULL",
        claimed.scope, claimed.key_id,
    )


class IdempotencyService:
    """Claims and answers of Idempotency-Keys, for the gateway's middleware (after it authenticated the caller)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim(self, route: str, caller: Caller, key: str,
                    request: bytes) -> tuple[IdempotencyClaim, StoredAnswer | None]:
        """Derive the claim (422 for a malformed or, anonymously, too short key), then claim it: the stored answer
        to replay, or None when the request should run (and be `complete`d or `release`d). Each of the three is one
        statement, so one round trip (no BEGIN and COMMIT)."""
        claimed = derive_claim(route, caller, key, request)
        async with self.db.one_statement() as work:
            return claimed, await claim(work.conn, claimed)

    async def complete(self, claimed: IdempotencyClaim, status_code: int, body: str) -> None:
        async with self.db.one_statement() as work:
            await complete(work.conn, claimed, status_code, body)

    async def release(self, claimed: IdempotencyClaim) -> None:
        async with self.db.one_statement() as work:
            await release(work.conn, claimed)
