"""Transactions with one post-commit hook: what changed is announced after the commit, never by hand.

Every service method that writes opens `Database.transaction()`, notes the permissions and sessions it changed
on the yielded `Work`, and leaves the block. Only when the transaction has committed does the database run its
`AfterCommit` listeners (the permission cache drops those permissions, live session streams are woken), so no
caller has to remember to, and a rolled-back write announces nothing. A crash between commit and announcement
costs at most the cache's short TTL and one poll of a live stream: neither is ever the source of truth.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg

log = logging.getLogger(__name__)


@dataclass
class Changes:
    """The permissions and sessions a committed transaction changed."""

    permission_ids: set[UUID] = field(default_factory=set)
    session_ids: set[UUID] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.permission_ids or self.session_ids)

    def merge(self, other: Changes) -> None:
        self.permission_ids |= other.permission_ids
        self.session_ids |= other.session_ids


Listener = Callable[[Changes], Awaitable[None]]


class AfterCommit:
    """The post-commit hook: listeners run, in order, after each committed transaction that changed something.

    A listener never fails the write that triggered it: its errors are logged and the next listener runs."""

    def __init__(self, listeners: Iterable[Listener] = ()) -> None:
        self._listeners = list(listeners)

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def announce(self, changes: Changes) -> None:
        if not changes:
            return
        for listener in self._listeners:
            try:
                await listener(changes)
            except Exception:
                log.exception("post-commit listener %r failed", listener)


@dataclass
class Work:
    """A connection inside an open transaction, and what it changed so far."""

    conn: asyncpg.Connection
    changes: Changes = field(default_factory=Changes)

    def changed(self, *, permissions: Iterable[UUID] = (), sessions: Iterable[UUID] = ()) -> None:
        self.changes.permission_ids.update(permissions)
        self.changes.session_ids.update(sessions)


class Database:
    """The pool and the post-commit hook: the only way services reach PostgreSQL."""

    def __init__(self, pool: asyncpg.Pool, after_commit: AfterCommit | None = None) -> None:
        self.pool = pool
        self.after_commit = after_commit or AfterCommit()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Work]:
        """A write: one transaction; its changes are announced once it has committed."""
        async with self.pool.acquire() as conn:
            work = Work(conn)
            async with conn.transaction():
                yield work
        await self.after_commit.announce(work.changes)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A read (or a write whose own statements manage their transactions: then announce with `announce`)."""
        async with self.pool.acquire() as conn:
            yield conn

    async def announce(self, changes: Changes) -> None:
        await self.after_commit.announce(changes)
