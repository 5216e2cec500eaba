"""The Zcash regtest stand-in's wallet as a payment watcher and a refund sender use it: wallet-wide listings,
Zallet's z_listtransactions, sends from wallet addresses (ZIP 317 fee, change, privacy policy), sweeps, operations,
the send failure hook, and address allocation that does not grow with the wallet."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from chains.jsonrpc import JsonRpcClient, RpcError, RpcUnavailable
from chains.zcash_address import ZcashNetwork, decode_address, encode_sapling, encode_unified
from regtest.zcash_node import NO_MEMO, RegtestZcash, RunningNode
from tests.zcash_fixtures import ZCASH_RPC_USER, RegtestControl

ZAT = 100_000_000
SIMPLE_FEE = 10_000  # ZIP 317: 5,000 zatoshis x max(2, logical actions)
EXTERNAL = encode_unified(ZcashNetwork.REGTEST, {"sapling": bytes(range(43))})
ZALLET = "zallet"


async def new_address(control: RegtestControl, account: int | str, receivers: list[str] | None = None) -> str:
    return (await control.wallet.call("z_getaddressforaccount", account, receivers or ["sapling"]))["address"]


async def funded_address(control: RegtestControl, zatoshis: int, blocks: int = 1) -> tuple[int | str, str]:
    """A new account with one address that received `zatoshis` in a transaction with `blocks` confirmations."""
    account = await control.new_account()
    address = await new_address(control, account)
    await control.pay(address, Decimal(zatoshis).scaleb(-8))
    await control.mine(blocks)
    return account, address


def operation_txid(status: dict[str, Any]) -> str:
    assert status["status"] == "success", status
    return status["result"]["txid"]


# --- wallet-wide listings ---------------------------------------------------------------------------------------


async def test_wallet_wide_listunspent_reports_every_shielded_output(zcash_control: RegtestControl) -> None:
    call = zcash_control.wallet.call
    first, second = await zcash_control.new_account(), await zcash_control.new_account()
    sapling = await new_address(zcash_control, first)
    both = await new_address(zcash_control, second, ["orchard", "sapling"])
    txid = await zcash_control.pay_many([(sapling, "1", "order 1"), (both, "2", None), (EXTERNAL, "3", None)])

    rows = await call("z_listunspent", 0)
    assert [(row["txid"], row["outindex"], row["confirmations"]) for row in rows] == [(txid, 0, 0), (txid, 1, 0)]
    by_index = {row["outindex"]: row for row in rows}
    assert (by_index[0]["pool"], by_index[1]["pool"]) == ("sapling", "orchard")
    assert by_index[0]["memoStr"] == "order 1" and by_index[1]["memo"] == NO_MEMO.hex()
    assert "memoStr" not in by_index[1]
    if zcash_control.personality == "zcashd":
        assert (by_index[0]["address"], by_index[1]["address"]) == (sapling, both)
        assert (by_index[0]["amount"], by_index[0]["amountZat"]) == (Decimal("1.00000000"), ZAT)
        assert (by_index[1]["account"], by_index[1]["change"], by_index[1]["spendable"]) == (second, False, True)
    else:
        receivers = decode_address(both).receivers
        assert by_index[1]["address"] == encode_unified(ZcashNetwork.REGTEST, {"orchard": receivers["orchard"]})
        assert (by_index[0]["value"], by_index[0]["valueZat"]) == (Decimal("1.00000000"), ZAT)
        assert (by_index[1]["account_uuid"], by_index[1]["walletInternal"]) == (second, False)

    await zcash_control.mine(2)
    assert [row["confirmations"] for row in await call("z_listunspent")] == [2, 2]
    assert await call("z_listunspent", 3) == []


@pytest.mark.parametrize("zcash_node", ["zcashd"], indirect=True)
async def test_zcashd_has_no_listtransactions(zcash_control: RegtestControl) -> None:
    with pytest.raises(RpcError) as refused:
        await zcash_control.wallet.call("z_listtransactions")
    assert refused.value.code == -32601


@pytest.mark.parametrize("zcash_node", ["zallet"], indirect=True)
async def test_zallet_listtransactions_shapes_and_ranges(zcash_control: RegtestControl) -> None:
    call = zcash_control.wallet.call
    mine, theirs = await zcash_control.new_account(), await zcash_control.new_account()
    address = await new_address(zcash_control, mine)
    elsewhere = await new_address(zcash_control, theirs)
    first = await zcash_control.pay_many([(address, "1.5", "perm 7"), (EXTERNAL, "1", None)])
    [block_1] = await zcash_control.mine(1)
    second = await zcash_control.pay(elsewhere, "2")
    await zcash_control.mine(1)
    third = await zcash_control.pay(address, "0.25")  # stays in the mempool

    rows = await call("z_listtransactions")
    assert [(row["txid"], row["account_uuid"], row["mined_height"]) for row in rows] == [
        (first, mine, 1), (second, theirs, 2), (third, mine, None),
    ]
    block_time = (await zcash_control.chain.call("getblockheader", block_1))["time"]
    assert rows[0] == {
        "account_uuid": mine, "mined_height": 1, "txid": first, "expiry_height": 41,
        "account_balance_delta": 150_000_000, "fee_paid": None, "sent_note_count": 0, "received_note_count": 1,
        "block_time": block_time, "block_datetime": rows[0]["block_datetime"], "expired_unmined": False,
        "outputs": [{
            "pool": "sapling", "output_index": 0, "from_account": None, "to_account": mine, "to_address": address,
            "value": 150_000_000, "is_change": False, "memo": "perm 7",
        }],
    }
    assert rows[0]["block_datetime"].endswith("Z") and rows[2]["outputs"][0]["memo"] is None
    assert (rows[2]["block_time"], rows[2]["expired_unmined"]) == (None, False)

    txids = [row["txid"] for row in await call("z_listtransactions", mine)]
    assert txids == [first, third]
    assert [row["txid"] for row in await call("z_listtransactions", None, 2)] == [second, third]  # unmined too
    assert [row["txid"] for row in await call("z_listtransactions", None, 1, 2)] == [first]  # end excluded, mined
    assert [row["txid"] for row in await call("z_listtransactions", None, None, None, 1, 1)] == [second]
    assert await call("z_listtransactions", "00000000-0000-0000-0000-000000000000") == []
    for params, code in ((["not-a-uuid"], -8), ([None, -1], -32602), ([None, None, None, "1"], -32602)):
        with pytest.raises(RpcError) as refused:
            await call("z_listtransactions", *params)
        assert refused.value.code == code, params


# --- sends from wallet addresses --------------------------------------------------------------------------------


async def test_send_to_an_external_address_pays_the_zip317_fee(zcash_control: RegtestControl) -> None:
    call = zcash_control.wallet.call
    account, service = await funded_address(zcash_control, 3 * ZAT)
    opid = await zcash_control.send_from(service, [(EXTERNAL, ZAT)])
    [status] = await call("z_getoperationstatus", [opid])
    txid = operation_txid(status)
    assert status["method"] == "z_sendmany" and status["params"]["fromaddress"] == service
    if zcash_control.personality == "zcashd":
        assert status["result"] == {"txid": txid} and status["params"]["minconf"] == 1
    else:
        assert status["result"] == {"txid": txid, "txids": [txid], "broadcast": True}
    assert await zcash_control.chain.call("getrawmempool") == [txid]

    [change] = await call("z_listunspent", 0)  # the received note is spent; the change is left
    assert (change["txid"], change["outindex"], zcash_control.value_zat(change)) == (txid, 1, 2 * ZAT - SIMPLE_FEE)
    assert "address" not in change
    if zcash_control.personality == "zcashd":
        assert change["change"] is True
    else:
        assert change["walletInternal"] is True
        [sent] = await call("z_listtransactions", account, None, None, 1)
        assert (sent["txid"], sent["account_balance_delta"], sent["fee_paid"]) == (txid, -ZAT - SIMPLE_FEE, SIMPLE_FEE)
        assert [(output["to_address"], output["is_change"]) for output in sent["outputs"]] == [
            (EXTERNAL, False), (None, True),
        ]

    assert [status["id"] for status in await call("z_getoperationresult")][-1] == opid
    assert await call("z_getoperationstatus", [opid]) == []  # read results are forgotten


@pytest.mark.parametrize("zcash_node", ["zcashd"], indirect=True)
async def test_zcashd_send_refusals(zcash_control: RegtestControl) -> None:
    call = zcash_control.wallet.call
    account, service = await funded_address(zcash_control, ZAT)
    bare_sapling = encode_sapling(ZcashNetwork.REGTEST, decode_address(service).receivers["sapling"])

    async def failed(opid: str) -> dict[str, Any]:
        [status] = await call("z_getoperationstatus", [opid])
        assert status["status"] == "failed" and "result" not in status, status
        return status["error"]

    assert (await failed(await zcash_control.send_from(service, [(EXTERNAL, 2 * ZAT)])))["code"] == -8
    # Without minconf zcashd wants 10 confirmations: the note with 1 is not spendable yet.
    opid = await zcash_control.wallet.send("z_sendmany", service, [{"address": EXTERNAL, "amount": Decimal("0.1")}])
    assert "Insufficient funds" in (await failed(opid))["message"]
    transparent = decode_address(
        await new_address(zcash_control, account, ["p2pkh", "sapling"])
    ).transparent_receiver()
    assert transparent is not None
    refused = await failed(await zcash_control.send_from(service, [(transparent, ZAT // 10)]))
    assert refused["code"] == -8 and "AllowRevealedRecipients" in refused["message"]
    opid = await zcash_control.send_from(
        service, [(transparent, ZAT // 10)], privacy_policy="AllowRevealedRecipients"
    )
    operation_txid((await call("z_getoperationstatus", [opid]))[0])

    foreign = encode_unified(ZcashNetwork.REGTEST, {"orchard": bytes(43)})
    for params, code in (
        ([bare_sapling, [{"address": EXTERNAL, "amount": 1}]], -5),  # a bare receiver of a wallet UA
        ([foreign, [{"address": EXTERNAL, "amount": 1}]], -5),
        (["garbage", [{"address": EXTERNAL, "amount": 1}]], -5),
        ([service, [{"address": EXTERNAL, "amount": 1}], 1, None, "Nope"], -8),
    ):
        with pytest.raises(RpcError) as refused_now:
            await zcash_control.wallet.send("z_sendmany", *params)
        assert refused_now.value.code == code, params


@pytest.mark.parametrize("zcash_node", ["zallet"], indirect=True)
async def test_zallet_send_refusals_come_at_once(zcash_control: RegtestControl) -> None:
    _, service = await funded_address(zcash_control, ZAT)
    one = [{"address": EXTERNAL, "amount": Decimal("0.1")}]
    for params, code in (
        ([service, one, 1, Decimal("0.0001")], -8),  # Zallet computes the fee itself
        ([service, one, 1, None, "LegacyCompat"], -8),
        ([service, [{"address": EXTERNAL, "amount": 2}], 1], -4),  # insufficient funds
        ([service, one], -4),  # its default policy wants 10 confirmations on received notes
    ):
        with pytest.raises(RpcError) as refused:
            await zcash_control.wallet.send("z_sendmany", *params)
        assert refused.value.code == code, params
    statuses = await zcash_control.wallet.call("z_getoperationstatus")
    assert {status["params"]["fromaddress"] for status in statuses} == {"ANY_TADDR"}  # no operation was created


async def test_sweep_moves_the_note_but_keeps_the_receipt(zcash_control: RegtestControl) -> None:
    call = zcash_control.wallet.call
    service = await zcash_control.new_account()
    earlier, permission, treasury = [await new_address(zcash_control, service) for _ in range(3)]
    untouched = await zcash_control.pay(earlier, "0.7")  # an older note of the same account
    receipt = await zcash_control.pay(permission, "0.5", memo="permission 9")
    await zcash_control.mine(1)

    sweep = await zcash_control.sweep(permission, treasury)
    await zcash_control.mine(1)
    assert await zcash_control.unspent_at(permission) == []
    [moved] = await zcash_control.unspent_at(treasury)
    assert (moved["txid"], zcash_control.value_zat(moved)) == (sweep, ZAT // 2 - SIMPLE_FEE)
    # The note received at the swept address was spent, not the older one; no change: exactly swept.
    assert [row["txid"] for row in await call("z_listunspent", 0)] == [untouched, sweep]

    if zcash_control.personality == "zcashd":
        [received] = await call("z_listreceivedbyaddress", permission, 0)
        assert (received["txid"], received["memoStr"], received["amountZat"]) == (receipt, "permission 9", ZAT // 2)
    else:
        rows = await call("z_listtransactions", service)
        assert [row["txid"] for row in rows] == [untouched, receipt, sweep]
        assert rows[1]["outputs"][0]["to_address"] == permission and rows[1]["account_balance_delta"] == ZAT // 2
        assert (rows[2]["account_balance_delta"], rows[2]["fee_paid"]) == (-SIMPLE_FEE, SIMPLE_FEE)
        assert rows[2]["outputs"] == [{
            "pool": "sapling", "output_index": 0, "from_account": service, "to_account": service,
            "to_address": treasury, "value": ZAT // 2 - SIMPLE_FEE, "is_change": False, "memo": None,
        }]


# --- the send failure hook --------------------------------------------------------------------------------------


async def test_failnextsend_hang_leaves_the_operation_executing(zcash_control: RegtestControl) -> None:
    call = zcash_control.wallet.call
    _, service = await funded_address(zcash_control, ZAT)
    await zcash_control.fail_next_send("hang")
    await zcash_control.pay(EXTERNAL, "1")  # the faucet does not use the hook up
    mempool = await zcash_control.chain.call("getrawmempool")

    opid = await zcash_control.send_from(service, [(EXTERNAL, ZAT // 10)])
    [status] = await call("z_getoperationstatus", [opid])
    assert status["status"] == "executing" and "result" not in status and "error" not in status
    assert opid not in {status["id"] for status in await call("z_getoperationresult")}  # not finished
    assert await zcash_control.chain.call("getrawmempool") == mempool  # nothing was sent

    opid = await zcash_control.send_from(service, [(EXTERNAL, ZAT // 10)])  # the hook was used up
    operation_txid((await call("z_getoperationstatus", [opid]))[0])


async def test_failnextsend_timeout_sends_but_never_answers(
    zcash_control: RegtestControl, zcash_node: RunningNode
) -> None:
    _, service = await funded_address(zcash_control, ZAT)
    await zcash_control.fail_next_send("timeout")
    impatient = JsonRpcClient(zcash_node.url, user=ZCASH_RPC_USER, password=zcash_node.rpcpassword, timeout=0.3)
    try:
        with pytest.raises(RpcUnavailable, match="may or may not have been executed"):
            await impatient.send("z_sendmany", service, [{"address": EXTERNAL, "amount": Decimal("0.1")}], 1)
    finally:
        await impatient.close()
    [txid] = await zcash_control.chain.call("getrawmempool")
    statuses = await zcash_control.wallet.call("z_getoperationstatus")
    assert [operation_txid(status) for status in statuses if status["params"]["fromaddress"] == service] == [txid]


async def test_failnextsend_crash_after_send_forgets_operations(zcash_control: RegtestControl) -> None:
    _, service = await funded_address(zcash_control, ZAT)
    await zcash_control.fail_next_send("crash_after_send")
    with pytest.raises(RpcUnavailable, match="may or may not have been executed"):
        await zcash_control.send_from(service, [(EXTERNAL, ZAT // 10)])
    [txid] = await zcash_control.chain.call("getrawmempool")
    assert await zcash_control.wallet.call("z_getoperationstatus") == []  # the restart lost them
    [change] = await zcash_control.wallet.call("z_listunspent", 0)
    assert change["txid"] == txid
    with pytest.raises(RpcError) as unknown:
        await zcash_control.fail_next_send("explode")
    assert unknown.value.code == -8


# --- address allocation -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("personality", ["zcashd", "zallet"])
def test_address_allocation_uses_counters_not_scans(personality: str) -> None:
    """5,000 addresses: indices come from the account's counters (no timing assertion: the structure is the
    point), and a transparent payment moves Zallet's gap window forward."""
    node = RegtestZcash(personality=personality, faucet_zat=10**15)
    created = node.execute(personality, "z_getnewaccount", [] if personality == "zcashd" else ["bench"])
    account_param = created.get("account", created.get("account_uuid"))
    [account] = node.wallet.accounts
    indices = [
        node.execute(personality, "z_getaddressforaccount", [account_param, ["sapling"]])["diversifier_index"]
        for _ in range(5_000)
    ]
    assert len(set(indices)) == 5_000 and indices == sorted(indices)
    assert account.next_index == indices[-1] + 1 and len(account.addresses) == 5_000
    if personality == "zcashd":
        assert indices == list(range(5_000))
        return
    transparent = [node.execute(ZALLET, "z_getaddressforaccount", [account_param])["address"] for _ in range(10)]
    assert account.transparent_indices == list(range(10)) and account.last_used_transparent == -1
    taddr = decode_address(transparent[-1]).transparent_receiver()
    node.execute(ZALLET, "z_sendmany", ["ANY_TADDR", [{"address": taddr, "amount": 1}]])
    assert account.last_used_transparent == 9
    assert node.execute(ZALLET, "z_getaddressforaccount", [account_param])["diversifier_index"] == 10

