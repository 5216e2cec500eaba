"""The money engine at scale: accrual in place, settlement at chosen points, and the hard stop to the second.

Every scenario ends by recomputing every balance from what is stored (`recompute_balances`): the ledger's sum is
`balance + accrued_amount`, and `accrued_amount` is what the sessions charged beyond what they settled.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from billing.ledger import recompute_balances
from kernel.money import owed_for
from tests.conftest import MIN_CONFIRMATIONS, Gateway

ZAT = 100_000_000


async def _open(gw: Gateway, permission: dict[str, Any], vendor_id: str) -> dict[str, Any]:
    status, body = await gw.open_session(permission, vendor_id)
    assert status == 201, body
    return body


async def _sessions(gw: Gateway, permission_id: str) -> list[Any]:
    return await gw.db.fetch("SELECT * FROM sessions WHERE permission_id = $1 ORDER BY started_at", permission_id)


async def _permission(gw: Gateway, permission_id: str) -> Any:
    return await gw.db.fetchrow("SELECT * FROM permissions WHERE id = $1", permission_id)


def _owed(sessions: list[Any], at: datetime) -> int:
    return sum(owed_for(s["rate_per_hour"], int((at - s["started_at"]).total_seconds())) for s in sessions)


def _true_stop(sessions: list[Any], money: int, near: datetime) -> datetime:
    """The first whole second (of the database clock's epoch) at which the sessions owe `money` or more."""
    moment = near - timedelta(seconds=5)
    while _owed(sessions, moment) < money:
        moment += timedelta(seconds=1)
    return moment


async def _assert_recomputes(gw: Gateway) -> None:
    assert await recompute_balances(gw.db) == []


async def _stop_until_exhausted(gw: Gateway, permission_id: str, start: datetime) -> datetime:
    """Run the hard stop second by second from `start` (a controllable clock) until the permission is exhausted;
    returns the instant it stopped the sessions."""
    moment = start
    for _ in range(10):
        await gw.jobs.stop_due(at=moment)
        if (await _permission(gw, permission_id))["status"] == "exhausted":
            return moment
        moment += timedelta(seconds=1)
    raise AssertionError("the hard stop did not stop the permission")


async def test_one_session_stops_within_a_second_of_the_money_running_out(gw: Gateway) -> None:
    vendor = await gw.create_vendor()
    permission = await gw.funded_permission("1", "1")  # one hour of streaming
    await _open(gw, permission, vendor["vendor_id"])
    [session] = await _sessions(gw, permission["permission_id"])
    row = await _permission(gw, permission["permission_id"])
    assert row["stops_at"] is not None
    true_stop = _true_stop([session], ZAT, row["stops_at"])
    assert abs((row["stops_at"] - true_stop).total_seconds()) <= 1

    await gw.jobs.stop_due(at=row["stops_at"] - timedelta(seconds=2))  # not yet: nothing happens
    assert (await _permission(gw, permission["permission_id"]))["status"] == "active"
    stopped = await _stop_until_exhausted(gw, permission["permission_id"], row["stops_at"])
    assert timedelta(0) <= stopped - true_stop <= timedelta(seconds=1)  # overrun ≤ 1 s

    [session] = await _sessions(gw, permission["permission_id"])
    assert session["status"] == "exhausted" and session["charged_amount"] == ZAT  # exactly the balance
    assert session["uncovered_amount"] <= owed_for(ZAT, 1) + 1  # at most a second of streaming
    assert session["settled_amount"] == ZAT
    assert (await _permission(gw, permission["permission_id"]))["balance"] == 0
    await _assert_recomputes(gw)


async def test_several_sessions_stop_at_their_combined_rate(gw: Gateway) -> None:
    vendor = await gw.create_vendor()
    permission = await gw.funded_permission("3", "1")
    for _ in range(3):
        await _open(gw, permission, vendor["vendor_id"])
    sessions = await _sessions(gw, permission["permission_id"])
    row = await _permission(gw, permission["permission_id"])
    true_stop = _true_stop(sessions, 3 * ZAT, row["stops_at"])
    assert abs((row["stops_at"] - sessions[0]["started_at"]).total_seconds() - 3600) <= 2  # 3 ZEC at 3 ZEC/h
    stopped = await _stop_until_exhausted(gw, permission["permission_id"], row["stops_at"])
    assert timedelta(0) <= stopped - true_stop <= timedelta(seconds=1)
    sessions = await _sessions(gw, permission["permission_id"])
    assert {s["status"] for s in sessions} == {"exhausted"}
    assert sum(s["charged_amount"] for s in sessions) == 3 * ZAT
    await _assert_recomputes(gw)


async def test_concurrently_opened_sessions_all_count_in_the_stop_instant(gw: Gateway) -> None:
    vendor = await gw.create_vendor()
    permission = await gw.funded_permission("2", "1")
    await asyncio.gather(*(_open(gw, permission, vendor["vendor_id"]) for _ in range(4)))
    sessions = await _sessions(gw, permission["permission_id"])
    assert len(sessions) == 4
    row = await _permission(gw, permission["permission_id"])
    true_stop = _true_stop(sessions, 2 * ZAT, row["stops_at"])
    assert abs((row["stops_at"] - true_stop).total_seconds()) <= 1  # half an hour at 4 ZEC/h
    stopped = await _stop_until_exhausted(gw, permission["permission_id"], row["stops_at"])
    assert timedelta(0) <= stopped - true_stop <= timedelta(seconds=1)
    assert sum(s["charged_amount"] for s in await _sessions(gw, permission["permission_id"])) == 2 * ZAT
    await _assert_recomputes(gw)


async def test_a_top_up_while_streaming_moves_the_stop_instant(gw: Gateway) -> None:
    vendor = await gw.create_vendor()
    permission = await gw.funded_permission("1", "1")
    await _open(gw, permission, vendor["vendor_id"])
    before = (await _permission(gw, permission["permission_id"]))["stops_at"]
    [session] = await _sessions(gw, permission["permission_id"])
    await gw.jobs.billing_tick(at=session["started_at"] + timedelta(minutes=10))  # some accrued, unsettled
    await gw.pay(permission["payment_address"], "1")
    await gw.mine(MIN_CONFIRMATIONS)
    await gw.verify(permission)
    after = (await _permission(gw, permission["permission_id"]))["stops_at"]
    assert abs((after - before).total_seconds() - 3600) <= 1  # one more ZEC at 1 ZEC/h: an hour later
    # the top-up settled what had accrued first, so the ledger reads in order
    entries = await gw.db.fetch("SELECT kind, amount FROM ledger_entries WHERE permission_id = $1 ORDER BY id",
                                permission["permission_id"])
    assert [e["kind"] for e in entries] == ["funding", "charge", "funding"]
    assert await gw.db.fetchval("SELECT accrued_amount FROM permissions WHERE id = $1",
                                permission["permission_id"]) == 0
    await gw.jobs.stop_due(at=before + timedelta(seconds=5))  # the old instant passes: still streaming
    assert (await _permission(gw, permission["permission_id"]))["status"] == "active"
    await _assert_recomputes(gw)


async def test_expiry_stops_sessions_at_the_expiry_instant(gw: Gateway) -> None:
    vendor = await gw.create_vendor()
    permission = await gw.funded_permission("10", "1")
    await _open(gw, permission, vendor["vendor_id"])
    expires_at = await gw.db.fetchval(
        "UPDATE permissions SET expires_at = now() + interval '10 minutes' WHERE id = $1 RETURNING expires_at",
        permission["permission_id"])
    await gw.db.execute("UPDATE permissions SET stops_at = permission_stops_at(id) WHERE id = $1",
                        permission["permission_id"])
    assert (await _permission(gw, permission["permission_id"]))["stops_at"] == expires_at
    await gw.jobs.stop_due(at=expires_at)
    [session] = await _sessions(gw, permission["permission_id"])
    assert session["status"] == "ended" and session["ended_at"] == expires_at
    assert session["charged_amount"] == owed_for(ZAT, int((expires_at - session["started_at"]).total_seconds()))
    await _assert_recomputes(gw)


async def test_accrual_then_settlement_with_a_crash_between(gw: Gateway) -> None:
    """Ticks only accrue (no ledger rows); a crash after any of them leaves every balance recomputable; the
    session's end settles it in one entry; a long session is checkpointed at most hourly."""
    vendor = await gw.create_vendor()
    permission = await gw.funded_permission("10", "1")
    opened = await _open(gw, permission, vendor["vendor_id"])
    [session] = await _sessions(gw, permission["permission_id"])
    t0 = session["started_at"]
    for minute in range(1, 60):
        await gw.jobs.billing_tick(at=t0 + timedelta(minutes=minute))
    charges = await gw.db.fetchval("SELECT count(*) FROM ledger_entries WHERE kind = 'charge'")
    assert charges == 0  # an hour of ticks wrote no ledger row (accrued in place)
    row = await _permission(gw, permission["permission_id"])
    assert row["accrued_amount"] == owed_for(ZAT, 59 * 60) and row["balance"] == 10 * ZAT - row["accrued_amount"]
    await _assert_recomputes(gw)  # as after a crash right here: nothing to repair

    for minute in range(60, 130):  # past the hourly checkpoints
        await gw.jobs.billing_tick(at=t0 + timedelta(minutes=minute))
    checkpoints = await gw.db.fetchval("SELECT count(*) FROM ledger_entries WHERE kind = 'charge'")
    assert 1 <= checkpoints <= 2  # at most one per hour of streaming
    await _assert_recomputes(gw)

    status, ended = await gw.end_session(opened["session_code"])
    assert status == 200, ended
    [session] = await _sessions(gw, permission["permission_id"])
    assert session["settled_amount"] == session["charged_amount"]
    assert (await _permission(gw, permission["permission_id"]))["accrued_amount"] == 0
    await _assert_recomputes(gw)


async def test_two_replicas_ticking_and_stopping_at_once_change_nothing(gw: Gateway) -> None:
    vendor = await gw.create_vendor()
    permissions = [await gw.funded_permission("1", "1") for _ in range(3)]
    for permission in permissions:
        await _open(gw, permission, vendor["vendor_id"])
    t0 = await gw.db.fetchval("SELECT max(started_at) FROM sessions")
    stop = await gw.db.fetchval("SELECT max(stops_at) FROM permissions WHERE status = 'active'")
    moments = [t0 + timedelta(minutes=30), t0 + timedelta(minutes=30), stop, stop + timedelta(seconds=1),
               stop + timedelta(seconds=2)]
    await asyncio.gather(*(gw.jobs.billing_tick(at=m, batch_size=1) for m in moments),
                         *(gw.jobs.stop_due(at=m) for m in moments))
    await gw.jobs.stop_due(at=stop + timedelta(seconds=3))
    for permission in permissions:
        row = await _permission(gw, permission["permission_id"])
        assert row["status"] == "exhausted" and row["balance"] == 0 and row["accrued_amount"] == 0
        [session] = await _sessions(gw, permission["permission_id"])
        assert session["charged_amount"] == ZAT == session["settled_amount"]
    await _assert_recomputes(gw)
