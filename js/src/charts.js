// Coverage-by-op-type (stacked tagged / untagged) and confidence histogram, both recomputed in JS
// for the selected subtree and drawn with Plotly.react (diffs the figure instead of re-creating it).
import Plotly from "plotly.js-basic-dist-min";
import { h, HIST_BINS } from "./data.js";

const MAX_OPS = 30; // beyond that the op types are summed into one "other" bar

// Plotly interprets a few HTML-like tags (<b>, <br>, <a>) in labels; escaping makes op types and
// module names show literally (plotly decodes the entities back for display).
export function esc(s) {
  return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function theme(el) {
  const cs = getComputedStyle(el);
  const v = (name, fb) => cs.getPropertyValue(name).trim() || fb;
  return {
    fg: cs.color || "#333",
    grid: v("--jp-border-color2", "rgba(128,128,128,0.25)"),
    tagged: v("--jp-brand-color1", "#1976d2"),
    untagged: v("--jp-warn-color1", "#e4572e"),
    font: v("--jp-ui-font-family", "system-ui, sans-serif"),
  };
}

// Integer counts: below 6, force whole-number ticks (plotly would label 0.5, 1.5...).
function yaxis(t, max) {
  return { gridcolor: t.grid, rangemode: "tozero", ...(max < 6 ? { dtick: 1, tick0: 0 } : {}) };
}

const CONFIG = { displayModeBar: false, responsive: false, displaylogo: false };

export function createCharts({ data, root, onOpClick }) {
  // selLabel is accepted for callers but the breadcrumbs already name the selection.
  const { nodes } = data;
  const cov = h("div", { class: "hx-chart", "data-testid": "hierx-coverage-chart" });
  const conf = h("div", { class: "hx-chart", "data-testid": "hierx-confidence-chart" });
  const el = h("div", { class: "hx-charts" }, cov, conf);
  let last = null;
  let clickBound = false;
  let opsShown = [];

  function layout(t, title, extra) {
    return {
      title: { text: title, font: { size: 12 }, x: 0, xanchor: "left" },
      height: 220,
      width: Math.max(260, cov.clientWidth || el.clientWidth || 420),
      margin: { l: 44, r: 8, t: 28, b: 64 },
      paper_bgcolor: "rgba(0,0,0,0)",
      plot_bgcolor: "rgba(0,0,0,0)",
      font: { color: t.fg, size: 11, family: t.font },
      barmode: "stack",
      bargap: 0.15,
      showlegend: false,
      xaxis: { gridcolor: t.grid },
      yaxis: { gridcolor: t.grid, rangemode: "tozero" },
      ...extra,
    };
  }

  function update(stats, selLabel, opFilter) {
    last = { stats, selLabel, opFilter };
    const t = theme(root);
    // Op types by node count, the long tail folded into "other".
    const order = [];
    for (let j = 0; j < nodes.ops.length; j++) if (stats.tagged[j] + stats.untagged[j] > 0) order.push(j);
    order.sort((a, b) => (stats.tagged[b] + stats.untagged[b]) - (stats.tagged[a] + stats.untagged[a]));
    const head = order.slice(0, MAX_OPS), tail = order.slice(MAX_OPS);
    opsShown = head.slice();
    const raw = head.map((j) => nodes.ops[j]);
    const x = raw.map(esc);
    const yt = head.map((j) => stats.tagged[j]), yu = head.map((j) => stats.untagged[j]);
    if (tail.length) {
      raw.push(`other (${tail.length} types)`);
      x.push(raw[raw.length - 1]);
      yt.push(tail.reduce((s, j) => s + stats.tagged[j], 0));
      yu.push(tail.reduce((s, j) => s + stats.untagged[j], 0));
      opsShown.push(-1);
    }
    const line = head.map((j) => (j === opFilter ? 2 : 0)).concat(tail.length ? [0] : []);
    Plotly.react(cov, [
      { type: "bar", name: "tagged", x, y: yt, marker: { color: t.tagged, line: { width: line, color: t.fg } },
        hovertemplate: "%{x}: %{y} tagged<extra></extra>" },
      { type: "bar", name: "untagged", x, y: yu, marker: { color: t.untagged },
        hovertemplate: "%{x}: %{y} untagged<extra></extra>" },
    ], layout(t, "Coverage by op type", {
      showlegend: true,
      yaxis: yaxis(t, Math.max(0, ...yt.map((v, k) => v + yu[k]))),
      legend: { orientation: "h", traceorder: "normal", x: 1, xanchor: "right", y: 1.12, yanchor: "bottom", font: { size: 10 } },
      // Fixed margins instead of automargin (which costs a second layout pass, ~2x slower), so
      // long op types (custom domains) are shortened on the axis; the hover shows them in full.
      xaxis: { gridcolor: t.grid, tickangle: -40, type: "category", tickvals: x,
               ticktext: raw.map((s) => esc(s.length > 16 ? s.slice(0, 15) + "…" : s)) } }), CONFIG);

    const w = 1 / HIST_BINS;
    const centers = Array.from({ length: HIST_BINS }, (_, b) => (b + 0.5) * w);
    const nanNote = stats.nan ? ` (${stats.nan} without confidence)` : "";
    Plotly.react(conf, [
      { type: "bar", x: centers, y: Array.from(stats.hist), width: w * 0.95, marker: { color: t.tagged },
        customdata: centers.map((c) => [(c - w / 2).toFixed(2), (c + w / 2).toFixed(2)]),
        hovertemplate: "%{customdata[0]}–%{customdata[1]}: %{y} nodes<extra></extra>" },
    ], layout(t, `Tag confidence${nanNote}`, {
      yaxis: yaxis(t, Math.max(0, ...stats.hist)),
      xaxis: { range: [0, 1], dtick: 0.1, gridcolor: t.grid, title: { text: "confidence" } },
      margin: { l: 44, r: 8, t: 28, b: 40 } }), CONFIG);

    if (!clickBound && cov.on) {
      clickBound = true;
      cov.on("plotly_click", (ev) => {
        const p = ev && ev.points && ev.points[0];
        if (p && opsShown[p.pointIndex] >= 0) onOpClick(opsShown[p.pointIndex]);
      });
    }
  }

  function resize() { if (last) update(last.stats, last.selLabel, last.opFilter); }
  function destroy() { Plotly.purge(cov); Plotly.purge(conf); }
  return { el, update, resize, destroy };
}
