"""The failure-mode catalogue: the markdown shipped in the package, what the suite reads from it, and
what the checks carry."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from netconform.checks.catalogue import CATALOGUE as CHECKS
from netconform.report.catalogue import (
    CATALOGUE,
    UNKNOWN,
    catalogue_text,
    describe,
    fm_sort_key,
    ids_in_markdown,
    parse_catalogue,
)
from netconform.report.results import UNTAGGED_FM

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "netconform" / "data" / "failure-modes.md"
# the external catalogue FM-01..FM-33 were first taken from; not in the repository (absent in CI)
EXTERNAL = [
    Path(os.environ["NETCONFORM_FAILURE_MODES"]) if os.environ.get("NETCONFORM_FAILURE_MODES") else None,
    REPO.parent / "shared" / "FAILURE_MODES.md",
]
FM_ID = re.compile(r"\bFM-\d+\b")


def _external_catalogue() -> Path | None:
    return next((p for p in EXTERNAL if p is not None and p.is_file()), None)


def _entries(text: str) -> dict[str, str]:
    """{FM ID: body of its entry} (the lines up to the next heading)."""
    parts = re.split(r"^(### FM-\d{2} .*)$", text, flags=re.MULTILINE)
    out: dict[str, str] = {}
    for heading, body in zip(parts[1::2], parts[2::2], strict=True):
        out[heading.split()[1]] = re.split(r"^#", body, maxsplit=1, flags=re.MULTILINE)[0]
    return out


def _carried_in_sources() -> dict[str, list[str]]:
    """FM IDs that tests_conformance/ and netconform/checks/ attach to tests (markers, fm= arguments)."""
    carried: dict[str, list[str]] = {}
    for folder in (REPO / "tests_conformance", REPO / "netconform" / "checks"):
        for path in sorted(folder.rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            calls = re.findall(r"\bfm\(([^)]*)\)", text) + re.findall(r"\bfm\s*=\s*[\(\[]([^\)\]]*)", text)
            for call in calls:
                for fm in FM_ID.findall(call):
                    carried.setdefault(fm, []).append(str(path.relative_to(REPO)))
    return carried


def test_the_suite_reads_the_shipped_markdown() -> None:
    assert catalogue_text() == SOURCE.read_text(encoding="utf-8")
    assert parse_catalogue(SOURCE.read_text(encoding="utf-8")) == CATALOGUE
    assert describe("FM-09") == CATALOGUE["FM-09"] and CATALOGUE["FM-09"].startswith("Cross-node")


def test_ids_are_consecutive_from_fm01() -> None:
    ids = sorted(CATALOGUE, key=fm_sort_key)
    assert ids == [f"FM-{n:02d}" for n in range(1, len(ids) + 1)], ids
    assert len(ids) >= 36


def test_every_id_a_check_carries_is_in_the_catalogue() -> None:
    from_values = {fm for check in CHECKS for fm in check.fm}
    from_sources = _carried_in_sources()
    assert from_values and from_sources
    assert from_values <= set(CATALOGUE), sorted(from_values - set(CATALOGUE))
    assert set(from_sources) <= set(CATALOGUE), {
        fm: from_sources[fm] for fm in set(from_sources) - set(CATALOGUE)
    }


# in the catalogue and reproduced by lab faults, but no built-in check carries them yet: their entries say
# so (FM-37/38 are carried by the --policy-table checks now)
SUITE_PENDING: set[str] = set()


def test_every_catalogue_id_is_carried_by_a_check() -> None:
    carried = {fm for check in CHECKS for fm in check.fm} | set(_carried_in_sources())
    assert not carried & SUITE_PENDING, "a check carries a pending ID now: remove it from SUITE_PENDING"
    assert set(CATALOGUE) - SUITE_PENDING <= carried, sorted(set(CATALOGUE) - carried, key=fm_sort_key)


def test_every_id_the_repository_mentions_has_an_entry() -> None:
    """A docstring, comment or page naming FM-NN points at an entry that exists (FM-00 is "untagged")."""
    unknown: dict[str, list[str]] = {}
    for folder in ("netconform", "fixtures", "tests_conformance", "docs"):
        for path in sorted((REPO / folder).rglob("*")):
            if path.suffix not in (".py", ".md", ".json", ".yaml", ".js", ".html") or not path.is_file():
                continue
            for fm in set(FM_ID.findall(path.read_text(encoding="utf-8"))) - {UNTAGGED_FM}:
                if f"FM-{int(fm[3:]):02d}" not in CATALOGUE:
                    unknown.setdefault(fm, []).append(str(path.relative_to(REPO)))
    assert not unknown, unknown


def test_each_entry_names_exactly_the_checks_that_carry_it() -> None:
    entries = _entries(SOURCE.read_text(encoding="utf-8"))
    assert set(entries) == set(CATALOGUE)
    by_fm: dict[str, set[str]] = {}
    for check in CHECKS:
        for fm in check.fm:
            by_fm.setdefault(fm, set()).add(check.name)
    for fm, body in entries.items():
        block = re.search(r"^- \*\*Checks\*\*:(.*?)(?=^- \*\*|\Z)", body, flags=re.MULTILINE | re.DOTALL)
        assert block is not None, f"{fm} has no **Checks** line"
        named = set(re.findall(r"`([a-z0-9-]+)`", block.group(1)))
        assert named == by_fm.get(fm, set()), (fm, sorted(named ^ by_fm.get(fm, set())))
        if fm in SUITE_PENDING:
            assert "none built in yet" in block.group(1), fm


def test_each_entry_has_the_documented_fields_in_order() -> None:
    fields = ["Failure", "In the matrix", "Checks", "Typical cause"]
    for fm, body in _entries(SOURCE.read_text(encoding="utf-8")).items():
        found = re.findall(r"^- \*\*([A-Za-z ]+)\*\*:", body, flags=re.MULTILINE)
        assert found[:4] == fields and set(found[4:]) <= {"Lab fault"}, (fm, found)


def test_titles_are_one_short_line() -> None:
    for fm, title in CATALOGUE.items():
        assert title.strip() == title and title, fm
        assert "\n" not in title and len(title) <= 100 and not title.endswith("."), (fm, title)


def test_ids_match_the_external_catalogue_plus_the_projects_additions() -> None:
    path = _external_catalogue()
    if path is None:
        pytest.skip(
            "the external FAILURE_MODES.md is not next to the checkout (set NETCONFORM_FAILURE_MODES)"
        )
    theirs = sorted(set(ids_in_markdown(path.read_text(encoding="utf-8"))), key=fm_sort_key)
    assert len(theirs) >= 30, f"parsed too few IDs from {path}: {theirs}"
    ours = sorted(CATALOGUE, key=fm_sort_key)
    assert ours[: len(theirs)] == theirs
    # the project's additions come after the external IDs
    added = ours[len(theirs) :]
    assert added and all(fm_sort_key(a) > fm_sort_key(theirs[-1]) for a in added), added


def test_parser_reads_only_fm_headings_and_rejects_duplicates() -> None:
    text = "# FM-07 not an entry\n### FM-01 First  \n- FM-02 item\n#### FM-03 too deep\n### FM-04 Fourth\n"
    assert parse_catalogue(text) == {"FM-01": "First", "FM-04": "Fourth"}
    with pytest.raises(ValueError, match="FM-01 is defined twice"):
        parse_catalogue("### FM-01 a\n### FM-01 b\n")
    assert ids_in_markdown("- FM-01 first\n  see FM-02 in text\n- FM-03 third\n* FM-04 no\n") == [
        "FM-01",
        "FM-03",
    ]


def test_unknown_id_is_described_honestly() -> None:
    assert describe("FM-99") == UNKNOWN == "not in this version's catalogue"
    assert sorted(["FM-10", "FM-9", "FM-02"], key=fm_sort_key) == ["FM-02", "FM-9", "FM-10"]
