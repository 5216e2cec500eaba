"""Rate limits: every anonymous endpoint per client address, every creating endpoint per client address and per
credential, with the `limits` library (sliding-window counters) in Redis when configured, in-process otherwise.

- `RATE_LIMIT_ANONYMOUS` applies to routes without credentials (`Operation.auth` empty), per client address.
- `RATE_LIMIT_CREATE` applies to routes that create something (a POST answering 201), per client address and, when
  the request carries a credential, per credential (its SHA-256, never the credential itself).
- Routes marked `rate_limited=False` are exempt: the load balancer's `/health/live` and `/health/ready`, and
  Stripe's signed webhook (Stripe retries, and a bad signature costs one HMAC).
A refused request gets 429 `rate_limited` with `Retry-After`; every limited answer carries the IETF draft headers
`RateLimit: limit=N, remaining=N, reset=S` and `RateLimit-Policy: N;w=S`, and the older `RateLimit-Limit`,
`RateLimit-Remaining`, `RateLimit-Reset`, for the tightest of the limits that apply.

The client address is the TCP peer, unless the peer is one of TRUSTED_PROXIES: then the right-most address of
`X-Forwarded-For` that is not a trusted proxy (what the nearest untrusted hop said; anything further left the client
could have written). Redis failures trip the shared circuit breaker; while it is open, limits are counted in this
process only (per-process limits rather than none, and no request waits on a hung Redis).
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import logging
import math
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError
from redis.exceptions import RedisError

from billing.breaker import CircuitBreaker
from gateway.auth import API_KEY_HEADER, accepted_credentials
from gateway.http import Handler
from gateway.keys import REDIS, REDIS_BREAKER, SETTINGS
from gateway.openapi import operation_of
from kernel.errors import TooManyRequests

log = logging.getLogger(__name__)

KEY_PREFIX = "paygo:limits"
MAX_FORWARDED_ADDRESS_LENGTH = 64
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Rule:
    """Limits (`10/minute;100/hour`) counted for one identity (`anonymous/203.0.113.7`)."""

    items: Sequence[RateLimitItem]
    identity: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Window:
    """One limit as seen after a hit: what the headers report."""

    limit: int
    remaining: int
    reset_seconds: int
    window_seconds: int


class RateLimiter:
    """Sliding-window counters in Redis (shared by every gateway process) or in this process."""

    def __init__(self, redis_storage: RedisStorage | None, breaker: CircuitBreaker) -> None:
        self._memory_storage = MemoryStorage()
        self._memory = SlidingWindowCounterRateLimiter(self._memory_storage)
        self._redis = SlidingWindowCounterRateLimiter(redis_storage) if redis_storage is not None else None
        self._breaker = breaker

    async def check(self, rules: Sequence[Rule]) -> tuple[bool, Window | None]:
        """Count one hit against every rule; whether all allowed it, and the tightest window (for the headers)."""
        if self._redis is not None and self._breaker.allows:
            try:
                found = await self._check(self._redis, rules)
            except (StorageError, RedisError, OSError) as exc:
                self._breaker.failed()
                log.warning("rate limits: Redis failed (%s); counting in this process", type(exc).__name__)
            else:
                self._breaker.succeeded()
                return found
        return await self._check(self._memory, rules)

    @staticmethod
    async def _check(limiter: SlidingWindowCounterRateLimiter, rules: Sequence[Rule]) -> tuple[bool, Window | None]:
        allowed = True
        tightest: Window | None = None
        now = time.time()
        for rule in rules:
            for item in rule.items:
                allowed = await limiter.hit(item, *rule.identity) and allowed
                stats = await limiter.get_window_stats(item, *rule.identity)
                window = Window(item.amount, max(0, stats.remaining), max(0, math.ceil(stats.reset_time - now)),
                                item.get_expiry())
                if tightest is None or (window.remaining, -window.reset_seconds) < (tightest.remaining,
                                                                                      -tightest.reset_seconds):
                    tightest = window
        return allowed, tightest

    async def close(self) -> None:
        if self._memory_storage.timer is not None:
            self._memory_storage.timer.cancel()


RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)


async def rate_limiter(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx entry (after the runtime's): the limiter over the runtime's Redis connections, if any."""
    redis = app[REDIS]
    storage = None
    if redis is not None:
        shared: dict[str, Any] = {"connection_pool": redis.connection_pool}  # the runtime's, with its timeouts
        storage = RedisStorage("async+redis://", implementation="redispy", wrap_exceptions=True,
                               key_prefix=KEY_PREFIX, **shared)
    app[RATE_LIMITER] = RateLimiter(storage, app[REDIS_BREAKER])
    yield
    await app[RATE_LIMITER].close()


def client_address(request: web.Request, trusted_proxies: Sequence[Network]) -> str:
    """The TCP peer, or (behind a trusted proxy) the right-most X-Forwarded-For hop that is not a trusted proxy."""
    peer = request.remote or "unknown"
    if not trusted_proxies or not _trusted(peer, trusted_proxies):
        return peer
    hops = [hop.strip() for header in request.headers.getall("X-Forwarded-For", ()) for hop in header.split(",")]
    for hop in reversed([hop for hop in hops if hop]):
        if not _trusted(hop, trusted_proxies):
            return hop[:MAX_FORWARDED_ADDRESS_LENGTH]
    return peer


def _trusted(address: str, trusted_proxies: Sequence[Network]) -> bool:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in trusted_proxies)


def _credential(request: web.Request) -> str | None:
    presented = request.headers.get("Authorization") or request.headers.get(API_KEY_HEADER)
    if not presented:
        return None
    return hashlib.sha256(presented.encode("utf-8", "surrogateescape")).hexdigest()


@functools.cache
def _limits(text: str) -> tuple[RateLimitItem, ...]:
    """A setting's limits (`10/minute;100/hour`), parsed once."""
    return tuple(parse_many(text))


def rules_for(request: web.Request) -> list[Rule]:
    """The limits that apply to this request (none for an exempt or unmatched route)."""
    operation = operation_of(request.match_info.route.handler)
    if operation is None or not operation.rate_limited:
        return []
    anonymous = not accepted_credentials(request)
    creating = request.method == "POST" and operation.creates
    if not anonymous and not creating:
        return []
    perimeter = request.app[SETTINGS].perimeter
    address = client_address(request, perimeter.trusted_proxies)
    rules: list[Rule] = []
    if anonymous:
        rules.append(Rule(_limits(perimeter.rate_limit_anonymous), ("anonymous", address)))
    if creating:
        create = _limits(perimeter.rate_limit_create)
        rules.append(Rule(create, ("create", "address", address)))
        credential = _credential(request)
        if credential is not None:
            rules.append(Rule(create, ("create", "credential", credential)))
    return rules


def rate_limit_headers(window: Window) -> dict[str, str]:
    return {
        "RateLimit": f"limit={window.limit}, remaining={window.remaining}, reset={window.reset_seconds}",
        "RateLimit-Policy": f"{window.limit};w={window.window_seconds}",
        "RateLimit-Limit": str(window.limit),
        "RateLimit-Remaining": str(window.remaining),
        "RateLimit-Reset": str(window.reset_seconds),
    }


@web.middleware
async def rate_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count the request before anything else reads it; 429 with Retry-After past a limit."""
    rules = rules_for(request)
    if not rules or RATE_LIMITER not in request.app:
        return await handler(request)
    allowed, window = await request.app[RATE_LIMITER].check(rules)
    headers = rate_limit_headers(window) if window is not None else {}
    if not allowed:
        retry_after = max(1, window.reset_seconds if window is not None else 1)
        raise TooManyRequests("too many requests from this client; retry after Retry-After seconds",
                              retry_after=retry_after, headers=headers)
    response = await handler(request)
    if not response.prepared:
        response.headers.update(headers)
    return response
