"""`AsyncPayGo`: the asyncio client (httpx.AsyncClient), with the same methods as `PayGo` (paygo_client.client),
each a coroutine (the iterators are async iterators)."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

import httpx
from httpx_sse import EventSource

from paygo_client import _calls as calls
from paygo_client._calls import Amount, Call, Moment, method_signature, operations
from paygo_client._flows import holder_token, is_activated, is_news, session_of
from paygo_client._http import (
    OPENAPI_PATH,
    RETRYABLE_TRANSPORT_ERRORS,
    USER_AGENT,
    Credentials,
    RetryPolicy,
    api_error,
    build_request,
    is_answer,
    version_checked,
)
from paygo_client.errors import TransportError, WaitTimeout
from paygo_client.models import CreatedPermission, Delivery, Permission, Session, VendorSession

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

P = ParamSpec("P")
T = TypeVar("T")


def _method(builder: Callable[P, Call[T]]) -> Callable[Concatenate[AsyncPayGo, P], Coroutine[Any, Any, T]]:
    """A client coroutine that makes the call `builder` describes (same signature and documentation)."""

    @functools.wraps(builder)
    async def method(self: AsyncPayGo, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._call(builder(*args, **kwargs))

    method.__signature__ = method_signature(builder)  # type: ignore[attr-defined]
    method.__qualname__ = f"AsyncPayGo.{builder.__name__}"
    method.__module__ = __name__
    return method


class AsyncPayGo:
    """An asyncio client of one PayGo gateway.

    Credentials per role, each optional: `permission_token` (a wallet user's; most permission methods also take
    `token=` for one call), `vendor_key` (the vendor API), `operator_key` (admin calls). Connection errors,
    timeouts, 429 and 503 are retried under `retry` (a `RetryPolicy`), honouring `Retry-After`; a mutating call
    keeps its Idempotency-Key across retries, so the gateway applies it once. On its first call the client reads the
    gateway's API version and warns (`APIVersionWarning`) on a major mismatch (`check_api_version=False` skips it).
    Use it as an async context manager, or await `close()`.
    """

    def __init__(self, base_url: str, *, permission_token: str | None = None, vendor_key: str | None = None,
                 operator_key: str | None = None, timeout: float = 10.0, retry: RetryPolicy | None = None,
                 check_api_version: bool = True) -> None:
        self.credentials = Credentials(permission_token, vendor_key, operator_key)
        self.retry = retry or RetryPolicy()
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout,
                                  headers={"User-Agent": USER_AGENT})
        self._version_checked = not check_api_version

    def __repr__(self) -> str:
        return f"AsyncPayGo({str(self._http.base_url)!r}, {self.credentials!r})"

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncPayGo:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        await self.close()

    # --- sending ---------------------------------------------------------------------------------------------------

    async def _check_api_version(self) -> None:
        if self._version_checked:
            return
        self._version_checked = True  # calls made meanwhile do not check again
        try:
            response = await self._http.get(OPENAPI_PATH)
        except httpx.HTTPError:
            self._version_checked = False  # the call itself will say what is wrong; check again next time
            return
        self._version_checked = version_checked(response)

    async def _send(self, call: Call[Any], *, stream: bool = False) -> httpx.Response:
        """The answer to `call` after retries (open, when `stream`: the caller closes it); raises the API's error
        or `TransportError`."""
        await self._check_api_version()
        attempt = 0
        while True:
            request = build_request(self._http, call, self.credentials, stream=stream)
            try:
                response = await self._http.send(request, stream=stream)
            except RETRYABLE_TRANSPORT_ERRORS as exc:
                delay = self.retry.delay_after_error(attempt)
                if delay is None:
                    raise TransportError(f"{call.method} to {self._http.base_url} failed: {exc!r}") from exc
            else:
                if is_answer(call, response):
                    return response
                await response.aread()
                await response.aclose()
                delay = self.retry.delay_after_response(attempt, response)
                if delay is None:
                    raise api_error(response)
            attempt += 1
            await asyncio.sleep(delay)

    async def _call(self, call: Call[T]) -> T:
        return call.parse(await self._send(call))

    @asynccontextmanager
    async def _stream(self, call: Call[Any]) -> AsyncIterator[httpx.Response]:
        response = await self._send(call, stream=True)
        try:
            yield response
        finally:
            await response.aclose()

    # --- one method per operation (paygo_client._calls) ------------------------------------------------------------

    create_zcash_permission = _method(calls.create_zcash_permission)
    create_card_permission = _method(calls.create_card_permission)
    ethereum_typed_data = _method(calls.ethereum_typed_data)
    create_signed_ethereum_permission = _method(calls.create_signed_ethereum_permission)
    get_permission = _method(calls.get_permission)
    verify_permission = _method(calls.verify_permission)
    get_wallet_permission = _method(calls.get_wallet_permission)
    refund_card_permission = _method(calls.refund_card_permission)
    refund_permission = _method(calls.refund_permission)
    create_quote = _method(calls.create_quote)
    zcash_balance = _method(calls.zcash_balance)
    ethereum_balance = _method(calls.ethereum_balance)
    get_checkout = _method(calls.get_checkout)
    get_wallet = _method(calls.get_wallet)
    open_session = _method(calls.open_session)
    end_session = _method(calls.end_session)
    get_session = _method(calls.get_session)
    list_vendor_sessions = _method(calls.list_vendor_sessions)
    get_vendor_session = _method(calls.get_vendor_session)
    vendor_charges_summary = _method(calls.vendor_charges_summary)
    list_webhook_deliveries = _method(calls.list_webhook_deliveries)
    redeliver_webhook = _method(calls.redeliver_webhook)
    get_vendor_account = _method(calls.get_vendor_account)
    rotate_own_vendor_key = _method(calls.rotate_own_vendor_key)
    create_vendor = _method(calls.create_vendor)
    list_payouts = _method(calls.list_payouts)
    resolve_payout = _method(calls.resolve_payout)
    verify_payout = _method(calls.verify_payout)
    list_vendor_keys = _method(calls.list_vendor_keys)
    rotate_vendor_key = _method(calls.rotate_vendor_key)
    revoke_vendor_keys = _method(calls.revoke_vendor_keys)
    set_vendor_webhook = _method(calls.set_vendor_webhook)
    redeliver_any_webhook = _method(calls.redeliver_any_webhook)
    operator_overview = _method(calls.operator_overview)
    operator_timeseries = _method(calls.operator_timeseries)
    get_permission_audit = _method(calls.get_permission_audit)
    health = _method(calls.health)
    health_live = _method(calls.health_live)
    health_ready = _method(calls.health_ready)
    metrics = _method(calls.metrics)
    openapi = _method(calls.openapi)

    # --- the seed's flows ------------------------------------------------------------------------------------------

    async def create_ethereum_permission(
        self, account: LocalAccount, requested_amount: Amount, rate_per_hour: Amount, *, asset: str = "ETH",
        duration_days: int | None = None, notify_url: str | None = None, expiry: int | None = None,
        nonce: int | None = None, idempotency_key: str | None = None,
    ) -> CreatedPermission:
        """Create an Ethereum permission for `account`'s wallet: fetch the gateway's EIP-712 typed data for these
        terms, sign it with the eth-account key `account`, and submit it. Pay ETH (or the token) from that wallet
        to the answer's `payment_address`, then `wait_until_active(permission, tx_hashes=[...])`."""
        typed_data = await self.ethereum_typed_data(account.address, requested_amount, rate_per_hour, asset=asset,
                                                    duration_days=duration_days, expiry=expiry, nonce=nonce)
        return await self._call(calls.signed_ethereum_permission(
            account, typed_data, requested_amount, rate_per_hour, asset=asset, duration_days=duration_days,
            notify_url=notify_url, idempotency_key=idempotency_key))

    async def wait_until_active(self, permission: Permission, *, timeout: float = 300.0, interval: float = 2.0,
                                tx_hashes: Sequence[str] = (), token: str | None = None) -> Permission:
        """Verify the permission every `interval` seconds until it is active (its state is returned). Raises
        `WaitTimeout` after `timeout` seconds, `PermissionNotActivated` if it expires or closes unpaid. A create
        answer carries its own token; otherwise pass `token=` (or the client's credentials apply)."""
        deadline = time.monotonic() + timeout
        while True:
            current = await self.verify_permission(permission.permission_id, source=permission.funding_source,
                                                   tx_hashes=tx_hashes, token=holder_token(permission, token))
            if is_activated(current):
                return current
            if time.monotonic() + interval > deadline:
                raise WaitTimeout(f"permission {permission.permission_id} still {current.status} after {timeout} s",
                                  current)
            await asyncio.sleep(interval)

    @operations("GET /api/v1/sessions/{session_code}/events")
    async def live(self, session_code: str, *, token: str | None = None) -> AsyncIterator[Session]:
        """The session's state each time it changes (charges, remaining balance, status), from the gateway's
        server-sent events, starting with its current state and ending after its final one. A dropped stream is
        reopened; a state already yielded is not yielded again."""
        call = calls.session_events(session_code, token=token)
        failures = 0
        last: Session | None = None
        while True:
            try:
                async with self._stream(call) as response:
                    async for event in EventSource(response).aiter_sse():
                        session = session_of(event)
                        if session is None or not is_news(last, session):
                            continue
                        failures, last = 0, session
                        yield session
                        if session.is_final:
                            return
            except RETRYABLE_TRANSPORT_ERRORS as exc:
                error: Exception | None = exc
            else:
                error = None  # closed without a final state (the gateway is shutting down): reconnect
            delay = self.retry.delay_after_error(failures)
            if delay is None:
                raise TransportError(f"the live stream of a session keeps failing: {error!r}") from error
            failures += 1
            await asyncio.sleep(delay)

    async def iter_vendor_sessions(
        self, *, status: str | Sequence[str] | None = None, started_from: Moment | None = None,
        started_to: Moment | None = None, wallet: str | None = None, page_size: int = 100,
    ) -> AsyncIterator[VendorSession]:
        """Every matching session of the vendor, newest first, page by page (vendor key)."""
        cursor: str | None = None
        while True:
            page = await self.list_vendor_sessions(status=status, started_from=started_from, started_to=started_to,
                                                   wallet=wallet, limit=page_size, cursor=cursor)
            for session in page.sessions:
                yield session
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def download_vendor_sessions_csv(
        self, destination: IO[bytes], *, status: str | Sequence[str] | None = None,
        started_from: Moment | None = None, started_to: Moment | None = None, wallet: str | None = None,
    ) -> int:
        """Write every matching session as CSV (the columns of `VendorSession`) to `destination` as it streams in;
        returns the bytes written (vendor key)."""
        written = 0
        call = calls.vendor_sessions_csv(status=status, started_from=started_from, started_to=started_to,
                                         wallet=wallet)
        async with self._stream(call) as response:
            async for chunk in response.aiter_bytes():
                written += destination.write(chunk)
        return written

    async def iter_webhook_deliveries(
        self, *, status: str | Sequence[str] | None = None, event_type: str | None = None, page_size: int = 100,
    ) -> AsyncIterator[Delivery]:
        """Every matching webhook delivery of the vendor, page by page (vendor key)."""
        cursor: str | None = None
        while True:
            page = await self.list_webhook_deliveries(status=status, event_type=event_type, limit=page_size,
                                                      cursor=cursor)
            for delivery in page.deliveries:
                yield delivery
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

