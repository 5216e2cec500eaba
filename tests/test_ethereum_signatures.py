"""Wallet-signed Ethereum permissions: the typed data a wallet signs, and every refusal of a bad authorization
(wrong signer, tampered field, reused nonce, wrong chain id, past expiry), against a gateway on anvil."""

from __future__ import annotations

import json
import time

from eth_account import Account

from billing.eip712 import TYPES
from tests.ethereum_fixtures import CHAIN_ID, TOKEN_SYMBOL, EthGateway

CREATE = "/api/v1/ethereum/permissions"


async def test_typed_data_names_every_term_and_signs_with_a_wallet(eth_gw: EthGateway) -> None:
    # anvil's dev account signs through the node's own eth_signTypedData_v4, as a browser wallet would
    dev_account = (await eth_gw.anvil.w3.eth.accounts)[0]
    status, typed = await eth_gw.gw.call(
        "GET", f"/api/v1/ethereum/permissions/typed-data?user_wallet_address={dev_account.lower()}"
               "&requested_amount=1.5&rate_per_hour=0.25&duration_days=7&nonce=42&expiry=4102444800")
    assert status == 200
    assert typed == {
        "types": TYPES,
        "primaryType": "SpendPermission",
        "domain": {"name": "PayGo", "version": "1", "chainId": CHAIN_ID},
        "message": {
            "wallet": dev_account, "spender": eth_gw.service_address,
            "asset": "0x0000000000000000000000000000000000000000",
            "allowance": "1500000000000000000", "ratePerHour": "250000000000000000", "durationDays": 7,
            "expiry": 4102444800, "nonce": "42",
        },
    }
    signature = await eth_gw.anvil.rpc("eth_signTypedData_v4", dev_account, json.dumps(typed))
    status, created = await eth_gw.gw.call("POST", CREATE, json={
        "user_wallet_address": dev_account.lower(), "requested_amount": "1.5", "rate_per_hour": "0.25",
        "duration_days": 7, "chain_id": CHAIN_ID, "nonce": "42", "expiry": 4102444800, "signature": signature,
    })
    assert status == 201, created
    assert created["user_wallet_address"] == dev_account  # normalised to EIP-55
    assert created["payment_address"] == eth_gw.service_address
    assert created["amount_to_pay"] == "1.500000000000000000" and created["max_streaming_hours"] == "6.000000"
    stored = await eth_gw.gw.db.fetchrow("SELECT * FROM ethereum_authorizations WHERE permission_id = $1",
                                         created["permission_id"])
    assert stored["signature"] == signature.lower() and stored["nonce"] == 42 and stored["wallet"] == dev_account
    assert stored["typed_data"] == typed


async def test_token_typed_data_names_the_contract_in_token_units(eth_gw: EthGateway) -> None:
    typed = await eth_gw.typed_data(Account.create(), "12.5", "0.000001", asset=TOKEN_SYMBOL)
    assert typed["message"]["asset"] == eth_gw.token.address
    assert typed["message"]["allowance"] == "12500000" and typed["message"]["ratePerHour"] == "1"
    assert int(typed["message"]["nonce"]) > 0 and typed["message"]["expiry"] > time.time()


async def refused(eth_gw: EthGateway, body: dict[str, object]) -> tuple[int, str]:
    status, answer = await eth_gw.gw.call("POST", CREATE, json=body)
    assert await eth_gw.gw.db.fetchval("SELECT count(*) FROM permissions") == 0
    return status, answer["error"]["code"]


async def test_a_signature_by_another_key_is_refused(eth_gw: EthGateway) -> None:
    wallet, thief = Account.create(), Account.create()
    body = await eth_gw.signed_body(thief)
    body["user_wallet_address"] = wallet.address
    assert await refused(eth_gw, body) == (422, "signer_mismatch")


async def test_every_tampered_term_is_refused(eth_gw: EthGateway) -> None:
    wallet = Account.create()
    for field, value in [("requested_amount", "2"), ("rate_per_hour", "0.4"), ("duration_days", 29),
                         ("nonce", "7"), ("expiry", int(time.time()) + 7200), ("asset", TOKEN_SYMBOL)]:
        body = await eth_gw.signed_body(wallet, duration_days=30)
        body[field] = value
        assert await refused(eth_gw, body) == (422, "signer_mismatch"), field


async def test_a_signature_for_another_spender_is_refused(make_eth_gateway) -> None:  # type: ignore[no-untyped-def]
    first, second = await make_eth_gateway(), await make_eth_gateway()
    body = await first.signed_body(Account.create())
    assert await refused(second, body) == (422, "signer_mismatch")


async def test_a_reused_nonce_is_refused_by_the_database(eth_gw: EthGateway) -> None:
    wallet = Account.create()
    body = await eth_gw.signed_body(wallet, nonce=5)
    status, _ = await eth_gw.gw.call("POST", CREATE, json=body)
    assert status == 201
    again = await eth_gw.signed_body(wallet, "2", nonce=5)
    status, answer = await eth_gw.gw.call("POST", CREATE, json=again)
    assert (status, answer["error"]["code"]) == (422, "nonce_reused")
    assert await eth_gw.gw.db.fetchval("SELECT count(*) FROM permissions") == 1
    # another wallet may use the same number
    assert (await eth_gw.gw.call("POST", CREATE, json=await eth_gw.signed_body(Account.create(), nonce=5)))[0] == 201


async def test_wrong_chain_id_is_refused(eth_gw: EthGateway) -> None:
    body = await eth_gw.signed_body(Account.create())
    body["chain_id"] = 1
    assert await refused(eth_gw, body) == (422, "wrong_chain_id")


async def test_a_past_expiry_is_refused(eth_gw: EthGateway) -> None:
    body = await eth_gw.signed_body(Account.create(), expiry=int(time.time()) - 1)
    assert await refused(eth_gw, body) == (422, "authorization_expired")


async def test_malformed_signatures_are_refused(eth_gw: EthGateway) -> None:
    body = await eth_gw.signed_body(Account.create())
    for signature in ["0x1234", "0x" + "zz" * 65, "0x" + "00" * 65]:
        assert await refused(eth_gw, {**body, "signature": signature}) == (422, "invalid_signature"), signature


async def test_addresses_are_checked_and_normalised(eth_gw: EthGateway) -> None:
    wallet = Account.create()
    body = await eth_gw.signed_body(wallet)
    mixed = wallet.address[:2] + "".join(c.swapcase() if c.isalpha() else c for c in wallet.address[2:])
    assert mixed != wallet.address
    assert await refused(eth_gw, {**body, "user_wallet_address": mixed}) == (422, "invalid_address")
    assert await refused(eth_gw, {**body, "user_wallet_address": "0x1234"}) == (422, "invalid_address")
    status, created = await eth_gw.gw.call("POST", CREATE, json={**body, "user_wallet_address": wallet.address.lower()})
    assert status == 201 and created["user_wallet_address"] == wallet.address


async def test_unknown_assets_and_too_many_decimals_are_refused(eth_gw: EthGateway) -> None:
    wallet = Account.create()
    status, answer = await eth_gw.gw.call(
        "GET", f"/api/v1/ethereum/permissions/typed-data?user_wallet_address={wallet.address}&asset=DOGE"
               "&requested_amount=1&rate_per_hour=1")
    assert (status, answer["error"]["code"]) == (422, "invalid_asset")
    status, answer = await eth_gw.gw.call(
        "GET", f"/api/v1/ethereum/permissions/typed-data?user_wallet_address={wallet.address}&asset={TOKEN_SYMBOL}"
               "&requested_amount=1.0000001&rate_per_hour=1")
    assert (status, answer["error"]["code"]) == (422, "invalid_amount")
