// A bar chart's geometry, without the DOM (js/test/views.test.js): sizes, ticks, bars and their
// stacked rectangles, tooltips and labels, for charts.js to draw as SVG.
import { ticks } from "d3-array";

const LABEL_MAX = 16;

/** @param {string} t @param {number} max */
export function short(t, max) {
  return t.length > max ? t.slice(0, max - 1) + "…" : t;
}

/**
 * @param {import("./charts.js").ChartSpec} spec @param {number} W  width in px
 */
export function chartGeometry(spec, W) {
  const series = spec.series.filter((x) => x.values.some((v) => v > 0));
  const cats = spec.categories;
  // Grouped: the series side by side in each band (a vs b), so the scale runs to the largest value.
  const grouped = !!spec.grouped && series.length > 1;
  const totals = cats.map((_, k) => (grouped ? Math.max(0, ...series.map((x) => x.values[k] || 0))
    : series.reduce((a, x) => a + (x.values[k] || 0), 0)));
  const max = Math.max(0, ...totals);
  const fmt = spec.fmt || ((v) => String(v));
  const unit = spec.unit ? ` ${spec.unit}` : "";
  const horizontal = !!spec.horizontal;
  const legend = series.length > 1 || (series.length === 1 && spec.series.length > 1);
  const t = legend ? 40 : 24; // the legend gets its own line under the title
  const H = horizontal ? Math.max(90, t + 10 + cats.length * 16) : 216 + t;
  const m = horizontal ? { l: Math.min(170, W * 0.35), r: grouped ? 88 : 44, t, b: 18 } : { l: 40, r: 6, t, b: 58 };
  const pw = W - m.l - m.r, ph = H - m.t - m.b;
  const legendItems = [];
  if (legend) {
    let x = W - 4;
    for (const ser of series.slice().reverse()) { // right-aligned: laid out from the right
      const textX = x;
      x -= ser.name.length * 6 + 4;
      legendItems.unshift({ name: ser.name, textX, boxX: x - 9 });
      x -= 18;
    }
  }
  const geo = { W, H, m, pw, ph, legend: legendItems, horizontal, ticks: [], bars: [], empty: /** @type {string | null} */ (null) };
  if (!cats.length || max <= 0) {
    geo.empty = spec.empty || "nothing to show";
    return geo;
  }
  let tv = ticks(0, max, horizontal ? 4 : 5);
  if (spec.integer) tv = tv.filter((v) => Number.isInteger(v)); // counts: no 0.5 node
  const top = Math.max(max, tv[tv.length - 1] || 0);
  const scale = (v) => (v / top) * (horizontal ? pw : ph);
  geo.ticks = tv.map((v) => ({ v, pos: horizontal ? m.l + scale(v) : m.t + ph - scale(v), text: fmt(v) }));
  const band = (horizontal ? ph : pw) / cats.length;
  const bw = Math.max(1, Math.min((horizontal ? 14 : 48) * (grouped ? series.length : 1), band * 0.82)); // few bars stay bars, not slabs
  const sw = grouped ? bw / series.length : bw; // one series' thickness
  geo.bars = cats.map((cat, k) => {
    let acc = 0;
    const tip = [cat + ":"];
    const rects = [];
    series.forEach((ser, j) => {
      const v = ser.values[k] || 0;
      if (v <= 0) return;
      tip.push(`${fmt(v)}${unit} ${ser.name}`);
      const a = grouped ? 0 : scale(acc), len = scale(v), off = (band - bw) / 2 + (grouped ? j * sw : 0);
      acc += v;
      rects.push(horizontal
        ? { series: ser.name, x: m.l + a, y: m.t + k * band + off, w: len, h: sw }
        : { series: ser.name, x: m.l + k * band + off, y: m.t + ph - a - len, w: sw, h: len });
    });
    // A full-band hit area (drawn under the bars): small bars stay easy to hover and click.
    const hit = horizontal ? { x: 0, y: m.t + k * band, w: W, h: band } : { x: m.l + k * band, y: m.t, w: band, h: ph + m.b };
    const label = horizontal
      ? { x: m.l - 4, y: m.t + k * band + band / 2 + 3.5, text: short(cat, 22), anchor: "end", rotate: 0 }
      : cats.length <= 40 ? { x: m.l + k * band + band / 2, y: m.t + ph + 10, text: short(cat, LABEL_MAX), anchor: "end", rotate: -40 } : null;
    const value = horizontal ? { x: m.l + scale(totals[k]) + 3, y: m.t + k * band + band / 2 + 3.5, text: grouped ? series.map((x) => fmt(x.values[k] || 0)).join(" / ") : fmt(totals[k]) } : null;
    return { k, cat, rects, hit, tip: tip.join(" "), label, value };
  });
  return geo;
}
