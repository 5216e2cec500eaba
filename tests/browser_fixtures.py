"""Browser fixtures: Debian's Chromium driven by Playwright for Python (never a downloaded browser), one browser for
the whole test session, a fresh context per page.

Every page a test opens is watched: a request to any host but this machine is aborted and fails the test (the pages
must work offline, without a CDN), and so does an uncaught script error or a Content-Security-Policy violation.
Screenshots go to artifacts/screenshots/ (kept by CI as artifacts; a few are copied to docs/screenshots/ for the
README). Registered in tests/conftest.py with `pytest_plugins`.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import zxingcpp
from PIL import Image
from playwright.async_api import Browser, Page, Request, Route, async_playwright

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]"}
PHONE = {"width": 375, "height": 740}
DESKTOP = {"width": 1280, "height": 900}


def chromium_path() -> str:
    """PAYGO_CHROMIUM, else Debian's `chromium` on the PATH."""
    found = os.environ.get("PAYGO_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("Chromium is not installed: `apt-get install chromium` (.ci/run installs it), or set "
                    "PAYGO_CHROMIUM to a Chromium binary")
    return found


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium_path(), headless=True,
                                                    args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield launched
        await launched.close()


OpenPage = Callable[..., Awaitable[Page]]


@pytest.fixture
async def open_page(browser: Browser) -> AsyncIterator[OpenPage]:
    """`await open_page(viewport=DESKTOP)`: a page in a context of its own, watched for outside requests, script
    errors and CSP violations; all of them fail the test at its end."""
    contexts = []
    problems: list[str] = []

    async def open_one(viewport: dict[str, int] = DESKTOP) -> Page:
        context = await browser.new_context(viewport=viewport, accept_downloads=True)
        contexts.append(context)

        async def only_local(route: Route, request: Request) -> None:
            if urlsplit(request.url).hostname in LOCAL_HOSTS or request.url.startswith(("data:", "blob:")):
                await route.continue_()
            else:
                problems.append(f"request to another host: {request.url}")
                await route.abort()

        await context.route("**/*", only_local)
        page = await context.new_page()
        page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
        page.on("console", lambda message: problems.append(f"console: {message.text}")
                if message.type == "error" and "Content Security Policy" in message.text else None)
        return page

    yield open_one
    for context in contexts:
        await context.close()
    assert not problems, problems


async def screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=full_page)
    return path


async def decode_qr(page: Page, selector: str) -> str:
    """The text of the QR code shown by `selector`, read from a screenshot of it with zxing-cpp."""
    picture = Image.open(io.BytesIO(await page.locator(selector).screenshot()))
    found = zxingcpp.read_barcodes(picture)
    assert len(found) == 1, f"{len(found)} codes in {selector}"
    return found[0].text


async def has_no_horizontal_scroll(page: Page) -> bool:
    return await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
