"""Debian's Chromium, headless, as the browser tests, the viewer benchmark and the README
pictures drive it through Playwright (a dev dependency, passed in, never imported here)."""

import shutil
import time
from pathlib import Path

CHROMIUM = Path(shutil.which("chromium") or "/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def launch(playwright):
    """A headless Chromium browser from a ``sync_playwright()`` context."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)


def wait_until(page, expression: str, timeout: float = 10.0) -> None:
    """Poll a JavaScript expression in a page until it is true (seconds). The site's
    Content-Security-Policy forbids the eval that Playwright's ``wait_for_function`` polls
    with, so the polling happens here."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {expression}")
        page.wait_for_timeout(50)
