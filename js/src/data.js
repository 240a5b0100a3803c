// Decoding of the columnar payload (see hierx_nb/notebook/widget.py) and subtree statistics.

// Binary traits arrive as DataView in Jupyter/VS Code; accept any buffer-ish value.
function bytesOf(v) {
  if (v == null) return new Uint8Array(0);
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  throw new Error("hierx: expected a binary buffer in the widget payload");
}

// A typed view without copying when aligned (the common case); copy otherwise, because
// typed arrays need byteOffset to be a multiple of their element size.
function typed(v, Ctor) {
  const b = bytesOf(v);
  const k = Ctor.BYTES_PER_ELEMENT;
  if (b.byteOffset % k === 0) return new Ctor(b.buffer, b.byteOffset, Math.floor(b.byteLength / k));
  const c = b.slice();
  return new Ctor(c.buffer, 0, Math.floor(c.byteLength / k));
}

export function decode(treeP, nodesP) {
  treeP = treeP || {};
  nodesP = nodesP || {};
  const names = treeP.names || [""];
  const n = names.length;
  const tree = {
    n,
    names,
    classes: treeP.classes || [],
    parent: typed(treeP.parent, Int32Array),
    depth: typed(treeP.depth, Int32Array),
    size: typed(treeP.size, Int32Array),
    own: typed(treeP.own, Int32Array),
    total: typed(treeP.total, Int32Array),
    params: typed(treeP.params, Float64Array),
    executed: typed(treeP.executed, Uint8Array),
    index: new Map(),
    lower: null, // lower-cased name + class for search, built on first search
  };
  names.forEach((name, i) => tree.index.set(name, i));
  const nodes = {
    n: nodesP.n || 0,
    module: typed(nodesP.module, Int32Array),
    op: typed(nodesP.op, Uint16Array),
    ops: nodesP.ops || [],
    confidence: typed(nodesP.confidence, Float32Array),
    nameBytes: bytesOf(nodesP.names),
    offsets: typed(nodesP.name_offsets, Uint32Array),
  };
  const decoder = new TextDecoder("utf-8");
  // Node names are decoded lazily, only for the rows on screen.
  nodes.name = (i) => decoder.decode(nodes.nameBytes.subarray(nodes.offsets[i], nodes.offsets[i + 1]));
  return { tree, nodes };
}

export const HIST_BINS = 20;

// One pass over the nodes: which belong to module `sel`'s subtree, and per-op / per-bin counts.
// Pre-order makes the subtree the index range [sel, sel + size[sel]); the root also owns untagged nodes.
export function subtreeStats(data, sel) {
  const { tree, nodes } = data;
  const lo = sel, hi = sel + tree.size[sel];
  const all = sel === 0;
  const nOps = nodes.ops.length;
  const tagged = new Int32Array(nOps), untagged = new Int32Array(nOps);
  const hist = new Int32Array(HIST_BINS);
  const idx = new Int32Array(nodes.n);
  let count = 0, nan = 0;
  const mod = nodes.module, op = nodes.op, conf = nodes.confidence;
  for (let i = 0; i < nodes.n; i++) {
    const m = mod[i];
    if (m < 0 ? !all : (m < lo || m >= hi)) continue;
    idx[count++] = i;
    if (m < 0) untagged[op[i]]++; else tagged[op[i]]++;
    const c = conf[i];
    if (c !== c) nan++;
    else hist[Math.min(HIST_BINS - 1, Math.max(0, Math.floor(c * HIST_BINS)))]++;
  }
  return { sel, idx: idx.subarray(0, count), count, tagged, untagged, hist, nan };
}

export function lastComponent(name) {
  const k = name.lastIndexOf(".");
  return k < 0 ? name : name.slice(k + 1);
}

export function fmtInt(x) {
  return Number(x).toLocaleString("en-US");
}

export function fmtParams(p) {
  if (!p) return "–";
  const units = [[1e12, "T"], [1e9, "B"], [1e6, "M"], [1e3, "k"]];
  for (const [v, u] of units) if (p >= v) return (p / v).toFixed(p / v >= 100 ? 0 : 1) + u;
  return String(Math.round(p));
}

export function fmtSeconds(s) {
  if (s == null) return "–";
  return s < 1 ? `${Math.round(s * 1000)} ms` : `${s.toFixed(s < 10 ? 2 : 1)} s`;
}

// Small DOM helper: all data goes through textContent / setAttribute, never innerHTML.
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
