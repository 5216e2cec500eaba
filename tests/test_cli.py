"""The `paygo` command as users run it: serve on embedded defaults, migrate, vendor create, zcash-regtest."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp

from tests.conftest import ADMIN_KEY

PAYGO = [sys.executable, "-m", "paygo.cli"]
CONFIG_VARIABLES = ("DATABASE_URL", "REDIS_URL", "ZCASH_RPC_URL", "ADMIN_API_KEY", "LISTEN_ADDR", "ETH_RPC_URL",
                    "STRIPE_SECRET_KEY")


def basic_auth(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CONFIG_VARIABLES}
    env.update(extra)
    return env


async def run(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(*PAYGO, *args, env=env, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode(), err.decode()


@asynccontextmanager
async def running(*args: str, env: dict[str, str], ready: str) -> AsyncIterator[list[str]]:
    """Start a long-running command, yield the stdout lines read up to `ready`, stop it with SIGTERM."""
    process = await asyncio.create_subprocess_exec(*PAYGO, *args, env=env, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.DEVNULL)
    assert process.stdout is not None
    lines: list[str] = []
    try:
        while not any(ready in line for line in lines):
            line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
            assert line, f"exited before {ready!r}: {lines}"
            lines.append(line)
        yield lines
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), 30) == 0


async def test_vendor_create_prints_id_and_key_once(database_dsn: str) -> None:
    code, out, err = await run("vendor", "create", "Acme Streams", env=clean_env(DATABASE_URL=database_dsn))
    assert code == 0, err
    vendor_id = re.search(r"vendor_id: (\S+)", out).group(1)  # type: ignore[union-attr]
    api_key = re.search(r"api_key:\s+(pgv_\S+)", out).group(1)  # type: ignore[union-attr]
    assert "shown only now" in err
    import asyncpg

    conn = await asyncpg.connect(database_dsn)
    try:
        stored = await conn.fetchrow("SELECT key_hash FROM vendor_api_keys WHERE vendor_id = $1", vendor_id)
        assert api_key.encode() not in bytes(stored["key_hash"])
    finally:
        await conn.close()


async def test_migrate_is_a_no_op_on_a_migrated_database(database_dsn: str) -> None:
    code, out, err = await run("migrate", env=clean_env(DATABASE_URL=database_dsn))
    assert code == 0, err
    assert "up to date" in out


async def test_bad_configuration_is_refused_clearly(database_dsn: str) -> None:
    code, _out, err = await run("migrate", env=clean_env(DATABASE_URL=database_dsn, ZCASH_MIN_CONFIRMATIONS="many"))
    assert code == 2 and "ZCASH_MIN_CONFIRMATIONS" in err


async def test_zcash_regtest_standalone_answers_with_auth() -> None:
    port = free_port()
    args = ("zcash-regtest", "--listen", f"127.0.0.1:{port}", "--rpcuser", "u", "--rpcpassword", "p",
            "--personality", "zcashd")
    async with running(*args, env=clean_env(), ready="listening"), aiohttp.ClientSession() as http:
        body = {"jsonrpc": "1.0", "id": 1, "method": "getblockchaininfo", "params": []}
        async with http.post(f"http://127.0.0.1:{port}/", json=body, headers=basic_auth("u", "p")) as reply:
            assert reply.status == 200 and (await reply.json())["result"]["chain"] == "regtest"
        async with http.post(f"http://127.0.0.1:{port}/", json=body, headers=basic_auth("u", "x")) as reply:
            assert reply.status == 401


async def test_serve_on_embedded_defaults_prints_the_demo_and_answers(database_dsn: str) -> None:
    port = free_port()
    env = clean_env(DATABASE_URL=database_dsn)  # the stand-in in-process, no Redis, a one-run operator key
    async with running("serve", "--listen", f"127.0.0.1:{port}", "--no-scheduler", env=env,
                       ready="/pay/") as lines:
        printed = "".join(lines)
        checkout_page = lines[-1].strip()  # the printed next steps end with the demo's checkout page
        assert re.fullmatch(rf"http://127\.0\.0\.1:{port}/pay/[0-9a-f-]{{36}}", checkout_page), lines[-3:]
        assert "One like it is waiting for payment already (its token opens the wallet view: pgp_" in printed
        assert f"listening on http://127.0.0.1:{port}" in printed
        assert "demo vendor id:" in printed and "demo vendor key:  pgv_" in printed
        wallet = re.search(r'"user_wallet_address": "(\S+)"', printed).group(1)  # type: ignore[union-attr]
        vendor_id = re.search(r"demo vendor id:\s+(\S+)", printed).group(1)  # type: ignore[union-attr]
        operator_key = re.search(r"operator key:\s+(pga_\S+)", printed).group(1)  # type: ignore[union-attr]
        async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{port}") as http:
            async with http.get(checkout_page) as reply:
                assert reply.status == 200 and "10.00000000" in await reply.text()
            async with http.get("/api/v1/health", headers={"X-API-Key": operator_key}) as reply:
                health = await reply.json()
                assert reply.status == 200 and health["checks"]["zcash"]["reachable"] is True
                assert health["checks"]["redis"]["enabled"] is False
            body = {"user_wallet_address": wallet, "requested_amount": "10", "rate_per_hour": "2.5"}
            async with http.post("/api/v1/zcash/permissions", json=body) as reply:
                created = await reply.json()
                assert reply.status == 201 and created["max_streaming_hours"] == "4.000000"
            async with http.post("/api/v1/sessions", json={"user_wallet_address": wallet, "vendor_id": vendor_id},
                                 headers={"Authorization": f"Bearer {created['permission_token']}"}) as reply:
                assert reply.status == 402  # not paid yet


async def test_serve_never_prints_an_operator_key_the_operator_set(database_dsn: str) -> None:
    chosen = "operator-chosen-" + base64.urlsafe_b64encode(os.urandom(18)).decode()
    env = clean_env(DATABASE_URL=database_dsn, ADMIN_API_KEY=chosen)
    process = await asyncio.create_subprocess_exec(*PAYGO, "serve", "--listen", f"127.0.0.1:{free_port()}",
                                                   "--no-scheduler", env=env, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT)
    assert process.stdout is not None
    printed = ""
    try:
        while "curl -s -u paygo" not in printed:
            line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
            assert line, printed
            printed += line
    finally:
        process.terminate()
        printed += (await asyncio.wait_for(process.stdout.read(), 30)).decode()
        await process.wait()
    assert "operator key:     the ADMIN_API_KEY you set (not shown)" in printed
    assert chosen not in printed


async def test_scheduler_process_runs_the_jobs_and_records_them(gw, database_dsn: str) -> None:
    vendor = await gw.create_vendor()
    permission = await gw.funded_permission("10", "360")  # 0.1 ZEC per second: every tick charges something
    status, opened = await gw.open_session(permission, vendor["vendor_id"])
    assert status == 201
    await gw.backdate_session(opened["session_id"], 5)
    env = clean_env(DATABASE_URL=database_dsn, BILLING_INTERVAL_SECONDS="1", WATCHER_INTERVAL_SECONDS="1")
    async with running("scheduler", env=env, ready="scheduler running"):
        for _ in range(600):
            jobs = {row["job_name"]: row for row in await gw.db.fetch("SELECT * FROM job_runs")}
            charged = await gw.db.fetchval("SELECT charged_amount FROM live_sessions WHERE id = $1",
                                           opened["session_id"])
            if jobs.get("billing_tick") and jobs["billing_tick"]["last_succeeded_at"] and charged > 0:
                break
            await asyncio.sleep(0.05)
    assert charged >= 5 * 10_000_000
    assert {"billing_tick", "expiry", "payment_watcher", "reminders", "outbox_delivery"} <= jobs.keys()
    status, health = await gw.call("GET", "/api/v1/health", api_key=ADMIN_KEY)
    assert health["checks"]["scheduler"]["lag_seconds"] is not None


async def test_payouts_lists_the_refunds(gw, database_dsn: str) -> None:
    permission = await gw.funded_permission("1", "1")
    status, answer = await gw.call("POST", f"/api/v1/zcash/permissions/{permission['permission_id']}/refund",
                                   token=permission["permission_token"])
    assert status == 200 and answer["refund"]["status"] == "sent", answer
    code, out, err = await run("payouts", env=clean_env(DATABASE_URL=database_dsn))
    assert code == 0, err
    [row] = [line for line in out.splitlines() if answer["refund"]["payout_id"] in line]
    assert " sent " in row and "0.99990000" in row and answer["refund"]["txid"] in row
    code, out, err = await run("payouts", "--status", "pending", "--status", "unknown",
                               env=clean_env(DATABASE_URL=database_dsn))
    assert code == 0 and answer["refund"]["payout_id"] not in out, err
