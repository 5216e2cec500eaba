"""A circuit breaker for Redis: after a few failures in a row, Redis is skipped for a cool-down, so a hung Redis
(every call waiting out its socket timeout) costs a few requests their timeout instead of costing every request.

Every user of Redis here (the permission cache, change notices, rate limits, health) is fail-open: without Redis
it reads PostgreSQL, polls, or counts in-process. So the breaker only has to say "skip Redis now"; the first call
after the cool-down is a trial, and one success closes the breaker again. Hand-written because it is this small and
the skip-instead-of-raise shape is what every call site wants (the asyncio breaker packages raise on open).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class CircuitBreaker:
    def __init__(self, name: str, *, failures: int = 3, cooldown_seconds: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.failures_to_open = failures
        self.cooldown_seconds = cooldown_seconds
        self._clock = clock
        self._failures = 0
        self._open_until: float | None = None

    @property
    def allows(self) -> bool:
        """Whether to try the dependency now: closed, or open with its cool-down over (a trial)."""
        return self._open_until is None or self._clock() >= self._open_until

    @property
    def is_open(self) -> bool:
        return not self.allows

    def succeeded(self) -> None:
        if self._open_until is not None:
            log.info("%s answers again: circuit closed", self.name)
        self._failures = 0
        self._open_until = None

    def failed(self) -> None:
        self._failures += 1
        if self._failures >= self.failures_to_open:
            if self._open_until is None or self.allows:
                log.warning("%s failed %d times in a row: skipped for %ss", self.name, self._failures,
                            self.cooldown_seconds)
            self._open_until = self._clock() + self.cooldown_seconds
