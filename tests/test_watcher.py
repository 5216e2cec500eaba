"""The payment watcher on the Zcash stand-in: activation without a verify call, a reorg before activation that
activates nothing, a direct charge paid (charge `paid`, session `confirmed`), and the payment window."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from billing.watcher import PaymentWatcher, WatcherSummary
from kernel.funding import FundingRequest
from tests.conftest import ADMIN_KEY, MIN_CONFIRMATIONS, Gateway


class Watching:
    """One watcher (its tip memory lives across passes) run against the test gateway at chosen instants."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.watcher = PaymentWatcher(gw.database, gw.services.sources)

    async def run_once(self, *, now: datetime) -> WatcherSummary:
        return await self.watcher.run(now=now)


def _watcher(gw: Gateway) -> Watching:
    return Watching(gw)


async def _db_now(gw: Gateway):
    return await gw.db.fetchval("SELECT now()")


async def _shown(gw: Gateway, permission: dict) -> dict:
    status, body = await gw.call("GET", f"/api/v1/zcash/permissions/{permission['permission_id']}",
                                 token=permission["permission_token"])
    assert status == 200, body
    return body


async def test_a_paid_permission_activates_without_verify(gw: Gateway) -> None:
    watcher = _watcher(gw)
    permission = await gw.create_permission("10", "2.5")
    untouched = await gw.create_permission("1", "1")
    await gw.pay(permission["payment_address"], "10")
    first = await watcher.run_once(now=await _db_now(gw))
    assert first.activated == [] and first.permissions_checked == 2
    assert (await _shown(gw, permission))["amount_received"] == "10.00000000"

    await gw.mine(MIN_CONFIRMATIONS)
    second = await watcher.run_once(now=await _db_now(gw))
    assert second.activated == [UUID(permission["permission_id"])]
    shown = await _shown(gw, permission)
    assert shown["status"] == "active" and shown["remaining_amount"] == "10.00000000"
    assert (await _shown(gw, untouched))["status"] == "pending_payment"
    assert (await watcher.run_once(now=await _db_now(gw))).permissions_checked == 1  # only the one still pending
    assert await gw.db.fetchval("SELECT count(*) FROM ledger_entries WHERE kind = 'funding'") == 1


async def test_a_reorg_before_activation_activates_nothing(gw: Gateway) -> None:
    watcher = _watcher(gw)
    permission = await gw.create_permission("10", "2.5")
    await gw.pay(permission["payment_address"], "10")
    [block] = await gw.mine(1)
    await watcher.run_once(now=await _db_now(gw))
    assert (await _shown(gw, permission))["confirmations_seen"] == 1

    await gw.chain_rpc.call("invalidateblock", block)  # the payment's block leaves the chain
    await gw.mine(1)  # the payment is mined again: 1 confirmation on the new branch, not 2
    after_reorg = await watcher.run_once(now=await _db_now(gw))
    assert after_reorg.activated == []
    shown = await _shown(gw, permission)
    assert shown["status"] == "pending_payment" and shown["confirmations_seen"] == 1
    assert await gw.db.fetchval("SELECT count(*) FROM ledger_entries") == 0

    await gw.mine(1)
    assert (await watcher.run_once(now=await _db_now(gw))).activated == [UUID(permission["permission_id"])]


async def test_a_direct_charge_paid_on_chain_confirms_its_session(gw: Gateway) -> None:
    watcher = _watcher(gw)
    vendor = await gw.create_vendor()
    permission = await gw.funded_permission("1", "1")
    _, opened = await gw.open_session(permission, vendor["vendor_id"])
    source = gw.services.sources.source("zcash")
    where = await source.prepare_funding(FundingRequest(reference="direct", asset="ZEC", amount_units=50_000_000))
    # what the billing tick leaves behind when the permission ran dry and the vendor's grace ended
    await gw.db.execute("UPDATE sessions SET status = 'pending_payment', ended_at = now() WHERE id = $1",
                        opened["session_id"])
    charge_id = await gw.db.fetchval(
        """
        INSERT INTO direct_charges (session_id, permission_id, funding_source, asset, amount, status,
                                    payment_address, payment_locator, finalized_at)
        VALUES ($1, $2, 'zcash', 'ZEC', 50000000, 'pending_payment', $3, $4, now()) RETURNING id
        """,
        opened["session_id"], permission["permission_id"], where.payment_address, where.locator,
    )
    await gw.pay(where.payment_address, "0.3")
    await gw.pay(where.payment_address, "0.2")
    first = await watcher.run_once(now=await _db_now(gw))
    assert first.direct_charges_checked == 1 and first.direct_charges_paid == []
    # the operator sees them confirming, in ZEC (the asset's decimals come from the permission the charge is on)
    status, overview = await gw.call("GET", "/api/v1/admin/overview", api_key=ADMIN_KEY)
    assert status == 200, overview
    assert sorted((p["permission_id"], p["amount"]) for p in overview["pending_payments"]) == [
        (None, "0.20000000"), (None, "0.30000000")]

    await gw.mine(MIN_CONFIRMATIONS)
    paid = await watcher.run_once(now=await _db_now(gw))
    assert paid.direct_charges_paid == [charge_id]
    charge = await gw.db.fetchrow("SELECT * FROM direct_charges WHERE id = $1", charge_id)
    assert charge["status"] == "paid" and charge["paid_amount"] == 50_000_000 and charge["paid_at"] is not None
    status, session = await gw.call("GET", f"/api/v1/sessions/{opened['session_code']}",
                                    token=permission["permission_token"])
    assert status == 200 and session["status"] == "confirmed"
    payments = await gw.db.fetch("SELECT * FROM payments WHERE direct_charge_id = $1", charge_id)
    assert len(payments) == 2 and {p["status"] for p in payments} == {"credited"}
    assert all(p["permission_id"] is None for p in payments)
    assert (await watcher.run_once(now=await _db_now(gw))).direct_charges_checked == 0


async def test_an_unpaid_permission_expires_after_its_payment_window(gw: Gateway) -> None:
    watcher = _watcher(gw)
    unpaid = await gw.create_permission("10", "2.5")
    paying = await gw.create_permission("10", "2.5")
    await gw.pay(paying["payment_address"], "4")  # seen, not enough: stays pending until its own expiry
    due = await gw.db.fetchval("SELECT payment_due_at FROM permissions WHERE id = $1", unpaid["permission_id"])

    before = await watcher.run_once(now=due - timedelta(seconds=1))
    assert before.expired_unpaid == []
    after = await watcher.run_once(now=due + timedelta(seconds=1))
    assert after.expired_unpaid == [UUID(unpaid["permission_id"])]
    assert (await _shown(gw, unpaid))["status"] == "expired"
    assert (await _shown(gw, paying))["status"] == "pending_payment"

    await gw.pay(unpaid["payment_address"], "10")  # too late: recorded and shown, never credited
    await gw.mine(MIN_CONFIRMATIONS)
    await watcher.run_once(now=due + timedelta(minutes=5))
    shown = await _shown(gw, unpaid)
    assert shown["status"] == "expired" and [p["status"] for p in shown["payments"]] == ["late"]
    assert shown["remaining_amount"] == "0.00000000"
