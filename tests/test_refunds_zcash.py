"""Refunds of a Zcash permission's unused balance, against the stand-in in both personalities (zcashd; Zallet with
zebrad): sent once from the service account, minus the stated ZIP-317 fee, with the permission closed and its open
sessions ended and charged first; a crash or a timeout after the send is reconciled with the node and never sent
again; a stuck send is resolved by the operator. Every scenario ends with the ledger recomputed."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from billing.ledger import recompute_balances
from chains.zcash_address import ZcashNetwork, decode_address, encode_tex
from regtest.zcash_node import PERSONALITIES, start_zcash_regtest
from tests.conftest import ADMIN_KEY, MIN_CONFIRMATIONS, RPC_USER, Gateway, new_transparent_wallet, new_wallet

FEE = "0.00010000"  # the ZIP-317 conventional fee of a two-action transaction (a Sapling recipient)


@pytest.fixture(params=PERSONALITIES)
async def zgw(request: pytest.FixtureRequest, make_gateway: Callable[..., Any]) -> AsyncIterator[Gateway]:
    password = secrets.token_urlsafe(12)
    node = await start_zcash_regtest(rpcuser=RPC_USER, rpcpassword=password, personality=request.param)
    yield await make_gateway(node, password)
    await node.stop()


async def refund(gw: Gateway, permission: dict[str, Any], **body: Any) -> tuple[int, Any]:
    return await gw.call("POST", f"/api/v1/zcash/permissions/{permission['permission_id']}/refund",
                         token=permission["permission_token"], json=body or None)


async def refunded(gw: Gateway, permission: dict[str, Any], **body: Any) -> dict[str, Any]:
    status, answer = await refund(gw, permission, **body)
    assert status == 200, answer
    assert answer["status"] == "closed" and answer["remaining_amount"] == "0.00000000"
    return answer


async def received_by(gw: Gateway, address: str) -> Decimal:
    """What a transparent address holds once the mempool is mined (the node's address index)."""
    await gw.mine(1)
    balance = await gw.chain_rpc.call("getaddressbalance", {"addresses": [address]})
    return Decimal(balance["balance"]).scaleb(-8)


async def wallet_sends(gw: Gateway) -> list[dict[str, Any]]:
    """Every output the service wallet sent to someone else, in the mempool and the chain."""
    height = await gw.chain_rpc.call("getblockcount")
    txids = list(await gw.chain_rpc.call("getrawmempool"))
    for block in range(1, height + 1):
        txids += (await gw.chain_rpc.call("getblock", str(block), 1))["tx"]
    sent = []
    for txid in txids:
        try:
            view = await gw.wallet_rpc.call("z_viewtransaction", txid)
        except Exception:  # not a wallet transaction
            continue
        sent += [{**output, "txid": txid} for output in view["outputs"] if output["outgoing"]]
    return sent


async def ledger_kinds(gw: Gateway, permission: dict[str, Any]) -> list[tuple[str, Decimal]]:
    rows = await gw.db.fetch("SELECT kind, amount FROM ledger_entries WHERE permission_id = $1 ORDER BY id",
                             permission["permission_id"])
    return [(row["kind"], Decimal(row["amount"]).scaleb(-8)) for row in rows]


async def test_refund_sends_the_unused_balance_minus_the_fee_once(zgw: Gateway) -> None:
    permission = await zgw.funded_permission("10", "2.5")
    answer = await refunded(zgw, permission)
    refund_view = answer["refund"]
    assert refund_view["status"] == "sent" and refund_view["method"] == "gateway_send"
    assert (refund_view["refund_amount"], refund_view["network_fee"], refund_view["amount"]) == (
        "10.00000000", FEE, "9.99990000")
    assert refund_view["destination"] == permission["user_wallet_address"]
    assert refund_view["memo"] == f"PayGo refund of permission {permission['permission_id']}"
    assert refund_view["txid"] and refund_view["attempts"] == 1
    [sent] = await wallet_sends(zgw)
    assert (sent["txid"], sent["address"], sent["valueZat"]) == (refund_view["txid"], permission["user_wallet_address"],
                                                                 999_990_000)
    assert sent["memoStr"] == refund_view["memo"]
    status, shown = await zgw.call("GET", f"/api/v1/zcash/permissions/{permission['permission_id']}",
                                   token=permission["permission_token"])
    assert status == 200 and shown["status"] == "closed" and shown["refund"]["txid"] == refund_view["txid"]
    assert shown["payment_uri"] is None  # a closed permission takes no payment
    again = await refunded(zgw, permission)  # the same refund, not a second one
    assert again["refund"] == refund_view
    await zgw.jobs.refund()
    assert len(await wallet_sends(zgw)) == 1
    assert await ledger_kinds(zgw, permission) == [("funding", Decimal(10)), ("refund", Decimal(-10))]
    status, opened = await zgw.open_session(permission, (await zgw.create_vendor())["vendor_id"])
    assert status == 402 and opened["error"]["code"] == "permission_not_active"
    assert await recompute_balances(zgw.db) == []


async def test_a_crash_after_the_send_is_reconciled_and_not_sent_again(zgw: Gateway) -> None:
    wallet = new_transparent_wallet()
    permission = await zgw.funded_permission("4", "1", wallet=wallet)
    await zgw.wallet_rpc.call("regtest_failnextsend", "crash_after_send")
    answer = await refunded(zgw, permission)
    assert answer["refund"]["status"] == "unknown" and answer["refund"]["txid"] is None, answer["refund"]["last_error"]
    assert "may or may not have been executed" in answer["refund"]["last_error"]
    summary = await zgw.jobs.refund()  # the node lost its operations: the wallet's transactions tell
    assert summary.sent == [UUID(answer["refund"]["payout_id"])]
    _, shown = await zgw.call("GET", f"/api/v1/zcash/permissions/{permission['permission_id']}",
                                   api_key=ADMIN_KEY)
    assert shown["refund"]["status"] == "sent" and shown["refund"]["attempts"] == 1 and shown["refund"]["txid"]
    await zgw.jobs.refund()
    assert await received_by(zgw, wallet) == Decimal("3.99985")  # exactly once
    assert await recompute_balances(zgw.db) == []


async def test_a_node_timeout_during_the_send_is_reconciled_from_its_operations(zgw: Gateway) -> None:
    wallet = new_transparent_wallet()
    permission = await zgw.funded_permission("3", "1", wallet=wallet)
    await zgw.wallet_rpc.call("regtest_failnextsend", "timeout")
    answer = await refunded(zgw, permission)  # the gateway waits ZCASH_RPC_TIMEOUT_SECONDS, then stops waiting
    assert answer["refund"]["status"] == "unknown"
    await zgw.jobs.refund()
    _, shown = await zgw.call("GET", f"/api/v1/zcash/permissions/{permission['permission_id']}",
                                   token=permission["permission_token"])
    assert shown["refund"]["status"] == "sent" and shown["refund"]["operation_id"].startswith("opid-")
    await zgw.jobs.refund()
    assert await received_by(zgw, wallet) == Decimal("2.99985")
    assert await recompute_balances(zgw.db) == []


async def test_a_stuck_send_is_shown_to_the_operator_who_resolves_it(gw: Gateway) -> None:
    wallet = new_transparent_wallet()
    permission = await gw.funded_permission("2", "1", wallet=wallet)
    await gw.wallet_rpc.call("regtest_failnextsend", "hang")
    answer = await refunded(gw, permission)
    payout_id = answer["refund"]["payout_id"]
    assert answer["refund"]["status"] == "submitted" and answer["refund"]["operation_id"]
    await gw.jobs.refund()  # the operation still runs: nothing is sent again
    status, listed = await gw.call("GET", "/api/v1/admin/payouts?status=submitted,unknown", api_key=ADMIN_KEY)
    assert status == 200 and [p["payout_id"] for p in listed["payouts"]] == [payout_id]
    status, body = await gw.call("POST", f"/api/v1/admin/payouts/{payout_id}/resolve", api_key=ADMIN_KEY,
                                 json={"outcome": "sent"})
    assert (status, body["error"]["code"]) == (422, "invalid_txid")
    status, resolved = await gw.call("POST", f"/api/v1/admin/payouts/{payout_id}/resolve", api_key=ADMIN_KEY,
                                     json={"outcome": "not_sent", "note": "the node was restarted; nothing sent"})
    assert status == 200 and resolved["status"] == "pending" and resolved["resolved_note"].startswith("the node")
    await gw.jobs.refund()
    status, shown = await gw.call("GET", f"/api/v1/zcash/permissions/{permission['permission_id']}",
                                  api_key=ADMIN_KEY)
    assert shown["refund"]["status"] == "sent" and shown["refund"]["attempts"] == 2
    status, body = await gw.call("POST", f"/api/v1/admin/payouts/{payout_id}/resolve", api_key=ADMIN_KEY,
                                 json={"outcome": "not_sent"})
    assert (status, body["error"]["code"]) == (409, "payout_not_unresolved")
    assert await received_by(gw, wallet) == Decimal("1.99985")
    assert await recompute_balances(gw.db) == []


async def test_refund_ends_and_charges_a_running_session_first(gw: Gateway) -> None:
    vendor = await gw.create_vendor()
    permission = await gw.funded_permission("10", "2.5")
    status, opened = await gw.open_session(permission, vendor["vendor_id"])
    assert status == 201, opened
    await gw.backdate_session(opened["session_id"], 3600)
    await gw.jobs.billing_tick()  # accrued in place, not settled yet
    answer = await refunded(gw, permission)
    assert answer["refund"]["refund_amount"] == "7.50000000" and answer["refund"]["amount"] == "7.49990000"
    assert answer["charged_amount"] == "2.50000000"
    status, session = await gw.call("GET", f"/api/v1/sessions/{opened['session_code']}",
                                    token=permission["permission_token"])
    assert session["status"] == "ended" and session["charged_amount"] == "2.50000000"
    assert await ledger_kinds(gw, permission) == [("funding", Decimal(10)), ("charge", Decimal("-2.5")),
                                                  ("refund", Decimal("-7.5"))]
    status, ended = await gw.end_session(opened["session_code"])  # the client's own end changes nothing
    assert status == 200 and ended["amount"] == "2.50000000"
    assert await recompute_balances(gw.db) == []


async def test_an_exhausted_permission_is_closed_with_nothing_to_send(gw: Gateway) -> None:
    vendor = await gw.create_vendor()
    permission = await gw.funded_permission("5", "2.5")
    _, opened = await gw.open_session(permission, vendor["vendor_id"])
    await gw.backdate_session(opened["session_id"], 3 * 3600)
    await gw.jobs.billing_tick()
    _, shown = await gw.call("GET", f"/api/v1/zcash/permissions/{permission['permission_id']}",
                                  token=permission["permission_token"])
    assert shown["status"] == "exhausted"
    answer = await refunded(gw, permission)
    assert answer["refund"]["status"] == "not_needed" and answer["refund"]["amount"] == "0.00000000"
    assert answer["refund"]["txid"] is None and answer["refund"]["attempts"] == 0
    await gw.jobs.refund()
    assert await wallet_sends(gw) == []
    assert await recompute_balances(gw.db) == []


async def test_a_balance_below_the_fee_is_not_sent(gw: Gateway) -> None:
    permission = await gw.funded_permission("0.00005", "0.00001")
    answer = await refunded(gw, permission)
    assert answer["refund"]["status"] == "not_needed"
    assert (answer["refund"]["refund_amount"], answer["refund"]["network_fee"]) == ("0.00005000", "0.00005000")
    assert await ledger_kinds(gw, permission) == [("funding", Decimal("0.00005")), ("adjustment", Decimal("-0.00005"))]
    assert await wallet_sends(gw) == []
    assert await recompute_balances(gw.db) == []


async def test_refund_address_rules(gw: Gateway) -> None:
    elsewhere = new_wallet()
    permission = await gw.funded_permission("1", "1")
    tex = encode_tex(ZcashNetwork.REGTEST, secrets.token_bytes(20))
    status, body = await refund(gw, permission, refund_address=tex)
    assert (status, body["error"]["code"]) == (422, "invalid_refund_address")
    status, body = await refund(gw, permission, refund_address="t1notanaddress")
    assert (status, body["error"]["code"]) == (422, "invalid_address")
    answer = await refunded(gw, permission, refund_address=elsewhere)
    assert answer["refund"]["destination"] == elsewhere and answer["refund"]["status"] == "sent"
    tex_wallet = await gw.create_permission("1", "1", wallet=tex)
    status, body = await refund(gw, tex_wallet)
    assert (status, body["error"]["code"]) == (422, "refund_address_required")
    assert await recompute_balances(gw.db) == []


async def test_who_may_refund_and_when(gw: Gateway) -> None:
    permission = await gw.funded_permission("1", "1")
    other = await gw.funded_permission("1", "1")
    status, body = await gw.call("POST", f"/api/v1/zcash/permissions/{permission['permission_id']}/refund",
                                 token=other["permission_token"])
    assert (status, body["error"]["code"]) == (403, "forbidden")
    status, body = await gw.call("POST", f"/api/v1/ethereum/permissions/{permission['permission_id']}/refund",
                                 token=permission["permission_token"])
    assert status in (404, 503)  # ethereum is not configured on this gateway
    pending = await gw.create_permission("2", "1")
    await gw.pay(pending["payment_address"], "1")
    status, body = await refund(gw, pending)
    assert (status, body["error"]["code"]) == (409, "payment_confirming")
    await gw.mine(MIN_CONFIRMATIONS)
    await gw.verify(pending)  # 1 of 2 ZEC credited, still pending: what was credited is refunded
    status, answer = await gw.call("POST", f"/api/v1/zcash/permissions/{pending['permission_id']}/refund",
                                   api_key=ADMIN_KEY)
    assert status == 200 and answer["refund"]["refund_amount"] == "1.00000000" and answer["status"] == "closed"
    assert await recompute_balances(gw.db) == []


async def test_a_memo_naming_another_permission_is_shown_and_the_address_decides(gw: Gateway) -> None:
    first, second = await gw.create_permission("1", "1"), await gw.create_permission("1", "1")
    assert decode_address(first["payment_address"]).kind == "unified"
    await gw.pay(first["payment_address"], "1", memo=f"PayGo permission {second['permission_id']}")
    await gw.mine(MIN_CONFIRMATIONS)
    verified = await gw.verify(first)
    assert verified["status"] == "active"
    [payment] = verified["payments"]
    assert payment["memo"] == f"PayGo permission {second['permission_id']}"
    assert payment["memo_permission_id"] == second["permission_id"]
    assert (await gw.verify(second))["status"] == "pending_payment"
    assert await recompute_balances(gw.db) == []


async def test_transparent_receivers_respect_zallets_gap_limit(make_gateway: Callable[..., Any]) -> None:
    password = secrets.token_urlsafe(12)
    node = await start_zcash_regtest(rpcuser=RPC_USER, rpcpassword=password, personality="zallet")
    try:
        gw = await make_gateway(node, password, ZCASH_TRANSPARENT_RECEIVERS="true")
        kinds = []
        for _ in range(11):
            created = await gw.create_permission("1", "1")
            kinds.append(sorted(decode_address(created["payment_address"]).receivers))
        assert kinds[:10] == [["p2pkh", "sapling"]] * 10  # Zallet's gap window: ten unused in a row
        assert kinds[10] == ["sapling"]  # the window is full: shielded-only, not a refusal
        paid = await gw.create_permission("1", "1")
        assert sorted(decode_address(paid["payment_address"]).receivers) == ["sapling"]
        first_transparent = decode_address(await gw.db.fetchval(
            "SELECT payment_address FROM permissions ORDER BY created_at LIMIT 1")).transparent_receiver()
        assert first_transparent is not None
        await gw.pay(first_transparent, "1")  # a wallet that can only send transparent pays its t-address
        await gw.mine(MIN_CONFIRMATIONS)
        again = await gw.create_permission("1", "1")
        assert sorted(decode_address(again["payment_address"]).receivers) == ["p2pkh", "sapling"]
    finally:
        await node.stop()
