"""Ethereum test fixtures: a real anvil node (npm package @foundry-rs/anvil, from node_modules) started once per
test session on a free port, the test ERC-20 deployed on it, and a gateway per test wired to it.

Tests keep out of each other's way with fresh accounts (funded with `anvil_setBalance`) and a fresh service address
per gateway; a test that rewinds the chain (evm_snapshot/evm_revert) only rewinds what it did itself. Blocks are
mined on demand (`anvil_mine`), so nothing waits for time to pass.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from web3 import AsyncHTTPProvider, AsyncWeb3

if TYPE_CHECKING:
    from tests.conftest import Gateway

ROOT = Path(__file__).resolve().parent.parent
ANVIL_BINARIES = (
    ROOT / "node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil",
    ROOT / "node_modules/@foundry-rs/anvil-linux-arm64/bin/anvil",
    ROOT / "node_modules/@foundry-rs/anvil-darwin-arm64/bin/anvil",
    ROOT / "node_modules/@foundry-rs/anvil-darwin-amd64/bin/anvil",
    ROOT / "node_modules/.bin/anvil",
)
TOKEN_ARTIFACT = ROOT / "contracts/TestToken.json"
CHAIN_ID = 31337
ETH_MIN_CONFIRMATIONS = 3
TOKEN_SYMBOL = "TUSD"
TOKEN_DECIMALS = 6
ONE_ETH = 10**18


def anvil_binary() -> Path:
    for path in ANVIL_BINARIES:
        if path.exists():
            return path
    pytest.fail("anvil is not installed: run `npm install` in the repository (package.json)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Anvil:
    """A running anvil process and a web3 client to it, with the test's chain helpers."""

    port: int
    process: subprocess.Popen[bytes]
    w3: AsyncWeb3

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    async def start(cls, port: int | None = None) -> Anvil:
        port = port or free_port()
        process = subprocess.Popen(
            [str(anvil_binary()), "--host", "127.0.0.1", "--port", str(port), "--chain-id", str(CHAIN_ID),
             "--auto-impersonate", "--silent"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        node = cls(port, process, AsyncWeb3(AsyncHTTPProvider(f"http://127.0.0.1:{port}",
                                                              exception_retry_configuration=None)))
        for _ in range(500):  # ready in ~0.1 s; give up after ~5 s
            try:
                await node.w3.eth.chain_id
                return node
            except OSError:
                if process.poll() is not None:
                    break
                await asyncio.sleep(0.01)
        await node.stop()
        raise RuntimeError(f"anvil did not start on port {port}")

    async def stop(self) -> None:
        self.process.terminate()
        await asyncio.to_thread(self.process.wait)
        await self.w3.provider.disconnect()

    async def rpc(self, method: str, *params: Any) -> Any:
        response = await self.w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
        assert "error" not in response, response
        return response["result"]

    async def mine(self, blocks: int = 1) -> None:
        await self.rpc("anvil_mine", hex(blocks))

    async def new_account(self, wei: int = 1000 * ONE_ETH) -> LocalAccount:
        account: LocalAccount = Account.create()
        await self.rpc("anvil_setBalance", account.address, hex(wei))
        return account

    async def send(self, sender: str, to: str, *, value: int = 0, data: str = "0x",
                   gas: int | None = None) -> str:
        """Send a transaction from any address (anvil impersonates it) and return its hash; anvil mines it at once.
        An explicit `gas` skips estimation, so a transaction that reverts is still mined (with status 0)."""
        transaction: dict[str, Any] = {"from": sender, "to": to, "value": value, "data": data}
        if gas is not None:
            transaction["gas"] = gas
        tx_hash = await self.w3.eth.send_transaction(transaction)  # type: ignore[arg-type]
        return tx_hash.to_0x_hex()

    async def receipt(self, tx_hash: str) -> Any:
        """The receipt, once the transaction is mined (anvil mines at once, but a busy machine may answer before
        the block is indexed)."""
        return await self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)  # type: ignore[arg-type]


@dataclass
class TestToken:
    """The deployed test ERC-20."""

    anvil: Anvil
    address: str
    abi: list[dict[str, Any]]

    def _call_data(self, function: str, *args: Any) -> str:
        contract = self.anvil.w3.eth.contract(address=self.address, abi=self.abi)  # type: ignore[call-overload]
        return contract.encode_abi(function, args=list(args))

    async def mint(self, to: str, units: int) -> str:
        return await self.anvil.send(to, self.address, data=self._call_data("mint", to, units))

    async def transfer(self, sender: str, to: str, units: int, *, gas: int | None = None) -> str:
        return await self.anvil.send(sender, self.address, data=self._call_data("transfer", to, units), gas=gas)


async def deploy_token(anvil: Anvil, name: str, symbol: str, decimals: int) -> TestToken:
    artifact = json.loads(TOKEN_ARTIFACT.read_text())
    deployer = await anvil.new_account()
    factory = anvil.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    tx_hash = await factory.constructor(name, symbol, decimals).transact({"from": deployer.address})
    receipt = await anvil.receipt(tx_hash.to_0x_hex())
    assert receipt["status"] == 1, receipt
    return TestToken(anvil, receipt["contractAddress"], artifact["abi"])


@dataclass
class EthGateway:
    """A gateway configured for Ethereum on the session's anvil, with the Ethereum flows as helpers."""

    gw: Gateway
    anvil: Anvil
    token: TestToken
    service_address: str

    async def typed_data(self, account: LocalAccount, amount: str, rate: str, **query: Any) -> dict[str, Any]:
        params = {"user_wallet_address": account.address, "requested_amount": amount, "rate_per_hour": rate,
                  **{key: str(value) for key, value in query.items()}}
        path = "/api/v1/ethereum/permissions/typed-data?" + "&".join(f"{k}={v}" for k, v in params.items())
        status, body = await self.gw.call("GET", path)
        assert status == 200, body
        return body

    async def signed_body(self, account: LocalAccount, amount: str = "1", rate: str = "0.5",
                          **query: Any) -> dict[str, Any]:
        """A create body for `account` with its signature over the gateway's typed data for these terms."""
        typed = await self.typed_data(account, amount, rate, **query)
        signature = account.sign_message(encode_typed_data(full_message=typed)).signature.to_0x_hex()
        body: dict[str, Any] = {
            "user_wallet_address": account.address, "requested_amount": amount, "rate_per_hour": rate,
            "chain_id": typed["domain"]["chainId"], "nonce": typed["message"]["nonce"],
            "expiry": typed["message"]["expiry"], "signature": signature,
        }
        if "asset" in query:
            body["asset"] = query["asset"]
        if "duration_days" in query:
            body["duration_days"] = query["duration_days"]
        return body

    async def create(self, account: LocalAccount, amount: str = "1", rate: str = "0.5",
                     **query: Any) -> dict[str, Any]:
        status, created = await self.gw.call("POST", "/api/v1/ethereum/permissions",
                                             json=await self.signed_body(account, amount, rate, **query))
        assert status == 201, created
        return created

    async def verify(self, permission: dict[str, Any], *tx_hashes: str) -> tuple[int, Any]:
        return await self.gw.call("POST", f"/api/v1/ethereum/permissions/{permission['permission_id']}/verify",
                                  token=permission["permission_token"], json={"tx_hashes": list(tx_hashes)})

    async def pay_eth(self, account: LocalAccount, wei: int) -> str:
        return await self.anvil.send(account.address, self.service_address, value=wei)


@pytest.fixture(scope="session")
async def anvil() -> AsyncIterator[Anvil]:
    node = await Anvil.start()
    yield node
    await node.stop()


@pytest.fixture(scope="session")
async def test_token(anvil: Anvil) -> TestToken:
    return await deploy_token(anvil, "Test USD", TOKEN_SYMBOL, TOKEN_DECIMALS)


def ethereum_env(anvil: Anvil, token: TestToken, service_address: str, **extra: str) -> dict[str, str]:
    return {
        "ETH_RPC_URL": anvil.url,
        "ETH_CHAIN_ID": str(CHAIN_ID),
        "ETH_SERVICE_ADDRESS": service_address,
        "ETH_MIN_CONFIRMATIONS": str(ETH_MIN_CONFIRMATIONS),
        "ETH_TOKENS": f"{TOKEN_SYMBOL}:{token.address}:{TOKEN_DECIMALS}",
        "ETH_RPC_TIMEOUT_SECONDS": "2",
        **extra,
    }


@pytest.fixture
async def make_eth_gateway(make_gateway: Callable[..., Any], zcash_regtest: tuple[Any, str], anvil: Anvil,
                           test_token: TestToken) -> Callable[..., Any]:
    """Build an Ethereum gateway with a fresh service address; extra settings as environment variables (an
    `ETH_RPC_URL` among them points it at another node)."""

    async def build(**env: str) -> EthGateway:
        service_address = Account.create().address
        node, password = zcash_regtest
        gw = await make_gateway(node, password, **ethereum_env(anvil, test_token, service_address, **env))
        return EthGateway(gw, anvil, test_token, service_address)

    return build


@pytest.fixture
async def eth_gw(make_eth_gateway: Callable[..., Any]) -> EthGateway:
    return await make_eth_gateway()
