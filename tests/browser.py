"""Debian's Chromium, headless, as the browser tests, the viewer benchmark and the README
pictures drive it through Playwright (a dev dependency, imported only when a browser is
started)."""

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from atlas.viewer.server import serve_in_background

CHROMIUM = Path(shutil.which("chromium") or "/usr/bin/chromium")
# Where the browser tests leave their screenshots.
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Chromium is installed by `make test`"
)
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


@contextmanager
def serving(site: Path) -> Iterator[tuple[object, str]]:
    """``site`` served on loopback and a headless Chromium to look at it: yields the
    browser and the site's URL; both are stopped on leaving."""
    from playwright.sync_api import sync_playwright

    server, url = serve_in_background(site)
    try:
        with sync_playwright() as playwright:
            browser = launch(playwright)
            try:
                yield browser, url
            finally:
                browser.close()
    finally:
        server.shutdown()


def watched(page) -> list[str]:
    """The list that collects what goes wrong on ``page`` from now on: console errors,
    uncaught page errors, failed requests, HTTP errors and dialogs (dismissed)."""
    problems: list[str] = []
    page.on(
        "console", lambda m: problems.append(f"console {m.text}") if m.type == "error" else None
    )
    page.on("pageerror", lambda e: problems.append(f"page error {e}"))
    # A fetch cancelled by leaving the page (net::ERR_ABORTED) is no failure of the site.
    page.on(
        "requestfailed",
        lambda r: None if r.failure == "net::ERR_ABORTED" else problems.append(f"failed {r.url}"),
    )
    page.on(
        "response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None
    )
    page.on("dialog", lambda d: (problems.append(f"dialog {d.message}"), d.dismiss()))
    return problems


def open_page(browser, url: str, size: tuple[int, int]):
    """A new page of ``size`` (width, height) at ``url``, once the site marks it ready;
    returns the page and its :func:`watched` problems."""
    page = browser.new_page(viewport={"width": size[0], "height": size[1]})
    problems = watched(page)
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]", timeout=30000)
    return page, problems


def wait_until(page, expression: str, timeout: float = 10.0) -> None:
    """Poll a JavaScript expression in a page until it is true (seconds). The site's
    Content-Security-Policy forbids the eval that Playwright's ``wait_for_function`` polls
    with, so the polling happens here."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {expression}")
        page.wait_for_timeout(50)
