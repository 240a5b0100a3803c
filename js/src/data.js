// Decoding of the columnar payload (hierx_nb/notebook/payload.py), checked on arrival, and
// subtree statistics.

/** @typedef {import("./types.js").Bytes} Bytes */

// Node sources by code (payload.SOURCES); 0 is "none or unknown".
export const SOURCES = ["", "exact", "pattern", "inferred"];

/** A payload that breaks the contract: the view shows this message instead of a tree. */
export class PayloadError extends Error {}

/** @param {Bytes} v @param {string} what @returns {Uint8Array} */
function bytesOf(v, what) {
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  throw new PayloadError(`${what} must be binary, got ${v === null ? "null" : typeof v}`);
}

// A typed view of exactly `count` items, checked; without copying when aligned (the common case),
// copied otherwise, because typed arrays need byteOffset to be a multiple of their element size.
/**
 * @template {Int32ArrayConstructor | Uint32ArrayConstructor | Uint16ArrayConstructor | Uint8ArrayConstructor | Float32ArrayConstructor | Float64ArrayConstructor} C
 * @param {Bytes} v @param {C} Ctor @param {number} count @param {string} what
 * @returns {InstanceType<C>}
 */
function typed(v, Ctor, count, what) {
  const b = bytesOf(v, what);
  const k = Ctor.BYTES_PER_ELEMENT;
  if (b.byteLength !== count * k) {
    throw new PayloadError(`${what} has ${b.byteLength} bytes, expected ${count * k} (${count} × ${k})`);
  }
  const src = b.byteOffset % k === 0 ? b : b.slice();
  return /** @type {InstanceType<C>} */ (new Ctor(/** @type {ArrayBuffer} */ (src.buffer), src.byteOffset, count));
}

/** @param {boolean} ok @param {string} message */
function need(ok, message) {
  if (!ok) throw new PayloadError(message);
}

/**
 * The payload as typed arrays, or a PayloadError saying which part breaks the contract.
 * @param {import("./types.js").TreePayload} treeP
 * @param {import("./types.js").NodesPayload} nodesP
 */
export function decode(treeP, nodesP) {
  need(!!treeP && typeof treeP === "object", "the tree payload is missing");
  need(!!nodesP && typeof nodesP === "object", "the nodes payload is missing");
  const n = treeP.n;
  need(Number.isInteger(n) && n >= 1, `tree.n must be the number of modules (>= 1), got ${n}`);
  need(Array.isArray(treeP.names) && treeP.names.length === n, `tree.names must list ${n} names`);
  need(Array.isArray(treeP.classes) && treeP.classes.length === n, `tree.classes must list ${n} classes`);
  const tree = {
    n,
    names: treeP.names,
    classes: treeP.classes,
    parent: typed(treeP.parent, Int32Array, n, "tree.parent"),
    depth: typed(treeP.depth, Int32Array, n, "tree.depth"),
    size: typed(treeP.size, Int32Array, n, "tree.size"),
    own: typed(treeP.own, Int32Array, n, "tree.own"),
    total: typed(treeP.total, Int32Array, n, "tree.total"),
    params: typed(treeP.params, Float64Array, n, "tree.params"),
    executed: typed(treeP.executed, Uint8Array, n, "tree.executed"),
    /** @type {Map<string, number>} */ index: new Map(),
    /** @type {string[] | null} lower-cased name + class for search, built on first search */ lower: null,
  };
  need(tree.parent[0] === -1, "tree.parent[0] must be -1 (the root comes first)");
  for (let i = 1; i < n; i++) {
    const p = tree.parent[i];
    if (p < 0 || p >= i || i + tree.size[i] > p + tree.size[p]) {
      throw new PayloadError(`tree is not in pre-order at module ${i} (${JSON.stringify(treeP.names[i])})`);
    }
  }
  treeP.names.forEach((name, i) => tree.index.set(name, i));

  const m = nodesP.n;
  need(Number.isInteger(m) && m >= 0, `nodes.n must be the number of nodes, got ${m}`);
  need(Array.isArray(nodesP.ops), "nodes.ops must list the op types");
  const nodes = {
    n: m,
    module: typed(nodesP.module, Int32Array, m, "nodes.module"),
    op: typed(nodesP.op, Uint16Array, m, "nodes.op"),
    ops: nodesP.ops,
    confidence: typed(nodesP.confidence, Float32Array, m, "nodes.confidence"),
    source: typed(nodesP.source, Uint8Array, m, "nodes.source"),
    nameBytes: bytesOf(nodesP.names, "nodes.names"),
    offsets: typed(nodesP.name_offsets, Uint32Array, m + 1, "nodes.name_offsets"),
    /** @type {(i: number) => string} */ name: null,
  };
  for (let i = 0; i < m; i++) {
    const k = nodes.module[i];
    if (k < -1 || k >= n) throw new PayloadError(`nodes.module[${i}] = ${k} is not a module index (-1 .. ${n - 1})`);
    if (nodes.op[i] >= nodes.ops.length) throw new PayloadError(`nodes.op[${i}] = ${nodes.op[i]} is not in nodes.ops`);
    if (nodes.source[i] >= SOURCES.length) throw new PayloadError(`nodes.source[${i}] = ${nodes.source[i]} is not a source code`);
  }
  need(nodes.offsets[0] === 0 && nodes.offsets[m] === nodes.nameBytes.byteLength,
    "nodes.name_offsets must run from 0 to the byte length of nodes.names");
  const decoder = new TextDecoder("utf-8");
  // Node names are decoded lazily, only for the rows on screen.
  nodes.name = (i) => decoder.decode(nodes.nameBytes.subarray(nodes.offsets[i], nodes.offsets[i + 1]));
  return { tree, nodes };
}

/** @typedef {ReturnType<typeof decode>} Data */

/**
 * Per-module metric columns aligned with the tree (absent: not measured).
 * @param {import("./types.js").MetricsPayload} metricsP @param {number} n
 */
export function decodeMetrics(metricsP, n) {
  const out = {};
  const lat = metricsP && metricsP.latency;
  if (lat) {
    out.latency = {
      self: typed(lat.self_ms, Float64Array, n, "metrics.latency.self_ms"),
      total: typed(lat.total_ms, Float64Array, n, "metrics.latency.total_ms"),
      share: typed(lat.share, Float64Array, n, "metrics.latency.share"),
      kernelMs: lat.kernel_ms, unattributedMs: lat.unattributed_ms, byOpType: lat.by_op_type || {},
    };
  }
  const div = metricsP && metricsP.divergence;
  if (div) {
    out.divergence = {
      maxAbs: typed(div.max_abs_diff, Float64Array, n, "metrics.divergence.max_abs_diff"),
      ok: typed(div.ok, Uint8Array, n, "metrics.divergence.ok"),
      firstDivergent: div.first_divergent ?? null,
    };
  }
  return /** @type {{latency?: {self: Float64Array, total: Float64Array, share: Float64Array, kernelMs: number | null, unattributedMs: number | null, byOpType: Record<string, number>}, divergence?: {maxAbs: Float64Array, ok: Uint8Array, firstDivergent: string | null}}} */ (out);
}

export const HIST_BINS = 20;

/**
 * One pass over the nodes: which belong to module `sel`'s subtree, per (source, op) counts and the
 * confidence histogram. Pre-order makes the subtree the index range [sel, sel + size[sel]); the
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
  let count = 0, nan = 0;
  const mod = nodes.module, op = nodes.op, conf = nodes.confidence, src = nodes.source;
  const untaggedRow = SOURCES.length * nOps;
  for (let i = 0; i < nodes.n; i++) {
    const m = mod[i];
    if (m < 0 ? !all : (m < lo || m >= hi)) continue;
    idx[count++] = i;
    bySource[(m < 0 ? untaggedRow : src[i] * nOps) + op[i]]++;
    const c = conf[i];
    if (c !== c) nan++;
    else hist[Math.min(HIST_BINS - 1, Math.max(0, Math.floor(c * HIST_BINS)))]++;
  }
  return { sel, idx: idx.subarray(0, count), count, bySource, nOps, hist, nan };
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
