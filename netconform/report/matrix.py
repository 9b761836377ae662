"""``matrix.html``: one self-contained page (inline CSS, JS and data) that works offline.

The header (cluster, run, counts, verdict) is rendered here so it reads even without JavaScript; the
matrix, the by-FM view and the detail panel are drawn by the inline script from the results embedded
as JSON in ``<script type="application/json">`` (every ``<``, ``>`` and ``&`` escaped, so no cell text
can close the script element). The script builds each view's DOM once from compact per-cell indices
and renders a cell's evidence only when it is clicked, which keeps a 12-node run (thousands of cells)
small and fast to open.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from netconform.report.catalogue import CATALOGUE, fm_sort_key
from netconform.report.heatmap import BIG_MATRIX_CELLS, heatmap_data
from netconform.report.layout import (
    KIND_LABEL,
    TARGET_FAMILY_LABEL,
    build_layout,
    kind_label,
    slot_label,
    subject_label,
    target_label,
)
from netconform.report.results import canonical_cells, count_outcomes, family_of, fm_ids, node_of, nodes_of
from netconform.report.templating import environment, render, trusted
from netconform.report.verdict import verdict_data

DATA_ELEMENT_ID = "nc-data"


@cache
def _asset(name: str) -> str:
    """An inline asset shipped next to this module; refuses text that could end its element early."""
    text = resources.files("netconform.report").joinpath(name).read_text(encoding="utf-8")
    if "</" in text and ("</script" in text.lower() or "</style" in text.lower()):
        raise ValueError(f"{name} contains a closing script/style tag and cannot be inlined")
    return text


def embed_json(value: Any) -> str:
    """JSON safe inside a ``<script>`` element: ``<``, ``>`` and ``&`` become ``\\u`` escapes."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def page_data(results: Mapping[str, Any], *, big: bool | None = None) -> dict[str, Any]:
    """Everything the script needs: run header, layout (rows, columns, slots), catalogue, cells, index.

    A big run (``big`` None: at least :data:`BIG_MATRIX_CELLS` cells) gets node x node heat maps and its
    cells as compressed chunks under ``big`` instead of ``cells``/``index`` (netconform.report.heatmap).
    """
    cells = canonical_cells(results)
    if big is None:
        big = len(cells) >= BIG_MATRIX_CELLS
    layout = build_layout(cells)
    subject_index = {s: i for i, s in enumerate(layout.subjects)}
    target_index = {t: i for i, t in enumerate(layout.targets)}
    kind_index = {k: i for i, k in enumerate(layout.kinds)}
    slot_index = {s: i for i, s in enumerate(layout.slots)}
    index = (
        []
        if big
        else [
            [
                subject_index[c["subject"]],
                target_index[c["target"]],
                kind_index[str(c.get("target_kind") or "T-?")],
                slot_index[(c["layer"], c["protocol"])],
            ]
            for c in cells
        ]
    )
    present = fm_ids(cells)
    catalogue = {fm: CATALOGUE.get(fm, "not in this version's catalogue") for fm in set(CATALOGUE) | present}
    verdict = verdict_data(results)
    data: dict[str, Any] = {
        "run": results.get("run", {}),
        "verdict": {
            "text": verdict["text"],
            "status": verdict["status"],
            "findings": [
                {
                    "summary": f["summary"],
                    "fm": list(f["fm"]),
                    "component": f["component"],
                    "partition": f.get("partition"),
                }
                for f in verdict.get("scopes", [])
            ],
            "unmeasured": verdict.get("unmeasured", {}),
        },
        "layout": {
            "subjects": [
                {"id": s, "label": subject_label(s), "family": family_of(s)} for s in layout.subjects
            ],
            "targets": [
                {"id": t, "label": target_label(t), "family": family_of(t), "node": node_of(t)}
                for t in layout.targets
            ],
            "families": [
                {"id": fam, "label": TARGET_FAMILY_LABEL.get(fam, fam), "span": len(ts)}
                for fam, ts in layout.target_families()
            ],
            "kinds": [{"id": k, "label": kind_label(k)} for k in layout.kinds],
            "slots": [
                {"layer": s[0], "protocol": s[1], "code": layout.slot_codes[s], "label": slot_label(s)}
                for s in layout.slots
            ],
        },
        "catalogue": dict(sorted(catalogue.items(), key=lambda kv: fm_sort_key(kv[0]))),
        "present_fm": sorted(present, key=fm_sort_key),
    }
    if big:
        data["layout"]["subjects"] = data["layout"]["targets"] = data["layout"]["families"] = []
        data["big"] = heatmap_data(cells, layout, nodes_of(results))
        data["fm_counts"] = _fm_counts(cells)
    else:
        data["cells"] = cells
        data["index"] = index
    return data


def _fm_counts(cells: list[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """Per FM ID: cells per outcome (the by-FM view of a big page, which carries no cell list)."""
    out: dict[str, dict[str, int]] = {}
    for cell in cells:
        for fm in cell.get("fm", []):
            per = out.setdefault(fm, {})
            per[cell["outcome"]] = per.get(cell["outcome"], 0) + 1
    return out


def _header_context(results: Mapping[str, Any]) -> dict[str, Any]:
    """The facts of the page header (cluster, run, counts), rendered by the template without JS."""
    run = results.get("run", {})
    cluster = run.get("cluster") or {}
    stats = run.get("stats") or {}
    options = run.get("options") or {}
    nodes = nodes_of(results)
    counts = count_outcomes(results.get("cells", []))
    cluster_rows = [
        ("server", str(cluster.get("server") or "unknown")),
        ("version", str(cluster.get("version") or "unknown")),
        ("nodes", f"{len(nodes)}: {', '.join(nodes)}" if nodes else "none"),
    ]
    if cluster.get("context"):
        cluster_rows.append(("context", str(cluster["context"])))
    run_rows = [
        ("run", str(run.get("id") or "?")),
        ("started", str(run.get("started") or "?")),
        ("duration", f"{float(run.get('duration_s') or 0):.1f} s"),
    ]
    if options:
        run_rows.append(("options", ", ".join(f"{k}={v}" for k, v in options.items())))
    if stats:
        run_rows.append(("stats", ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in stats.items())))
    return {
        "cluster_rows": cluster_rows,
        "run_rows": run_rows,
        "chips": [(o, n) for o, n in counts.items() if n or o in ("passed", "failed")],
        "total": sum(counts.values()),
    }


def node_graph_data(partition: Mapping[str, Any]) -> dict[str, Any] | None:
    """Geometry of the small inline SVG of a partition (macros.html.j2 ``node_graph``): the nodes on a
    circle, each broken pair as an edge; None when there is nothing to draw."""
    nodes = [str(n) for n in partition.get("nodes", [])]
    if len(nodes) < 2:
        return None
    # past two dozen nodes names would overlap: smaller dots, and only the blamed nodes named
    crowded = len(nodes) > 24
    size, r, dot = (240, 100, 2.5) if crowded else (180, 62, 6.0)
    pos = {
        n: (
            size / 2 + r * math.sin(2 * math.pi * i / len(nodes)),
            size / 2 - r * math.cos(2 * math.pi * i / len(nodes)),
        )
        for i, n in enumerate(nodes)
    }
    edges = []
    for edge in partition.get("edges", []):
        a, b = str(edge["a"]), str(edge["b"])
        if a not in pos or b not in pos:
            continue
        (x1, y1), (x2, y2) = pos[a], pos[b]
        edges.append(
            {
                "a": a,
                "b": b,
                "direction": str(edge.get("direction")),
                "dashed": edge.get("direction") != "both",
                **{k: f"{v:.1f}" for k, v in (("x1", x1), ("y1", y1), ("x2", x2), ("y2", y2))},
            }
        )
    blamed = set(partition.get("blamed", []))
    dots = [
        {
            "name": n if not crowded or n in blamed else "",
            "r": dot,
            "x": f"{x:.1f}",
            "y": f"{y:.1f}",
            "ty": f"{y - 9:.1f}",
            "fill": "#c62828" if n in blamed else "#2e7d32",
        }
        for n, (x, y) in pos.items()
    ]
    return {"shape": str(partition.get("shape")), "size": size, "edges": edges, "dots": dots}


def node_graph(partition: Mapping[str, Any]) -> str:
    """The partition's node graph as an inline SVG string ("" when there is nothing to draw)."""
    data = node_graph_data(partition)
    if data is None:
        return ""
    macro = environment().get_template("macros.html.j2").module.node_graph  # type: ignore[attr-defined]
    return str(macro(data))


def render_matrix(results: Mapping[str, Any]) -> str:
    """The complete matrix.html for one results document (a pure function of it)."""
    data = page_data(results)
    run_id = str(results.get("run", {}).get("id") or "")
    graphs = [node_graph_data(f["partition"]) for f in data["verdict"]["findings"] if f.get("partition")]
    return render(
        "matrix.html.j2",
        title=f"netconform matrix{' — ' + run_id if run_id else ''}",
        css=trusted(_asset("matrix.css")),
        js=trusted(_asset("matrix.js")),
        data=trusted(embed_json(data)),
        data_id=DATA_ELEMENT_ID,
        verdict=data["verdict"],
        graphs=[g for g in graphs if g],
        big="big" in data,
        big_threshold=BIG_MATRIX_CELLS,
        **_header_context(results),
    )


def write_matrix(results: Mapping[str, Any], path: str | Path) -> Path:
    """Render and write matrix.html (parent folders created); returns the path written."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_matrix(results), encoding="utf-8")
    return out


__all__ = ["KIND_LABEL", "embed_json", "page_data", "render_matrix", "write_matrix"]
