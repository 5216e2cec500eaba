"""Transactions with one post-commit hook: what changed is announced after the commit, never by hand.

Every service method that writes opens `Database.transaction()` (or `Database.one_statement()` when the write is one
SQL function call), notes the permissions and sessions it changed on the yielded `Work`, and leaves the block. Only
when the transaction has committed does the database run its `AfterCommit` listeners (the permission cache drops
those permissions, live session streams are woken), so no caller has to remember to, and a rolled-back write
announces nothing. A crash between commit and announcement
costs at most the cache's short TTL and one poll of a live stream: neither is ever the source of truth.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import TypeVar
from uuid import UUID

import asyncpg

from billing.replica import REPLICA_FAILURES, ReadReplica

log = logging.getLogger(__name__)

T = TypeVar("T")


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
    """The pool, the post-commit hook and the read replica if any: the only way services reach PostgreSQL."""

    def __init__(self, pool: asyncpg.Pool, after_commit: AfterCommit | None = None,
                 replica: ReadReplica | None = None) -> None:
        self.pool = pool
        self.after_commit = after_commit or AfterCommit()
        self.replica = replica

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Work]:
        """A write: one transaction; its changes are announced once it has committed."""
        async with self.pool.acquire() as conn:
            work = Work(conn)
            async with conn.transaction():
                yield work
        await self.after_commit.announce(work.changes)

    @asynccontextmanager
    async def one_statement(self) -> AsyncIterator[Work]:
        """A write that is one statement (a call of a SQL function that does the whole use case): PostgreSQL runs
        it in a transaction of its own, so it costs one round trip, without BEGIN and COMMIT. The block runs that
        one statement and notes what it changed, announced once it has returned (committed), as `transaction()`
        does."""
        async with self.pool.acquire() as conn:
            work = Work(conn)
            yield work
        await self.after_commit.announce(work.changes)

    def connection(self) -> AbstractAsyncContextManager[asyncpg.Connection]:
        """A read (or a write whose own statements manage their transactions: then announce with `announce`). The
        pool's own acquire context, not a generator around it: that layer was 3 % of a permission read."""
        return self.pool.acquire()

    async def announce(self, changes: Changes) -> None:
        await self.after_commit.announce(changes)

    async def lagging_read(self, query: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """A read that may lag a little behind the writes (see billing.replica): on the replica while it serves,
        else on the primary. A read is safe to run twice, so one the replica fails runs again on the primary."""
        replica = self.replica
        if replica is not None and replica.available:
            try:
                async with replica.pool.acquire() as conn:
                    result = await query(conn)
            except REPLICA_FAILURES as exc:
                replica.failed(exc)
            else:
                replica.served()
                return result
        async with self.pool.acquire() as conn:
            return await query(conn)

    @asynccontextmanager
    async def lagging_snapshot(self) -> AsyncIterator[asyncpg.Connection]:
        """A long read that may lag (a CSV stream, a dashboard) in one read-only snapshot, on the replica while it
        serves. The snapshot is taken before the caller reads anything: a replica failing by then is replaced by
        the primary; a failure after that reaches the caller."""
        replica = self.replica
        if replica is not None and replica.available:
            stack = AsyncExitStack()
            try:
                conn = await _enter_snapshot(stack, replica.pool)
            except REPLICA_FAILURES as exc:
                await stack.aclose()
                replica.failed(exc)
            else:
                replica.served()
                async with stack:
                    yield conn
                return
        async with AsyncExitStack() as stack:
            yield await _enter_snapshot(stack, self.pool)


async def _enter_snapshot(stack: AsyncExitStack, pool: asyncpg.Pool) -> asyncpg.Connection:
    conn = await stack.enter_async_context(pool.acquire())
    await stack.enter_async_context(conn.transaction(isolation="repeatable_read", readonly=True))
    return conn
