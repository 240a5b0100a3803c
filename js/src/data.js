// Decoding of the columnar payload (hierx_nb/notebook/payload.py), checked on arrival, and
// subtree statistics.

import spec from "./spec.js";

/** @typedef {import("./types.js").Bytes} Bytes */

// Node sources by code (payload_spec.json "sources"); 0 is "none or unknown".
export const SOURCES = spec.sources;

/** A payload that breaks the contract: the view shows this message instead of a tree. */
export class PayloadError extends Error {}

/** @param {Bytes} v @param {string} what @returns {Uint8Array} */
function bytesOf(v, what) {
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  throw new PayloadError(`${what} must be binary, got ${v === null ? "null" : typeof v}`);
}

const ARRAYS = { int32: Int32Array, uint32: Uint32Array, uint16: Uint16Array, uint8: Uint8Array, float32: Float32Array, float64: Float64Array };

// A typed view of exactly `count` items, checked; without copying when aligned (the common case),
// copied otherwise, because typed arrays need byteOffset to be a multiple of their element size.
/** @param {Bytes} v @param {any} Ctor @param {number} count @param {string} what @returns {any} */
function typed(v, Ctor, count, what) {
  const b = bytesOf(v, what);
  const k = Ctor.BYTES_PER_ELEMENT;
  if (b.byteLength !== count * k) {
    throw new PayloadError(`${what} has ${b.byteLength} bytes, expected ${count * k} (${count} × ${k})`);
  }
  const src = b.byteOffset % k === 0 ? b : b.slice();
  return new Ctor(/** @type {ArrayBuffer} */ (src.buffer), src.byteOffset, count);
}

/** @param {boolean} ok @param {string} message */
function need(ok, message) {
  if (!ok) throw new PayloadError(message);
}

/**
 * One part of the payload (tree, nodes, graph) decoded by the spec: counts checked, lists checked,
 * binary columns as typed arrays (blobs as Uint8Array), offsets and vocabulary codes checked.
 * Indices into other parts are checked by `decode`, once every part is known.
 * @param {string} part @param {any} p @returns {Record<string, any>}
 */
export function decodePart(part, p) {
  const sp = spec.parts[part];
  need(!!p && typeof p === "object", `the ${part} payload is missing`);
  /** @type {Record<string, any>} */
  const out = {};
  for (const [key, about] of Object.entries(sp.counts)) {
    need(Number.isInteger(p[key]) && p[key] >= 0, `${part}.${key} must be the ${about}, got ${p[key]}`);
    out[key] = p[key];
  }
  for (const [key, ls] of Object.entries(sp.lists)) {
    need(Array.isArray(p[key]), `${part}.${key} must list the ${ls.about}`);
    if (ls.length) need(p[key].length === out[ls.length], `${part}.${key} must list ${out[ls.length]} entries, got ${p[key].length}`);
    out[key] = p[key];
  }
  for (const [key, col] of Object.entries(sp.columns)) {
    if (col.type === "bytes") { out[key] = bytesOf(p[key], `${part}.${key}`); continue; }
    const count = col.length === "n+1" ? out.n + 1 : out[col.length];
    out[key] = typed(p[key], ARRAYS[col.type], count, `${part}.${key}`);
  }
  for (const [key, col] of Object.entries(sp.columns)) {
    const a = out[key];
    if (col.offsets) {
      const blob = out[col.offsets];
      need(a[0] === 0 && a[a.length - 1] === blob.byteLength, `${part}.${key} must run from 0 to the byte length of ${part}.${col.offsets}`);
      for (let i = 1; i < a.length; i++) need(a[i] >= a[i - 1], `${part}.${key} must not decrease (at ${i})`);
    }
    if (col.vocab) {
      const size = col.vocab === "sources" ? SOURCES.length : out[col.vocab].length;
      for (let i = 0; i < a.length; i++) if (a[i] >= size) throw new PayloadError(`${part}.${key}[${i}] = ${a[i]} is not in ${col.vocab}`);
    }
  }
  return out;
}

/** @param {Int32Array} a @param {number} size @param {string} what */
function checkIndex(a, size, what) {
  for (let i = 0; i < a.length; i++) {
    if (a[i] < -1 || a[i] >= size) throw new PayloadError(`${what}[${i}] = ${a[i]} is not an index (-1 .. ${size - 1})`);
  }
}

const utf8 = new TextDecoder("utf-8");
/** @param {Uint8Array} blob @param {Uint32Array} off @returns {(i: number) => string} decoded lazily, only for what is on screen */
const stringsOf = (blob, off) => (i) => utf8.decode(blob.subarray(off[i], off[i + 1]));

/**
 * The payload as typed arrays, or a PayloadError saying which part breaks the contract.
 * @param {import("./types.js").TreePayload} treeP
 * @param {import("./types.js").NodesPayload} nodesP
 * @param {import("./types.js").GraphPayload} [graphP]  absent: no dataflow (an older payload)
 */
export function decode(treeP, nodesP, graphP) {
  const t = decodePart("tree", treeP);
  need(t.n >= 1, `tree.n must be the number of modules (>= 1), got ${t.n}`);
  const tree = {
    .../** @type {{n: number, names: string[], classes: string[], parent: Int32Array, depth: Int32Array, size: Int32Array, own: Int32Array, total: Int32Array, params: Float64Array, executed: Uint8Array}} */ (t),
    /** @type {Map<string, number>} */ index: new Map(),
    /** @type {string[] | null} lower-cased name + class for search, built on first search */ lower: null,
  };
  need(tree.parent[0] === -1, "tree.parent[0] must be -1 (the root comes first)");
  for (let i = 1; i < tree.n; i++) {
    const p = tree.parent[i];
    if (p < 0 || p >= i || i + tree.size[i] > p + tree.size[p]) {
      throw new PayloadError(`tree is not in pre-order at module ${i} (${JSON.stringify(tree.names[i])})`);
    }
  }
  tree.names.forEach((name, i) => tree.index.set(name, i));

  const d = decodePart("nodes", nodesP);
  checkIndex(d.module, tree.n, "nodes.module");
  const nodes = {
    .../** @type {{n: number, module: Int32Array, op: Uint16Array, ops: string[], confidence: Float32Array, source: Uint8Array}} */ (d),
    nameBytes: /** @type {Uint8Array} */ (d.names), offsets: /** @type {Uint32Array} */ (d.name_offsets),
    name: stringsOf(d.names, d.name_offsets),
  };

  const g = decodePart("graph", graphP || EMPTY_GRAPH);
  checkIndex(g.producer, nodes.n, "graph.producer");
  checkIndex(g.consumers, nodes.n, "graph.consumers");
  need(g.consumer_offsets[0] === 0 && g.consumer_offsets[g.n] === g.uses, "graph.consumer_offsets must run from 0 to graph.uses");
  const graph = {
    .../** @type {{n: number, uses: number, dtypes: string[], shapes: string[], dtype: Uint8Array, shape: Uint32Array, producer: Int32Array, output: Uint8Array, consumer_offsets: Uint32Array, consumers: Int32Array}} */ (g),
    name: stringsOf(g.names, g.name_offsets),
  };
  return { tree, nodes, graph };
}

const EMPTY_GRAPH = { n: 0, uses: 0, dtypes: [], shapes: [], names: new Uint8Array(0), name_offsets: new Uint32Array(1),
  dtype: new Uint8Array(0), shape: new Uint32Array(0), producer: new Int32Array(0), output: new Uint8Array(0),
  consumer_offsets: new Uint32Array(1), consumers: new Int32Array(0) };

/** @typedef {ReturnType<typeof decode>} Data */

/**
 * Per-module metric columns aligned with the tree (absent: not measured); per-node times aligned
 * with the nodes when the profile has them.
 * @param {import("./types.js").MetricsPayload} metricsP @param {number} n @param {number} [nNodes]
 */
export function decodeMetrics(metricsP, n, nNodes = 0) {
  const out = {};
  const lat = metricsP && metricsP.latency;
  if (lat) {
    out.latency = {
      self: typed(lat.self_ms, Float64Array, n, "metrics.latency.self_ms"),
      total: typed(lat.total_ms, Float64Array, n, "metrics.latency.total_ms"),
      share: typed(lat.share, Float64Array, n, "metrics.latency.share"),
      kernelMs: lat.kernel_ms, unattributedMs: lat.unattributed_ms, byOpType: lat.by_op_type || {},
      fusedInto: Array.isArray(lat.fused_into) && lat.fused_into.length === n ? lat.fused_into : null,
      nodeMs: lat.node_ms ? typed(lat.node_ms, Float64Array, nNodes, "metrics.latency.node_ms") : null,
    };
  }
  const cmp = metricsP && metricsP.compare;
  if (cmp) {
    const col = (k) => typed(cmp[k], Float64Array, n, `metrics.compare.${k}`);
    out.compare = { msA: col("ms_a"), msB: col("ms_b"), ratio: col("time_ratio"), sqnr: col("sqnr_db"), ownSqnr: col("own_sqnr_db"),
      firstDivergent: cmp.first_divergent ?? null, threshold: cmp.sqnr_threshold_db ?? 20 };
  }
  const div = metricsP && metricsP.divergence;
  if (div) {
    out.divergence = {
      maxAbs: typed(div.max_abs_diff, Float64Array, n, "metrics.divergence.max_abs_diff"),
      ok: typed(div.ok, Uint8Array, n, "metrics.divergence.ok"),
      firstDivergent: div.first_divergent ?? null,
    };
  }
  return /** @type {{latency?: {self: Float64Array, total: Float64Array, share: Float64Array, kernelMs: number | null, unattributedMs: number | null, byOpType: Record<string, number>, fusedInto: (string | null)[] | null, nodeMs: Float64Array | null}, divergence?: {maxAbs: Float64Array, ok: Uint8Array, firstDivergent: string | null}, compare?: {msA: Float64Array, msB: Float64Array, ratio: Float64Array, sqnr: Float64Array, ownSqnr: Float64Array, firstDivergent: string | null, threshold: number}}} */ (out);
}

export const HIST_BINS = 20;

/**
 * One pass over the nodes: which belong to module `sel`'s subtree, per (source, op) counts and the
 * confidence histogram (exact1: nodes exact at confidence 1.0). Pre-order makes the subtree the index range [sel, sel + size[sel]); the
 * root also owns untagged nodes, counted under source "untagged" (code SOURCES.length).
 * @param {Data} data @param {number} sel
 */
export function subtreeStats(data, sel) {
  const { tree, nodes } = data;
  const lo = sel, hi = sel + tree.size[sel];
  const all = sel === 0;
  const nOps = nodes.ops.length;
  const bySource = new Int32Array(nOps * (SOURCES.length + 1)); // [source][op]; last row: untagged
  const hist = new Int32Array(HIST_BINS);
  const idx = new Int32Array(nodes.n);
  let count = 0, nan = 0, exact1 = 0;
  const mod = nodes.module, op = nodes.op, conf = nodes.confidence, src = nodes.source;
  const untaggedRow = SOURCES.length * nOps;
  for (let i = 0; i < nodes.n; i++) {
    const m = mod[i];
    if (m < 0 ? !all : (m < lo || m >= hi)) continue;
    idx[count++] = i;
    bySource[(m < 0 ? untaggedRow : src[i] * nOps) + op[i]]++;
    const c = conf[i];
    if (c === 1 && m >= 0 && src[i] === 1) exact1++;
    if (c !== c) nan++;
    else hist[Math.min(HIST_BINS - 1, Math.max(0, Math.floor(c * HIST_BINS)))]++;
  }
  return { sel, idx: idx.subarray(0, count), count, bySource, nOps, hist, nan, exact1 };
}

/** @param {string} name */
export function lastComponent(name) {
  const k = name.lastIndexOf(".");
  return k < 0 ? name : name.slice(k + 1);
}

/** @param {number} x */
export function fmtInt(x) {
  return Number(x).toLocaleString("en-US");
}

/** @param {number} p */
export function fmtParams(p) {
  if (!p) return "–";
  const units = /** @type {[number, string][]} */ ([[1e12, "T"], [1e9, "B"], [1e6, "M"], [1e3, "k"]]);
  for (const [v, u] of units) if (p >= v) return (p / v).toFixed(p / v >= 100 ? 0 : 1) + u;
  return String(Math.round(p));
}

/** @param {number | null | undefined} s */
export function fmtSeconds(s) {
  if (s == null) return "–";
  return s < 1 ? `${Math.round(s * 1000)} ms` : `${s.toFixed(s < 10 ? 2 : 1)} s`;
}

/** @param {number} ms */
export function fmtMs(ms) {
  if (ms !== ms) return "–";
  return ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms >= 0.1 ? ms.toFixed(2) : ms.toFixed(3);
}

/** @param {number} x */
export function fmtDiff(x) {
  if (x !== x) return "–";
  return x === 0 ? "0" : x >= 0.01 && x < 1000 ? x.toPrecision(3) : x.toExponential(1);
}

/**
 * Small DOM helper: all data goes through textContent / setAttribute, never innerHTML.
 * @param {string} tag @param {Record<string, any> | null} [attrs] @param {...(Node | string | null | undefined)} children
 * @returns {HTMLElement}
 */
export function h(tag, attrs, ...children) {
  const e = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v == null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : String(v));
    }
  }
  for (const c of children) if (c != null) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}
