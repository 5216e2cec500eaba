"""The event loop every PayGo process runs on: uvloop (libuv), which aiohttp and asyncpg support and which spends
less CPU per request than the standard loop (benchmarks/api_load.py). Where uvloop is not installed (it has no
Windows build), the standard loop."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run`, on uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - only where uvloop has no build
        return asyncio.run(main)
    return uvloop.run(main)
