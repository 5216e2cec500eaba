"""An async JSON-RPC 1.0 client for zcashd, Zallet and zebrad (bitcoind-style RPC over HTTP).

python-bitcoinrpc 1.0 cannot be used: it insists on the exact Content-Type `application/json` (Zallet and zebrad
send `application/json; charset=utf-8`), it is synchronous, one proxy is not thread-safe, and a proxy is unusable
after a timeout. This client runs on aiohttp instead:

- numbers in replies are parsed with `parse_float=Decimal`, and Decimal arguments are written as exact JSON
  numbers (never through float);
- reads (`call`, `batch`) are retried with backoff while the node is unreachable or warming up; a call that moves
  money (`send`) is never retried, because `z_sendmany` builds a new transaction each time it is called;
- failures are typed: `RpcError` (the method refused), `RpcAuthError` (bad credentials: the operator must fix the
  configuration), `RpcUnavailable` (nothing usable came back), all `RpcFailure`.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any, TypeVar

import aiohttp
from yarl import URL

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Error codes meaning "ask again shortly": zcashd is starting (-28, Zallet also uses it for "Wallet sync
# required"), Zallet is catching up with the chain (-10) or holds its sync lock while recovering from a reorg (-2).
WARMING_UP_CODES = frozenset({-28, -10, -2})

# HTTP statuses whose body is a JSON-RPC reply: zcashd and Zallet answer method errors with 500, an invalid
# request with 400 and an unknown method with 404; zebrad answers method errors with 200.
_JSON_REPLY_STATUSES = frozenset({200, 400, 404, 500})


class RpcFailure(Exception):
    """Any failure of a JSON-RPC call."""


class RpcError(RpcFailure):
    """The node answered with a JSON-RPC error object."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.data = data


class RpcAuthError(RpcFailure):
    """The node refused our credentials (HTTP 401/403, or zebrad closing the connection without a reply)."""


class RpcUnavailable(RpcFailure):
    """No usable reply: connection refused or dropped, timeout, garbage, or still warming up after retries.

    `retryable` is False for a timeout: a node that is too slow once will not be faster right away, and waiting
    for it several times over would multiply the caller's latency.
    """

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class _ConnectionDropped(RpcUnavailable):
    """The server closed the connection without replying. Once can be a stale keep-alive connection; twice in a
    row is how zebrad rejects bad credentials."""


def encode_json(value: Any) -> str:
    """JSON text for `value`, with Decimal written as an exact JSON number. Floats are refused: money never
    passes through binary floating point."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} has no JSON representation")
        return format(value, "f")
    if isinstance(value, float):
        raise TypeError("floats are not accepted in JSON-RPC parameters; use int or Decimal")
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(key))}:{encode_json(item)}" for key, item in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(encode_json(item) for item in value) + "]"
    return json.dumps(value)


def decode_json(text: str | bytes) -> Any:
    """Parse JSON with non-integer numbers as Decimal."""
    return json.loads(text, parse_float=Decimal)


def _result_of(reply: Any) -> Any:
    """The `result` of one JSON-RPC reply object, or its error raised as RpcError."""
    if not isinstance(reply, dict):
        raise RpcUnavailable(f"malformed JSON-RPC reply: {reply!r:.200}")
    error = reply.get("error")
    if error is not None:
        if not isinstance(error, dict):
            raise RpcError(-1, str(error))
        code = error.get("code")
        raise RpcError(code if isinstance(code, int) else -1, str(error.get("message", "")), error.get("data"))
    if "result" not in reply:
        raise RpcUnavailable(f"JSON-RPC reply without result: {reply!r:.200}")
    return reply["result"]


class JsonRpcClient:
    """A JSON-RPC client for one endpoint, safe to share between tasks. Reads are tried `retry_attempts` times,
    waiting `retry_backoff` seconds, then twice that, and so on, between attempts."""

    def __init__(
        self,
        url: str,
        *,
        user: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        max_in_flight: int = 8,
        session: aiohttp.ClientSession | None = None,
        retry_attempts: int = 4,
        retry_backoff: float = 0.2,
        max_batch_calls: int = 500,
    ) -> None:
        self.url = url
        # Credentials never appear in messages: the endpoint is named without them.
        self.endpoint = str(URL(url).with_user(None))
        self._headers = {"Content-Type": "application/json"}
        if user is not None:
            self._headers["Authorization"] = aiohttp.encode_basic_auth(user, password or "")
        self._timeout_seconds = timeout
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        # zcashd serves RPC with a few worker threads and a short work queue (rpcthreads=4, rpcworkqueue=16) and
        # answers HTTP 503 "Work queue depth exceeded" beyond it; jsonrpsee (Zallet, zebrad) also caps concurrent
        # requests. A burst from us (say the watcher checking many targets) must queue here, not be refused there.
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._session = session
        self._owns_session = session is None
        self._ids = itertools.count(1)
        self._retry_attempts = max(retry_attempts, 1)
        self._retry_backoff = retry_backoff
        self._batches_refused = False
        self._max_batch_calls = max_batch_calls

    async def call(self, method: str, *params: Any) -> Any:
        """Call a read-only method; retried while the node is unreachable or warming up."""
        return await self._with_retries(method, lambda: self._call_once(method, params))

    async def send(self, method: str, *params: Any) -> Any:
        """Call a method that moves money. Never retried: a second `z_sendmany` would be a second payment.
        A dropped connection or a timeout leaves the outcome unknown, and the RpcUnavailable says so."""
        try:
            return await self._call_once(method, params)
        except RpcUnavailable as error:
            if isinstance(error, _ConnectionDropped) or not error.retryable:
                raise RpcUnavailable(
                    f"{method}: {error}; it may or may not have been executed", retryable=False
                ) from error
            raise

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Several read-only calls in as few HTTP requests as possible (JSON arrays of at most `max_batch_calls`
        calls, so no request grows past what a node accepts: zcashd and jsonrpsee refuse large bodies). Each item
        of the answer is the call's result or its RpcError, in the order of `calls`. Falls back to separate calls
        if the server refuses batches."""
        results: list[Any] = []
        for start in range(0, len(calls), self._max_batch_calls):
            chunk = calls[start:start + self._max_batch_calls]
            results += await self._with_retries("batch", functools.partial(self._batch_once, chunk))
        return results

    async def close(self) -> None:
        """Close the HTTP session if this client created it."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def _call_once(self, method: str, params: Sequence[Any]) -> Any:
        request = {"jsonrpc": "1.0", "id": next(self._ids), "method": method, "params": list(params)}
        return _result_of(await self._post(request))

    async def _call_collecting_error(self, method: str, params: Sequence[Any]) -> Any:
        """One call for a batch: a method error is an answer, a warming-up error is raised to retry them all."""
        try:
            return await self._call_once(method, params)
        except RpcError as error:
            if error.code in WARMING_UP_CODES:
                raise
            return error

    async def _batch_once(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        if self._batches_refused:
            return await self._calls_one_by_one(calls)
        ids = [next(self._ids) for _ in calls]
        requests = [
            {"jsonrpc": "1.0", "id": call_id, "method": method, "params": list(params)}
            for call_id, (method, params) in zip(ids, calls, strict=True)
        ]
        reply = await self._post(requests)
        if isinstance(reply, dict):
            # One error for the whole array: a warming-up node (retried), or a server without batch support.
            error = reply.get("error")
            if isinstance(error, dict) and error.get("code") in WARMING_UP_CODES:
                _result_of(reply)
            logger.info("%s refused a batch request (%s); sending calls one by one", self.endpoint, error)
            self._batches_refused = True
            return await self._calls_one_by_one(calls)
        if not isinstance(reply, list):
            raise RpcUnavailable(f"malformed JSON-RPC batch reply: {reply!r:.200}")
        by_id = {item.get("id"): item for item in reply if isinstance(item, dict)}
        results: list[Any] = []
        for call_id, (method, _) in zip(ids, calls, strict=True):
            if call_id not in by_id:
                raise RpcUnavailable(f"batch reply has no answer for {method} (id {call_id})")
            try:
                results.append(_result_of(by_id[call_id]))
            except RpcError as error:
                if error.code in WARMING_UP_CODES:
                    raise
                results.append(error)
        return results

    async def _calls_one_by_one(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        return list(await asyncio.gather(*(self._call_collecting_error(method, params) for method, params in calls)))

    async def _with_retries(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        last_failure: RpcFailure | None = None
        for attempt_number in range(self._retry_attempts):
            if attempt_number:
                await asyncio.sleep(self._retry_backoff * 2 ** (attempt_number - 1))
            try:
                return await attempt()
            except RpcError as error:
                if error.code not in WARMING_UP_CODES:
                    raise
                logger.info("%s %s: node not ready (%s), retrying", self.endpoint, what, error)
                last_failure = error
            except _ConnectionDropped as error:
                if isinstance(last_failure, _ConnectionDropped):
                    raise RpcAuthError(
                        f"{self.endpoint} closed the connection twice without replying; zebrad does this when "
                        "the RPC credentials are wrong"
                    ) from error
                last_failure = error
            except RpcUnavailable as error:
                if not error.retryable:
                    raise
                logger.info("%s %s: %s, retrying", self.endpoint, what, error)
                last_failure = error
        raise RpcUnavailable(
            f"{self.endpoint} {what}: still failing after {self._retry_attempts} attempts: {last_failure}"
        ) from last_failure

    def _client_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def _post(self, body: dict[str, Any] | list[dict[str, Any]]) -> Any:
        """POST one JSON-RPC request (or batch) and return the decoded JSON reply."""
        async with self._in_flight:
            try:
                async with self._client_session().post(
                    self.url,
                    data=encode_json(body).encode(),
                    headers=self._headers,
                    timeout=self._timeout,
                ) as response:
                    if response.status in (401, 403):
                        raise RpcAuthError(
                            f"{self.endpoint} refused the RPC credentials (HTTP {response.status})"
                        )
                    payload = await response.read()
                    is_json = response.content_type.startswith("application/json")
                    if response.status not in _JSON_REPLY_STATUSES or not is_json:
                        raise RpcUnavailable(
                            f"{self.endpoint} answered HTTP {response.status} ({response.content_type}): "
                            f"{payload[:200]!r}"
                        )
            except aiohttp.ServerDisconnectedError as error:
                raise _ConnectionDropped(f"{self.endpoint} closed the connection without replying") from error
            except TimeoutError as error:  # before ClientConnectionError: aiohttp's timeouts derive from both
                raise RpcUnavailable(
                    f"{self.endpoint} did not answer within {self._timeout_seconds} s", retryable=False
                ) from error
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as error:
                raise RpcUnavailable(f"cannot reach {self.endpoint}: {error}") from error
        try:
            return decode_json(payload)
        except (ValueError, UnicodeDecodeError) as error:
            raise RpcUnavailable(f"{self.endpoint} sent a body that is not JSON: {payload[:200]!r}") from error
