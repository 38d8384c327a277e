"""Headless Chromium (Debian's, installed by scripts/chromium.sh) driven by Playwright, offline:
the pages the project writes must render without a network."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from batch_processor.paths import PROJECT_ROOT

# what the machine's probe found Chromium needs here: no sandbox as root, no GPU, and none of
# its background connections (refused by a closed network, many at a time)
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    done = subprocess.run(
        [str(PROJECT_ROOT / "scripts" / "chromium.sh"), "path"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


@contextmanager
def offline_page(width: int = 1400, height: int = 900) -> Iterator[Any]:
    """A page in a browser context with the network switched off; every request the page
    makes to anything but a file is recorded in ``page.requested`` (it must stay empty)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=FLAGS)
        try:
            context = browser.new_context(offline=True, viewport={"width": width, "height": height})
            page = context.new_page()
            page.requested = []
            page.on(
                "request",
                lambda request: (
                    None
                    if request.url.startswith(("file:", "data:", "about:", "blob:"))
                    else page.requested.append(request.url)
                ),
            )
            yield page
        finally:
            browser.close()
