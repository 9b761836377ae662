"""matrix.html in a real browser: Debian's chromium, headless, driven by playwright, from file://.

Checks what a user sees: every cell as a badge with its outcome class in both matrix views, filters,
a click that opens the cell's evidence, the by-FM view, no request to any other address, and that a
12-node matrix (thousands of cells) opens in under 2 s. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from netconform.report.matrix import page_data, write_matrix
from tests.can_run import needs
from tests.report_browser import ARTIFACTS, Opened, expected_badges, launched_chromium
from tests.report_synth import Fault, synth_results

pytestmark = [
    pytest.mark.browser,
    pytest.mark.xdist_group("report-browser"),
    needs("chromium"),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched_chromium() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def faulted(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    results = synth_results(3, Fault("tunnel-blocked", "node-3"))
    return results, write_matrix(results, tmp_path_factory.mktemp("matrix") / "matrix.html")


def test_matrix_in_chromium(browser: Any, faulted: tuple[dict[str, Any], Path]) -> None:
    results, path = faulted
    data = page_data(results)
    opened = Opened(browser, path)
    page = opened.page
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        # the default view: subject x target kind, every cell accounted for with its outcome class
        got = opened.badges()
        want = expected_badges(data, column=2)
        assert {k: set(v.split()) for k, v in got.items()} == want
        assert page.locator("#verdict").inner_text().count("node-3") >= 2
        assert "the tunnel (overlay, UDP 6081)" in page.locator("#verdict").inner_text()

        # the per-target view draws one column per target, same-node cells marked
        page.click(".tab[data-view=target]")
        got = opened.badges()
        assert {k: set(v.split()) for k, v in got.items()} == expected_badges(data, column=1)
        assert page.locator("#matrix td.same").count() >= 3 * 2  # pods and hosts of 3 nodes
        page.screenshot(path=str(ARTIFACTS / "report-matrix-target.png"))

        # filter: failed cells of FM-09 only
        page.select_option("#f-outcome", "failed")
        page.select_option("#f-fm", "FM-09")

        def keep(c: Mapping[str, Any]) -> bool:
            return bool(c["outcome"] == "failed" and "FM-09" in c["fm"])

        shown = sum(1 for c in data["cells"] if keep(c))
        assert page.locator("#f-count").inner_text() == f"{shown} of {len(data['cells'])} cells shown"
        got = opened.badges()
        assert {k: set(v.split()) for k, v in got.items()} == expected_badges(data, 1, keep)
        assert got and all(v.split()[1] == "failed" for v in got.values())
        assert {data["layout"]["targets"][c]["id"].split("@")[0] for _, c, _ in got} == {"pod"}

        # click node-3 pods -> pod on node-1: the evidence of that path
        row = next(i for i, s in enumerate(data["layout"]["subjects"]) if s["id"] == "pod@node-3")
        col = next(i for i, t in enumerate(data["layout"]["targets"]) if t["id"] == "pod@node-1")
        page.click(f"#matrix td[data-r='{row}'][data-c='{col}']")
        panel = page.locator("#detail")
        assert panel.is_visible()
        assert page.locator("#detail-title").inner_text() == "node-3 pods → node-1"
        items = page.locator("#detail .item")
        want_items = [
            c for c in data["cells"] if c["subject"] == "pod@node-3" and c["target"] == "pod@node-1"
        ]
        assert items.count() == sum(1 for c in want_items if keep(c))
        text = panel.inner_text()
        for needle in ("10.244.1.6", "timeout", "L3 — no answer in time: the packet is dropped or not routed",
                       "overlay tunnel", "tcpdump -ni any 'udp port 6081", "2001.4",
                       "more hidden by the filters"):  # fmt: skip
            assert needle in text, needle
        assert page.locator("#detail .item[open] table.attempts tr").count() >= 3  # header + 2 attempts
        page.screenshot(path=str(ARTIFACTS / "report-matrix-detail.png"))
        page.keyboard.press("Escape")
        assert not panel.is_visible()

        # by-FM view keeps the filters and lists FM-09's failed cells on demand
        page.click(".tab[data-view=fm]")
        assert page.locator(".fm-group").count() == 1
        page.click(".fm-group[data-fm='FM-09'] .fm-head")
        assert page.locator(".fm-group[data-fm='FM-09'] tbody tr").count() == shown
        page.click("#f-reset")
        assert page.locator(".fm-group").count() >= 33
        page.screenshot(path=str(ARTIFACTS / "report-matrix-by-fm.png"))
    finally:
        page.close()
    assert opened.errors == []
    assert opened.foreign_requests() == [], "matrix.html requested something other than its own file"
    assert len(opened.requests) == 1


def test_healthy_matrix_is_all_green(browser: Any, tmp_path: Path) -> None:
    results = synth_results(3, None)
    opened = Opened(browser, write_matrix(results, tmp_path / "matrix.html"))
    try:
        classes = {v.split()[1] for v in opened.badges().values()}
        assert classes <= {"passed", "skipped"} and "passed" in classes
        assert opened.page.locator("#verdict.healthy").count() == 1
    finally:
        opened.page.close()
    assert opened.errors == [] and opened.foreign_requests() == []


def test_twelve_node_matrix_opens_fast(browser: Any, tmp_path: Path) -> None:
    results = synth_results(12, Fault("tunnel-blocked", "node-3"))
    path = write_matrix(results, tmp_path / "matrix.html")
    assert len(results["cells"]) > 1500
    assert path.stat().st_size < 5 * 1024 * 1024
    opened = Opened(browser, path)
    try:
        assert opened.open_s < 2.0, f"navigation to rendered took {opened.open_s:.2f} s"
        assert opened.rendered_ms < 2000, f"rendered marker at {opened.rendered_ms:.0f} ms"
        assert opened.page.locator("#matrix .b").count() > 300
        opened.page.click(".tab[data-view=target]")
        assert opened.page.locator("#matrix td[data-r]").count() > 25 * 12
        opened.page.screenshot(path=str(ARTIFACTS / "report-matrix-12-nodes.png"))
    finally:
        opened.page.close()
    assert opened.errors == [] and opened.foreign_requests() == []


@pytest.mark.slow
def test_hundred_node_heat_map_opens_fast_and_drills_down(browser: Any, tmp_path: Path) -> None:
    """100 nodes (~100,000 cells with every family, no peer sampling): the heat-map page is at most
    5 MB and opens in at most 2 s (median of 3 loads, with margin for a busy 2-core CI machine)."""
    results = synth_results(100, Fault("isolated", "node-7"))
    path = write_matrix(results, tmp_path / "matrix.html")
    size = path.stat().st_size
    assert len(results["cells"]) > 100_000
    assert size <= 5 * 1024 * 1024, f"{size} bytes"
    loads: list[tuple[float, float]] = []
    for _ in range(3):
        opened = Opened(browser, path)
        loads.append((opened.open_s, opened.rendered_ms))
        if len(loads) < 3:
            opened.page.close()
    page = opened.page
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "report-matrix-100-nodes.txt").write_text(
        f"cells {len(results['cells'])} bytes {size} loads (s to rendered, rendered marker ms) {loads}\n",
        encoding="utf-8",
    )
    median_s = sorted(s for s, _ in loads)[1]
    assert median_s <= 2.0, f"median navigation to rendered {median_s:.2f} s: {loads}"
    try:
        assert page.locator("#heatmap rect.sq").count() == 100 * 100
        assert page.locator("#heatmap").get_attribute("data-n") == "100"
        # node-7 (row 6) is cut off: its squares fail, a pair without it passes
        assert set(page.locator("#heatmap rect[data-i='6'][data-j='0']").get_attribute("class").split()) >= {
            "sq",
            "failed",
        }
        page.select_option("#f-plane", label=next(
            o for o in page.locator("#f-plane option").all_inner_texts() if o.startswith("pods → pods L4 tcp")
        ))  # fmt: skip
        assert page.locator("#heatmap rect[data-i='1'][data-j='2']").get_attribute("class") == "sq passed"
        assert page.locator("#heatmap rect.failed").count() == 2 * 99
        page.click("#heatmap rect[data-i='6'][data-j='0']")
        page.wait_for_selector("#detail:not([hidden])")
        assert page.locator("#detail-title").inner_text() == "node-7 → node-1 · pods → pods L4 tcp"
        items = page.locator("#detail .item")
        assert items.count() == 1
        text = page.locator("#detail").inner_text()
        for needle in ("pod@node-7 → pod@node-1 · L4 tcp", "10.244.1.6:9000", "timeout", "overlay tunnel"):
            assert needle in text, needle
        # the aggregate map: every cell of the pair, whatever its plane
        page.keyboard.press("Escape")
        page.select_option("#f-plane", index=0)
        page.click("#heatmap rect[data-i='6'][data-j='0']")
        page.wait_for_selector("#detail:not([hidden])")
        want = [
            c
            for c in results["cells"]
            if c["subject"].endswith("@node-7")
            and c["target"].split("@")[-1] == "node-1"
            and c["target"].split("@")[0] in ("pod", "node", "nodeport", "coredns", "nameserver")
        ]
        assert page.locator("#detail .item").count() == len(want) > 5
        page.screenshot(path=str(ARTIFACTS / "report-matrix-100-nodes.png"))
        # the cells that are not between two nodes: subject x kind table, also on demand
        page.keyboard.press("Escape")
        page.click(".tab[data-view=rest]")
        assert page.locator("#rest th[title='pod@node-7']").inner_text() == "node-7 pods"
        page.locator("#rest tr:has(> th[title='pod@node-7']) td[data-r]").first.click()
        page.wait_for_selector("#detail:not([hidden])")
        assert page.locator("#detail-title").inner_text().startswith("node-7 pods → ")
        assert page.locator("#detail .item").count() >= 1
    finally:
        page.close()
    assert opened.errors == [] and opened.foreign_requests() == []
    assert len(opened.requests) == 1
