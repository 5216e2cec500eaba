"""The post-commit hook: every service method that moves money (or changes what a payer sees) announces the
permissions and sessions it changed once its transaction committed — the cache drops them and live streams wake —
without any caller remembering to; a rolled-back write announces nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from uuid import UUID

import pytest
import redis.asyncio as aioredis

from billing.events import SESSION_EVENTS_CHANNEL, decode_notice
from billing.unit_of_work import Changes
from kernel.errors import NotFound
from tests.conftest import MIN_CONFIRMATIONS, Gateway
from tests.stripe_fixtures import CardGateway


class Announcements:
    """What the hook announced, recorded through its public `subscribe` (the cache and live notices run too)."""

    def __init__(self, gw: Gateway) -> None:
        self.seen: list[Changes] = []
        gw.database.after_commit.subscribe(self.record)

    async def record(self, changes: Changes) -> None:
        self.seen.append(changes)

    def take(self) -> Changes:
        merged = Changes()
        for changes in self.seen:
            merged.merge(changes)
        self.seen.clear()
        return merged


@pytest.fixture
async def notices(gw: Gateway) -> AsyncIterator[aioredis.client.PubSub]:
    """A subscriber to the live-stream channel, as another process would be."""
    client = aioredis.Redis.from_url(gw.settings.redis_url or "")
    pubsub = client.pubsub()
    await pubsub.subscribe(SESSION_EVENTS_CHANNEL)
    yield pubsub
    await pubsub.aclose()
    await client.aclose()


async def _noticed(pubsub: aioredis.client.PubSub, permission_id: UUID) -> bool:
    """Whether a notice naming the permission arrives (notices published before this call are read too)."""
    deadline = asyncio.get_running_loop().time() + 5
    while asyncio.get_running_loop().time() < deadline:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
        if message is not None and permission_id in decode_notice(message["data"]).permission_ids:
            return True
    return False


async def _cached(gw: Gateway, permission_id: UUID) -> bool:
    await gw.services.permissions.state(permission_id)  # a read fills the cache
    return await gw.services.permissions.cache.get(permission_id) is not None


async def test_every_money_moving_method_announces_its_changes(gw: Gateway,
                                                               notices: aioredis.client.PubSub) -> None:
    announced = Announcements(gw)
    services = gw.services
    vendor = await gw.create_vendor()
    created = await gw.create_permission("10", "2.5")
    permission_id = UUID(created["permission_id"])
    announced.take()

    await gw.pay(created["payment_address"], "10")
    await gw.mine(MIN_CONFIRMATIONS)
    assert await _cached(gw, permission_id)
    await services.permissions.verify(permission_id, "zcash")  # credits the payment
    assert permission_id in announced.take().permission_ids
    assert (await services.permissions.state(permission_id)).permission.balance == 10 * 10**8  # not the cached 0
    assert await _noticed(notices, permission_id)

    opened = await services.sessions.open(created["permission_token"], created["user_wallet_address"],
                                          UUID(vendor["vendor_id"]))
    changes = announced.take()
    assert permission_id in changes.permission_ids and opened.session.id in changes.session_ids

    await gw.backdate_session(str(opened.session.id), 1800)
    assert await _cached(gw, permission_id)
    await services.jobs.billing_tick()  # charges the half hour
    assert permission_id in announced.take().permission_ids
    assert (await services.permissions.state(permission_id)).permission.charged_amount >= 125_000_000

    await services.sessions.end(opened.session_code)  # the final charge
    changes = announced.take()
    assert permission_id in changes.permission_ids and opened.session.id in changes.session_ids

    status, _ = await gw.call("GET", f"/api/v1/zcash/permissions/{permission_id}",
                              token=created["permission_token"])
    assert status == 200
    await gw.db.execute("UPDATE permissions SET expires_at = now() - interval '1 second' WHERE id = $1",
                        permission_id)
    await services.jobs.expire()
    assert permission_id in announced.take().permission_ids


async def test_the_watcher_announces_what_it_credited(gw: Gateway) -> None:
    announced = Announcements(gw)
    created = await gw.create_permission("1", "1")
    permission_id = UUID(created["permission_id"])
    await gw.pay(created["payment_address"], "1")
    await gw.mine(MIN_CONFIRMATIONS)
    announced.take()
    summary = await gw.jobs.watch_payments()
    assert permission_id in summary.activated
    assert permission_id in announced.take().permission_ids


async def test_reminders_announce_the_permissions_they_queued_for(signing_gw: Gateway) -> None:
    announced = Announcements(signing_gw)
    created = await signing_gw.create_permission("1", "1", notify_url="https://example.com/hook")
    await signing_gw.pay(created["payment_address"], "1")
    await signing_gw.mine(MIN_CONFIRMATIONS)
    await signing_gw.verify(created)
    announced.take()
    expires_at = await signing_gw.db.fetchval("SELECT expires_at FROM permissions WHERE id = $1",
                                              created["permission_id"])
    assert await signing_gw.jobs.remind(now=expires_at - timedelta(hours=20)) == 1
    assert UUID(created["permission_id"]) in announced.take().permission_ids


async def test_card_webhooks_and_refunds_announce(card: CardGateway) -> None:
    announced = Announcements(card.gw)
    permission = await card.paid("10.00", "2.50")  # funded by a signed checkout.session.completed
    permission_id = UUID(permission["permission_id"])
    assert permission_id in announced.take().permission_ids
    status, body = await card.refund(permission)
    assert status == 200, body
    assert permission_id in announced.take().permission_ids


async def test_a_rolled_back_write_announces_nothing(gw: Gateway) -> None:
    announced = Announcements(gw)
    with pytest.raises(NotFound):
        await gw.services.sessions.end("NO-SUCH-SESSION-CODE")
    assert not announced.take()

