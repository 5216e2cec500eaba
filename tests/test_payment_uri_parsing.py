"""The payment URIs of create answers, parsed back by an independent parser written here from the specifications
(ZIP-321 and EIP-681), not from billing/payment_uri.py: the address, the amount and the memo naming the permission
(Zcash), the ETH and ERC-20 transfer forms (Ethereum)."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from decimal import Decimal
from urllib.parse import unquote

import pytest

from tests.conftest import Gateway
from tests.ethereum_fixtures import CHAIN_ID, ONE_ETH, TOKEN_SYMBOL, EthGateway


@dataclass
class Zip321Payment:
    address: str
    amount: Decimal | None = None
    memo: bytes | None = None
    message: str | None = None


# ZIP-321: zcashurn = "zcash:" ( zcashaddress [ "?" zcashparams ] / "?" zcashparams ); one payment here (no
# paramindex). amount = 1*DIGIT [ "." 1*8DIGIT ], at most 21e6; memo = base64url without padding, at most 512 bytes.
_ZIP321_AMOUNT = re.compile(r"(0|[1-9][0-9]{0,7})(\.[0-9]{1,8})?")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


def parse_zip321(uri: str) -> Zip321Payment:
    scheme, _, rest = uri.partition(":")
    assert scheme.lower() == "zcash", uri
    address, _, query = rest.partition("?")
    assert address and address.isalnum(), uri
    payment = Zip321Payment(address)
    seen: set[str] = set()
    for part in query.split("&") if query else []:
        name, sep, value = part.partition("=")
        assert sep and name not in seen, f"malformed or repeated parameter {name!r}"
        seen.add(name)
        if name == "amount":
            assert _ZIP321_AMOUNT.fullmatch(value), value
            payment.amount = Decimal(value)
            assert payment.amount <= 21_000_000
        elif name == "memo":
            assert _BASE64URL.fullmatch(value), value
            payment.memo = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            assert len(payment.memo) <= 512
        elif name == "message":
            payment.message = unquote(value)
        else:
            assert not name.startswith("req-"), f"a required parameter this parser does not know: {name}"
    return payment


@dataclass
class Eip681Request:
    target: str
    chain_id: int | None = None
    function: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)

    def number(self, name: str) -> int:
        """An EIP-681 number (decimal digits, optionally with a decimal exponent: `2.014e18`) as an integer."""
        value = Decimal(self.parameters[name])
        assert value == value.to_integral_value()
        return int(value)


# EIP-681: request = "ethereum" ":" [ "pay-" ] target_address [ "@" chain_id ] [ "/" function_name ]
#          [ "?" parameters ]
_EIP681 = re.compile(r"ethereum:(?:pay-)?(?P<target>0x[0-9a-fA-F]{40})(?:@(?P<chain>[0-9]+))?"
                     r"(?:/(?P<function>[A-Za-z_][A-Za-z0-9_]*))?(?:\?(?P<query>.*))?")
_EIP681_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?([eE][0-9]+)?")


def parse_eip681(uri: str) -> Eip681Request:
    found = _EIP681.fullmatch(uri)
    assert found is not None, uri
    request = Eip681Request(found["target"], int(found["chain"]) if found["chain"] else None, found["function"])
    for part in found["query"].split("&") if found["query"] else []:
        name, sep, value = part.partition("=")
        assert sep and name not in request.parameters, part
        if name in ("value", "gas", "gasLimit", "gasPrice", "uint256"):
            assert _EIP681_NUMBER.fullmatch(value), value
        request.parameters[name] = value
    return request


def test_the_parsers_read_the_specifications_examples() -> None:
    zip321 = parse_zip321("zcash:ztestsapling10yy2ex5dcqkclhc7z7yrnjq2z6feyjad56ptwlfgmy77dmaqqrl9gyhprdx59qgmsnys"
                          "ka2kez?amount=1&memo=VGhpcyBpcyBhIHNpbXBsZSBtZW1vLg&message=Thank%20you%20for%20your%20"
                          "purchase")
    assert (zip321.amount, zip321.memo, zip321.message) == (Decimal(1), b"This is a simple memo.",
                                                           "Thank you for your purchase")
    eip681 = parse_eip681("ethereum:0xfb6916095ca1df60bb79Ce92ce3Ea74c37c5d359?value=2.014e18")
    assert eip681.number("value") == 2_014_000_000_000_000_000 and eip681.chain_id is None
    with pytest.raises(AssertionError):
        parse_zip321("zcash:zs1abc?amount=1.123456789")


async def test_a_zcash_answer_carries_a_zip321_request_with_the_permissions_memo(gw: Gateway) -> None:
    created = await gw.create_permission("12.5", "2.5")
    request = parse_zip321(created["payment_uri"])
    assert request.address == created["payment_address"]
    assert request.amount == Decimal(created["amount_to_pay"]) == Decimal("12.5")
    assert request.memo is not None and request.memo.decode() == f"PayGo permission {created['permission_id']}"
    await gw.pay(created["payment_address"], "2.5")
    shown = await gw.verify(created)
    assert parse_zip321(shown["payment_uri"]).amount == Decimal(10)  # what is still missing
    status, checkout = await gw.call("GET", f"/api/v1/checkout/{created['permission_id']}")
    assert status == 200 and parse_zip321(checkout["payment_uri"]) == parse_zip321(shown["payment_uri"])


async def test_ethereum_answers_carry_eip681_requests_for_eth_and_for_a_token(eth_gw: EthGateway) -> None:
    wallet = await eth_gw.anvil.new_account()
    eth = parse_eip681((await eth_gw.create(wallet, "1.5", "0.5"))["payment_uri"])
    assert (eth.target, eth.chain_id, eth.function) == (eth_gw.service_address, CHAIN_ID, None)
    assert eth.number("value") == 3 * ONE_ETH // 2
    token = parse_eip681((await eth_gw.create(wallet, "12.25", "1", asset=TOKEN_SYMBOL))["payment_uri"])
    assert (token.target, token.chain_id, token.function) == (eth_gw.token.address, CHAIN_ID, "transfer")
    assert token.parameters["address"] == eth_gw.service_address and token.number("uint256") == 12_250_000
