"""Reading a rendered matrix.html without a browser: what could make it load anything, and its data.

Shared by the synthetic matrix tests and the real-lab report test: ``self_contained_problems(page)``
lists every way the page could reach another address (an empty list is the pass).
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from typing import Any

from netconform.report.matrix import DATA_ELEMENT_ID

URL_ATTRIBUTES = {
    "src",
    "href",
    "action",
    "formaction",
    "srcset",
    "poster",
    "data",
    "background",
    "xlink:href",
}
LOADING_TAGS = {
    "link",
    "img",
    "iframe",
    "object",
    "embed",
    "audio",
    "video",
    "source",
    "track",
    "base",
    "frame",
}


class PageParts(HTMLParser):
    """Collects what could make a browser load something, and the text of each script element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.url_attrs: list[tuple[str, str, str]] = []
        self.loading_tags: list[str] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.styles: list[str] = []
        self.style_attrs: list[str] = []
        self.attr_values: list[str] = []
        self._in: tuple[str, dict[str, str | None]] | None = None
        self._buf: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            self.attr_values.append(value or "")
            if name in URL_ATTRIBUTES:
                self.url_attrs.append((tag, name, value or ""))
            if name == "style" and value:
                self.style_attrs.append(value)
        if tag in LOADING_TAGS:
            self.loading_tags.append(tag)
        if tag in ("script", "style"):
            self._in, self._buf = (tag, dict(attrs)), []

    def handle_data(self, data: str) -> None:
        if self._in:
            self._buf.append(data)

    def handle_endtag(self, tag: str) -> None:
        if self._in and tag == self._in[0]:
            text = "".join(self._buf)
            if tag == "script":
                self.scripts.append((self._in[1], text))
            else:
                self.styles.append(text)
            self._in = None


def parse_page(page: str) -> PageParts:
    parser = PageParts()
    parser.feed(page)
    parser.close()
    return parser


def embedded_data(parsed: PageParts) -> dict[str, Any]:
    blobs = [text for attrs, text in parsed.scripts if attrs.get("id") == DATA_ELEMENT_ID]
    assert len(blobs) == 1
    data: dict[str, Any] = json.loads(blobs[0])
    return data


NETWORK_APIS = (
    "fetch(",
    "XMLHttpRequest",
    "WebSocket",
    "import(",
    "sendBeacon",
    "EventSource",
    ".src",
    "Worker(",
)


def self_contained_problems(page: str) -> list[str]:
    """Every way ``page`` could make a browser request something; [] when it is self-contained.

    Addresses (the API server, probed URLs) may appear only as inert, escaped text: never in an
    attribute, in CSS or in code.
    """
    parsed = parse_page(page)
    problems = [f"<{tag} {name}={value!r}>" for tag, name, value in parsed.url_attrs]
    problems += [f"<{tag}> element" for tag in parsed.loading_tags]
    kinds = [attrs.get("type") for attrs, _ in parsed.scripts]
    if kinds != ["application/json", None]:
        problems.append(f"script elements {kinds}, expected the data and the inline code only")
    problems += ["<script src>" for attrs, _ in parsed.scripts if "src" in attrs]
    css = " ".join(parsed.styles + parsed.style_attrs)
    problems += [f"CSS {what}" for what in ("url(", "@import", "@font-face", "://") if what in css]
    code = "".join(text for attrs, text in parsed.scripts if attrs.get("type") is None)
    problems += [f"script uses {api}" for api in (*NETWORK_APIS, "://") if api in code]
    problems += [f"attribute value {v!r}" for v in parsed.attr_values if "://" in v or v.startswith("//")]
    return problems
