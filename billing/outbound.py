"""Requests the gateway sends to URLs other people chose (reminder `notify_url`s, vendor webhook URLs): only to the
public internet, never to the gateway's own network (SSRF).

Two checks, because a URL that is fine when registered may resolve elsewhere when it is used:
- at registration, `check_target_url` refuses (422 `url_not_allowed`) an IP literal in any spelling (`127.0.0.1`,
  `[::1]`, `0x7f000001`, `2130706433`, `127.1`, `[::ffff:127.0.0.1]`) that is not a public unicast address, and
  names that only mean something inside a network (`localhost`, `*.internal`, a name without a dot, ...). No DNS is
  asked then: the answer could change before the first delivery anyway.
- at every delivery, `WebhookSender` resolves the host itself (`GuardedResolver`), refuses the target if *any*
  resolved address is not public, and aiohttp connects to exactly the addresses it checked (so a DNS answer that
  changes between check and connect — rebinding — cannot switch it). IP literals, which aiohttp connects to without
  asking a resolver, are checked before the request. Redirects are not followed, no proxy from the environment.

`allow_private` (ALLOW_PRIVATE_WEBHOOK_TARGETS) lifts both checks for local development and tests only.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from kernel.errors import InvalidRequest

USER_AGENT = "PayGo-Webhooks/1"
MAX_URL_LENGTH = 2048
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# Names that only resolve inside a network (RFC 6761, 6762, 8375 and common private suffixes).
_INTERNAL_SUFFIXES = (".localhost", ".local", ".internal", ".intranet", ".lan", ".home.arpa", ".arpa", ".corp")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class TargetRefused(OSError):
    """A delivery target that resolves to an address the gateway must not reach."""


def address_allowed(address: IPAddress) -> bool:
    """A public unicast address; IPv6 forms that embed an IPv4 address are judged by that address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return address_allowed(embedded)
    return address.is_global and not (address.is_multicast or address.is_private or address.is_loopback
                                       or address.is_link_local or address.is_reserved or address.is_unspecified)


def literal_address(host: str) -> IPAddress | None:
    """The address a host names literally, in any spelling a resolver or aiohttp accepts (`[::1]`, `127.1`,
    `2130706433`, `0x7f.0.0.1`); None for a host name. A host that looks like an address but is none raises
    ValueError (aiohttp would treat it as an address and skip the resolver)."""
    text = host.strip("[]")
    if ":" in text:
        return ipaddress.IPv6Address(text)  # ValueError when malformed
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(text))  # the legacy spellings getaddrinfo accepts
    except OSError:
        if text.replace(".", "").isdigit():
            raise ValueError(f"{host!r} is not an address") from None
        return None


def _internal_name(host: str) -> bool:
    name = host.rstrip(".").lower()
    return "." not in name or name == "localhost" or name.endswith(_INTERNAL_SUFFIXES)


def check_target_url(raw: str, *, field: str, allow_private: bool) -> str:
    """An absolute http(s) URL with a host, no credentials, no control characters or spaces (422 `invalid_<field>`),
    whose host may be reached (422 `url_not_allowed`)."""
    url = raw.strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError when the port is not a number or out of range
    except ValueError:
        parts = None
    if (
        parts is None or len(url) > MAX_URL_LENGTH or parts.scheme not in ("http", "https") or not parts.hostname
        or parts.username is not None or parts.password is not None or not url.isprintable()
        or any(c.isspace() for c in url)
    ):
        raise InvalidRequest(f"{field} must be an absolute http or https URL without credentials",
                             code=f"invalid_{field}")
    if not allow_private:
        host = parts.hostname
        try:
            address = literal_address(host)
        except ValueError:
            address = None
            refused = True
        else:
            refused = not address_allowed(address) if address is not None else _internal_name(host)
        if refused:
            raise InvalidRequest(f"{field} must name a public host: private, loopback, link-local, multicast and "
                                 "reserved addresses, and names that only resolve inside a network, are refused",
                                 code="url_not_allowed")
    return url


class GuardedResolver(AbstractResolver):
    """Resolves with aiohttp's default resolver and refuses the whole answer if any address is not public."""

    def __init__(self) -> None:
        self._resolver = DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET,
                      ) -> list[ResolveResult]:
        results = await self._resolver.resolve(host, port, family)
        for result in results:
            if not address_allowed(ipaddress.ip_address(result["host"])):
                raise TargetRefused(f"{host} resolves to a private, loopback or reserved address")
        return results

    async def close(self) -> None:
        await self._resolver.close()


@dataclass(frozen=True, slots=True)
class SendResult:
    status_code: int | None  # None: no answer
    error: str | None  # None: a 2xx answer


class WebhookSender:
    """POSTs webhook bodies to their targets, under the rules above. One per process; close it at shutdown."""

    def __init__(self, *, allow_private: bool) -> None:
        self.allow_private = allow_private
        connector = aiohttp.TCPConnector(resolver=None if allow_private else GuardedResolver())
        self._session = aiohttp.ClientSession(connector=connector, trust_env=False,
                                              headers={"User-Agent": USER_AGENT})

    async def post(self, url: str, body: bytes, headers: dict[str, str], *, timeout_seconds: float) -> SendResult:
        """One attempt: a 2xx answer is success; anything else (including a refused target) is an error."""
        refusal = self._refusal(url)
        if refusal is not None:
            return SendResult(None, refusal)
        try:
            async with self._session.post(url, data=body, headers=headers, allow_redirects=False,
                                          timeout=aiohttp.ClientTimeout(total=timeout_seconds)) as response:
                if 200 <= response.status < 300:
                    return SendResult(response.status, None)
                return SendResult(response.status, f"HTTP {response.status} {response.reason or ''}".strip())
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, TargetRefused):
                return SendResult(None, f"refused: {exc.os_error}")
            return SendResult(None, _describe(exc))
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            return SendResult(None, _describe(exc))

    def _refusal(self, url: str) -> str | None:
        """Why a target is refused before any connection (an IP literal that is not public), else None."""
        if self.allow_private:
            return None
        host = urlsplit(url).hostname or ""
        try:
            address = literal_address(host)
        except ValueError:
            return f"refused: {host!r} is not a valid address"
        if address is not None and not address_allowed(address):
            return "refused: the target is a private, loopback or reserved address"
        return None

    async def close(self) -> None:
        await self._session.close()


def _describe(exc: Any) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
