// Bar charts drawn as SVG: stacked columns (op types, confidence bins) and horizontal bars
// (modules). Labels are SVG text nodes (textContent), so any name shows literally; colours are
// CSS classes over the theme's variables (style.css), so a theme switch needs no redraw. Drawn at
// its pane's width in pixels (text keeps its size); resize() redraws. Each chart keeps what it shows in `el.hxData`
// ({categories, series: {name: values}}) for tests and tools.
import { chartGeometry } from "./chartgeom.js";

const NS = "http://www.w3.org/2000/svg";
const MIN_W = 260, FALLBACK_W = 420; // px: before the pane is laid out, its width is unknown

/**
 * @param {string} tag @param {Record<string, string | number>} [attrs] @param {string} [text]
 * @returns {SVGElement}
 */
function s(tag, attrs = {}, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text != null) e.textContent = text;
  return e;
}

/**
 * @typedef {object} Series
 * @property {string} name   legend text and CSS class suffix (hx-s-<name>)
 * @property {number[]} values  one per category
 *
 * @typedef {object} ChartSpec
 * @property {string} title
 * @property {string[]} categories
 * @property {Series[]} series  stacked in this order; all-zero series are left out
 * @property {boolean} [grouped]  the series side by side in each category instead of stacked
 * @property {boolean} [horizontal]  one bar per row (module names), else columns
 * @property {boolean} [integer]  counts: whole-number ticks only
 * @property {(v: number) => string} [fmt]  value text in tooltips
 * @property {string} [unit]  after the value in tooltips
 * @property {number} [highlight]  category index drawn outlined
 * @property {(k: number) => void} [onClick]  category clicked
 * @property {string} [empty]  shown instead of bars when there is nothing to draw
 */

/** @param {string} testid */
export function createChart(testid) {
  const el = document.createElement("div");
  el.className = "hx-chart";
  el.setAttribute("data-testid", testid);

  /** @type {ChartSpec | null} */
  let last = null;
  let drawnW = 0;

  /** @param {ChartSpec} spec */
  function draw(spec) {
    last = spec;
    const W = drawnW = Math.max(MIN_W, el.clientWidth || FALLBACK_W);
    /** @type {any} */ (el).hxData = { categories: spec.categories.slice(), note: spec.categories.length ? null : spec.empty || null,
      series: Object.fromEntries(spec.series.map((x) => [x.name, x.values.slice()])) };
    const g = chartGeometry(spec, W);
    const { m, pw, ph, H, horizontal } = g;
    const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", class: "hx-svg" });
    svg.append(s("text", { x: 2, y: 13, class: "hx-chart-title" }, spec.title));
    for (const it of g.legend) {
      svg.append(s("rect", { x: it.boxX, y: 21, width: 9, height: 9, class: `hx-s-${it.name}` }),
        s("text", { x: it.textX, y: 29, "text-anchor": "end", class: "hx-legend" }, it.name));
    }
    if (g.empty) {
      svg.append(s("text", { x: W / 2, y: m.t + ph / 2, "text-anchor": "middle", class: "hx-empty", "data-testid": "hierx-chart-note" }, g.empty));
      el.replaceChildren(svg);
      return;
    }
    const axis = s("g", { class: "hx-axis" });
    for (const t of g.ticks) {
      axis.append(horizontal
        ? s("line", { x1: t.pos, x2: t.pos, y1: m.t, y2: m.t + ph, class: "hx-grid" })
        : s("line", { x1: m.l, x2: m.l + pw, y1: t.pos, y2: t.pos, class: "hx-grid" }),
      horizontal
        ? s("text", { x: t.pos, y: H - 5, "text-anchor": "middle" }, t.text)
        : s("text", { x: m.l - 4, y: t.pos + 3, "text-anchor": "end" }, t.text));
    }
    svg.append(axis);
    for (const b of g.bars) {
      const grp = s("g", { class: "hx-bar" + (b.k === spec.highlight ? " hx-bar-on" : ""), "data-k": b.k });
      // The hit area first, under the bars: hovering never covers a bar (an opaque layout colour
      // over it was JupyterLab's hover bug); the hover shade is translucent.
      const hit = s("rect", { x: b.hit.x, y: b.hit.y, width: b.hit.w, height: b.hit.h, class: "hx-hit" });
      hit.append(s("title", {}, b.tip));
      grp.append(hit);
      for (const r of b.rects) {
        const rect = s("rect", { x: r.x, y: r.y, width: r.w, height: r.h, class: `hx-s-${r.series}` });
        rect.append(s("title", {}, b.tip));
        grp.append(rect);
      }
      if (b.label) {
        grp.append(s("text", { x: b.label.x, y: b.label.y, "text-anchor": b.label.anchor, class: "hx-cat",
          ...(b.label.rotate ? { transform: `rotate(${b.label.rotate} ${b.label.x} ${b.label.y})` } : {}) }, b.label.text));
      }
      if (b.value) grp.append(s("text", { x: b.value.x, y: b.value.y, class: "hx-val" }, b.value.text));
      if (spec.onClick) {
        grp.classList.add("hx-clickable");
        grp.addEventListener("click", () => spec.onClick(b.k));
      }
      svg.append(grp);
    }
    svg.append(s("line", { x1: m.l, x2: horizontal ? m.l : m.l + pw, y1: m.t + ph, y2: horizontal ? m.t : m.t + ph, class: "hx-baseline" }));
    el.replaceChildren(svg);
  }

  // Redraw when the pane's width changed (first layout, window or sidebar resized).
  function resize() {
    const w = Math.max(MIN_W, el.clientWidth || FALLBACK_W);
    if (last && Math.abs(w - drawnW) >= 8) draw(last);
  }

  return { el, draw, resize };
}
