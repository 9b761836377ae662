"""Opening matrix.html in a real browser: Debian's /usr/bin/chromium, headless, driven by playwright.

Shared by the synthetic browser test (tests/test_report_browser.py) and the real-lab one
(tests/test_report_lab.py) so both see the page the same way: from file://, with every request and
every script error recorded, and the time until the page's ``data-rendered`` marker measured.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from netconform.report.layout import worst
from tests.can_run import CHROMIUM

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LAUNCH_TIMEOUT_MS = 30_000
PAGE_TIMEOUT_MS = 10_000


@contextlib.contextmanager
def launched_chromium() -> Iterator[Any]:
    """Headless Debian chromium (no browser download), closed again whatever happens."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=str(CHROMIUM), args=LAUNCH_ARGS, timeout=LAUNCH_TIMEOUT_MS
        )
        try:
            yield chromium
        finally:
            chromium.close()


class Opened:
    """A page on a matrix file, recording every request and every script error."""

    def __init__(self, browser: Any, path: Path, width: int = 1500, height: int = 1000) -> None:
        self.page = browser.new_page(viewport={"width": width, "height": height})
        self.page.set_default_timeout(PAGE_TIMEOUT_MS)
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        started = time.monotonic()
        self.page.goto(path.resolve().as_uri(), wait_until="commit")
        self.page.wait_for_selector("body[data-rendered='1']", state="attached")
        self.open_s = time.monotonic() - started
        self.rendered_ms = float(self.page.evaluate("window.ncRenderedAt"))

    def foreign_requests(self) -> list[str]:
        return [url for url in self.requests if not url.startswith("file://")]

    def badges(self) -> dict[tuple[int, int, int], str]:
        """(row, column, slot) -> the badge's class attribute, for every badge of the shown matrix."""
        rows = self.page.evaluate(
            """() => Array.from(document.querySelectorAll('#matrix td[data-r] .b')).map(b => [
                   +b.parentNode.dataset.r, +b.parentNode.dataset.c, +b.dataset.s, b.className])"""
        )
        return {(r, c, s): cls for r, c, s, cls in rows}

    def badge_classes(self) -> dict[tuple[int, int, int], set[str]]:
        return {key: set(cls.split()) for key, cls in self.badges().items()}


def js_number(value: float | int) -> str:
    """A number as the page's JavaScript prints it (`String(n)`): integral floats have no ".0".

    >>> js_number(3000.0), js_number(12.345), js_number(7)
    ('3000', '12.345', '7')
    """
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


def expected_badges(
    data: Mapping[str, Any], column: int, keep: Callable[[Mapping[str, Any]], bool] | None = None
) -> dict[tuple[int, int, int], set[str]]:
    """Per (row, column, slot): the classes the badge must have (worst outcome, plus 'mixed').

    ``column`` is 2 for the by-kind view and 1 for the by-target view (positions in page_data's index).
    """
    outcomes: dict[tuple[int, int, int], list[str]] = defaultdict(list)
    for cell, entry in zip(data["cells"], data["index"], strict=True):
        if keep is None or keep(cell):
            outcomes[(entry[0], entry[column], entry[3])].append(cell["outcome"])
    return {
        key: {"b", worst(found), *(["mixed"] if len(set(found)) > 1 else [])}
        for key, found in outcomes.items()
    }
