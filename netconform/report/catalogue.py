"""The failure-mode catalogue's titles, read from the markdown shipped with the package.

The catalogue is ``netconform/data/failure-modes.md`` (package data; ``docs/failure-modes.md`` points
to it). Each entry starts with a heading ``### FM-NN Title``; the title is the one-line summary the
reports show next to the ID ("by FM" views, the verdict's suspects, JUnit).

>>> CATALOGUE["FM-09"].startswith("Cross-node")
True
>>> parse_catalogue("### FM-01 First\\ntext\\n### FM-02 Second\\n")
{'FM-01': 'First', 'FM-02': 'Second'}
"""

from __future__ import annotations

import re
from importlib import resources

UNKNOWN = "not in this version's catalogue"

_ENTRY = re.compile(r"^### (FM-\d{2}) (.+?)\s*$", re.MULTILINE)
_ID_IN_MARKDOWN = re.compile(r"^- (FM-\d{2}) ", re.MULTILINE)


def catalogue_text() -> str:
    """The shipped catalogue markdown."""
    return resources.files("netconform").joinpath("data/failure-modes.md").read_text(encoding="utf-8")


def parse_catalogue(text: str) -> dict[str, str]:
    """{FM ID: title} of every ``### FM-NN Title`` heading, in file order; an ID twice is an error."""
    out: dict[str, str] = {}
    for fm, title in _ENTRY.findall(text):
        if fm in out:
            raise ValueError(f"{fm} is defined twice in the failure-mode catalogue")
        out[fm] = title
    return out


CATALOGUE: dict[str, str] = parse_catalogue(catalogue_text())


def describe(fm: str) -> str:
    """The catalogue line for an FM ID, or an honest placeholder for an ID this version does not know."""
    return CATALOGUE.get(fm, UNKNOWN)


def ids_in_markdown(text: str) -> list[str]:
    """The FM IDs of a list-style catalogue (list items that start with the ID, ``- FM-NN ...``), in file
    order: the format of the external catalogue the project's IDs were first taken from."""
    return _ID_IN_MARKDOWN.findall(text)


def fm_sort_key(fm: str) -> tuple[int, str]:
    """Numeric order for FM IDs (FM-9 before FM-10 should anyone write it that way)."""
    digits = "".join(ch for ch in fm if ch.isdigit())
    return (int(digits) if digits else 10_000, fm)
