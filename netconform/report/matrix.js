/* netconform matrix.html: draws the matrix views, the by-FM view and the detail panel from the results
   embedded in script#nc-data. It loads nothing: no network request, no external resource. Each view's
   table is built once per filter change as one string; a cell's evidence is rendered only on click. */
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("nc-data").textContent);
  var cells = D.cells || [], idx = D.index || [], L = D.layout;
  var SEV = { failed: 5, error: 4, flaky: 3, passed: 1, skipped: 0 };
  var OUTCOMES = ["passed", "failed", "flaky", "skipped", "error"];
  var state = { view: "kind", fm: "", layer: "", outcome: "" };
  var view = document.getElementById("view");
  var detail = document.getElementById("detail");
  var selected = null;

  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (ch) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[ch];
    });
  }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function nodeOf(id) { var i = id.indexOf("@"); return i < 0 ? null : id.slice(i + 1); }
  function fmNum(fm) { var m = /(\d+)/.exec(fm); return m ? parseInt(m[1], 10) : 1e4; }

  function matches(i) { return matchesCell(cells[i]); }
  function matchesCell(c) {
    if (state.fm && c.fm.indexOf(state.fm) < 0) return false;
    if (state.layer && c.layer !== state.layer) return false;
    if (state.outcome === "notpassed") return c.outcome !== "passed" && c.outcome !== "skipped";
    if (state.outcome && c.outcome !== state.outcome) return false;
    return true;
  }

  // cell indices per (row, column) for both matrix modes, built once
  var groups = { kind: new Map(), target: new Map() };
  for (var i = 0; i < cells.length; i++) {
    var e = idx[i];
    [["kind", 2], ["target", 1]].forEach(function (m) {
      var k = e[0] + ":" + e[m[1]];
      var g = groups[m[0]].get(k);
      if (!g) groups[m[0]].set(k, (g = []));
      g.push(i);
    });
  }

  function columns(mode) { return mode === "kind" ? L.kinds : L.targets; }

  function badges(list) {
    // one badge per slot: the worst outcome of the matching cells in that slot
    var per = new Map();
    list.forEach(function (i) {
      if (!matches(i)) return;
      var sl = idx[i][3], o = cells[i].outcome, b = per.get(sl);
      if (!b) per.set(sl, (b = { w: o, seen: {} }));
      if (SEV[o] > SEV[b.w]) b.w = o;
      b.seen[o] = 1;
    });
    var keys = Array.from(per.keys()).sort(function (a, b) { return a - b; });
    return keys.map(function (sl) {
      var b = per.get(sl), mixed = Object.keys(b.seen).length > 1 ? " mixed" : "";
      return '<span class="b ' + b.w + mixed + '" data-s="' + sl + '">' + esc(L.slots[sl].code) + "</span>";
    }).join("");
  }

  function renderMatrix(mode) {
    var cols = columns(mode), h = ['<div class="wrap"><table class="matrix" id="matrix" data-mode="' + mode + '"><thead>'];
    var famStart = {};
    if (mode === "target") {
      h.push('<tr><th class="corner" rowspan="2">subject \\ target</th>');
      var at = 0, single = {};
      L.families.forEach(function (f) {
        famStart[at] = 1;
        // a family of one target whose name says it all takes both header rows
        if (f.span === 1 && cols[at].label === f.label) {
          single[at] = 1;
          h.push('<th class="fam" rowspan="2" title="' + esc(cols[at].id) + '">' + esc(f.label) + "</th>");
        } else {
          h.push('<th class="fam" colspan="' + f.span + '">' + esc(f.label) + "</th>");
        }
        at += f.span;
      });
      h.push('</tr><tr class="sub">');
      cols.forEach(function (t, c) {
        if (single[c]) return;
        h.push("<th" + (famStart[c] ? ' class="fam"' : "") + ' title="' + esc(t.id) + '">' + esc(t.label) + "</th>");
      });
      h.push("</tr>");
    } else {
      h.push('<tr><th class="corner">subject \\ target</th>');
      cols.forEach(function (k) { h.push('<th title="' + esc(k.id) + '">' + esc(k.label) + "</th>"); });
      h.push("</tr>");
    }
    h.push("</thead><tbody>");
    var prevFam = null;
    L.subjects.forEach(function (s, r) {
      h.push("<tr" + (prevFam !== null && prevFam !== s.family ? ' class="grp"' : "") + '><th class="rowh" scope="row" title="' +
        esc(s.id) + '">' + esc(s.label) + "</th>");
      prevFam = s.family;
      var sn = nodeOf(s.id);
      cols.forEach(function (col, c) {
        var list = groups[mode].get(r + ":" + c);
        var cls = [];
        if (famStart[c]) cls.push("fam");
        if (mode === "target" && sn && col.node === sn) cls.push("same");
        if (!list) {
          cls.push("na");
          h.push('<td class="' + cls.join(" ") + '"></td>');
          return;
        }
        h.push('<td class="' + cls.join(" ") + '" data-r="' + r + '" data-c="' + c + '">' + badges(list) + "</td>");
      });
      h.push("</tr>");
    });
    h.push("</tbody></table></div>");
    view.innerHTML = h.join("");
  }

  // ---- by FM view ------------------------------------------------------------------------------
  var byFm = new Map();
  cells.forEach(function (c, i) {
    c.fm.forEach(function (fm) {
      if (!byFm.has(fm)) byFm.set(fm, []);
      byFm.get(fm).push(i);
    });
  });
  var fmIds = Array.from(new Set(Object.keys(D.catalogue).concat(Array.from(byFm.keys())))).sort(function (a, b) {
    return fmNum(a) - fmNum(b) || (a < b ? -1 : 1);
  });

  function countChips(list) {
    var n = {};
    list.forEach(function (i) { n[cells[i].outcome] = (n[cells[i].outcome] || 0) + 1; });
    return OUTCOMES.filter(function (o) { return n[o]; }).map(function (o) {
      return '<span class="chip ' + o + '"><b>' + n[o] + "</b> " + o + "</span>";
    }).join(" ");
  }

  function renderFm() {
    var h = [];
    fmIds.forEach(function (fm) {
      if (state.fm && state.fm !== fm) return;
      var list = (byFm.get(fm) || []).filter(matches);
      var total = (byFm.get(fm) || []).length;
      var chips = total ? countChips(list) || '<span class="fm-none">no cell matches the filters</span>'
        : '<span class="fm-none">no cell in this run</span>';
      h.push('<div class="fm-group" data-fm="' + esc(fm) + '"><button type="button" class="fm-head" aria-expanded="false">' +
        '<span class="fm-id">' + esc(fm) + '</span><span class="fm-title">' + esc(D.catalogue[fm] || "") +
        '</span><span class="chips">' + chips + '</span></button><div class="fm-body" hidden></div></div>');
    });
    view.innerHTML = h.join("") || '<p class="note">No FM ID matches the filters.</p>';
  }

  function fillFmBody(group) {
    var body = group.querySelector(".fm-body");
    var list = (byFm.get(group.getAttribute("data-fm")) || []).filter(matches);
    list.sort(function (a, b) { return SEV[cells[b].outcome] - SEV[cells[a].outcome] || a - b; });
    var h = ['<table class="list"><thead><tr><th>outcome</th><th>subject</th><th>target</th><th>layer</th><th>reason</th></tr></thead><tbody>'];
    list.forEach(function (i) {
      var c = cells[i];
      h.push('<tr data-i="' + i + '"><td><span class="b ' + c.outcome + '">' + esc(c.outcome) + "</span></td><td>" +
        esc(c.subject) + "</td><td>" + esc(c.target) + "</td><td>" + esc(c.layer + " " + c.protocol) + "</td><td>" +
        esc(c.reason || "") + "</td></tr>");
    });
    h.push("</tbody></table>");
    body.innerHTML = list.length ? h.join("") : '<p class="note">No cell matches the filters.</p>';
  }

  // ---- detail panel ------------------------------------------------------------------------------
  function kv(dl, key, value) {
    if (value === undefined || value === null || value === "") return;
    dl.appendChild(el("dt", "", key));
    dl.appendChild(el("dd", "", typeof value === "object" ? JSON.stringify(value) : value));
  }

  var CHECK_MAIN = { id: 1, kind: 1, host: 1, port: 1, ok: 1, error: 1, elapsed_ms: 1, attempts: 1, message: 1 };

  function renderCheck(ch) {
    var box = el("div", "check");
    var head = el("div");
    var addr = (ch.host || ch.url || ch.name || ch.ip || ch.server || ch.path || "") + (ch.port !== undefined ? ":" + ch.port : "");
    head.appendChild(el("span", "mono", (ch.kind || "check") + " "));
    head.appendChild(el("span", "addr", addr));
    head.appendChild(document.createTextNode(" — "));
    head.appendChild(el("span", ch.ok ? "ok" : "bad", ch.ok ? "ok" : (ch.error || "failed")));
    if (ch.elapsed_ms !== undefined) head.appendChild(document.createTextNode(" in " + ch.elapsed_ms + " ms"));
    box.appendChild(head);
    if (ch.message) box.appendChild(el("div", "kv", ch.message));
    var extra = Object.keys(ch).filter(function (k) { return !CHECK_MAIN[k]; });
    if (extra.length) {
      box.appendChild(el("div", "kv", extra.map(function (k) {
        var v = ch[k];
        return k + "=" + (typeof v === "object" ? JSON.stringify(v) : String(v));
      }).join("  ")));
    }
    var attempts = ch.attempts || [];
    if (attempts.length) {
      var keys = ["ok", "error", "elapsed_ms"];
      attempts.forEach(function (a) {
        Object.keys(a).forEach(function (k) { if (keys.indexOf(k) < 0) keys.push(k); });
      });
      var t = el("table", "attempts"), tr = el("tr");
      tr.appendChild(el("th", "", "attempt"));
      keys.forEach(function (k) { tr.appendChild(el("th", "", k)); });
      t.appendChild(tr);
      attempts.forEach(function (a, n) {
        var row = el("tr");
        row.appendChild(el("td", "", n + 1));
        keys.forEach(function (k) {
          var v = a[k];
          row.appendChild(el("td", k === "ok" ? (v ? "ok" : "bad") : "", v === undefined || v === null ? "" :
            typeof v === "object" ? JSON.stringify(v) : v));
        });
        t.appendChild(row);
      });
      box.appendChild(t);
    }
    return box;
  }

  function renderItem(c, slot, open) {
    var d = el("details", "item " + c.outcome);
    d.open = open;
    var s = el("summary");
    s.appendChild(el("span", "b " + c.outcome, slot.code));
    s.appendChild(el("span", "what", c.subject + " → " + c.target + " · " + slot.label));
    s.appendChild(el("span", "", c.outcome));
    s.appendChild(el("span", "fmref", c.fm.join(" ")));
    d.appendChild(s);
    var body = el("div", "body");
    var dl = el("dl");
    kv(dl, "reason", c.reason);
    kv(dl, "error", c.error);
    if (c.classified_layer || c.meaning) kv(dl, "classified", (c.classified_layer || "?") + (c.meaning ? " — " + c.meaning : ""));
    kv(dl, "FM", c.fm.map(function (fm) { return fm + " " + (D.catalogue[fm] || ""); }).join("; "));
    kv(dl, "key", c.key);
    kv(dl, "test", c.test);
    kv(dl, "kinds", (c.subject_kind || "?") + " → " + (c.target_kind || "?"));
    if (c.duration_s !== undefined) kv(dl, "duration", c.duration_s + " s");
    if (c.baseline) kv(dl, "baseline", c.baseline);
    body.appendChild(dl);
    var dg = c.diagnosis;
    if (dg && (dg.hop || dg.summary || (dg.capture && dg.capture.length))) {
      body.appendChild(el("h3", "", "Diagnosis"));
      var box = el("div", "diag"), ddl = el("dl");
      kv(ddl, "first broken hop", dg.hop);
      kv(ddl, "summary", dg.summary);
      kv(ddl, "FM", dg.fm);
      box.appendChild(ddl);
      if (dg.capture && dg.capture.length) {
        box.appendChild(el("div", "note", "Capture on each hop while the problem happens:"));
        box.appendChild(el("pre", "", dg.capture.join("\n")));
      }
      body.appendChild(box);
    }
    var checks = (c.evidence && c.evidence.checks) || [];
    body.appendChild(el("h3", "", "Evidence (" + checks.length + " check" + (checks.length === 1 ? "" : "s") + ")"));
    if (!checks.length) body.appendChild(el("div", "note", "no probe ran for this cell"));
    checks.forEach(function (ch) { body.appendChild(renderCheck(ch)); });
    var other = Object.keys(c.evidence || {}).filter(function (k) {
      var v = c.evidence[k];
      return k !== "checks" && v !== null && v !== "" && !(Array.isArray(v) && !v.length);
    });
    other.forEach(function (k) { body.appendChild(el("div", "kv", k + "=" + JSON.stringify(c.evidence[k]))); });
    d.appendChild(body);
    return d;
  }

  function openDetail(title, list) {
    openItems(title, list.map(function (i) { return { c: cells[i], s: idx[i][3], n: i }; }));
  }

  // items: [{c: cell, s: slot index, n: order}]; the panel lists those the filters keep, worst first
  function openItems(title, items) {
    var shown = items.filter(function (it) { return matchesCell(it.c); }), hidden = items.length - shown.length;
    shown.sort(function (a, b) { return SEV[b.c.outcome] - SEV[a.c.outcome] || a.s - b.s || a.n - b.n; });
    document.getElementById("detail-title").textContent = title;
    var body = document.getElementById("detail-body");
    body.textContent = "";
    body.appendChild(el("p", "note", shown.length + " cell" + (shown.length === 1 ? "" : "s") +
      (hidden ? ", " + hidden + " more hidden by the filters" : "")));
    var frag = document.createDocumentFragment();
    shown.forEach(function (it) {
      frag.appendChild(renderItem(it.c, L.slots[it.s], it.c.outcome !== "passed" && it.c.outcome !== "skipped"));
    });
    body.appendChild(frag);
    detail.hidden = false;
    body.scrollTop = 0;
  }

  function closeDetail() {
    detail.hidden = true;
    if (selected) selected.classList.remove("sel");
    selected = null;
  }

  // ---- big runs: node x node heat maps; a node's cells are inflated only when one of its squares is clicked
  function bigPage() {
    var B = D.big, N = B.nodes.length, Q = B.square, plane = 0, loaded = {};
    var CLS = {};
    OUTCOMES.forEach(function (o) { CLS[Q[o]] = o; });
    CLS[Q.partial] = "failed mixed";
    var PAIR = {};
    B.pair_targets.forEach(function (t) { PAIR[t] = 1; });
    function famOf(id) { return id.split("@")[0].split(":")[0]; }
    function isPair(c) { return nodeOf(c.subject) !== null && nodeOf(c.target) !== null && PAIR[famOf(c.target)] === 1; }

    function chunk(k) {
      // gzip + base64 in the page, inflated by the browser itself: no request, nothing kept until asked for
      if (!loaded[k]) {
        var bin = atob(B.chunks[k]), bytes = new Uint8Array(bin.length);
        for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
        var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
        loaded[k] = new Response(stream).text().then(JSON.parse);
      }
      return loaded[k];
    }
    function show(title, list, keep) {
      var items = [];
      list.forEach(function (c, n) { if (keep(c)) items.push({ c: c, s: c._s, n: n }); });
      openItems(title, items);
    }

    function renderHeat() {
      var p = B.planes[plane], g = p.grid, sz = Math.max(5, Math.min(16, Math.floor(900 / Math.max(N, 1))));
      var pad = 64, W = pad + N * sz + 2, fs = Math.max(5, Math.min(11, sz - 2));
      var h = ['<p class="note">' + esc(p.label) + ": subject node (row) × target node (column), worst outcome per square; " +
        p.failing + " node pair" + (p.failing === 1 ? "" : "s") + " failing. Click a square for its cells and their evidence.</p>",
        '<div class="wrap heatwrap"><svg id="heatmap" class="heatmap" data-plane="' + esc(p.id) + '" data-n="' + N + '" width="' + W +
        '" height="' + W + '" viewBox="0 0 ' + W + " " + W + '" role="img" aria-label="heat map: ' + esc(p.label) + '">'];
      B.nodes.forEach(function (name, i) {
        var at = pad + i * sz + sz * 0.75;
        h.push('<text class="rl" x="' + (pad - 3) + '" y="' + at + '" font-size="' + fs + '" text-anchor="end">' + esc(name) + "</text>");
        h.push('<text class="cl" transform="translate(' + at + "," + (pad - 3) + ') rotate(-90)" font-size="' + fs + '">' + esc(name) + "</text>");
      });
      for (var i = 0; i < N; i++) {
        for (var j = 0; j < N; j++) {
          var ch = g.charAt(i * N + j);
          h.push('<rect class="sq ' + (CLS[ch] || "none") + '" x="' + (pad + j * sz) + '" y="' + (pad + i * sz) + '" width="' + (sz - 1) +
            '" height="' + (sz - 1) + '" data-i="' + i + '" data-j="' + j + '"/>');
        }
      }
      h.push("</svg></div>");
      view.innerHTML = h.join("");
    }

    function renderRest() {
      var R = B.rest, K = R.kinds.length;
      if (!R.subjects.length) { view.innerHTML = '<p class="note">Every cell of this run is between two nodes.</p>'; return; }
      var h = ['<div class="wrap"><table class="matrix rest" id="rest"><thead><tr><th class="corner">subject \\ target</th>'];
      R.kinds.forEach(function (k) { h.push('<th title="' + esc(k.id) + '">' + esc(k.label) + "</th>"); });
      h.push("</tr></thead><tbody>");
      R.subjects.forEach(function (s, r) {
        h.push('<tr><th class="rowh" scope="row" title="' + esc(s.id) + '">' + esc(s.label) + "</th>");
        for (var k = 0; k < K; k++) {
          var ch = R.grid.charAt(r * K + k);
          if (ch === Q.none) { h.push('<td class="na"></td>'); continue; }
          h.push('<td data-r="' + r + '" data-k="' + k + '"><span class="b ' + CLS[ch] + '">&nbsp;</span></td>');
        }
        h.push("</tr>");
      });
      h.push("</tbody></table></div>");
      view.innerHTML = h.join("");
    }

    function renderFmCounts() {
      var h = [];
      fmIds.forEach(function (fm) {
        var n = D.fm_counts[fm] || {};
        var chips = OUTCOMES.filter(function (o) { return n[o]; }).map(function (o) {
          return '<span class="chip ' + o + '"><b>' + n[o] + "</b> " + o + "</span>";
        }).join(" ") || '<span class="fm-none">no cell in this run</span>';
        h.push('<div class="fm-group" data-fm="' + esc(fm) + '"><div class="fm-head"><span class="fm-id">' + esc(fm) +
          '</span><span class="fm-title">' + esc(D.catalogue[fm] || "") + '</span><span class="chips">' + chips + "</span></div></div>");
      });
      view.innerHTML = '<p class="note">Counts only in a run this big: the cells are in the heat maps and in results.json.</p>' + h.join("");
    }

    function renderBig() {
      if (state.view === "fm") renderFmCounts(); else if (state.view === "rest") renderRest(); else renderHeat();
      var total = D.run && D.run.counts ? Object.keys(D.run.counts).reduce(function (a, k) { return a + D.run.counts[k]; }, 0) : 0;
      document.getElementById("f-count").textContent = total + " cells on " + N + " nodes";
    }

    view.addEventListener("click", function (ev) {
      var sq = ev.target.closest("rect.sq");
      if (sq) {
        var i = +sq.getAttribute("data-i"), j = +sq.getAttribute("data-j"), p = B.planes[plane];
        var a = B.nodes[i], b = B.nodes[j];
        if (selected) selected.classList.remove("sel");
        selected = sq;
        sq.classList.add("sel");
        chunk(i).then(function (list) {
          show(a + " → " + b + " · " + p.label, list, function (c) {
            if (!isPair(c) || nodeOf(c.subject) !== a || nodeOf(c.target) !== b) return false;
            return p.id === "all" || (famOf(c.subject) === p.subject && famOf(c.target) === p.target &&
              c.layer === p.layer && c.protocol === p.protocol);
          });
        });
        return;
      }
      var td = ev.target.closest("#rest td[data-r]");
      if (td) {
        var s = B.rest.subjects[+td.getAttribute("data-r")], k = B.rest.kinds[+td.getAttribute("data-k")];
        if (selected) selected.classList.remove("sel");
        selected = td;
        td.classList.add("sel");
        chunk(s.chunk).then(function (list) {
          show(s.label + " → " + k.label, list, function (c) {
            return c.subject === s.id && (c.target_kind || "T-?") === k.id && !isPair(c);
          });
        });
      }
    });

    view.addEventListener("mouseover", function (ev) {
      var sq = ev.target.closest("rect.sq");
      if (!sq || sq.querySelector("title")) return;
      var t = document.createElementNS(sq.namespaceURI, "title");
      t.textContent = B.nodes[+sq.getAttribute("data-i")] + " → " + B.nodes[+sq.getAttribute("data-j")] + ": " +
        sq.getAttribute("class").replace("sq ", "").replace("failed mixed", "some failed").replace("none", "no cell");
      sq.appendChild(t);
    });

    document.querySelector(".tabs").addEventListener("click", function (ev) {
      var t = ev.target.closest(".tab");
      if (!t) return;
      state.view = t.getAttribute("data-view");
      document.querySelectorAll(".tab").forEach(function (x) {
        x.classList.toggle("active", x === t);
        x.setAttribute("aria-selected", String(x === t));
      });
      closeDetail();
      renderBig();
    });
    var planes = document.getElementById("f-plane");
    B.planes.forEach(function (p, n) {
      var opt = el("option", "", p.label + " (" + p.failing + " failing pair" + (p.failing === 1 ? "" : "s") + ")");
      opt.value = String(n);
      planes.appendChild(opt);
    });
    planes.addEventListener("change", function () {
      plane = +planes.value;
      closeDetail();
      if (state.view !== "heat") document.querySelector(".tab[data-view=heat]").click(); else renderBig();
    });
    var outcome = document.getElementById("f-outcome");
    [["notpassed", "not passed"]].concat(OUTCOMES.map(function (o) { return [o, o]; })).forEach(function (o) {
      var opt = el("option", "", o[1]);
      opt.value = o[0];
      outcome.appendChild(opt);
    });
    outcome.addEventListener("change", function () { state.outcome = outcome.value; closeDetail(); });
    document.getElementById("detail-close").addEventListener("click", closeDetail);
    document.addEventListener("keydown", function (ev) { if (ev.key === "Escape") closeDetail(); });
    document.getElementById("legend").innerHTML = OUTCOMES.map(function (o) {
      return '<span><span class="b ' + o + '">&nbsp;</span> ' + o + "</span>";
    }).join("") + '<span><span class="b failed mixed">&nbsp;</span> some of several failed (worst shown)</span>' +
      '<span><span class="b none">&nbsp;</span> no cell</span>';
    state.view = "heat";
    renderBig();
  }

  if (D.big) {
    bigPage();
    document.body.setAttribute("data-rendered", "1");
    window.ncRenderedAt = performance.now();
    return;
  }

  // ---- wiring ---------------------------------------------------------------------------------------
  function render() {
    if (state.view === "fm") renderFm(); else renderMatrix(state.view);
    var n = 0;
    for (var j = 0; j < cells.length; j++) if (matches(j)) n++;
    document.getElementById("f-count").textContent = n + " of " + cells.length + " cells shown";
  }

  view.addEventListener("click", function (ev) {
    var td = ev.target.closest("td[data-r]");
    if (td) {
      var mode = state.view, r = +td.getAttribute("data-r"), c = +td.getAttribute("data-c");
      if (selected) selected.classList.remove("sel");
      selected = td;
      td.classList.add("sel");
      openDetail(L.subjects[r].label + " → " + columns(mode)[c].label, groups[mode].get(r + ":" + c));
      return;
    }
    var head = ev.target.closest(".fm-head");
    if (head) {
      var group = head.parentNode, body = group.querySelector(".fm-body");
      if (body.hidden) fillFmBody(group);
      body.hidden = !body.hidden;
      head.setAttribute("aria-expanded", String(!body.hidden));
      return;
    }
    var row = ev.target.closest("tr[data-i]");
    if (row) {
      var i = +row.getAttribute("data-i");
      openDetail(cells[i].subject + " → " + cells[i].target, [i]);
    }
  });

  view.addEventListener("mouseover", function (ev) {
    var b = ev.target.closest(".matrix .b");
    if (!b || b.title) return;
    var td = b.parentNode, sl = +b.getAttribute("data-s");
    var list = groups[state.view].get(td.getAttribute("data-r") + ":" + td.getAttribute("data-c")) || [];
    var n = {};
    list.forEach(function (i) { if (idx[i][3] === sl && matches(i)) n[cells[i].outcome] = (n[cells[i].outcome] || 0) + 1; });
    b.title = L.slots[sl].label + ": " + OUTCOMES.filter(function (o) { return n[o]; }).map(function (o) { return n[o] + " " + o; }).join(", ");
  });

  document.querySelector(".tabs").addEventListener("click", function (ev) {
    var t = ev.target.closest(".tab");
    if (!t) return;
    state.view = t.getAttribute("data-view");
    document.querySelectorAll(".tab").forEach(function (x) {
      x.classList.toggle("active", x === t);
      x.setAttribute("aria-selected", String(x === t));
    });
    closeDetail();
    render();
  });

  function fillSelect(id, options) {
    var s = document.getElementById(id);
    options.forEach(function (o) {
      var opt = el("option", "", o[1]);
      opt.value = o[0];
      s.appendChild(opt);
    });
    s.addEventListener("change", function () {
      state[id.slice(2)] = s.value;
      closeDetail();
      render();
    });
  }
  fillSelect("f-fm", D.present_fm.map(function (fm) {
    var t = D.catalogue[fm] || "";
    return [fm, fm + " — " + (t.length > 60 ? t.slice(0, 57) + "…" : t)];
  }));
  var layers = [];
  L.slots.forEach(function (s) { if (layers.indexOf(s.layer) < 0) layers.push(s.layer); });
  fillSelect("f-layer", layers.map(function (l) { return [l, l]; }));
  fillSelect("f-outcome", [["notpassed", "not passed"]].concat(OUTCOMES.map(function (o) { return [o, o]; })));
  document.getElementById("f-reset").addEventListener("click", function () {
    ["fm", "layer", "outcome"].forEach(function (k) { state[k] = ""; document.getElementById("f-" + k).value = ""; });
    closeDetail();
    render();
  });
  document.getElementById("detail-close").addEventListener("click", closeDetail);
  document.addEventListener("keydown", function (ev) { if (ev.key === "Escape") closeDetail(); });

  var legend = document.getElementById("legend");
  legend.innerHTML = OUTCOMES.map(function (o) { return '<span><span class="b ' + o + '">&nbsp;</span> ' + o + "</span>"; }).join("") +
    '<span><span class="b failed mixed">&nbsp;</span> some of several (worst shown)</span>' +
    L.slots.map(function (s) { return '<span><span class="mono">' + esc(s.code) + "</span> = " + esc(s.label) + "</span>"; }).join("");

  render();
  document.body.setAttribute("data-rendered", "1");
  window.ncRenderedAt = performance.now();
})();
