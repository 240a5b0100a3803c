// Bar charts drawn as SVG: stacked columns (op types, confidence bins) and horizontal bars
// (modules). Labels are SVG text nodes (textContent), so any name shows literally; colours are
// CSS classes over the theme's variables (style.css), so a theme switch needs no redraw. Drawn at
// its pane's width in pixels (text keeps its size); resize() redraws. Each chart keeps what it shows in `el.hxData`
// ({categories, series: {name: values}}) for tests and tools.
import { ticks } from "d3-array";

const NS = "http://www.w3.org/2000/svg";
const MIN_W = 260, FALLBACK_W = 420; // px: before the pane is laid out, its width is unknown
const LABEL_MAX = 16;

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

/** @param {string} t @param {number} max */
function short(t, max) {
  return t.length > max ? t.slice(0, max - 1) + "…" : t;
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
    const series = spec.series.filter((x) => x.values.some((v) => v > 0));
    const cats = spec.categories;
    /** @type {any} */ (el).hxData = { categories: cats.slice(), series: Object.fromEntries(spec.series.map((x) => [x.name, x.values.slice()])) };
    const totals = cats.map((_, k) => series.reduce((a, x) => a + (x.values[k] || 0), 0));
    const max = Math.max(0, ...totals);
    const fmt = spec.fmt || ((v) => String(v));
    const unit = spec.unit ? ` ${spec.unit}` : "";
    const horizontal = !!spec.horizontal;
    const legend = series.length > 1 || (series.length === 1 && spec.series.length > 1);
    const t = legend ? 40 : 24; // the legend gets its own line under the title
    const H = horizontal ? Math.max(90, t + 10 + cats.length * 16) : 216 + t;
    const m = horizontal ? { l: Math.min(170, W * 0.35), r: 44, t, b: 18 } : { l: 40, r: 6, t, b: 58 };
    const pw = W - m.l - m.r, ph = H - m.t - m.b;
    const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", class: "hx-svg" });
    svg.append(s("text", { x: 2, y: 13, class: "hx-chart-title" }, spec.title));
    if (legend) {
      let x = W - 4;
      const items = [];
      for (const ser of series.slice().reverse()) { // right-aligned: laid out from the right
        const label = s("text", { x: x, y: 29, "text-anchor": "end", class: "hx-legend" }, ser.name);
        x -= ser.name.length * 6 + 4;
        items.unshift(s("rect", { x: x - 9, y: 21, width: 9, height: 9, class: `hx-s-${ser.name}` }), label);
        x -= 18;
      }
      svg.append(...items); // in reading order
    }
    if (!cats.length || max <= 0) {
      svg.append(s("text", { x: W / 2, y: m.t + ph / 2, "text-anchor": "middle", class: "hx-empty" }, spec.empty || "nothing to show"));
      el.replaceChildren(svg);
      return;
    }
    let tv = ticks(0, max, horizontal ? 4 : 5);
    if (spec.integer) tv = tv.filter((v) => Number.isInteger(v));
    const top = Math.max(max, tv[tv.length - 1] || 0);
    const scale = (v) => (v / top) * (horizontal ? pw : ph);
    const axis = s("g", { class: "hx-axis" });
    for (const v of tv) {
      if (horizontal) {
        const x = m.l + scale(v);
        axis.append(s("line", { x1: x, x2: x, y1: m.t, y2: m.t + ph, class: "hx-grid" }),
          s("text", { x, y: H - 5, "text-anchor": "middle" }, fmt(v)));
      } else {
        const y = m.t + ph - scale(v);
        axis.append(s("line", { x1: m.l, x2: m.l + pw, y1: y, y2: y, class: "hx-grid" }),
          s("text", { x: m.l - 4, y: y + 3, "text-anchor": "end" }, fmt(v)));
      }
    }
    svg.append(axis);
    const band = (horizontal ? ph : pw) / cats.length;
    const bw = Math.max(1, Math.min(horizontal ? 14 : 48, band * 0.82)); // few bars stay bars, not slabs
    cats.forEach((cat, k) => {
      const g = s("g", { class: "hx-bar" + (k === spec.highlight ? " hx-bar-on" : ""), "data-k": k });
      let acc = 0;
      const tip = [cat + ":"];
      for (const ser of series) {
        const v = ser.values[k] || 0;
        if (v <= 0) continue;
        tip.push(`${fmt(v)}${unit} ${ser.name}`);
        const a = scale(acc), len = scale(v);
        acc += v;
        g.append(horizontal
          ? s("rect", { x: m.l + a, y: m.t + k * band + (band - bw) / 2, width: len, height: bw, class: `hx-s-${ser.name}` })
          : s("rect", { x: m.l + k * band + (band - bw) / 2, y: m.t + ph - a - len, width: bw, height: len, class: `hx-s-${ser.name}` }));
      }
      // A full-band hit area: small bars stay easy to hover and click.
      const hit = horizontal
        ? s("rect", { x: 0, y: m.t + k * band, width: W, height: band, class: "hx-hit" })
        : s("rect", { x: m.l + k * band, y: m.t, width: band, height: ph + m.b, class: "hx-hit" });
      hit.append(s("title", {}, tip.join(" ")));
      g.append(hit);
      if (horizontal) {
        const y = m.t + k * band + band / 2 + 3.5;
        g.append(s("text", { x: m.l - 4, y, "text-anchor": "end", class: "hx-cat" }, short(cat, 22)),
          s("text", { x: m.l + scale(totals[k]) + 3, y, class: "hx-val" }, fmt(totals[k])));
      } else if (cats.length <= 40) {
        const x = m.l + k * band + band / 2;
        g.append(s("text", { x, y: m.t + ph + 10, transform: `rotate(-40 ${x} ${m.t + ph + 10})`, "text-anchor": "end",
          class: "hx-cat" }, short(cat, LABEL_MAX)));
      }
      if (spec.onClick) {
        g.classList.add("hx-clickable");
        g.addEventListener("click", () => spec.onClick(k));
      }
      svg.append(g);
    });
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
