"""Bearer secrets (permission tokens, session codes, API keys): made random, shown once, stored as SHA-256.

Each secret carries 256 bits (session codes 120) of randomness, so a plain SHA-256 is enough to make a stolen
database useless for authentication; a slow password hash would only slow every request down.
"""

from __future__ import annotations

import hashlib
import secrets

PERMISSION_TOKEN_PREFIX = "pgp_"
VENDOR_KEY_PREFIX = "pgv_"
SESSION_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I, easy to read aloud
SESSION_CODE_LENGTH = 24


def new_permission_token() -> str:
    return PERMISSION_TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_vendor_key() -> str:
    return VENDOR_KEY_PREFIX + secrets.token_urlsafe(32)


def new_session_code() -> str:
    return "".join(secrets.choice(SESSION_CODE_ALPHABET) for _ in range(SESSION_CODE_LENGTH))


def secret_hash(secret: str) -> bytes:
    """The stored form of a secret; lookups hash the presented secret and compare in the database index.

    A secret read from a header that was not UTF-8 holds the undecodable bytes as surrogates (aiohttp decodes
    headers with `surrogateescape`); it is hashed as the bytes received, so it simply matches nothing."""
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).digest()
