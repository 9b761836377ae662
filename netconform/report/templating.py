"""The Jinja2 environment of the HTML reports: templates shipped in ``netconform/report/templates``.

Autoescape is on for every template, so any text from results.json (reasons, addresses, node names) is
escaped by the template itself; only values wrapped in :func:`trusted` (the inlined CSS/JS assets and the
JSON data, which :func:`netconform.report.matrix.embed_json` made safe inside ``<script>``) go in as is.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup


@cache
def environment() -> Environment:
    return Environment(
        loader=PackageLoader("netconform.report", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)


def trusted(text: str) -> Markup:
    """Text that is already safe where the template puts it (never cell text)."""
    return Markup(text)  # callers pass only inlined assets and script-safe JSON


__all__ = ["Markup", "environment", "render", "trusted"]
