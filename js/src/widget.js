// hierx_nb explorer: header, module tree, coverage + confidence charts and node table, linked by
// the synced `selected` trait (Python is the source of truth). Data contract: hierx_nb/notebook/widget.py.
import css from "./style.css";
import { decode, subtreeStats, h, fmtInt, fmtSeconds, lastComponent } from "./data.js";
import { createTree } from "./tree.js";
import { createTable } from "./table.js";
import { createCharts } from "./charts.js";

function renderHeader(hd) {
  const attempts = hd.attempts || [];
  const failed = attempts.filter((a) => !a.ok);
  const stat = (label, value, testid) =>
    h("span", { class: "hx-stat" }, h("span", { class: "hx-stat-label", text: label }),
      h("span", { class: "hx-stat-value", text: value, "data-testid": testid }));
  const pct = hd.coverage_pct == null ? "–" : `${hd.coverage_pct.toFixed(1)}%`;
  const top = h("div", { class: "hx-header-top" },
    h("span", { class: "hx-model", text: hd.model_class || "model", title: "model class" }),
    h("span", { class: "hx-badge", text: hd.strategy || "?", title: "strategy used", "data-testid": "hierx-strategy" }),
    hd.structure_only ? h("span", { class: "hx-badge hx-badge-warn", text: "structure only",
      title: "exported without weights: the graph cannot be run" }) : null,
    stat("nodes", fmtInt(hd.nodes || 0), "hierx-node-count"),
    stat("modules", fmtInt(hd.modules || 0)),
    stat("tagged", pct, "hierx-coverage-pct"),
    stat("time", fmtSeconds(hd.seconds)),
    h("span", { class: "hx-path", text: hd.onnx_path || "in memory", title: hd.onnx_path || "not saved to disk" }));
  const parts = [top];
  if (failed.length) {
    // A <details> so long reasons (tracebacks) stay one click away; the title gives the gist on hover.
    parts.push(h("details", { class: "hx-attempts", "data-testid": "hierx-attempts" },
      h("summary", { text: `${failed.length} strateg${failed.length === 1 ? "y" : "ies"} not used: ${failed.map((a) => a.name).join(", ")}` }),
      ...attempts.map((a) => h("div", { class: "hx-attempt" + (a.ok ? " hx-ok" : ""), title: a.reason || "" },
        h("span", { class: "hx-attempt-name", text: a.name }),
        h("span", { class: "hx-attempt-state", text: a.ok ? `ok (${fmtSeconds(a.seconds)})` : a.skipped ? "skipped" : "failed" }),
        a.reason ? h("pre", { class: "hx-reason", text: a.reason }) : null))));
  }
  return h("div", { class: "hx-header", "data-testid": "hierx-header" }, ...parts);
}

function render({ model, el }) {
  const root = h("div", { class: "hierx", "data-testid": "hierx-root" });
  root.append(h("style", { text: css }));
  el.append(root);

  let data, tree, table, charts, selIdx = 0, opFilter = -1, stats = null;
  const disposers = [];
  const crumbs = h("nav", { class: "hx-crumbs", "data-testid": "hierx-breadcrumbs", "aria-label": "selected module path" });
  const count = h("span", { class: "hx-count", "data-testid": "hierx-selection-count" });
  const search = h("input", { class: "hx-search", type: "search", placeholder: "filter modules by name or class",
    "data-testid": "hierx-search", "aria-label": "filter modules" });
  const matches = h("span", { class: "hx-matches" });
  let headerEl = h("div");

  const label = (i) => (i === 0 ? `${model.get("header")?.model_class || "model"} (whole model)` : data.tree.names[i]);

  function timed(fn) {
    const t0 = performance.now();
    fn();
    root.setAttribute("data-render-ms", (performance.now() - t0).toFixed(2));
  }

  function renderCrumbs() {
    const items = [];
    for (let p = selIdx; p >= 0; p = data.tree.parent[p]) items.unshift(p);
    crumbs.replaceChildren(...items.flatMap((i, k) => [
      k ? h("span", { class: "hx-crumb-sep", text: "›" }) : null,
      h("button", { class: "hx-crumb" + (i === selIdx ? " hx-crumb-cur" : ""), "data-module": data.tree.names[i],
        title: data.tree.names[i] || "(whole model)",
        text: i === 0 ? (model.get("header")?.model_class || "model") : lastComponent(data.tree.names[i]),
        onclick: () => select(i) }),
    ].filter(Boolean)));
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
    charts.update(stats, label(selIdx), opFilter);
  }

  function select(i) {
    if (i === selIdx) return;
    // model.set fires change:selected locally (applySelected), so the view answers at once;
    // save_changes sends it to Python, which validates it.
    model.set("selected", data.tree.names[i]);
    model.save_changes();
  }

  function applySelected() {
    const name = model.get("selected") || "";
    const i = data.tree.index.get(name);
    timed(() => { selIdx = i === undefined ? 0 : i; showSelection(); });
  }

  function setOp(op) {
    opFilter = op === opFilter ? -1 : op; // clicking the same bar again clears the filter
    timed(() => { table.setOpFilter(opFilter, () => setOp(-1)); charts.update(stats, label(selIdx), opFilter); });
  }

  function build() {
    timed(() => {
      charts?.destroy();
      data = decode(model.get("tree"), model.get("nodes"));
      opFilter = -1;
      tree = createTree({ data, rootLabel: "(whole model)", onSelect: select });
      table = createTable({ data, onSelectModule: select });
      charts = createCharts({ data, root, onOpClick: setOp });
      headerEl = renderHeader(model.get("header") || {});
      const btn = (text, testid, fn) => h("button", { class: "hx-btn", text, "data-testid": testid, onclick: fn });
      const treePane = h("div", { class: "hx-pane hx-tree-pane" },
        h("div", { class: "hx-toolbar" }, search, matches,
          btn("expand all", "hierx-expand-all", () => timed(() => tree.expandAll())),
          btn("collapse all", "hierx-collapse-all", () => timed(() => tree.collapseAll()))),
        tree.el);
      const sel = h("div", { class: "hx-selbar" }, crumbs, h("span", { class: "hx-spacer" }), count, h("span", { text: " nodes in selection" }));
      root.replaceChildren(root.firstChild, headerEl, sel,
        h("div", { class: "hx-main" }, treePane, h("div", { class: "hx-pane hx-chart-pane" }, charts.el)),
        table.el);
      if (search.value) runSearch();
      const name = model.get("selected") || "";
      selIdx = data.tree.index.get(name) ?? 0;
      showSelection();
    });
  }

  function runSearch() {
    const q = search.value;
    const n = tree.setFilter(q);
    matches.textContent = q.trim() ? `${n} match${n === 1 ? "" : "es"}` : "";
  }

  let searchTimer = 0;
  search.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => timed(runSearch), 80); // debounce typing
  });

  const on = (ev, fn) => { model.on(ev, fn); disposers.push(() => model.off(ev, fn)); };
  on("change:selected", applySelected);
  on("change:tree", build);
  on("change:nodes", build);
  on("change:header", () => { const e = renderHeader(model.get("header") || {}); headerEl.replaceWith(e); headerEl = e; });

  build();

  // Plotly needs a measured width: redraw once attached and whenever the output area resizes.
  let lastW = 0, raf = 0;
  const ro = new ResizeObserver(() => {
    const w = root.clientWidth;
    if (!w || Math.abs(w - lastW) < 8) return;
    lastW = w;
    cancelAnimationFrame(raf);
    raf = requestAnimationFrame(() => { charts.resize(); tree.refresh(); });
  });
  ro.observe(root);
  // JupyterLab switches themes by changing attributes on <body>: re-read the colours for plotly.
  const mo = new MutationObserver(() => charts.resize());
  mo.observe(document.body, { attributes: true, attributeFilter: ["data-jp-theme-light", "data-jp-theme-name", "class"] });

  return () => {
    ro.disconnect();
    mo.disconnect();
    clearTimeout(searchTimer);
    cancelAnimationFrame(raf);
    disposers.forEach((d) => d());
    charts?.destroy();
  };
}

export default { render };
