"""The `paygo` command: serve, migrate, vendor (create, rotate-key, revoke-key, keys), report, payouts,
zcash-regtest.

`paygo serve` with no configuration runs on embedded defaults: the machine's PostgreSQL (or a private one under
./.paygo/), the Zcash regtest stand-in and the rate stand-in in-process, and no Redis. It prints what it chose,
the next commands to try, and last the checkout page of a demo permission waiting for payment.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import secrets
import sys
from collections.abc import AsyncIterator, Callable
from uuid import UUID

from aiohttp import web

from billing.permission_service import PermissionRequest
from billing.refunds import PayoutStatus
from billing.report_service import VIEW_NAMES
from billing.services import Services
from chains.zcash_address import ZcashNetwork, encode_transparent
from gateway.app import create_app
from gateway.faces import checkout_path
from gateway.keys import SERVICES
from gateway.observability import METRICS
from gateway.views import payout_view
from kernel.errors import PayGoError
from paygo import event_loop
from paygo.embedded import find_or_start_postgres
from paygo.logs import configure_logging
from paygo.report import format_table, operator_report
from paygo.settings import Settings, SettingsError, parse_listen
from paygo.wiring import apply_pending_migrations, intervals, open_runtime
from paygo.workers import running_workers, start_gateway, wait_for_signal
from regtest.rates import start_rate_standin
from regtest.zcash_node import start_zcash_regtest
from scheduler.runner import running_scheduler

log = logging.getLogger("paygo")

EMBEDDED_DATABASE = "paygo"
EMBEDDED_MIN_CONFIRMATIONS = 1


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"paygo: configuration error: {exc}", file=sys.stderr)
        return 2
    operations = settings.operations
    configure_logging(operations.log_format, operations.log_level)
    try:
        return event_loop.run(args.run(args, settings))
    except (SettingsError, PayGoError) as exc:
        print(f"paygo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="paygo", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP gateway")
    serve.add_argument("--listen", metavar="HOST:PORT", help="overrides LISTEN_ADDR (default 127.0.0.1:8080)")
    serve.add_argument("--no-scheduler", action="store_true",
                       help="serve the API only; run the jobs elsewhere with `paygo scheduler`")
    serve.add_argument("--workers", type=_positive_int, metavar="N",
                       help="worker processes sharing the port (overrides WORKERS; default: the number of cores)")
    serve.set_defaults(run=_serve)

    scheduler = commands.add_parser("scheduler", help="run the background jobs only (any number of replicas)")
    scheduler.set_defaults(run=_scheduler)

    migrate_cmd = commands.add_parser("migrate", help="apply database migrations (also done at start-up)")
    migrate_cmd.set_defaults(run=_migrate)

    vendor = commands.add_parser("vendor", help="manage vendors")
    vendor_commands = vendor.add_subparsers(dest="vendor_command", required=True)
    vendor_create = vendor_commands.add_parser("create", help="register a vendor; prints its id and API key once")
    vendor_create.add_argument("name")
    vendor_create.set_defaults(run=_vendor_create)
    rotate_key = vendor_commands.add_parser(
        "rotate-key", help="a new API key (printed once); the current keys keep working for the overlap")
    rotate_key.add_argument("vendor_id", type=UUID)
    rotate_key.add_argument("--overlap-seconds", type=int, metavar="N",
                            help="how long the current keys stay valid (default VENDOR_KEY_ROTATION_OVERLAP_SECONDS)")
    rotate_key.set_defaults(run=_vendor_rotate_key)
    revoke_key = vendor_commands.add_parser("revoke-key", help="revoke one API key (by prefix) or all, at once")
    revoke_key.add_argument("vendor_id", type=UUID)
    which = revoke_key.add_mutually_exclusive_group(required=True)
    which.add_argument("--prefix", metavar="KEY_PREFIX", help="the key's first characters, e.g. pgv_AbCd")
    which.add_argument("--all", action="store_true", help="every live key of the vendor")
    revoke_key.set_defaults(run=_vendor_revoke_key)
    vendor_keys = vendor_commands.add_parser("keys", help="list the vendor's keys (prefixes and dates)")
    vendor_keys.add_argument("vendor_id", type=UUID)
    vendor_keys.set_defaults(run=_vendor_keys)

    report = commands.add_parser("report", help="print the operator views as tables")
    report.add_argument("--view", action="append", choices=VIEW_NAMES, help="only this view (repeatable)")
    report.add_argument("--limit", type=_positive_int, default=50, metavar="N", help="rows per view (default 50)")
    report.set_defaults(run=_report)

    payouts = commands.add_parser("payouts", help="list the payouts of refunds (Ethereum orders to pay, Zcash sends)")
    payouts.add_argument("--status", action="append", choices=list(PayoutStatus),
                         help="only this status (repeatable), e.g. --status pending --status unknown")
    payouts.add_argument("--limit", type=_positive_int, default=100, metavar="N", help="rows (default 100)")
    payouts.set_defaults(run=_payouts)

    regtest = commands.add_parser("zcash-regtest", help="run the zcashd-compatible regtest stand-in (tests, demos)")
    regtest.add_argument("--listen", metavar="HOST:PORT", default="127.0.0.1:18232")
    regtest.add_argument("--rpcuser", required=True)
    regtest.add_argument("--rpcpassword", required=True)
    regtest.add_argument("--personality", choices=["zcashd", "zallet"], default="zcashd")
    regtest.set_defaults(run=_zcash_regtest)
    return parser


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return int(text)


@contextlib.asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator[Settings]:
    """Settings with DATABASE_URL resolved: as configured, or the embedded PostgreSQL."""
    if settings.database_url:
        yield settings
        return
    embedded = await find_or_start_postgres(settings.state_dir.resolve(), EMBEDDED_DATABASE)
    where = "a private server under " + str(settings.state_dir) if embedded.started_here else "the local server"
    log.info("DATABASE_URL is not set: using database %r on %s", EMBEDDED_DATABASE, where)
    try:
        yield settings.model_copy(update={"database_url": embedded.dsn})
    finally:
        await embedded.stop()


def _scheduler_beside(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:
    """`paygo serve`'s jobs in its one process: the scheduler on the app's own services, timed into its metrics."""

    async def run(app: web.Application) -> AsyncIterator[None]:
        async with running_scheduler(app[SERVICES].jobs, intervals(settings), app[METRICS].observe_tick):
            yield

    return run


async def _serve(args: argparse.Namespace, settings: Settings) -> int:
    if args.listen:
        settings = settings.model_copy(update={"listen": parse_listen(args.listen)})
    if args.no_scheduler:
        settings = settings.model_copy(update={"scheduler": settings.scheduler.model_copy(update={"enabled": False})})
    if args.workers:
        serving = settings.serving.model_copy(update={"workers": args.workers})
        settings = settings.model_copy(update={"serving": serving})
    async with contextlib.AsyncExitStack() as stack:
        settings = await stack.enter_async_context(_database(settings))
        embedded_demo = settings.zcash.rpc_url is None
        if embedded_demo:
            rpc_user, rpc_password = "paygo", secrets.token_urlsafe(16)
            node = await start_zcash_regtest(rpcuser=rpc_user, rpcpassword=rpc_password, personality="zcashd")
            stack.push_async_callback(node.stop)
            settings = settings.model_copy(update={"zcash": settings.zcash.model_copy(update={
                "rpc_url": node.url, "rpc_user": rpc_user, "rpc_password": rpc_password,
                "network": ZcashNetwork.REGTEST, "rpc_flavor": "zcashd",
                "min_confirmations": settings.zcash.min_confirmations if _env_set("ZCASH_MIN_CONFIRMATIONS")
                else EMBEDDED_MIN_CONFIRMATIONS,
            })})
            log.info("ZCASH_RPC_URL is not set: running the Zcash regtest stand-in in-process at %s "
                     "(user %s) — test money only", node.url, rpc_user)
        if embedded_demo and settings.pricing.rate_provider_url is None:
            rates = await start_rate_standin()
            stack.push_async_callback(rates.stop)
            settings = settings.model_copy(update={"pricing": settings.pricing.model_copy(update={
                "rate_provider_url": rates.url})})
            log.info("RATE_PROVIDER_URL is not set: running the rate stand-in in-process at %s (ZEC at %s USD, "
                     "ETH at %s USD) — test rates only", rates.url, rates.stand_in.rates["ZEC-USD"],
                     rates.stand_in.rates["ETH-USD"])
        generated_admin_key = None
        if settings.admin_api_key is None and embedded_demo:
            generated_admin_key = "pga_" + secrets.token_urlsafe(24)
            settings = settings.model_copy(update={"admin_api_key": generated_admin_key})
        if settings.redis_url is None:
            log.info("REDIS_URL is not set: running without Redis (no cache)")
        base = f"http://{settings.listen_host}:{settings.listen_port}"
        workers = settings.serving.workers
        if workers == 1:
            app = create_app(settings)
            if settings.scheduler.enabled:
                app.cleanup_ctx.append(_scheduler_beside(settings))  # after the runtime's: stops first
            runner = await start_gateway(app, settings, reuse_port=False)
            stack.push_async_callback(runner.cleanup)
            print(f"PayGo gateway listening on {base}", flush=True)
            if embedded_demo:
                await _print_demo(app[SERVICES], base, node.url, rpc_password, generated_admin_key)
        else:
            await apply_pending_migrations(settings)  # once, before any worker starts
            await stack.enter_async_context(running_workers(settings))
            where = " and the scheduler in one more" if settings.scheduler.enabled else ""
            print(f"PayGo gateway listening on {base} ({workers} worker processes{where})", flush=True)
            if embedded_demo:
                async with open_runtime(settings, apply_migrations=False) as runtime:
                    await _print_demo(runtime.services, base, node.url, rpc_password, generated_admin_key)
        await wait_for_signal()
    return 0


def _env_set(name: str) -> bool:
    return bool(os.environ.get(name, "").strip())


async def _print_demo(services: Services, base: str, node_url: str, rpc_password: str,
                      generated_admin_key: str | None) -> None:
    """Demo mode only: a demo vendor with a fresh key, the run's operator key (only when this run made it: a key
    the operator set is never printed), a demo permission waiting for payment, the next commands to try, and last
    the demo permission's checkout page."""
    vendor = await services.vendors.rotate_demo_key("demo")
    demo_wallet = encode_transparent(ZcashNetwork.REGTEST, "p2pkh", bytes(range(20)))
    operator = (f"{generated_admin_key}   (X-API-Key; set ADMIN_API_KEY to choose your own)"
                if generated_admin_key else "the ADMIN_API_KEY you set (not shown)")
    demo = await services.permissions.create(PermissionRequest(
        funding_source="zcash", asset="ZEC", user_wallet_address=demo_wallet, requested_amount="10",
        rate_per_hour="2.5"))
    permission = demo.state.permission
    address = permission.payment_address
    print(f"""
Demo mode (embedded defaults; test money only):
  demo vendor id:   {vendor.vendor_id}
  demo vendor key:  {vendor.api_key}
  operator key:     {operator}
  regtest node:     {node_url}  (user paygo, password {rpc_password})

Ask for a spending permission of 10 ZEC at 2.5 ZEC per hour:
  curl -s -X POST {base}/api/v1/zcash/permissions -H 'Content-Type: application/json' \\
       -d '{{"user_wallet_address": "{demo_wallet}", "requested_amount": "10", "rate_per_hour": "2.5"}}'
One like it is waiting for payment already (its token opens the wallet view: {demo.permission_token}).
Pay it from the regtest faucet and mine a block; its checkout page turns active by itself:
  curl -s -u paygo:{rpc_password} {node_url} \\
       -d '{{"method":"z_sendmany","params":["ANY_TADDR",[{{"address":"{address}","amount":10}}]],"id":1}}'
  curl -s -u paygo:{rpc_password} {node_url} -d '{{"method":"generate","params":[1],"id":2}}'
Wallet view {base}/wallet · vendor dashboard {base}/vendor · operator dashboard {base}/operator
API docs {base}/api/v1/docs
Open the demo permission's checkout page:
  {base}{checkout_path(permission.id)}
""", flush=True)


async def _scheduler(args: argparse.Namespace, settings: Settings) -> int:
    async with (_database(settings) as resolved, open_runtime(resolved) as runtime,
                running_scheduler(runtime.services.jobs, intervals(resolved))):
        print("PayGo scheduler running; stop with Ctrl-C", flush=True)
        await wait_for_signal()
    return 0


async def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    async with _database(settings) as resolved:
        applied = await apply_pending_migrations(resolved)
    print("applied: " + ", ".join(applied) if applied else "database is up to date")
    return 0


@contextlib.asynccontextmanager
async def _services(settings: Settings) -> AsyncIterator[Services]:
    """The services over the (migrated) database, without funding sources, for the one-shot commands."""
    async with _database(settings) as resolved, open_runtime(resolved, with_sources=False) as runtime:
        yield runtime.services


async def _vendor_create(args: argparse.Namespace, settings: Settings) -> int:
    async with _services(settings) as services:
        vendor = await services.vendors.create(args.name)
    print(f"vendor_id: {vendor.vendor_id}")
    print(f"api_key:   {vendor.api_key}")
    print("The API key is shown only now; it is stored hashed.", file=sys.stderr)
    return 0


async def _vendor_rotate_key(args: argparse.Namespace, settings: Settings) -> int:
    async with _services(settings) as services:
        rotated = await services.vendors.rotate_key(args.vendor_id, args.overlap_seconds)
    print(f"vendor_id:  {rotated.vendor_id}")
    print(f"api_key:    {rotated.api_key}")
    print(f"key_prefix: {rotated.key_prefix}")
    if rotated.previous_keys_expire_at is not None:
        print(f"previous keys stop working at {rotated.previous_keys_expire_at.isoformat()}")
    print("The API key is shown only now; it is stored hashed.", file=sys.stderr)
    return 0


async def _vendor_revoke_key(args: argparse.Namespace, settings: Settings) -> int:
    async with _services(settings) as services:
        revoked = await services.vendors.revoke_keys(args.vendor_id, None if args.all else args.prefix)
    print(f"revoked {revoked} key(s) of vendor {args.vendor_id}")
    return 0


async def _vendor_keys(args: argparse.Namespace, settings: Settings) -> int:
    async with _services(settings) as services:
        keys = await services.vendors.keys(args.vendor_id)
    print(format_table(["key_prefix", "created_at", "expires_at", "revoked_at", "live"],
                       [(k.key_prefix, k.created_at, k.expires_at, k.revoked_at, "yes" if k.live else "no")
                        for k in keys]))
    return 0


async def _report(args: argparse.Namespace, settings: Settings) -> int:
    async with _services(settings) as services:
        print(operator_report(await services.reports.operator_views(args.view or VIEW_NAMES, args.limit)), end="")
    return 0


async def _payouts(args: argparse.Namespace, settings: Settings) -> int:
    async with _services(settings) as services:
        payouts = await services.refunds.list(statuses=frozenset(args.status) if args.status else None,
                                              limit=args.limit)
    views = [payout_view(payout) for payout in payouts]
    print(format_table(
        ["payout_id", "source", "status", "amount", "asset", "destination", "txid", "created_at"],
        [(v.payout_id, v.funding_source, v.status, v.amount, v.asset, v.destination, v.txid or "", v.created_at)
         for v in views]))
    return 0


async def _zcash_regtest(args: argparse.Namespace, settings: Settings) -> int:
    host, port = parse_listen(args.listen)
    node = await start_zcash_regtest(host=host, port=port, rpcuser=args.rpcuser, rpcpassword=args.rpcpassword,
                                     personality=args.personality)
    print(f"Zcash regtest stand-in ({args.personality}) listening on {node.url}", flush=True)
    if node.node_url != node.url:
        print(f"  chain (zebrad) endpoint: {node.node_url}", flush=True)
    try:
        await wait_for_signal()
    finally:
        await node.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
