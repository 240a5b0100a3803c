// hierx_nb explorer: an explorer state (state.js) and its views (header, module tree, graph, charts,
// node table), linked by the synced `selected` trait (Python is the source of truth). Data contract:
// hierx_nb/notebook/payload_spec.json (decoded by data.js). What each metric shows lives in
// metrics.js; styles come from style.css through anywidget's `_css` (or the report's <style>).
import { decode, decodeMetrics, subtreeStats, h, PayloadError } from "./data.js";
import { renderHeader } from "./header.js";
import { createTree } from "./tree.js";
import { createTable } from "./table.js";
import { createChart } from "./charts.js";
import { createGraph } from "./graph.js";
import { createState } from "./state.js";
import { metricOptions, treeColumns, graphMetric, chartSpecs } from "./metrics.js";
import { createSearchBox } from "./searchbox.js";
import { createCrumbs } from "./crumbs.js";
import { createDownloads } from "./downloads.js";

/** @typedef {import("./types.js").Model} Model */
/** @typedef {import("./metrics.js").Metric} Metric */

/** @type {import("@anywidget/types").Render<Model>} */
function render({ model, el }) {
  const root = h("div", { class: "hierx", "data-testid": "hierx-root" });
  el.append(root);
  // One name for the whole model everywhere (tree root, breadcrumbs, tables, charts): its class.
  const rootName = () => model.get("header")?.model_class || "model";

  let data = null, metrics = null, stats = null, tree = null, table = null, graphView = null;
  const state = createState({ sel: 0, metric: "nodes", opFilter: -1, node: -1 });
  const disposers = [];
  const chartA = createChart("hierx-coverage-chart");
  const chartB = createChart("hierx-confidence-chart");
  const crumbs = createCrumbs({ rootName, onSelect: (i) => select(i) });
  const count = h("span", { class: "hx-count", "data-testid": "hierx-selection-count" });
  const metricSel = /** @type {HTMLSelectElement} */ (h("select", { class: "hx-select", "data-testid": "hierx-metric",
    "aria-label": "metric", onchange: () => state.set({ metric: /** @type {Metric} */ (metricSel.value) }) }));
  const searchBox = createSearchBox({ nodes: () => data.nodes, filterTree: (q) => tree.setFilter(q),
    jump: (i) => selectNode(i, true), timed: (fn) => timed(fn) });
  const downloads = createDownloads({ model, rootName, data: () => data, metrics: () => metrics, rows: () => table.rows() });
  let headerEl = h("div");

  function timed(fn) {
    const t0 = performance.now();
    fn();
    root.setAttribute("data-render-ms", (performance.now() - t0).toFixed(2));
  }

  function select(i) {
    if (i === state.get().sel) return;
    // model.set fires change:selected locally (applySelected), so the view answers at once;
    // save_changes sends it to Python, which validates it.
    model.set("selected", data.tree.names[i]);
    model.save_changes();
  }

  /** Marks node i in the table and the graph, selecting its module if it lies outside the selection. */
  function selectNode(i, own = false) {
    const m = data.nodes.module[i] < 0 ? 0 : data.nodes.module[i];
    const { sel, opFilter } = state.get();
    if (own || !(m >= sel && m < sel + data.tree.size[sel])) select(m);
    // One change, so the views draw once: the op filter cleared when it hides the node.
    state.set(opFilter >= 0 && data.nodes.op[i] !== opFilter ? { opFilter: -1, node: i } : { node: i });
  }

  function drawCharts() {
    const { metric, sel, opFilter } = state.get();
    const specs = chartSpecs({ metric, data, metrics, stats, sel, opFilter, rootName: rootName() });
    chartA.draw(specs.ops.length ? { ...specs.a, onClick: (k) => { if (specs.ops[k] >= 0) setOp(specs.ops[k]); } } : specs.a);
    chartB.el.hidden = !specs.b;
    if (specs.b) chartB.draw(specs.b);
  }

  function setOp(op) {
    const cur = state.get().opFilter;
    timed(() => state.set({ opFilter: op === cur ? -1 : op })); // the same bar again clears the filter
  }

  // The views follow the state.
  disposers.push(state.on((s, changed) => {
    if (!data) return;
    if (changed.has("sel")) {
      const t0 = performance.now();
      stats = subtreeStats(data, s.sel);
      root.setAttribute("data-stats-ms", (performance.now() - t0).toFixed(2)); // the JS recompute alone
      count.textContent = String(stats.count);
      crumbs.show(data.tree, s.sel);
      tree.setSelected(s.sel);
      table.setRows(stats.idx);
    }
    if (changed.has("metric")) {
      metricSel.value = s.metric;
      root.setAttribute("data-metric", s.metric);
      tree.setColumns(treeColumns(s.metric, data, metrics));
      table.setTimes(s.metric === "latency" && metrics.latency ? metrics.latency.nodeMs : null);
    }
    if (changed.has("opFilter")) table.setOpFilter(s.opFilter, () => setOp(-1));
    if (changed.has("node") || changed.has("sel")) table.setNode(s.node);
    if (changed.has("sel") || changed.has("metric") || changed.has("node")) {
      graphView.show(s.sel, graphMetric(s.metric, data, metrics, s.sel), s.node);
    }
    if (changed.has("sel") || changed.has("metric") || changed.has("opFilter")) drawCharts();
  }));

  function applySelected() {
    if (!data) return;
    const i = data.tree.index.get(model.get("selected") || "");
    timed(() => state.set({ sel: i === undefined ? 0 : i }));
  }

  function renderMetricOptions() {
    const opts = metricOptions(metrics);
    metricSel.replaceChildren(...opts.map((o) => h("option", { value: o.value, text: o.text, disabled: !o.enabled, title: o.hint })));
    metricSel.title = opts.filter((o) => !o.enabled).map((o) => o.hint).join("\n");
    metricSel.value = state.get().metric;
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
        metrics = decodeMetrics(model.get("metrics") || {}, data.tree.n, data.nodes.n);
        tree = createTree({ data, rootLabel: rootName(), columns: [], onSelect: select });
        table = createTable({ data, rootName, onSelectModule: select });
        graphView = createGraph({ data, rootLabel: rootName, onSelectModule: select, onSelectNode: (i) => selectNode(i) });
        headerEl = renderHeader(model.get("header") || /** @type {any} */ ({}), metrics.divergence?.firstDivergent, metrics.compare?.firstDivergent);
        renderMetricOptions();
        const btn = (text, testid, fn) => h("button", { class: "hx-btn", text, "data-testid": testid, onclick: fn });
        const treePane = h("div", { class: "hx-pane hx-tree-pane" },
          h("div", { class: "hx-toolbar" }, ...searchBox.parts,
            btn("expand all", "hierx-expand-all", () => timed(() => tree.expandAll())),
            btn("collapse all", "hierx-collapse-all", () => timed(() => tree.collapseAll()))),
          tree.el);
        const sel = h("div", { class: "hx-selbar" }, crumbs.el, h("span", { class: "hx-spacer" }),
          h("label", { class: "hx-metric" }, h("span", { text: "metric " }), metricSel),
          count, h("span", { text: " nodes in selection" }));
        root.replaceChildren(headerEl, sel,
          h("div", { class: "hx-main" }, treePane, h("div", { class: "hx-pane hx-graph-pane" }, graphView.el)),
          h("div", { class: "hx-charts" }, chartA.el, chartB.el),
          table.el, downloads.el);
        if (searchBox.active()) searchBox.run();
        const selIdx = data.tree.index.get(model.get("selected") || "") ?? 0;
        const metric = state.get().metric in metrics ? state.get().metric : "nodes";
        state.redraw({ sel: selIdx, metric, opFilter: -1, node: -1 }); // every view draws once
      });
    } catch (e) {
      data = null;
      showError(e);
    }
  }

  function onMetrics() {
    if (!data) return build();
    try {
      metrics = decodeMetrics(model.get("metrics") || {}, data.tree.n, data.nodes.n);
    } catch (e) {
      data = null;
      return showError(e);
    }
    renderMetricOptions();
    onHeader();
    const m = state.get().metric;
    timed(() => state.redraw({ metric: m in metrics ? m : "nodes" })); // redraw with the new figures
  }

  function onHeader() {
    if (!data) return;
    const e = renderHeader(model.get("header") || /** @type {any} */ ({}), metrics.divergence?.firstDivergent, metrics.compare?.firstDivergent);
    headerEl.replaceWith(e);
    headerEl = e;
  }

  const on = (ev, fn) => { model.on(ev, fn); disposers.push(() => model.off(ev, fn)); };
  on("change:selected", applySelected);
  on("change:tree", build);
  on("change:nodes", build);
  on("change:graph", build);
  on("change:metrics", onMetrics);
  on("change:header", onHeader);
  on("msg:custom", downloads.onMessage);

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
    searchBox.dispose();
    cancelAnimationFrame(raf);
    disposers.forEach((d) => d());
  };
}

export default { render };
