"""The FM one-liners shipped in the package match the catalogue they restate."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from netconform.report.catalogue import CATALOGUE, describe, fm_sort_key, ids_in_markdown

REPO = Path(__file__).resolve().parents[1]
CANDIDATES = [
    Path(os.environ["NETCONFORM_FAILURE_MODES"]) if os.environ.get("NETCONFORM_FAILURE_MODES") else None,
    REPO / "docs" / "FAILURE_MODES.md",
    REPO.parent / "shared" / "FAILURE_MODES.md",
]


def _catalogue_file() -> Path | None:
    return next((p for p in CANDIDATES if p is not None and p.is_file()), None)


def test_catalogue_ids_match_failure_modes_md() -> None:
    path = _catalogue_file()
    if path is None:
        pytest.skip("FAILURE_MODES.md not found next to the checkout (set NETCONFORM_FAILURE_MODES)")
    ids = ids_in_markdown(path.read_text(encoding="utf-8"))
    assert len(ids) >= 30, f"parsed too few IDs from {path}: {ids}"
    ours = sorted(CATALOGUE, key=fm_sort_key)
    assert ours[: len(set(ids))] == sorted(set(ids), key=fm_sort_key)
    # the project's additions come after the catalogue's IDs and are documented in docs/failure-modes.md
    added = ours[len(set(ids)) :]
    documented = ids_in_markdown((REPO / "docs" / "failure-modes.md").read_text(encoding="utf-8"))
    assert added == documented and all(fm_sort_key(a) > fm_sort_key(max(ids, key=fm_sort_key)) for a in added)


def test_every_line_is_one_short_line() -> None:
    for fm, line in CATALOGUE.items():
        assert line and "\n" not in line and len(line) <= 100, fm


def test_markdown_parser_reads_only_list_items_that_define_an_id() -> None:
    text = "- FM-01 first\n  see FM-02 in text\n- FM-03 third\n* FM-04 not our bullet\n"
    assert ids_in_markdown(text) == ["FM-01", "FM-03"]


def test_unknown_id_is_described_honestly() -> None:
    assert describe("FM-99") == "not in this version's catalogue"
    assert describe("FM-09").startswith("Cross-node")
    assert sorted(["FM-10", "FM-9", "FM-02"], key=fm_sort_key) == ["FM-02", "FM-9", "FM-10"]
