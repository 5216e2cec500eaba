"""Funding Ethereum permissions on anvil: ETH and token payments end to end through a session and its charge, and
every payment that must not count (wrong sender or recipient, reverted, too shallow, reused, reorged out, not
finalized), exact 18-decimal amounts, balances, and a node that goes away and comes back."""

from __future__ import annotations

from typing import Any

from eth_account import Account

from billing.ledger import recompute_balances
from tests.ethereum_fixtures import ETH_MIN_CONFIRMATIONS, ONE_ETH, TOKEN_SYMBOL, Anvil, EthGateway


async def verified(eth_gw: EthGateway, permission: dict[str, Any], *tx_hashes: str) -> dict[str, Any]:
    status, body = await eth_gw.verify(permission, *tx_hashes)
    assert status == 200, body
    return body


async def test_eth_funding_end_to_end_through_a_session(eth_gw: EthGateway) -> None:
    wallet = await eth_gw.anvil.new_account()
    vendor = await eth_gw.gw.create_vendor("streamer")
    permission = await eth_gw.create(wallet, "1", "0.5")
    assert permission["status"] == "pending_payment" and permission["payment_address"] == eth_gw.service_address

    tx_hash = await eth_gw.pay_eth(wallet, ONE_ETH)
    seen = await verified(eth_gw, permission, tx_hash)
    assert seen["status"] == "pending_payment" and seen["confirmations_seen"] == 1
    assert seen["amount_received"] == "1.000000000000000000" and seen["payments"][0]["output_index"] == -1
    await eth_gw.anvil.mine(ETH_MIN_CONFIRMATIONS - 1)
    active = await verified(eth_gw, permission)  # the known payment is re-checked without naming it again
    assert active["status"] == "active" and active["remaining_amount"] == "1.000000000000000000"

    status, opened = await eth_gw.gw.open_session(permission, vendor["vendor_id"])
    assert status == 201, opened
    await eth_gw.gw.backdate_session(opened["session_id"], 3600)
    status, ended = await eth_gw.gw.end_session(opened["session_code"])
    assert status == 200 and ended["amount"] == "0.500000000000000000" and ended["asset"] == "ETH"
    status, after = await eth_gw.gw.call("GET", f"/api/v1/ethereum/permissions/{permission['permission_id']}",
                                         token=permission["permission_token"])
    assert after["remaining_amount"] == "0.500000000000000000" and after["used_hours"] == "1.000000"
    status, by_wallet = await eth_gw.gw.call(
        "GET", f"/api/v1/ethereum/permissions/wallet/{wallet.address.lower()}", token=permission["permission_token"])
    assert status == 200 and by_wallet["id"] == permission["permission_id"]
    assert await recompute_balances(eth_gw.gw.db) == []


async def test_token_funding_end_to_end_with_payments_adding_up(eth_gw: EthGateway) -> None:
    wallet = await eth_gw.anvil.new_account()
    vendor = await eth_gw.gw.create_vendor("streamer")
    await eth_gw.token.mint(wallet.address, 100_000_000)
    permission = await eth_gw.create(wallet, "10", "2.5", asset=TOKEN_SYMBOL)
    assert permission["asset"] == TOKEN_SYMBOL and permission["amount_to_pay"] == "10.000000"

    first = await eth_gw.token.transfer(wallet.address, eth_gw.service_address, 4_000_000)
    second = await eth_gw.token.transfer(wallet.address, eth_gw.service_address, 7_000_000)
    await eth_gw.anvil.mine(ETH_MIN_CONFIRMATIONS)
    active = await verified(eth_gw, permission, first, second)
    assert active["status"] == "active"
    assert active["remaining_amount"] == "11.000000" and active["amount_confirmed"] == "11.000000"  # over-payment
    assert {p["output_index"] for p in active["payments"]} == {0}

    status, opened = await eth_gw.gw.open_session(permission, vendor["vendor_id"])
    await eth_gw.gw.backdate_session(opened["session_id"], 1800)
    status, ended = await eth_gw.gw.end_session(opened["session_code"])
    assert status == 200 and ended["amount"] == "1.250000" and ended["asset"] == TOKEN_SYMBOL
    assert await recompute_balances(eth_gw.gw.db) == []


async def test_payments_from_another_sender_or_to_another_recipient_do_not_count(eth_gw: EthGateway) -> None:
    wallet, stranger = await eth_gw.anvil.new_account(), await eth_gw.anvil.new_account()
    await eth_gw.token.mint(stranger.address, 10_000_000)
    await eth_gw.token.mint(wallet.address, 10_000_000)
    eth_permission = await eth_gw.create(wallet, "1", "0.5")
    token_permission = await eth_gw.create(wallet, "1", "0.5", asset=TOKEN_SYMBOL)
    elsewhere = Account.create().address
    wrong = [
        await eth_gw.pay_eth(stranger, ONE_ETH),
        await eth_gw.anvil.send(wallet.address, elsewhere, value=ONE_ETH),
        await eth_gw.token.transfer(stranger.address, eth_gw.service_address, 1_000_000),
        await eth_gw.token.transfer(wallet.address, elsewhere, 1_000_000),
    ]
    await eth_gw.anvil.mine(ETH_MIN_CONFIRMATIONS)
    for permission in (eth_permission, token_permission):
        body = await verified(eth_gw, permission, *wrong)
        assert body["status"] == "pending_payment" and body["payments"] == []
    # ETH sent to a token permission is not a token payment either
    ether = await eth_gw.pay_eth(wallet, ONE_ETH)
    await eth_gw.anvil.mine(ETH_MIN_CONFIRMATIONS)
    assert (await verified(eth_gw, token_permission, ether))["payments"] == []


async def test_a_reverted_transaction_pays_nothing(eth_gw: EthGateway) -> None:
    wallet = await eth_gw.anvil.new_account()
    permission = await eth_gw.create(wallet, "1", "0.5", asset=TOKEN_SYMBOL)
    # the wallet holds no tokens: the transfer reverts, but is mined (status 0) since gas is given
    reverted = await eth_gw.token.transfer(wallet.address, eth_gw.service_address, 1_000_000, gas=100_000)
    assert (await eth_gw.anvil.receipt(reverted))["status"] == 0
    await eth_gw.anvil.mine(ETH_MIN_CONFIRMATIONS)
    body = await verified(eth_gw, permission, reverted)
    assert body["status"] == "pending_payment" and body["payments"] == []


async def test_too_few_confirmations_wait(eth_gw: EthGateway) -> None:
    wallet = await eth_gw.anvil.new_account()
    permission = await eth_gw.create(wallet, "1", "0.5")
    tx_hash = await eth_gw.pay_eth(wallet, ONE_ETH)
    await eth_gw.anvil.mine(ETH_MIN_CONFIRMATIONS - 2)
    body = await verified(eth_gw, permission, tx_hash)
    assert body["status"] == "pending_payment" and body["confirmations_seen"] == ETH_MIN_CONFIRMATIONS - 1
    assert body["amount_confirmed"] == "0.000000000000000000" and body["payments"][0]["status"] == "seen"
    await eth_gw.anvil.mine(1)
    assert (await verified(eth_gw, permission))["status"] == "active"


async def test_one_transaction_funds_one_permission_only(eth_gw: EthGateway) -> None:
    wallet = await eth_gw.anvil.new_account()
    first, second = await eth_gw.create(wallet, "1", "0.5"), await eth_gw.create(wallet, "1", "0.5")
    tx_hash = await eth_gw.pay_eth(wallet, ONE_ETH)
    await eth_gw.anvil.mine(ETH_MIN_CONFIRMATIONS)
    assert (await verified(eth_gw, first, tx_hash))["status"] == "active"
    status, body = await eth_gw.verify(second, tx_hash.upper().replace("0X", "0x"))
    assert (status, body["error"]["code"]) == (409, "payment_already_used")
    assert await eth_gw.gw.db.fetchval("SELECT count(*) FROM payments") == 1


async def test_a_reorg_that_drops_the_payment_before_activation(eth_gw: EthGateway) -> None:
    wallet = await eth_gw.anvil.new_account()
    permission = await eth_gw.create(wallet, "1", "0.5")
    snapshot = await eth_gw.anvil.rpc("evm_snapshot")
    tx_hash = await eth_gw.pay_eth(wallet, ONE_ETH)
    seen = await verified(eth_gw, permission, tx_hash)
    assert seen["payments"][0]["status"] == "seen"
    assert await eth_gw.anvil.rpc("evm_revert", snapshot)
    await eth_gw.anvil.mine(ETH_MIN_CONFIRMATIONS + 1)  # another chain, longer than the one that held the payment
    dropped = await verified(eth_gw, permission)
    assert dropped["status"] == "pending_payment"
    assert dropped["payments"][0]["status"] == "orphaned" and dropped["amount_received"] == "0.000000000000000000"


async def test_finalized_mode_waits_for_the_finalized_block(make_eth_gateway) -> None:  # type: ignore[no-untyped-def]
    eth_gw: EthGateway = await make_eth_gateway(ETH_REQUIRE_FINALIZED="true")
    wallet = await eth_gw.anvil.new_account()
    permission = await eth_gw.create(wallet, "1", "0.5")
    tx_hash = await eth_gw.pay_eth(wallet, ONE_ETH)
    await eth_gw.anvil.mine(ETH_MIN_CONFIRMATIONS + 5)  # deep enough by count, not yet finalized
    receipt = await eth_gw.anvil.receipt(tx_hash)
    assert (await eth_gw.anvil.w3.eth.get_block("finalized"))["number"] < receipt["blockNumber"]
    waiting = await verified(eth_gw, permission, tx_hash)
    assert waiting["status"] == "pending_payment" and waiting["payments"][0]["status"] == "seen"
    await eth_gw.anvil.mine(64)  # anvil finalizes 64 blocks behind the tip
    assert (await eth_gw.anvil.w3.eth.get_block("finalized"))["number"] >= receipt["blockNumber"]
    assert (await verified(eth_gw, permission))["status"] == "active"


async def test_one_wei_and_amounts_above_two_to_the_64_wei_are_exact(eth_gw: EthGateway) -> None:
    wallet = await eth_gw.anvil.new_account(100 * ONE_ETH)
    tiny = await eth_gw.create(wallet, "0.000000000000000001", "0.000000000000000001")
    assert tiny["amount_to_pay"] == "0.000000000000000001" and tiny["max_streaming_hours"] == "1.000000"
    big_amount = 2**64 + 1  # 18.446744073709551617 ETH
    big = await eth_gw.create(wallet, "18.446744073709551617", "0.000000000000000003")
    assert big["amount_to_pay"] == "18.446744073709551617"
    paid_tiny = await eth_gw.pay_eth(wallet, 1)
    paid_big = await eth_gw.pay_eth(wallet, big_amount)
    await eth_gw.anvil.mine(ETH_MIN_CONFIRMATIONS)
    tiny_state = await verified(eth_gw, tiny, paid_tiny)
    assert tiny_state["status"] == "active" and tiny_state["remaining_amount"] == "0.000000000000000001"
    big_state = await verified(eth_gw, big, paid_big)
    assert big_state["status"] == "active" and big_state["remaining_amount"] == "18.446744073709551617"
    assert await eth_gw.gw.db.fetchval("SELECT balance FROM permissions WHERE id = $1", big["permission_id"]) \
        == big_amount
    status, balance = await eth_gw.gw.call("GET", f"/api/v1/ethereum/balance/{eth_gw.service_address}"
                                                  "?rate_per_hour=1")
    assert status == 200 and balance["total_balance"] == "18.446744073709551618"
    assert balance["can_stream"] is True and balance["estimated_hours"] == "18.446744"


async def test_token_balance_in_the_token_decimals(eth_gw: EthGateway) -> None:
    wallet = await eth_gw.anvil.new_account()
    await eth_gw.token.mint(wallet.address, 1_234_567)
    status, balance = await eth_gw.gw.call(
        "GET", f"/api/v1/ethereum/balance/{wallet.address.lower()}?asset={TOKEN_SYMBOL}&rate_per_hour=2")
    assert status == 200, balance
    assert balance["wallet_address"] == wallet.address and balance["asset"] == TOKEN_SYMBOL
    assert balance["total_balance"] == "1.234567" and balance["can_stream"] is False
    assert balance["estimated_hours"] == "0.617283"


async def test_node_stopped_answers_503_and_recovers(make_eth_gateway) -> None:  # type: ignore[no-untyped-def]
    own_node = await Anvil.start()
    try:
        eth_gw: EthGateway = await make_eth_gateway(ETH_RPC_URL=own_node.url)
        wallet = Account.create()
        path = f"/api/v1/ethereum/balance/{wallet.address}"
        assert (await eth_gw.gw.call("GET", path))[0] == 200
        permission = await eth_gw.create(wallet, "1", "0.5")
        await own_node.stop()
        response = await eth_gw.gw.client.get(path)
        assert response.status == 503 and int(response.headers["Retry-After"]) > 0
        assert (await response.json())["error"]["code"] == "ethereum_node_unavailable"
        status, body = await eth_gw.verify(permission, "0x" + "ab" * 32)
        assert (status, body["error"]["code"]) == (503, "ethereum_node_unavailable")
        own_node = await Anvil.start(own_node.port)
        status, balance = await eth_gw.gw.call("GET", path)
        assert status == 200 and balance["total_balance"] == "0.000000000000000000"
        assert (await eth_gw.verify(permission, "0x" + "ab" * 32))[0] == 200
    finally:
        await own_node.stop()


async def test_the_watcher_finds_eth_and_token_payments_nobody_named(eth_gw: EthGateway) -> None:
    wallet = await eth_gw.anvil.new_account()
    await eth_gw.token.mint(wallet.address, 50_000_000)
    in_eth = await eth_gw.create(wallet, "1", "0.5")
    in_token = await eth_gw.create(wallet, "5", "1", asset=TOKEN_SYMBOL)
    stranger = await eth_gw.anvil.new_account()
    await eth_gw.pay_eth(stranger, ONE_ETH)  # to the service address, but from another wallet: not ours
    await eth_gw.pay_eth(wallet, ONE_ETH)
    await eth_gw.token.transfer(wallet.address, eth_gw.service_address, 5_000_000)
    await eth_gw.anvil.mine(ETH_MIN_CONFIRMATIONS)
    summary = await eth_gw.gw.jobs.watch_payments()
    assert {str(pid) for pid in summary.activated} >= {in_eth["permission_id"], in_token["permission_id"]}
    for permission, remaining in ((in_eth, "1.000000000000000000"), (in_token, "5.000000")):
        _status, shown = await eth_gw.gw.call("GET", f"/api/v1/ethereum/permissions/{permission['permission_id']}",
                                             token=permission["permission_token"])
        assert shown["status"] == "active" and shown["remaining_amount"] == remaining
    assert await recompute_balances(eth_gw.gw.db) == []
