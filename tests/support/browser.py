"""Headless Chromium (Debian's) driven by Playwright, and the checks every page must pass.

Screenshots go to .cache/screenshots/ (or DRAFTSMITH_SCREENSHOTS): look at them after a change to a page.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest

SCREENSHOTS = Path(os.environ.get("DRAFTSMITH_SCREENSHOTS", Path(__file__).resolve().parents[2] / ".cache" / "screenshots"))
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def chromium():
    """One browser per test module: Playwright's sync API keeps an event loop running in this thread while
    it lives, and later tests' asyncio.run() would refuse to start under it."""
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    assert executable, "Debian's chromium is needed for the browser tests (.ci/run installs it)"
    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's own sandbox refuses to start.
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield browser
        browser.close()


def open_page(chromium, url: str, viewport: dict[str, int] = DESKTOP):
    context = chromium.new_context(viewport=viewport)
    page = context.new_page()
    page.goto(url)
    return page


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def assert_looks_like_a_product(page) -> None:
    """The shared stylesheet applied, nothing wider than the screen, and every link of ours answers."""
    font = page.evaluate("getComputedStyle(document.body).fontFamily")
    assert "Times" not in font and "apple-system" in font, f"the stylesheet did not apply: {font}"
    width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"the page is {width[0]} px wide on a {width[1]} px screen"
    origin = page.evaluate("location.origin")
    links = page.evaluate("[...document.querySelectorAll('a[href], link[href]')].map(a => a.href)")
    for link in links:
        if link.startswith(origin):
            assert httpx.get(link, timeout=10).status_code < 400, f"dead link: {link}"
