"""Open a report in a real headless Chromium (Playwright driving the system's browser) and
say what it drew, what it printed to its console and what it asked of the network.

Without Chromium the test skips, except where FISHLEG_REQUIRE_BROWSER=1 (`.ci/run` sets it
after installing Chromium), where it fails: CI never skips the browser checks silently.

    python -m tests.browser REPORT.html SCREENSHOT.png   # the README's screenshot
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@dataclass
class Rendered:
    """What the page drew: per figure div, its SVG and canvas elements; the console's errors;
    every URL the page requested (the file itself included)."""

    figures: dict[str, tuple[int, int]]
    errors: list[str]
    requests: list[str]
    rendered: int
    interaction: Any = None


def chromium() -> str:
    """The system Chromium's path, or skip (fail where the browser is required)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        message = "no chromium on this machine (apt-get install -y chromium)"
        if os.environ.get("FISHLEG_REQUIRE_BROWSER") == "1":
            pytest.fail(message + ", and FISHLEG_REQUIRE_BROWSER=1")
        pytest.skip(message)
    return path


def render(
    page_file: Path,
    screenshot: Path | None = None,
    interact: Callable[[Any], Any] | None = None,
    height: int = 2000,
) -> Rendered:
    """Load `page_file`, wait until every figure is drawn (`body[data-rendered]`), and read
    the page back; with `screenshot`, save a PNG of the page's top `height` pixels;
    `interact(page)` (a Playwright page) then acts on it, and what it returns is `interaction`."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            errors: list[str] = []
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(page_file.resolve().as_uri())
            page.wait_for_selector("body[data-rendered]", timeout=120_000)
            figures = {
                div.get_attribute("id"): (
                    len(div.query_selector_all("svg.main-svg")),
                    len(div.query_selector_all("canvas")),
                )
                for div in page.query_selector_all("div.figure")
            }
            rendered = int(page.evaluate("document.body.dataset.rendered"))
            if screenshot is not None:
                page.screenshot(
                    path=str(screenshot), full_page=True, clip={"x": 0, "y": 0, "width": 1200, "height": height}
                )
            interaction = interact(page) if interact is not None else None
        finally:
            browser.close()
    return Rendered(figures, errors, requests, rendered, interaction)


if __name__ == "__main__":
    print(render(Path(sys.argv[1]), Path(sys.argv[2])))
