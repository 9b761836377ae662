"""matrix.html without a browser: self-contained, every cell embedded, safe escaping, size, determinism."""

from __future__ import annotations

import copy
import html
import json
import random
from pathlib import Path
from typing import Any

import pytest

from netconform.report.heatmap import BIG_MATRIX_CELLS, unpack
from netconform.report.matrix import DATA_ELEMENT_ID, page_data, render_matrix, write_matrix
from netconform.report.results import canonical_cells
from netconform.report.verdict import compute_verdict
from tests.report_pagecheck import embedded_data, parse_page, self_contained_problems
from tests.report_synth import Fault, synth_results


@pytest.fixture(scope="module")
def faulted() -> dict[str, Any]:
    return synth_results(3, Fault("tunnel-blocked", "node-3"))


@pytest.fixture(scope="module")
def faulted_page(faulted: dict[str, Any]) -> str:
    return render_matrix(faulted)


def test_page_is_self_contained(faulted_page: str) -> None:
    assert self_contained_problems(faulted_page) == []
    # the check itself catches each way out
    for leak in (
        '<img src="https://203.0.113.10/x.png">',
        '<link rel="stylesheet" href="//203.0.113.10/a.css">',
        "<style>@import 'https://203.0.113.10/a.css';</style>",
        '<script src="https://203.0.113.10/a.js"></script>',
        "<script>fetch('https://203.0.113.10/')</script>",
        '<div style="background: url(https://203.0.113.10/b.png)"></div>',
    ):
        assert self_contained_problems(faulted_page.replace("</body>", leak + "</body>")), leak


def test_every_cell_is_embedded_with_its_row_column_and_slot(
    faulted: dict[str, Any], faulted_page: str
) -> None:
    data = embedded_data(parse_page(faulted_page))
    cells = canonical_cells(faulted)
    assert data["cells"] == json.loads(json.dumps(cells))
    assert len(data["index"]) == len(cells)
    layout = data["layout"]
    for cell, (si, ti, ki, sl) in zip(data["cells"], data["index"], strict=True):
        assert layout["subjects"][si]["id"] == cell["subject"]
        assert layout["targets"][ti]["id"] == cell["target"]
        assert layout["kinds"][ki]["id"] == cell["target_kind"]
        assert (layout["slots"][sl]["layer"], layout["slots"][sl]["protocol"]) == (
            cell["layer"],
            cell["protocol"],
        )
    # rows: host network and pods per node, then the outside client; columns grouped by target family
    ids = [s["id"] for s in layout["subjects"]]
    assert ids[:3] == ["host@node-1", "host@node-2", "host@node-3"] and ids[3] == "pod@node-1"
    assert ids.index("external") > ids.index("pod@node-3")
    kinds = [k["label"] for k in layout["kinds"]]
    assert kinds[:5] == ["pod, same node", "pod, other node", "ClusterIP", "NodePort", "LB VIP"]
    assert {"FM-09", "FM-13"} <= set(data["present_fm"]) and data["catalogue"]["FM-09"].startswith(
        "Cross-node"
    )


def test_header_shows_cluster_run_counts_and_verdict(faulted: dict[str, Any], faulted_page: str) -> None:
    text = html.unescape(faulted_page)
    verdict = compute_verdict(faulted)
    assert verdict.text in text
    assert '<section class="verdict failing"' in faulted_page
    for needle in ("https://127.0.0.1:6443", "v1.31.0", "3: node-1, node-2, node-3", "synth01",
                   "probe_timeout=2.0", "exec sessions 7"):  # fmt: skip
        assert needle in text, needle
    counts = faulted["run"]["counts"]
    assert f'<span class="chip failed"><b>{counts["failed"]}</b> failed</span>' in faulted_page
    assert f'<span class="chip flaky"><b>{counts["flaky"]}</b> flaky</span>' in faulted_page


def test_cell_text_cannot_break_out_of_the_data_element() -> None:
    results = synth_results(2, None)
    evil = "</script><script>alert(1)</script><!-- & \u2028 </SCRIPT >"
    cell = next(c for c in results["cells"] if c["evidence"]["checks"])
    cell.update(outcome="failed", reason=evil, error="other")
    cell["evidence"]["checks"][0]["message"] = evil
    page = render_matrix(results)
    parsed = parse_page(page)
    assert len(parsed.scripts) == 2
    data = embedded_data(parsed)
    assert any(c["reason"] == evil for c in data["cells"])
    assert "alert(1)</script>" not in page.split(f'id="{DATA_ELEMENT_ID}">', 1)[1].split("</script>", 1)[0]


def test_rendering_is_a_pure_function_of_the_results(faulted: dict[str, Any], faulted_page: str) -> None:
    shuffled = copy.deepcopy(faulted)
    random.Random(11).shuffle(shuffled["cells"])
    assert render_matrix(shuffled) == faulted_page
    assert render_matrix(faulted) == faulted_page


def test_twelve_node_matrix_stays_small(tmp_path: Path) -> None:
    results = synth_results(12, Fault("tunnel-blocked", "node-3"))
    assert len(results["cells"]) > 1500
    path = write_matrix(results, tmp_path / "sub" / "matrix.html")
    size = path.stat().st_size
    assert size < 5 * 1024 * 1024, f"{size} bytes"
    # no per-cell duplication beyond the data itself: the page is at most ~15% bigger than its JSON
    data_size = len(json.dumps(page_data(results), separators=(",", ":"), ensure_ascii=False).encode())
    assert size < data_size * 1.15 + 60_000, (size, data_size)


# ---- big runs: heat maps and compressed cells ------------------------------------------------------


@pytest.fixture(scope="module")
def twenty() -> dict[str, Any]:
    return synth_results(20, Fault("isolated", "node-7"))


def test_small_runs_keep_the_full_matrix_big_ones_get_heat_maps(twenty: dict[str, Any]) -> None:
    twelve = synth_results(12, None)
    assert len(twelve["cells"]) < BIG_MATRIX_CELLS < len(twenty["cells"])
    assert "cells" in page_data(twelve) and "big" not in page_data(twelve)
    data = page_data(twenty)
    assert "big" in data and "cells" not in data and "index" not in data
    assert page_data(twelve, big=True)["big"]["nodes"] == [f"node-{i}" for i in range(1, 13)]


def test_big_page_chunks_hold_every_cell_once(twenty: dict[str, Any]) -> None:
    big = page_data(twenty)["big"]
    assert len(big["chunks"]) == len(big["nodes"]) + 1
    inflated = [cell for chunk in big["chunks"] for cell in unpack(chunk)]
    slots = page_data(twenty)["layout"]["slots"]
    for cell in inflated:
        slot = slots[cell.pop("_s")]
        assert (slot["layer"], slot["protocol"]) == (cell["layer"], cell["protocol"])
    key = lambda c: c["key"]  # noqa: E731
    assert sorted(inflated, key=key) == sorted(json.loads(json.dumps(canonical_cells(twenty))), key=key)
    # chunk k holds exactly the cells whose subject runs on node k (the last: external, cluster)
    for k, chunk in enumerate(big["chunks"][:-1]):
        assert {c["subject"].split("@")[1] for c in unpack(chunk)} == {big["nodes"][k]}
    assert {c["subject"] for c in unpack(big["chunks"][-1])} == {"external", "cluster"}


def test_heat_map_squares_show_the_isolated_node(twenty: dict[str, Any]) -> None:
    big = page_data(twenty)["big"]
    nodes, n = big["nodes"], len(big["nodes"])
    seven = nodes.index("node-7")
    plane = next(p for p in big["planes"] if p["label"] == "pods → pods L4 tcp")
    grid = plane["grid"]
    assert len(grid) == n * n
    for i in range(n):
        for j in range(n):
            want = "F" if (seven in (i, j) and i != j) else "p"
            assert grid[i * n + j] == want, (nodes[i], nodes[j], grid[i * n + j])
    assert plane["failing"] == 2 * (n - 1)
    # the aggregate of every plane: node-7's row and column fail, the rest of the map does not
    every = big["planes"][0]
    assert every["id"] == "all" and every["failing"] == 2 * (n - 1)
    assert {every["grid"][seven * n + j] for j in range(n) if j != seven} <= {"F", "x"}
    # host routes exist only on the diagonal
    routes = next(p for p in big["planes"] if p["label"] == "host → nodes L3 routes")
    assert {i for i, ch in enumerate(routes["grid"]) if ch != "."} == {i * n + i for i in range(n)}
    # cells that are not between two nodes are in the subject x kind table
    rest = big["rest"]
    assert {"external", "cluster", "pod@node-7"} <= {s["id"] for s in rest["subjects"]}
    assert len(rest["grid"]) == len(rest["subjects"]) * len(rest["kinds"])


def test_big_page_is_small_self_contained_and_deterministic(twenty: dict[str, Any], tmp_path: Path) -> None:
    page = render_matrix(twenty)
    assert self_contained_problems(page) == []
    assert len(page.encode()) < 600_000, len(page.encode())  # the full matrix of these cells: 4.9 MB
    shuffled = copy.deepcopy(twenty)
    random.Random(3).shuffle(shuffled["cells"])
    assert render_matrix(shuffled) == page
    assert 'class="big"' in page and "Heat map by node pair" in page


def test_header_text_is_escaped_by_the_template() -> None:
    results = synth_results(2, None)
    results["run"]["cluster"]["server"] = "<script>alert(1)</script>"
    results["run"]["id"] = 'x"><b>'
    page = render_matrix(results)
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<title>netconform matrix — x&#34;&gt;&lt;b&gt;</title>" in page
    assert self_contained_problems(page) == []
