"""Refunds of Ethereum permissions on anvil, without a key in the gateway: a refund is a payout order the operator
pays from the service address with their own tools; the payout watcher recognises the transaction (from the service
address, to the wallet, exact amount, the token's contract, confirmations) and marks it paid. A wrong amount is not
matched; one transaction pays one payout only."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eth_account.signers.local import LocalAccount

from billing.ledger import recompute_balances
from tests.conftest import ADMIN_KEY
from tests.ethereum_fixtures import ETH_MIN_CONFIRMATIONS, ONE_ETH, TOKEN_SYMBOL, EthGateway


async def funded(eth_gw: EthGateway, wallet: LocalAccount, amount: str = "1", rate: str = "0.5",
                 **query: Any) -> dict[str, Any]:
    permission = await eth_gw.create(wallet, amount, rate, **query)
    units = int(amount) * (ONE_ETH if "asset" not in query else 10**6)
    if "asset" in query:
        tx_hash = await eth_gw.token.transfer(wallet.address, eth_gw.service_address, units)
    else:
        tx_hash = await eth_gw.pay_eth(wallet, units)
    await eth_gw.anvil.mine(ETH_MIN_CONFIRMATIONS)
    status, verified = await eth_gw.verify(permission, tx_hash)
    assert status == 200 and verified["status"] == "active", verified
    return permission


async def refund(eth_gw: EthGateway, permission: dict[str, Any], **body: Any) -> tuple[int, Any]:
    return await eth_gw.gw.call("POST", f"/api/v1/ethereum/permissions/{permission['permission_id']}/refund",
                                token=permission["permission_token"], json=body or None)


async def ordered(eth_gw: EthGateway, permission: dict[str, Any]) -> dict[str, Any]:
    status, answer = await refund(eth_gw, permission)
    assert status == 200, answer
    assert answer["status"] == "closed" and answer["refund"]["method"] == "operator_payout"
    assert answer["refund"]["status"] == "pending" and answer["refund"]["network_fee"].strip("0.") == ""
    return answer["refund"]


async def payout(eth_gw: EthGateway, payout_id: str) -> dict[str, Any]:
    status, listed = await eth_gw.gw.call("GET", "/api/v1/admin/payouts?funding_source=ethereum", api_key=ADMIN_KEY)
    assert status == 200, listed
    return next(p for p in listed["payouts"] if p["payout_id"] == payout_id)


async def operator_pays(eth_gw: EthGateway, to: str, wei: int) -> str:
    """The operator sends from the service address with their own wallet (anvil impersonates it here)."""
    await eth_gw.anvil.rpc("anvil_setBalance", eth_gw.service_address, hex(10 * ONE_ETH))
    return await eth_gw.anvil.send(eth_gw.service_address, to, value=wei)


async def test_an_eth_payout_paid_by_the_operator_is_recognised(eth_gw: EthGateway) -> None:
    wallet = await eth_gw.anvil.new_account()
    vendor = await eth_gw.gw.create_vendor()
    permission = await funded(eth_gw, wallet)
    _, opened = await eth_gw.gw.open_session(permission, vendor["vendor_id"])
    await eth_gw.gw.backdate_session(opened["session_id"], 3600)
    order = await ordered(eth_gw, permission)  # the running session is ended and charged first
    assert (order["refund_amount"], order["amount"], order["destination"]) == (
        "0.500000000000000000", "0.500000000000000000", wallet.address)
    listed = await payout(eth_gw, order["payout_id"])
    assert listed["status"] == "pending" and listed["permission_id"] == permission["permission_id"]

    tx_hash = await operator_pays(eth_gw, wallet.address, ONE_ETH // 2)
    summary = await eth_gw.gw.jobs.watch_payouts()
    assert summary.paid == []  # one confirmation of three
    await eth_gw.anvil.mine(ETH_MIN_CONFIRMATIONS - 1)
    summary = await eth_gw.gw.jobs.watch_payouts()
    assert summary.paid == [UUID(order["payout_id"])]
    _, shown = await eth_gw.gw.call("GET", f"/api/v1/ethereum/permissions/{permission['permission_id']}",
                                         token=permission["permission_token"])
    assert shown["refund"]["status"] == "paid" and shown["refund"]["txid"] == tx_hash
    assert (await eth_gw.gw.jobs.watch_payouts()).paid == []
    assert await recompute_balances(eth_gw.gw.db) == []


async def test_a_wrong_amount_is_not_matched(eth_gw: EthGateway) -> None:
    wallet = await eth_gw.anvil.new_account()
    permission = await funded(eth_gw, wallet)
    order = await ordered(eth_gw, permission)
    short = await operator_pays(eth_gw, wallet.address, ONE_ETH - 1)
    elsewhere = await operator_pays(eth_gw, (await eth_gw.anvil.new_account()).address, ONE_ETH)
    await eth_gw.anvil.mine(ETH_MIN_CONFIRMATIONS)
    assert (await eth_gw.gw.jobs.watch_payouts()).paid == []
    for tx_hash in (short, elsewhere):
        status, body = await eth_gw.gw.call("POST", f"/api/v1/admin/payouts/{order['payout_id']}/verify",
                                            api_key=ADMIN_KEY, json={"tx_hash": tx_hash})
        assert (status, body["error"]["code"]) == (422, "payout_tx_mismatch")
    exact = await operator_pays(eth_gw, wallet.address, ONE_ETH)
    status, body = await eth_gw.gw.call("POST", f"/api/v1/admin/payouts/{order['payout_id']}/verify",
                                        api_key=ADMIN_KEY, json={"tx_hash": exact})
    assert (status, body["error"]["code"]) == (409, "payout_tx_unconfirmed")
    await eth_gw.anvil.mine(ETH_MIN_CONFIRMATIONS)
    status, paid = await eth_gw.gw.call("POST", f"/api/v1/admin/payouts/{order['payout_id']}/verify",
                                        api_key=ADMIN_KEY, json={"tx_hash": exact})
    assert status == 200 and paid["status"] == "paid" and paid["txid"] == exact
    assert await recompute_balances(eth_gw.gw.db) == []


async def test_one_transaction_pays_one_payout_only(eth_gw: EthGateway) -> None:
    wallet = await eth_gw.anvil.new_account()
    first, second = await funded(eth_gw, wallet), await funded(eth_gw, wallet)
    first_order, second_order = await ordered(eth_gw, first), await ordered(eth_gw, second)
    assert first_order["amount"] == second_order["amount"] == "1.000000000000000000"
    tx_hash = await operator_pays(eth_gw, wallet.address, ONE_ETH)
    await eth_gw.anvil.mine(ETH_MIN_CONFIRMATIONS)
    assert (await eth_gw.gw.jobs.watch_payouts()).paid == [UUID(first_order["payout_id"])]  # the older order
    status, body = await eth_gw.gw.call("POST", f"/api/v1/admin/payouts/{second_order['payout_id']}/verify",
                                        api_key=ADMIN_KEY, json={"tx_hash": tx_hash})
    assert (status, body["error"]["code"]) == (409, "payout_tx_already_used")
    assert (await payout(eth_gw, second_order["payout_id"]))["status"] == "pending"
    status, body = await eth_gw.gw.call("POST", f"/api/v1/admin/payouts/{first_order['payout_id']}/verify",
                                        api_key=ADMIN_KEY, json={"tx_hash": tx_hash})
    assert (status, body["error"]["code"]) == (409, "payout_not_pending")
    again = await operator_pays(eth_gw, wallet.address, ONE_ETH)
    await eth_gw.anvil.mine(ETH_MIN_CONFIRMATIONS)
    assert (await eth_gw.gw.jobs.watch_payouts()).paid == [UUID(second_order["payout_id"])]
    assert (await payout(eth_gw, second_order["payout_id"]))["txid"] == again
    assert await recompute_balances(eth_gw.gw.db) == []


async def test_a_token_payout_is_recognised_by_its_transfer_log(eth_gw: EthGateway) -> None:
    wallet = await eth_gw.anvil.new_account()
    await eth_gw.token.mint(wallet.address, 10_000_000)
    permission = await funded(eth_gw, wallet, "5", "1", asset=TOKEN_SYMBOL)
    order = await ordered(eth_gw, permission)
    assert order["asset"] == TOKEN_SYMBOL and order["amount"] == "5.000000"
    await eth_gw.anvil.rpc("anvil_setBalance", eth_gw.service_address, hex(ONE_ETH))
    eth_instead = await eth_gw.anvil.send(eth_gw.service_address, wallet.address, value=5_000_000)
    tx_hash = await eth_gw.token.transfer(eth_gw.service_address, wallet.address, 5_000_000)
    await eth_gw.anvil.mine(ETH_MIN_CONFIRMATIONS)
    assert (await eth_gw.gw.jobs.watch_payouts()).paid == [UUID(order["payout_id"])]
    paid = await payout(eth_gw, order["payout_id"])
    assert paid["txid"] == tx_hash != eth_instead  # 5,000,000 wei is not 5 tokens
    assert await recompute_balances(eth_gw.gw.db) == []


async def test_the_refund_goes_to_the_signing_wallet_only(eth_gw: EthGateway) -> None:
    wallet, other = await eth_gw.anvil.new_account(), await eth_gw.anvil.new_account()
    permission = await funded(eth_gw, wallet)
    status, body = await refund(eth_gw, permission, refund_address=other.address)
    assert (status, body["error"]["code"]) == (422, "refund_address_not_allowed")
    status, answer = await refund(eth_gw, permission, refund_address=wallet.address.lower())
    assert status == 200 and answer["refund"]["destination"] == wallet.address
    status, body = await eth_gw.gw.call("POST", f"/api/v1/admin/payouts/{answer['refund']['payout_id']}/resolve",
                                        api_key=ADMIN_KEY, json={"outcome": "not_sent"})
    assert (status, body["error"]["code"]) == (409, "payout_not_unresolved")
    assert await recompute_balances(eth_gw.gw.db) == []
