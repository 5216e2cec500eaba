"""The runnable examples (examples/), each run as its README says, as a separate process against a real gateway on
embedded-like settings (the Zcash stand-in, one confirmation)."""

from __future__ import annotations

import asyncio
import csv
import socket
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from paygo_client import AsyncPayGo

from billing.delivery import deliver_due
from billing.outbound import WebhookSender
from billing.outbox import RetryPolicy
from regtest.zcash_node import RunningNode
from tests.client.conftest import base_url
from tests.conftest import ADMIN_KEY, RPC_USER, Gateway, new_wallet
from tests.webhook_fixtures import WEBHOOK_SIGNING_KEY

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RUN_TIMEOUT_SECONDS = 60


async def run_example(name: str, *args: str) -> tuple[int, str]:
    """Run examples/<name> with the project's Python; its exit status and output."""
    process = await asyncio.create_subprocess_exec(sys.executable, str(EXAMPLES / name), *args,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT_SECONDS)
    assert process.returncode is not None
    return process.returncode, output.decode()


@pytest.fixture
async def demo(make_gateway: Callable[..., Any], zcash_regtest: tuple[RunningNode, str]) -> Gateway:
    """A gateway as `make serve` runs it: one confirmation, and webhooks signed."""
    node, password = zcash_regtest
    return await make_gateway(node, password, ZCASH_MIN_CONFIRMATIONS="1", WEBHOOK_SIGNING_KEY=WEBHOOK_SIGNING_KEY,
                              ALLOW_PRIVATE_WEBHOOK_TARGETS="true")


@pytest.fixture
async def operator(demo: Gateway) -> AsyncIterator[AsyncPayGo]:
    async with AsyncPayGo(base_url(demo.client), operator_key=ADMIN_KEY) as client:
        yield client


async def test_streaming_client(demo: Gateway, operator: AsyncPayGo, zcash_regtest: tuple[RunningNode, str]) -> None:
    vendor = await operator.create_vendor("demo")
    status, output = await run_example(
        "streaming_client.py", "--gateway", base_url(demo.client), "--vendor-id", vendor.vendor_id,
        "--rpc-url", demo.node.url, "--rpc-user", RPC_USER, "--rpc-password", zcash_regtest[1], "--seconds", "1")
    assert status == 0, output
    assert "active: 10.00000000 ZEC left" in output and "  active: charged 0.00000000" in output
    assert "  ended: charged" in output and ": confirmed, charged 0.00" in output


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _deliver(gw: Gateway, now: datetime) -> None:
    sender = WebhookSender(allow_private=True)  # the receivers of these tests listen on 127.0.0.1
    try:
        await deliver_due(gw.database, sender, signing_key=WEBHOOK_SIGNING_KEY, now=now, timeout_seconds=2,
                          policy=RetryPolicy(max_attempts=3, base_seconds=30, cap_seconds=90))
    finally:
        await sender.close()


async def test_webhook_receiver_verifies_and_drops_duplicates(demo: Gateway, operator: AsyncPayGo) -> None:
    vendor = await operator.create_vendor("hooked")
    port = _free_port()
    url = f"http://127.0.0.1:{port}/paygo"
    setting = await operator.set_vendor_webhook(vendor.vendor_id, url)
    assert setting.secret is not None
    receiver = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLES / "webhook_receiver.py"), "--listen", f"127.0.0.1:{port}",
        "--secret", setting.secret, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        assert receiver.stdout is not None
        assert b"receiving PayGo webhooks" in await asyncio.wait_for(receiver.stdout.readline(), 30)
        async with httpx.AsyncClient() as http:
            async with asyncio.timeout(30):  # the port answers once the app runs
                while True:
                    try:
                        forged = await http.post(url, content=b"{}", headers={"PayGo-Signature": "t=1,v1=00"})
                        break
                    except httpx.ConnectError:
                        await asyncio.sleep(0.05)
        assert forged.status_code == 400

        created = await operator.create_zcash_permission(new_wallet(), "10", "2.5")
        await demo.pay(created.payment_address, "10")
        await demo.mine(1)
        await operator.wait_until_active(created, timeout=10, interval=0.05)
        opened = await operator.open_session(created.user_wallet_address, vendor.vendor_id,
                                             token=created.permission_token)
        now = datetime.now(UTC) + timedelta(seconds=1)
        await _deliver(demo, now)
        async with AsyncPayGo(base_url(demo.client), vendor_key=vendor.api_key) as hooked:
            [delivery] = [d async for d in hooked.iter_webhook_deliveries(status="delivered")]
            await hooked.redeliver_webhook(delivery.id)
        await _deliver(demo, now + timedelta(seconds=1))
    finally:
        receiver.terminate()
        output = (await receiver.communicate())[0].decode()
    assert output.count(f"processed session.started session.started:{opened.session_id}") == 1, output
    assert output.count(f"duplicate session.started:{opened.session_id}") == 1, output
    assert output.count("refused") == 1, output


async def test_reconciliation(demo: Gateway, operator: AsyncPayGo, tmp_path: Path) -> None:
    vendor = await operator.create_vendor("reconciled")
    created = await operator.create_zcash_permission(new_wallet(), "10", "2.5")
    await demo.pay(created.payment_address, "10")
    await demo.mine(1)
    await operator.wait_until_active(created, timeout=10, interval=0.05)
    for seconds in (600, 900):
        opened = await operator.open_session(created.user_wallet_address, vendor.vendor_id,
                                             token=created.permission_token)
        await demo.backdate_session(opened.session_id, seconds)
        await operator.end_session(opened.session_code)
    day = datetime.now(UTC).date()
    sessions_csv = tmp_path / "day.csv"

    status, output = await run_example("reconcile.py", "--gateway", base_url(demo.client), "--vendor-key",
                                       vendor.api_key, "--day", day.isoformat(), "--csv", str(sessions_csv))

    assert status == 0, output
    assert "reconciled" in output and "ZEC" in output
    with sessions_csv.open(newline="") as file:
        assert len(list(csv.DictReader(file))) == 2
