// The graph view: the selected module's dataflow (graphmodel.js builds and lays out the level),
// drawn as SVG. A click on a module box expands it in place (a click on an open cluster's title
// collapses it); a double click selects the module; a click on an op node selects it in the node
// table. Every name goes through textContent; elements carry data-graph-module (qualified name),
// data-graph-node (node name) and data-graph-port (value name) for tests and tools.
import { h, lastComponent, fmtInt } from "./data.js";
import { buildLevel, layoutLevel } from "./graphmodel.js";

const NS = "http://www.w3.org/2000/svg";

/**
 * @param {string} tag @param {Record<string, string | number | null>} [attrs] @param {string} [text]
 * @returns {SVGElement}
 */
function s(tag, attrs = {}, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v != null) e.setAttribute(k, String(v));
  if (text != null) e.textContent = text;
  return e;
}

/**
 * How the current metric colours and labels the graph (the explorer supplies it).
 * @typedef {object} GraphMetric
 * @property {(m: number) => number | null} module  0..1 intensity of a module box (null: no value)
 * @property {(i: number) => number | null} node  0..1 intensity of an op node
 * @property {(m: number) => string} text  the metric's text on a module box ("" for none)
 * @property {boolean} bad  colour with the warning colour (divergence), else the accent (latency)
 */

/**
 * @param {{data: import("./data.js").Data, rootLabel: () => string, onSelectModule: (m: number) => void,
 *   onSelectNode: (i: number) => void}} opts
 */
export function createGraph({ data, rootLabel, onSelectModule, onSelectNode }) {
  const { tree, nodes, graph } = data;
  /** @type {Set<number>} */
  const expanded = new Set();
  let sel = 0, selNode = -1, zoom = 0; // 0: fit the pane's width (never above 100%)
  /** @type {GraphMetric | null} */
  let metric = null;
  /** @type {import("./graphmodel.js").Level | null} */
  let level = null;
  let size = { width: 0, height: 0 };
  let lastClick = { id: "", toggled: -1 };

  const info = h("span", { class: "hx-graph-info", "data-testid": "hierx-graph-info" });
  const zoomBtn = (text, f, label) => h("button", { class: "hx-btn", text, "aria-label": label, onclick: () => { zoom = f(zoom); paint(); } });
  const scroller = h("div", { class: "hx-graph-scroll" });
  const el = h("div", { class: "hx-graph", "data-testid": "hierx-graph" },
    h("div", { class: "hx-toolbar" }, h("strong", { text: "Graph" }), info, h("span", { class: "hx-spacer" }),
      zoomBtn("−", (z) => Math.max(0.25, z / 1.25), "zoom out"), zoomBtn("fit", () => 0, "fit to width"),
      zoomBtn("+", (z) => Math.min(3, z * 1.25), "zoom in")),
    scroller);

  const label = (m) => (m === 0 ? rootLabel() : lastComponent(tree.names[m]));
  const valueText = (v) => `${graph.name(v)}: ${graph.dtypes[graph.dtype[v]] || "?"} ${graph.shapes[graph.shape[v]] || ""}`.trim();

  function rebuild() {
    if (!graph.n) { level = { module: sel, items: [], edges: [], ops: 0, hidden: 0 }; paint(); return; } // no dataflow to lay out
    const t0 = performance.now();
    level = buildLevel(data, sel, expanded, { label });
    try {
      size = layoutLevel(level);
    } catch (e) { // dagre gave up (a pathological level): say so, keep the rest of the explorer working
      level = null;
      scroller.replaceChildren(h("div", { class: "hx-empty-note", "data-testid": "hierx-graph-error",
        text: `this level could not be laid out (${e && e.message || e}): select a smaller module` }));
      return;
    }
    el.setAttribute("data-layout-ms", (performance.now() - t0).toFixed(1));
    paint();
    el.setAttribute("data-graph-ms", (performance.now() - t0).toFixed(1));
  }

  /** @param {number | null} f @param {boolean} bad */
  const fill = (f, bad) => (f == null || !(f >= 0) ? null
    : `color-mix(in srgb, var(${bad ? "--hx-warn" : "--hx-accent"}) ${Math.round(12 + 70 * Math.min(1, f))}%, var(--hx-bg))`);

  function paint() {
    if (!level) return;
    if (!graph.n && nodes.n) {
      scroller.replaceChildren(h("div", { class: "hx-empty-note", text: "no dataflow in this payload (the ONNX graph was not available when the explorer was built)" }));
      info.textContent = "";
      return;
    }
    const avail = scroller.clientWidth || 560;
    const z = zoom || Math.max(0.25, Math.min(1, avail / Math.max(1, size.width)));
    const svg = s("svg", { width: Math.ceil(size.width * z), height: Math.ceil(size.height * z),
      viewBox: `0 0 ${Math.ceil(size.width)} ${Math.ceil(size.height)}`, class: "hx-graph-svg", role: "img",
      "aria-label": `dataflow of ${sel === 0 ? rootLabel() : tree.names[sel]}` });
    const defs = s("defs");
    const marker = s("marker", { id: "hx-arrow", viewBox: "0 0 8 8", refX: 7, refY: 4, markerWidth: 7, markerHeight: 7, orient: "auto" });
    marker.append(s("path", { d: "M0,0 L8,4 L0,8 z", class: "hx-arrow" }));
    defs.append(marker);
    svg.append(defs);
    const clusters = s("g"), edgesG = s("g"), boxes = s("g");
    for (const it of level.items) {
      const x = it.x - it.width / 2, y = it.y - it.height / 2;
      if (it.kind === "cluster") {
        const name = tree.names[it.index];
        const g = s("g", { class: "hx-g-cluster", "data-graph-module": name, "data-id": it.id });
        const f = metric ? fill(metric.module(it.index), metric.bad) : null;
        g.append(s("rect", { x, y, width: it.width, height: it.height, rx: 6, style: f ? `stroke:${f}` : null }),
          s("text", { x: x + 8, y: y + 13, class: "hx-g-title" }, `▾ ${label(it.index)} · ${tree.classes[it.index] || ""}`),
          s("title", {}, `${name} (${tree.classes[it.index] || "?"}): click to collapse, double click to select`));
        clusters.append(g);
      } else if (it.kind === "module") {
        const name = tree.names[it.index];
        const f = metric ? fill(metric.module(it.index), metric.bad) : null;
        const g = s("g", { class: "hx-g-module" + (tree.executed[it.index] ? "" : " hx-dim"), "data-graph-module": name, "data-id": it.id });
        const mtext = metric ? metric.text(it.index) : "";
        g.append(s("rect", { x, y, width: it.width, height: it.height, rx: 5, style: f ? `fill:${f}` : null }),
          s("text", { x: it.x, y: y + 16, "text-anchor": "middle", class: "hx-g-name" }, `▸ ${label(it.index)}`),
          s("text", { x: it.x, y: y + 31, "text-anchor": "middle", class: "hx-g-sub" },
            `${tree.classes[it.index] || "?"} · ${fmtInt(tree.total[it.index])} nodes${mtext ? ` · ${mtext}` : ""}`),
          s("title", {}, `${name} (${tree.classes[it.index] || "?"}), ${fmtInt(tree.total[it.index])} nodes${mtext ? `, ${mtext}` : ""}: click to expand, double click to select`));
        boxes.append(g);
      } else if (it.kind === "op") {
        const i = it.index;
        const op = nodes.ops[nodes.op[i]];
        const f = metric ? fill(metric.node(i), metric.bad) : null;
        const g = s("g", { class: "hx-g-op" + (i === selNode ? " hx-g-on" : ""), "data-graph-node": nodes.name(i), "data-id": it.id });
        g.append(s("rect", { x, y, width: it.width, height: it.height, rx: 11, style: f ? `fill:${f}` : null }),
          s("text", { x: it.x, y: it.y + 4, "text-anchor": "middle" }, op),
          s("title", {}, `${nodes.name(i)} (${op})${nodes.module[i] >= 0 ? ` in ${tree.names[nodes.module[i]] || rootLabel()}` : ", untagged"}`));
        boxes.append(g);
      } else if (it.kind === "more") {
        const g = s("g", { class: "hx-g-more", "data-id": it.id });
        const what = it.modules ? `${fmtInt(it.modules)} more modules` : `${fmtInt(it.count)} more nodes`;
        g.append(s("rect", { x, y, width: it.width, height: it.height, rx: 4 }),
          s("text", { x: it.x, y: it.y + 4, "text-anchor": "middle" }, `+${what}`),
          s("title", {}, `${what}, not drawn: select one in the tree (or a smaller module), or find nodes in the node table`));
        boxes.append(g);
      } else {
        const v = it.index;
        const text = v < 0 ? `+${fmtInt(it.count)} more ${it.kind === "in" ? "inputs" : "outputs"}` : graph.name(v);
        const g = s("g", { class: `hx-g-port hx-g-${it.kind}`, "data-graph-port": v < 0 ? "" : graph.name(v), "data-id": it.id });
        g.append(s("path", { d: it.kind === "in"
          ? `M${x},${y} h${it.width} v${it.height - 6} l-${it.width / 2},6 l-${it.width / 2},-6 z`
          : `M${x},${y + 6} l${it.width / 2},-6 l${it.width / 2},6 v${it.height - 6} h-${it.width} z` }),
          s("text", { x: it.x, y: it.y + (it.kind === "in" ? 2 : 6), "text-anchor": "middle" }, text),
          s("title", {}, v < 0 ? text : `${it.kind === "in" ? "input" : "output"} ${valueText(v)}`));
        boxes.append(g);
      }
    }
    for (const e of level.edges) {
      const pts = e.points || [];
      if (pts.length < 2) continue;
      const d = "M" + pts.map((p) => `${p.x.toFixed(1)},${p.y.toFixed(1)}`).join(" L");
      const g = s("g", { class: "hx-g-edge" });
      const shown = e.values.slice(0, 6).map(valueText);
      if (e.values.length > 6) shown.push(`… ${e.values.length - 6} more`);
      g.append(s("path", { d, class: "hx-g-line", "marker-end": "url(#hx-arrow)" }), s("path", { d, class: "hx-g-hit" }),
        s("title", {}, shown.join("\n")));
      edgesG.append(g);
    }
    svg.append(clusters, edgesG, boxes);
    svg.addEventListener("click", onClick);
    scroller.replaceChildren(svg);
    const ports = level.items.filter((it) => it.kind === "in" || it.kind === "out").length;
    info.textContent = `${fmtInt(level.items.length - ports)} boxes, ${fmtInt(level.edges.length)} edges`
      + (level.hidden ? ` (${fmtInt(level.hidden)} nodes folded)` : "");
    /** @type {any} */ (el).hxGraph = level;
  }

  /** @param {MouseEvent} e */
  function onClick(e) {
    const g = /** @type {Element} */ (e.target).closest("[data-id]");
    const id = g ? g.getAttribute("data-id") : "";
    if (e.detail >= 2) {
      // A double click: the first click already toggled (and the drawing may have moved under the
      // pointer); undo it and select what the first click hit.
      const first = lastClick.id || id;
      if (!first) return;
      if (lastClick.toggled >= 0) { toggle(lastClick.toggled, false); }
      lastClick = { id: "", toggled: -1 };
      if (first[0] === "m") onSelectModule(+first.slice(1));
      return;
    }
    lastClick = { id, toggled: -1 };
    const kind = id[0];
    if (kind === "m") {
      const m = +id.slice(1);
      lastClick.toggled = m;
      toggle(m, true);
    } else if (kind === "n") {
      onSelectNode(+id.slice(1));
    }
  }

  function toggle(m, timed) {
    if (expanded.has(m)) expanded.delete(m); else expanded.add(m);
    const t0 = performance.now();
    rebuild();
    if (timed) el.setAttribute("data-toggle-ms", (performance.now() - t0).toFixed(1));
  }

  /**
   * Shows module m's level coloured by `mt`, with node i marked (-1: none): the modules between m
   * and the node open. Laid out again only when the module or the open set changed.
   * @param {number} m @param {GraphMetric | null} mt @param {number} i
   */
  function show(m, mt, i) {
    metric = mt;
    selNode = i;
    let changed = m !== sel || !level;
    sel = m;
    if (i >= 0 && nodes.module[i] > sel && nodes.module[i] < sel + tree.size[sel]) {
      for (let p = nodes.module[i]; p > sel; p = tree.parent[p]) if (!expanded.has(p)) { expanded.add(p); changed = true; }
    }
    if (changed) rebuild(); else paint();
    const g = i >= 0 ? scroller.querySelector(`[data-id="n${i}"]`) : null;
    if (g && "scrollIntoView" in g) /** @type {any} */ (g).scrollIntoView({ block: "nearest", inline: "nearest" });
  }

  return { el, show, refresh: paint, expanded };
}
