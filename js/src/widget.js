// hierx_nb explorer: header, metric selector, module tree, charts and node table, linked by the
// synced `selected` trait (Python is the source of truth). Data contract: hierx_nb/notebook/payload.py
// (types in types.js). Styles come from style.css through anywidget's `_css` (or the report's <style>).
import { decode, decodeMetrics, subtreeStats, h, fmtInt, fmtParams, fmtSeconds, fmtMs, fmtDiff, lastComponent,
  PayloadError, HIST_BINS } from "./data.js";
import { createTree } from "./tree.js";
import { createTable } from "./table.js";
import { createChart } from "./charts.js";
import { createGraph } from "./graph.js";

/** @typedef {import("./types.js").Model} Model */
/** @typedef {"nodes" | "latency" | "divergence"} Metric */

const MAX_OPS = 30; // beyond that the op types are summed into one "other" bar
const MAX_MODULES = 24; // bars in the by-module charts
// Series of the coverage chart, by source code (SOURCES), then untagged nodes.
const SOURCE_SERIES = ["unknown", "exact", "pattern", "inferred", "untagged"];

/** @param {import("./types.js").Header} hd */
function renderHeader(hd, firstDivergent) {
  const attempts = hd.attempts || [];
  const failed = attempts.filter((a) => !a.ok);
  const stat = (label, value, testid, title) =>
    h("span", { class: "hx-stat", title }, h("span", { class: "hx-stat-label", text: label }),
      h("span", { class: "hx-stat-value", text: value, "data-testid": testid }));
  const pct = hd.coverage_pct == null ? "–" : `${hd.coverage_pct.toFixed(1)}%`;
  const top = h("div", { class: "hx-header-top" },
    h("span", { class: "hx-model", text: hd.model_class || "model", title: "model class" }),
    h("span", { class: "hx-badge", text: hd.strategy || "?", title: "strategy used", "data-testid": "hierx-strategy" }),
    hd.structure_only ? h("span", { class: "hx-badge hx-badge-warn", text: "structure only",
      title: "exported without weights: the graph cannot be run" }) : null,
    stat("nodes", fmtInt(hd.nodes || 0), "hierx-node-count"),
    stat("modules", fmtInt(hd.modules || 0)),
    stat("known", pct, "hierx-coverage-pct",
      "nodes whose module is known: PyTorch's own record (exact) or an FX match (pattern), not inferred from neighbours"),
    stat("time", fmtSeconds(hd.seconds)),
    h("span", { class: "hx-path", text: hd.onnx_path || "in memory", title: hd.onnx_path || "not saved to disk" }));
  const parts = [top];
  const io = hd.io || [];
  if (io.length) {
    // The model's inputs and outputs: name, dtype and shape with named dynamic axes, as text.
    const one = (r) => h("span", { class: "hx-io-item", "data-io-kind": r.kind, "data-io-name": r.name },
      h("span", { class: "hx-io-name", text: r.name }),
      h("span", { class: "hx-io-type", text: ` ${r.dtype || "?"} ${r.shape ? `[${r.shape.join(", ")}]` : "[rank unknown]"}` }));
    const list = (kind) => io.filter((r) => r.kind === kind).flatMap((r, k) => (k ? [", ", one(r)] : [one(r)]));
    parts.push(h("div", { class: "hx-io", "data-testid": "hierx-io" },
      h("span", { class: "hx-stat-label", text: "inputs" }), ...list("input"),
      h("span", { class: "hx-stat-label hx-io-arrow", text: "→ outputs" }), ...list("output")));
  }
  const warnings = hd.warnings || [];
  if (warnings.length || firstDivergent) {
    parts.push(h("ul", { class: "hx-warnings", "data-testid": "hierx-warnings" },
      ...warnings.map((w) => h("li", { text: w })),
      firstDivergent ? h("li", { text: `first divergent module: ${firstDivergent}` }) : null));
  }
  if (failed.length) {
    // A <details> so long reasons (tracebacks) stay one click away; the title gives the gist on hover.
    parts.push(h("details", { class: "hx-attempts", "data-testid": "hierx-attempts" },
      h("summary", { text: `${failed.length} strateg${failed.length === 1 ? "y" : "ies"} not used: ${failed.map((a) => a.name).join(", ")}` }),
      ...attempts.map((a) => h("div", { class: "hx-attempt" + (a.ok ? " hx-ok" : ""), title: a.reason || "" },
        h("span", { class: "hx-attempt-name", text: a.name }),
        h("span", { class: "hx-attempt-state", text: a.ok ? `ok (${fmtSeconds(a.seconds)})` : a.skipped ? "skipped" : "failed" }),
        a.reason ? h("pre", { class: "hx-reason", text: a.reason }) : null))));
  }
  // Model settings hierx changed for the export (e.g. MoE experts to batched_mm): said, never hidden.
  const used = attempts.find((a) => a.ok);
  if (used && used.switched && used.switched.length) {
    parts.push(h("div", { class: "hx-switched", "data-testid": "hierx-switched",
      text: `switched for the export: ${used.switched.join("; ")}` }));
  }
  return h("div", { class: "hx-header", "data-testid": "hierx-header" }, ...parts);
}

/** @type {import("@anywidget/types").Render<Model>} */
function render({ model, el }) {
  const root = h("div", { class: "hierx", "data-testid": "hierx-root" });
  el.append(root);

  let data, metrics, tree, table, graphView, selIdx = 0, opFilter = -1, stats = null;
  /** @type {Metric} */
  let metric = "nodes";
  const disposers = [];
  const chartA = createChart("hierx-coverage-chart");
  const chartB = createChart("hierx-confidence-chart");
  const crumbs = h("nav", { class: "hx-crumbs", "data-testid": "hierx-breadcrumbs", "aria-label": "selected module path" });
  const count = h("span", { class: "hx-count", "data-testid": "hierx-selection-count" });
  const search = /** @type {HTMLInputElement} */ (h("input", { class: "hx-search", type: "search", placeholder: "filter modules by name or class",
    "data-testid": "hierx-search", "aria-label": "filter modules" }));
  const matches = h("span", { class: "hx-matches" });
  const metricSel = /** @type {HTMLSelectElement} */ (h("select", { class: "hx-select", "data-testid": "hierx-metric",
    "aria-label": "metric", onchange: () => setMetric(/** @type {Metric} */ (metricSel.value)) }));
  let headerEl = h("div");

  function timed(fn) {
    const t0 = performance.now();
    fn();
    root.setAttribute("data-render-ms", (performance.now() - t0).toFixed(2));
  }

  const rootName = () => model.get("header")?.model_class || "model";

  function renderCrumbs() {
    const items = [];
    for (let p = selIdx; p >= 0; p = data.tree.parent[p]) items.unshift(p);
    crumbs.replaceChildren(...items.flatMap((i, k) => [
      k ? h("span", { class: "hx-crumb-sep", text: "›" }) : null,
      h("button", { class: "hx-crumb" + (i === selIdx ? " hx-crumb-cur" : ""), "data-module": data.tree.names[i],
        title: data.tree.names[i] || "(whole model)",
        text: i === 0 ? rootName() : lastComponent(data.tree.names[i]),
        onclick: () => select(i) }),
    ].filter(Boolean)));
  }

  // The tree's three numeric columns for the chosen metric.
  function columns() {
    const t = data.tree;
    if (metric === "latency" && metrics.latency) {
      const L = metrics.latency;
      const fused = L.fusedInto;
      return [
        { head: "self ms", title: "median kernel ms per run of the nodes this module owns",
          text: (i) => (fused && fused[i] && !(L.self[i] > 0) ? "fused" : fmtMs(L.self[i])),
          tip: (i) => (fused && fused[i] ? `fused into ${fused[i]}: ONNX Runtime runs this module's work inside that module's kernel` : ""),
          cls: (i) => (fused && fused[i] ? "hx-fused" : "") },
        { head: "total ms", title: "median kernel ms per run of its subtree", text: (i) => fmtMs(L.total[i]) },
        { head: "share", title: "share of all kernel time (subtree)", text: (i) => (L.share[i] === L.share[i] ? `${(L.share[i] * 100).toFixed(1)}%` : "–"),
          bar: (i) => (L.share[i] === L.share[i] ? L.share[i] : 0) },
      ];
    }
    if (metric === "divergence" && metrics.divergence) {
      const D = metrics.divergence;
      let max = 0;
      for (let i = 0; i < t.n; i++) if (D.maxAbs[i] > max) max = D.maxAbs[i];
      return [
        { head: "nodes", title: "ONNX nodes in this module's subtree", text: (i) => fmtInt(t.total[i]) },
        { head: "max |Δ|", title: "largest absolute difference between this module's PyTorch and ONNX outputs",
          text: (i) => fmtDiff(D.maxAbs[i]), bar: (i) => (max > 0 && D.maxAbs[i] === D.maxAbs[i] ? D.maxAbs[i] / max : 0),
          cls: (i) => (D.ok[i] === 0 ? "hx-bad" : "") },
        { head: "ok", title: "within tolerance", text: (i) => (D.ok[i] === 1 ? "✓" : D.ok[i] === 0 ? "✗" : "–"),
          cls: (i) => (D.ok[i] === 0 ? "hx-bad" : "") },
      ];
    }
    return [
      { head: "own", title: "ONNX nodes tagged with exactly this module", text: (i) => fmtInt(t.own[i]) },
      { head: "total", title: "ONNX nodes in this module's subtree", text: (i) => fmtInt(t.total[i]) },
      { head: "params", title: "parameters", text: (i) => fmtParams(t.params[i]) },
    ];
  }

  // Children of the selection (and its own share), the largest first, for the by-module charts.
  function byModule(values, own) {
    const t = data.tree;
    const rows = [];
    if (own != null && own === own && own > 0) rows.push([`${selIdx === 0 ? rootName() : lastComponent(t.names[selIdx])} (own)`, own]);
    for (let c = selIdx + 1; c < selIdx + t.size[selIdx]; c += t.size[c]) {
      const v = values[c];
      if (v === v && v > 0) rows.push([lastComponent(t.names[c]), v]);
    }
    rows.sort((a, b) => b[1] - a[1]);
    return rows.slice(0, MAX_MODULES);
  }

  function drawCharts() {
    const where = selIdx === 0 ? "" : ` in ${lastComponent(data.tree.names[selIdx])}`;
    if (metric === "latency" && metrics.latency) {
      const L = metrics.latency;
      const ops = Object.entries(L.byOpType).sort((a, b) => b[1] - a[1]).slice(0, MAX_OPS);
      chartA.draw({ title: "Time by op type (whole model, ms per run)", categories: ops.map((o) => o[0]),
        series: [{ name: "time", values: ops.map((o) => o[1]) }], fmt: fmtMs, unit: "ms",
        empty: "no per-op-type times in this profile" });
      const rows = byModule(L.total, L.self[selIdx]);
      chartB.draw({ title: `Time by module${where} (ms per run)`, horizontal: true, categories: rows.map((r) => r[0]),
        series: [{ name: "time", values: rows.map((r) => r[1]) }], fmt: fmtMs, unit: "ms", empty: "no kernel time here" });
      return;
    }
    if (metric === "divergence" && metrics.divergence) {
      const D = metrics.divergence;
      const rows = byModule(D.maxAbs, null);
      chartA.draw({ title: `Max abs diff by module${where}`, horizontal: true, categories: rows.map((r) => r[0]),
        series: [{ name: "diff", values: rows.map((r) => r[1]) }], fmt: fmtDiff, empty: "no differences here" });
      chartB.el.hidden = true;
      return;
    }
    chartB.el.hidden = false;
    const { bySource, nOps } = stats;
    const nSeries = SOURCE_SERIES.length;
    const opTotal = (j) => { let a = 0; for (let r = 0; r < nSeries; r++) a += bySource[r * nOps + j]; return a; };
    const order = [];
    for (let j = 0; j < nOps; j++) if (opTotal(j) > 0) order.push(j);
    order.sort((a, b) => opTotal(b) - opTotal(a));
    const head = order.slice(0, MAX_OPS), tail = order.slice(MAX_OPS);
    const shown = head.slice();
    const cats = head.map((j) => data.nodes.ops[j]);
    if (tail.length) { cats.push(`other (${tail.length} types)`); shown.push(-1); }
    // Known sources first (exact, pattern), then inferred, unknown and untagged.
    const series = [1, 2, 3, 0, 4].map((r) => ({ name: SOURCE_SERIES[r],
      values: head.map((j) => bySource[r * nOps + j]).concat(tail.length ? [tail.reduce((a, j) => a + bySource[r * nOps + j], 0)] : []) }));
    chartA.draw({ title: "Nodes by op type and source", categories: cats, series, integer: true, unit: "nodes",
      highlight: shown.indexOf(opFilter), onClick: (k) => { if (shown[k] >= 0) setOp(shown[k]); }, empty: "no nodes here" });
    const w = 1 / HIST_BINS;
    const bins = Array.from({ length: HIST_BINS }, (_, b) => `${(b * w).toFixed(2)}–${((b + 1) * w).toFixed(2)}`);
    chartB.draw({ title: `Tag confidence${stats.nan ? ` (${stats.nan} without)` : ""}`, categories: bins,
      series: [{ name: "nodes", values: Array.from(stats.hist) }], integer: true, unit: "nodes", empty: "no confidences here" });
  }

  // Everything that depends on the selection; called for clicks and for Python-side changes.
  function showSelection() {
    const t0 = performance.now();
    stats = subtreeStats(data, selIdx);
    root.setAttribute("data-stats-ms", (performance.now() - t0).toFixed(2)); // the JS recompute alone
    count.textContent = String(stats.count);
    renderCrumbs();
    tree.setSelected(selIdx);
    table.setRows(stats.idx);
    graphView.setModule(selIdx);
    graphView.setMetric(graphMetric());
    drawCharts();
  }

  // How the chosen metric colours the graph: modules by their subtree's value relative to the
  // selection's largest child, nodes by their module's own value.
  function graphMetric() {
    const t = data.tree;
    const maxOf = (values) => {
      let max = 0;
      for (let c = selIdx; c < selIdx + t.size[selIdx]; c++) if (values[c] > max) max = values[c];
      return max;
    };
    if (metric === "latency" && metrics.latency) {
      const L = metrics.latency, max = maxOf(L.total), maxSelf = maxOf(L.self);
      return { bad: false, module: (m) => (max > 0 && L.total[m] === L.total[m] ? L.total[m] / max : null),
        node: (i) => { const m = data.nodes.module[i]; return m >= 0 && maxSelf > 0 && L.self[m] === L.self[m] ? L.self[m] / maxSelf : null; },
        text: (m) => (L.fusedInto && L.fusedInto[m] && !(L.total[m] > 0) ? `fused into ${L.fusedInto[m]}`
          : L.total[m] === L.total[m] ? `${fmtMs(L.total[m])} ms` : "") };
    }
    if (metric === "divergence" && metrics.divergence) {
      const D = metrics.divergence, max = maxOf(D.maxAbs);
      const f = (m) => (D.ok[m] === 0 ? 1 : max > 0 && D.maxAbs[m] === D.maxAbs[m] ? D.maxAbs[m] / max : null);
      return { bad: true, module: f, node: (i) => (data.nodes.module[i] >= 0 ? f(data.nodes.module[i]) : null),
        text: (m) => (D.maxAbs[m] === D.maxAbs[m] ? `max |Δ| ${fmtDiff(D.maxAbs[m])}` : "") };
    }
    return null;
  }

  function selectNode(i) {
    const m = data.nodes.module[i] < 0 ? 0 : data.nodes.module[i];
    if (!(m >= selIdx && m < selIdx + data.tree.size[selIdx])) select(m);
    if (opFilter >= 0 && data.nodes.op[i] !== opFilter) setOp(-1);
    table.setNode(i);
    graphView.setNode(i);
  }

  function select(i) {
    if (i === selIdx) return;
    // model.set fires change:selected locally (applySelected), so the view answers at once;
    // save_changes sends it to Python, which validates it.
    model.set("selected", data.tree.names[i]);
    model.save_changes();
  }

  function applySelected() {
    if (!data) return;
    const i = data.tree.index.get(model.get("selected") || "");
    timed(() => { selIdx = i === undefined ? 0 : i; showSelection(); });
  }

  function setOp(op) {
    opFilter = op === opFilter ? -1 : op; // clicking the same bar again clears the filter
    timed(() => { table.setOpFilter(opFilter, () => setOp(-1)); drawCharts(); });
  }

  /** @param {Metric} m */
  function setMetric(m) {
    metric = m in metrics || m === "nodes" ? m : "nodes";
    metricSel.value = metric;
    root.setAttribute("data-metric", metric);
    timed(() => { tree.setColumns(columns()); graphView.setMetric(graphMetric()); drawCharts(); });
  }

  function renderMetricOptions() {
    const opts = [["nodes", "nodes"], ["latency", "latency (ms)"], ["divergence", "divergence (max |Δ|)"]]
      .filter(([k]) => k === "nodes" || k in metrics);
    metricSel.replaceChildren(...opts.map(([value, text]) => h("option", { value, text })));
    metricSel.disabled = opts.length < 2;
    metricSel.title = opts.length < 2 ? "latency and divergence appear after result.profile() or result.validate(per_module=True)" : "";
  }

  function showError(e) {
    const what = e instanceof PayloadError ? "the explorer's data is malformed" : "the explorer failed";
    root.replaceChildren(h("div", { class: "hx-error", "data-testid": "hierx-error", role: "alert" },
      h("strong", { text: `hierx: ${what}: ` }), h("span", { text: String(e && e.message || e) }),
      h("div", { text: "Rebuild it from Python: result.widget (or hierx_nb.load(path).widget)." })));
  }

  function build() {
    try {
      timed(() => {
        data = decode(model.get("tree"), model.get("nodes"), model.get("graph"));
        metrics = decodeMetrics(model.get("metrics") || {}, data.tree.n);
        opFilter = -1;
        tree = createTree({ data, rootLabel: "(whole model)", columns: [], onSelect: select });
        table = createTable({ data, onSelectModule: select });
        graphView = createGraph({ data, rootLabel: rootName, onSelectModule: select, onSelectNode: selectNode });
        headerEl = renderHeader(model.get("header") || /** @type {any} */ ({}), metrics.divergence?.firstDivergent);
        renderMetricOptions();
        const btn = (text, testid, fn) => h("button", { class: "hx-btn", text, "data-testid": testid, onclick: fn });
        const treePane = h("div", { class: "hx-pane hx-tree-pane" },
          h("div", { class: "hx-toolbar" }, search, matches,
            btn("expand all", "hierx-expand-all", () => timed(() => tree.expandAll())),
            btn("collapse all", "hierx-collapse-all", () => timed(() => tree.collapseAll()))),
          tree.el);
        const sel = h("div", { class: "hx-selbar" }, crumbs, h("span", { class: "hx-spacer" }),
          h("label", { class: "hx-metric" }, h("span", { text: "metric " }), metricSel),
          count, h("span", { text: " nodes in selection" }));
        root.replaceChildren(headerEl, sel,
          h("div", { class: "hx-main" }, treePane, h("div", { class: "hx-pane hx-graph-pane" }, graphView.el)),
          h("div", { class: "hx-charts" }, chartA.el, chartB.el),
          table.el);
        if (search.value) runSearch();
        selIdx = data.tree.index.get(model.get("selected") || "") ?? 0;
        metric = metric in metrics ? metric : "nodes";
        metricSel.value = metric;
        root.setAttribute("data-metric", metric);
        tree.setColumns(columns());
        showSelection();
        graphView.setMetric(graphMetric());
      });
    } catch (e) {
      data = null;
      showError(e);
    }
  }

  function onMetrics() {
    if (!data) return build();
    try {
      metrics = decodeMetrics(model.get("metrics") || {}, data.tree.n);
    } catch (e) {
      data = null;
      return showError(e);
    }
    renderMetricOptions();
    onHeader();
    setMetric(metric);
  }

  function onHeader() {
    if (!data) return;
    const e = renderHeader(model.get("header") || /** @type {any} */ ({}), metrics.divergence?.firstDivergent);
    headerEl.replaceWith(e);
    headerEl = e;
  }

  function runSearch() {
    const q = search.value;
    const n = tree.setFilter(q);
    matches.textContent = q.trim() ? `${n} match${n === 1 ? "" : "es"}` : "";
  }

  let searchTimer = 0;
  search.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = window.setTimeout(() => timed(runSearch), 80); // debounce typing
  });

  const on = (ev, fn) => { model.on(ev, fn); disposers.push(() => model.off(ev, fn)); };
  on("change:selected", applySelected);
  on("change:tree", build);
  on("change:nodes", build);
  on("change:metrics", onMetrics);
  on("change:header", onHeader);

  build();

  // Charts are drawn at their measured width and the virtualized tree needs its measured height:
  // both follow once attached and on resizes.
  let raf = 0;
  const ro = new ResizeObserver(() => {
    cancelAnimationFrame(raf);
    raf = requestAnimationFrame(() => { if (data) { tree.refresh(); graphView.refresh(); chartA.resize(); chartB.resize(); } });
  });
  ro.observe(root);

  return () => {
    ro.disconnect();
    clearTimeout(searchTimer);
    cancelAnimationFrame(raf);
    disposers.forEach((d) => d());
  };
}

export default { render };
