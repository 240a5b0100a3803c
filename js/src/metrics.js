// What each metric (nodes, latency, divergence, compare) shows, as plain data and functions: the tree's
// numeric columns (three; compare four), the graph's colours, the two charts' specs and the metric selector's
// options. No DOM here, so node --test checks it (js/test/views.test.js).
import { fmtInt, fmtParams, fmtMs, fmtDiff, lastComponent, HIST_BINS } from "./data.js";

/** dB with one decimal; ∞ for equal outputs, – for not measured. @param {number} v */
export const fmtDb = (v) => (v !== v ? "–" : v === Infinity ? "∞" : v.toFixed(1));

/** @typedef {"nodes" | "latency" | "divergence" | "compare"} Metric */
/** @typedef {ReturnType<typeof import("./data.js").decodeMetrics>} Metrics */
/** @typedef {import("./data.js").Data} Data */

const MAX_OPS = 30; // beyond that the op types are summed into one "other" bar
const MAX_MODULES = 24; // bars in the by-module charts
// Series of the coverage chart, by source code (SOURCES), then untagged nodes.
const SOURCE_SERIES = ["unknown", "exact", "pattern", "inferred", "untagged"];

/** The metric selector: every metric, with how to fill the ones not measured yet. @param {Metrics} metrics */
export function metricOptions(metrics) {
  return [
    { value: "nodes", text: "nodes", enabled: true, hint: "" },
    { value: "latency", text: metrics.latency ? "latency (ms)" : "latency — run result.profile()", enabled: !!metrics.latency,
      hint: "ONNX Runtime kernel time per module: result.profile() in Python, or hierx report --profile in a shell" },
    { value: "divergence", text: metrics.divergence ? "divergence (max |Δ|)" : "divergence — run result.validate(per_module=True)",
      enabled: !!metrics.divergence,
      hint: "per-module difference from PyTorch: result.validate(per_module=True), or hierx report --validate in a shell" },
    { value: "compare", text: metrics.compare ? "compare (own SQNR dB)" : "compare — run result.compare(other)", enabled: !!metrics.compare,
      hint: "this file against another (fp16, int8, optimized) module by module: result.compare(other), or hierx compare A B in a shell" },
  ];
}

/**
 * The tree's numeric columns for `metric` (three; compare's four).
 * @param {Metric} metric @param {Data} data @param {Metrics} metrics
 * @returns {import("./tree.js").Column[]}
 */
export function treeColumns(metric, data, metrics) {
  const t = data.tree;
  if (metric === "latency" && metrics.latency) {
    const L = metrics.latency, fused = L.fusedInto;
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
  if (metric === "compare" && metrics.compare) {
    // Four columns: both files' times, their ratio, and the error the module adds itself (the error
    // at its boundary, inherited included, is the own cell's tooltip).
    const C = metrics.compare;
    const bad = (i) => (C.ownSqnr[i] < C.threshold ? "hx-bad" : "");
    return [
      { head: "ms a", title: "a's median kernel ms per run of this module's subtree", text: (i) => fmtMs(C.msA[i]) },
      { head: "ms b", title: "b's median kernel ms per run of this module's subtree", text: (i) => fmtMs(C.msB[i]) },
      { head: "b/a", title: "b's time over a's for this module's subtree", text: (i) => (C.ratio[i] === C.ratio[i] ? `${C.ratio[i].toFixed(2)}×` : "–") },
      { head: "own dB", title: `the error this module adds itself (b's module on a's inputs), SQNR dB (higher is closer; ∞: equal); below ${C.threshold} dB: divergent`,
        text: (i) => fmtDb(C.ownSqnr[i]), cls: bad,
        tip: (i) => (C.sqnr[i] === C.sqnr[i] ? `SQNR of b's outputs against a's at this module's boundary, inherited error included: ${fmtDb(C.sqnr[i])} dB` : "") },
    ];
  }
  return [
    { head: "own", title: "ONNX nodes tagged with exactly this module", text: (i) => fmtInt(t.own[i]) },
    { head: "total", title: "ONNX nodes in this module's subtree", text: (i) => fmtInt(t.total[i]) },
    { head: "params", title: "parameters", text: (i) => fmtParams(t.params[i]) },
  ];
}

/**
 * How `metric` colours the graph of selection `sel`: modules by their subtree's value relative to
 * the largest in the selection, op nodes by their own time when the profile has per-node times
 * (else by their module's), divergence by the module's difference (a failed module at full strength).
 * @param {Metric} metric @param {Data} data @param {Metrics} metrics @param {number} sel
 * @returns {import("./graph.js").GraphMetric | null}
 */
export function graphMetric(metric, data, metrics, sel) {
  const t = data.tree, mod = data.nodes.module;
  const maxOf = (values) => {
    let max = 0;
    // Below the selection (the selection itself would always be the largest), or itself for a leaf.
    for (let c = t.size[sel] > 1 ? sel + 1 : sel; c < sel + t.size[sel]; c++) if (values[c] > max) max = values[c];
    return max;
  };
  if (metric === "latency" && metrics.latency) {
    const L = metrics.latency, max = maxOf(L.total), maxSelf = maxOf(L.self), nodeMs = L.nodeMs;
    let maxNode = 0;
    if (nodeMs) for (let i = 0; i < nodeMs.length; i++) if (nodeMs[i] > maxNode && mod[i] >= sel && mod[i] < sel + t.size[sel]) maxNode = nodeMs[i];
    return { bad: false, module: (m) => (max > 0 && L.total[m] === L.total[m] ? L.total[m] / max : null),
      node: nodeMs
        ? (i) => (maxNode > 0 && nodeMs[i] === nodeMs[i] ? nodeMs[i] / maxNode : null)
        : (i) => (mod[i] >= 0 && maxSelf > 0 && L.self[mod[i]] === L.self[mod[i]] ? L.self[mod[i]] / maxSelf : null),
      text: (m) => (L.fusedInto && L.fusedInto[m] && !(L.total[m] > 0) ? `fused into ${L.fusedInto[m]}`
        : L.total[m] === L.total[m] ? `${fmtMs(L.total[m])} ms` : "") };
  }
  if (metric === "compare" && metrics.compare) {
    // Own SQNR: at or below the threshold full strength, fading as it rises to 4x the threshold.
    const C = metrics.compare, th = C.threshold || 20;
    const f = (m) => { const v = C.ownSqnr[m]; return v === v && v !== Infinity ? Math.max(0, Math.min(1, (4 * th - v) / (3 * th))) : null; };
    return { bad: true, module: f, node: (i) => (mod[i] >= 0 ? f(mod[i]) : null),
      text: (m) => (C.ownSqnr[m] === C.ownSqnr[m] ? `own ${fmtDb(C.ownSqnr[m])} dB` : "") };
  }
  if (metric === "divergence" && metrics.divergence) {
    const D = metrics.divergence, max = maxOf(D.maxAbs);
    const f = (m) => (D.ok[m] === 0 ? 1 : max > 0 && D.maxAbs[m] === D.maxAbs[m] ? D.maxAbs[m] / max : null);
    return { bad: true, module: f, node: (i) => (mod[i] >= 0 ? f(mod[i]) : null),
      text: (m) => (D.maxAbs[m] === D.maxAbs[m] ? `max |Δ| ${fmtDiff(D.maxAbs[m])}` : "") };
  }
  return null;
}

/**
 * Children of `sel` (and its own nodes' share), the largest first, for the by-module charts.
 * @param {Data} data @param {number} sel @param {ArrayLike<number>} values @param {number | null} own
 * @returns {[string, number][]}
 */
export function byModule(data, sel, values, own) {
  const t = data.tree;
  /** @type {[string, number][]} */
  const rows = [];
  if (own != null && own === own && own > 0) rows.push(["(own nodes)", own]);
  for (let c = sel + 1; c < sel + t.size[sel]; c += t.size[c]) {
    const v = values[c];
    if (v === v && v > 0) rows.push([lastComponent(t.names[c]), v]);
  }
  rows.sort((a, b) => b[1] - a[1]);
  return rows.slice(0, MAX_MODULES);
}

/** Op-type bars: the largest first, the rest summed into "other (k types)". @param {[string, number][]} pairs */
function topOps(pairs) {
  pairs.sort((a, b) => b[1] - a[1]);
  const head = pairs.slice(0, MAX_OPS), tail = pairs.slice(MAX_OPS);
  if (tail.length) head.push([`other (${tail.length} types)`, tail.reduce((a, p) => a + p[1], 0)]);
  return head;
}

/**
 * The two charts of `metric` for the selection (both follow it), as ChartSpecs for charts.js;
 * `ops[k]`: the op type index of bar k of chart A (-1: not an op bar), for the op filter.
 * @param {{metric: Metric, data: Data, metrics: Metrics, stats: ReturnType<typeof import("./data.js").subtreeStats>,
 *   sel: number, opFilter: number, rootName: string}} ctx
 */
export function chartSpecs({ metric, data, metrics, stats, sel, opFilter, rootName }) {
  const where = sel === 0 ? rootName : lastComponent(data.tree.names[sel]);
  if (metric === "latency" && metrics.latency) {
    const L = metrics.latency;
    /** @type {[string, number][]} */
    let ops;
    let title;
    if (L.nodeMs) { // per-node times: the op types of the selection's nodes
      const sum = new Float64Array(data.nodes.ops.length);
      for (const i of stats.idx) if (L.nodeMs[i] === L.nodeMs[i]) sum[data.nodes.op[i]] += L.nodeMs[i];
      ops = [];
      sum.forEach((v, j) => { if (v > 0) ops.push([data.nodes.ops[j], v]); });
      title = `Time by op type in ${where} (median ms per run)`;
    } else { // an older profile: ORT's kernel op types for the whole model only
      ops = Object.entries(L.byOpType);
      title = "Time by kernel op type (whole model, median ms per run)";
    }
    ops = topOps(ops);
    const rows = byModule(data, sel, L.total, L.self[sel]);
    return {
      a: { title, categories: ops.map((o) => o[0]), series: [{ name: "time", values: ops.map((o) => o[1]) }], fmt: fmtMs, unit: "ms",
        empty: "no kernel time here" },
      b: { title: `Time by module in ${where} (median ms per run)`, horizontal: true, categories: rows.map((r) => r[0]),
        series: [{ name: "time", values: rows.map((r) => r[1]) }], fmt: fmtMs, unit: "ms", empty: "no kernel time here" },
      ops: [],
    };
  }
  if (metric === "compare" && metrics.compare) {
    const C = metrics.compare, t = data.tree;
    // Children of the selection by the larger of their two times, the largest first, a and b side by side.
    const kids = [];
    for (let c = sel + 1; c < sel + t.size[sel]; c += t.size[c]) if (Math.max(C.msA[c] || 0, C.msB[c] || 0) > 0) kids.push(c);
    kids.sort((x, y) => Math.max(C.msB[y] || 0, C.msA[y] || 0) - Math.max(C.msB[x] || 0, C.msA[x] || 0));
    kids.length = Math.min(kids.length, MAX_MODULES);
    // Error added, as dB below 100 (SQNR: higher is better, so the worst module gets the longest bar).
    const lost = byModule(data, sel, Array.from(C.ownSqnr, (v) => (v === v && v !== Infinity ? Math.max(0, 100 - v) : NaN)), null);
    return {
      a: { title: `Time by module in ${where} (median ms per run, a and b)`, horizontal: true, grouped: true,
        categories: kids.map((c) => lastComponent(t.names[c])),
        series: [{ name: "a", values: kids.map((c) => C.msA[c]) }, { name: "b", values: kids.map((c) => C.msB[c]) }],
        fmt: fmtMs, unit: "ms", empty: "no kernel time here" },
      b: { title: `Error each module adds in ${where} (100 − own SQNR, dB)`, horizontal: true, categories: lost.map((r) => r[0]),
        series: [{ name: "diff", values: lost.map((r) => r[1]) }], fmt: (v) => v.toFixed(1), unit: "dB", empty: "no error added here" },
      ops: [],
    };
  }
  if (metric === "divergence" && metrics.divergence) {
    const rows = byModule(data, sel, metrics.divergence.maxAbs, null);
    return {
      a: { title: `Max abs diff by module in ${where}`, horizontal: true, categories: rows.map((r) => r[0]),
        series: [{ name: "diff", values: rows.map((r) => r[1]) }], fmt: fmtDiff, empty: "no differences here" },
      b: null,
      ops: [],
    };
  }
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
  const w = 1 / HIST_BINS;
  const allExact = stats.count > 0 && stats.exact1 === stats.count;
  return {
    a: { title: `Nodes by op type and source in ${where}`, categories: cats, series, integer: true, unit: "nodes",
      highlight: shown.indexOf(opFilter), empty: "no nodes here" },
    // Every node exact: one full bar says less than the sentence.
    b: allExact
      ? { title: "Tag confidence", categories: [], series: [], empty: `all ${fmtInt(stats.count)} nodes exact (confidence 1.0)` }
      : { title: `Tag confidence${stats.nan ? ` (${fmtInt(stats.nan)} without)` : ""}`,
        categories: Array.from({ length: HIST_BINS }, (_, b) => `${(b * w).toFixed(2)}–${((b + 1) * w).toFixed(2)}`),
        series: [{ name: "nodes", values: Array.from(stats.hist) }], integer: true, unit: "nodes", empty: "no confidences here" },
    ops: shown,
  };
}

