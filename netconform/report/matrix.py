"""``matrix.html``: one self-contained page (inline CSS, JS and data) that works offline.

The header (cluster, run, counts, verdict) is rendered here so it reads even without JavaScript; the
matrix, the by-FM view and the detail panel are drawn by the inline script from the results embedded
as JSON in ``<script type="application/json">`` (every ``<``, ``>`` and ``&`` escaped, so no cell text
can close the script element). The script builds each view's DOM once from compact per-cell indices
and renders a cell's evidence only when it is clicked, which keeps a 12-node run (thousands of cells)
small and fast to open.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from netconform.report.catalogue import CATALOGUE, fm_sort_key
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


def page_data(results: Mapping[str, Any]) -> dict[str, Any]:
    """Everything the script needs: run header, layout (rows, columns, slots), catalogue, cells, index."""
    cells = canonical_cells(results)
    layout = build_layout(cells)
    subject_index = {s: i for i, s in enumerate(layout.subjects)}
    target_index = {t: i for i, t in enumerate(layout.targets)}
    kind_index = {k: i for i, k in enumerate(layout.kinds)}
    slot_index = {s: i for i, s in enumerate(layout.slots)}
    index = [
        [
            subject_index[c["subject"]],
            target_index[c["target"]],
            kind_index[str(c.get("target_kind") or "T-?")],
            slot_index[(c["layer"], c["protocol"])],
        ]
        for c in cells
    ]
    present = fm_ids(cells)
    catalogue = {fm: CATALOGUE.get(fm, "not in this version's catalogue") for fm in set(CATALOGUE) | present}
    verdict = verdict_data(results)
    return {
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
        "cells": cells,
        "index": index,
    }


def _dl(rows: list[tuple[str, str]]) -> str:
    items = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in rows)
    return f"<dl>{items}</dl>"


def _header(results: Mapping[str, Any], verdict: Mapping[str, Any]) -> str:
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
    chips = "".join(
        f'<span class="chip {o}"><b>{n}</b> {o}</span>'
        for o, n in counts.items()
        if n or o in ("passed", "failed")
    )
    findings = "".join(
        f'<li><span class="suspect">{html.escape(f["component"])}</span> '
        f'<span class="fmref">{html.escape("/".join(f["fm"]))}</span></li>'
        for f in verdict["findings"]
    )
    suspects = f'<ul class="suspects" aria-label="suspects">{findings}</ul>' if findings else ""
    return (
        '<header class="top">'
        '<div class="title"><h1>netconform <span>network conformance matrix</span></h1></div>'
        '<div class="facts">'
        f'<section class="box"><h2>Cluster</h2>{_dl(cluster_rows)}</section>'
        f'<section class="box"><h2>Run</h2>{_dl(run_rows)}</section>'
        f'<section class="box"><h2>Cells</h2><div class="chips">{chips}</div>'
        f'<p class="total">{sum(counts.values())} cells in total</p></section>'
        "</div>"
        f'<section class="verdict {html.escape(verdict["status"])}" id="verdict"><h2>Verdict</h2>'
        f"<p>{html.escape(verdict['text'])}</p>{suspects}{_graphs(verdict)}</section>"
        "</header>"
    )


def node_graph(partition: Mapping[str, Any]) -> str:
    """A small inline SVG: the nodes on a circle, each broken pair as a red edge (dashed when one-way),
    so "node X isolated", "groups {A,B} | {C}" and "only the pair A-C" look different at a glance."""
    nodes = [str(n) for n in partition.get("nodes", [])]
    if len(nodes) < 2:
        return ""
    size, r = 180, 62
    pos = {
        n: (
            size / 2 + r * math.sin(2 * math.pi * i / len(nodes)),
            size / 2 - r * math.cos(2 * math.pi * i / len(nodes)),
        )
        for i, n in enumerate(nodes)
    }
    lines = []
    for edge in partition.get("edges", []):
        a, b = str(edge["a"]), str(edge["b"])
        if a not in pos or b not in pos:
            continue
        dash = "" if edge.get("direction") == "both" else ' stroke-dasharray="4 3"'
        (x1, y1), (x2, y2) = pos[a], pos[b]
        lines.append(
            f'<line class="cut" x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="#c62828"'
            f' stroke-width="2"{dash}><title>{html.escape(a)} – {html.escape(b)}: '
            f"{html.escape(str(edge.get('direction')))}</title></line>"
        )
    blamed = set(partition.get("blamed", []))
    dots = "".join(
        f'<g><circle cx="{x:.1f}" cy="{y:.1f}" r="6" fill="{"#c62828" if n in blamed else "#2e7d32"}"/>'
        f'<text x="{x:.1f}" y="{y - 9:.1f}" font-size="9" text-anchor="middle">{html.escape(n)}</text></g>'
        for n, (x, y) in pos.items()
    )
    shape = html.escape(str(partition.get("shape")))
    return (
        f'<svg class="nodegraph" data-shape="{shape}" width="{size}" height="{size}"'
        f' viewBox="0 0 {size} {size}"'
        f' role="img" aria-label="node graph: {shape}">{"".join(lines)}{dots}</svg>'
    )


def _graphs(verdict: Mapping[str, Any]) -> str:
    svgs = [node_graph(f["partition"]) for f in verdict.get("findings", []) if f.get("partition")]
    svgs = [s for s in svgs if s]
    return f'<div class="nodegraphs">{"".join(svgs)}</div>' if svgs else ""


def render_matrix(results: Mapping[str, Any]) -> str:
    """The complete matrix.html for one results document (a pure function of it)."""
    data = page_data(results)
    run_id = str(results.get("run", {}).get("id") or "")
    title = f"netconform matrix{' — ' + run_id if run_id else ''}"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title>"
        f"<style>{_asset('matrix.css')}</style></head>"
        f"<body>{_header(results, data['verdict'])}"
        '<nav class="toolbar" aria-label="views and filters">'
        '<div class="tabs" role="tablist">'
        '<button type="button" role="tab" data-view="kind" class="tab active">Matrix by target kind</button>'
        '<button type="button" role="tab" data-view="target" class="tab">Matrix by target</button>'
        '<button type="button" role="tab" data-view="fm" class="tab">By FM ID</button></div>'
        '<div class="filters">'
        '<label>FM <select id="f-fm"><option value="">all</option></select></label>'
        '<label>Layer <select id="f-layer"><option value="">all</option></select></label>'
        '<label>Outcome <select id="f-outcome"><option value="">all</option></select></label>'
        '<button type="button" id="f-reset">Reset</button>'
        '<span id="f-count" class="count"></span></div></nav>'
        '<div class="legend" id="legend"></div>'
        '<main id="view"><noscript><p class="noscript">The matrix is drawn by JavaScript, which is disabled '
        "here; results.json and junit.xml hold the same results.</p></noscript></main>"
        '<aside id="detail" class="detail" hidden aria-label="cell details">'
        '<div class="detail-head"><h2 id="detail-title"></h2>'
        '<button type="button" id="detail-close" aria-label="close">×</button></div>'
        '<div id="detail-body"></div></aside>'
        f'<script type="application/json" id="{DATA_ELEMENT_ID}">{embed_json(data)}</script>'
        f"<script>{_asset('matrix.js')}</script>"
        "</body></html>\n"
    )


def write_matrix(results: Mapping[str, Any], path: str | Path) -> Path:
    """Render and write matrix.html (parent folders created); returns the path written."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_matrix(results), encoding="utf-8")
    return out


__all__ = ["KIND_LABEL", "embed_json", "page_data", "render_matrix", "write_matrix"]
