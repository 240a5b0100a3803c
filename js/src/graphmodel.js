// The graph view's model, without the DOM (unit-tested under node --test): which boxes, op nodes,
// ports and edges one level of a module shows, and their layout by dagre.
//
// The level of module M: its own nodes as op boxes, its child modules as collapsed boxes, and the
// children the user expanded as clusters holding their own level (recursively). Values that enter
// M's subtree from outside (or are model inputs) are input ports; values that leave it (or are
// model outputs) are output ports. Only this level is laid out, so a 100k-node model costs what its
// visible level costs.
import dagre from "@dagrejs/dagre";

/** @typedef {import("./data.js").Data} Data */

/**
 * @typedef {object} Item
 * @property {string} id  dagre node id: m<module>, n<node>, i<value>, o<value>, x<cluster module> (hidden ops)
 * @property {"module" | "cluster" | "op" | "in" | "out" | "more"} kind
 * @property {number} index  module, node or value index (more: the cluster's module, -1 for M itself)
 * @property {string | null} parent  the cluster's id, null at the top
 * @property {number} [count]  "more": how many op nodes it stands for; ports: how many values
 * @property {number} [modules]  "more": how many child modules it stands for
 * @property {number} width
 * @property {number} height
 * @property {number} [x]  centre, after layout
 * @property {number} [y]
 *
 * @typedef {object} Edge
 * @property {string} from
 * @property {string} to
 * @property {number[]} values  value indices it carries
 * @property {{x: number, y: number}[]} [points]  after layout
 *
 * @typedef {object} Level
 * @property {number} module
 * @property {Item[]} items
 * @property {Edge[]} edges
 * @property {number} ops  op nodes drawn
 * @property {number} hidden  op nodes folded into "more" boxes (beyond maxOps)
 */

export const BOX_H = 40, OP_H = 24, PORT_H = 20;
const CHAR_W = 6.6; // px per character at the graph's 11px font (an estimate: the layout must not touch the DOM)

/** @param {string} text @param {number} min @param {number} max */
export function textWidth(text, min, max) {
  return Math.max(min, Math.min(max, Math.ceil(16 + text.length * CHAR_W)));
}

/**
 * Per-node input values (CSR), from the graph's consumer lists: built once per payload.
 * @param {Data} data
 */
export function nodeInputs(data) {
  const { graph, nodes } = data;
  const cached = /** @type {any} */ (graph).inputs;
  if (cached) return /** @type {{off: Uint32Array, val: Int32Array}} */ (cached);
  const off = new Uint32Array(nodes.n + 1);
  for (let k = 0; k < graph.uses; k++) off[graph.consumers[k] + 1]++;
  for (let i = 0; i < nodes.n; i++) off[i + 1] += off[i];
  const fill = off.slice(0, nodes.n);
  const val = new Int32Array(graph.uses);
  for (let v = 0; v < graph.n; v++) {
    for (let k = graph.consumer_offsets[v]; k < graph.consumer_offsets[v + 1]; k++) val[fill[graph.consumers[k]]++] = v;
  }
  const out = { off, val };
  /** @type {any} */ (graph).inputs = out;
  return out;
}

/**
 * Per-node output values (CSR), from the producer column: built once per payload.
 * @param {Data} data
 */
export function nodeOutputs(data) {
  const { graph, nodes } = data;
  const cached = /** @type {any} */ (graph).outputs;
  if (cached) return /** @type {{off: Uint32Array, val: Int32Array}} */ (cached);
  const off = new Uint32Array(nodes.n + 1);
  for (let v = 0; v < graph.n; v++) if (graph.producer[v] >= 0) off[graph.producer[v] + 1]++;
  for (let i = 0; i < nodes.n; i++) off[i + 1] += off[i];
  const fill = off.slice(0, nodes.n);
  const val = new Int32Array(off[nodes.n]);
  for (let v = 0; v < graph.n; v++) if (graph.producer[v] >= 0) val[fill[graph.producer[v]]++] = v;
  const out = { off, val };
  /** @type {any} */ (graph).outputs = out;
  return out;
}

/**
 * The items and edges of module `sel`'s level, with the modules in `expanded` opened in place.
 * @param {Data} data @param {number} sel @param {Set<number>} expanded
 * @param {{maxOps?: number, maxPorts?: number, maxBoxes?: number, label?: (m: number) => string}} [opts]
 * @returns {Level}
 */
export function buildLevel(data, sel, expanded, opts = {}) {
  const { tree, nodes, graph } = data;
  const maxOps = opts.maxOps ?? 300, maxPorts = opts.maxPorts ?? 40, maxBoxes = opts.maxBoxes ?? 200;
  const lo = sel, hi = sel + tree.size[sel];
  // rep[k - lo]: -1 when module k's own nodes are drawn (k is M or an open cluster), else the
  // collapsed box that stands for it.
  const rep = new Int32Array(hi - lo);
  const open = new Uint8Array(hi - lo);
  open[0] = 1;
  rep[0] = -1;
  for (let k = lo + 1; k < hi; k++) {
    const p = tree.parent[k] - lo;
    open[k - lo] = open[p] && expanded.has(k) ? 1 : 0;
    rep[k - lo] = open[k - lo] ? -1 : open[p] ? k : rep[p];
  }
  const clusterId = (m) => (m === sel ? null : `m${m}`);
  /** @type {Item[]} */
  const items = [];
  const seen = new Set();
  /** @type {Map<string, Item>} "more" boxes: x<module> for its surplus op nodes, y<module> for its surplus children */
  const more = new Map();
  const inside = (m) => (m < 0 ? sel === 0 : m >= lo && m < hi);
  let ops = 0, hidden = 0;
  // The item a node is drawn as (its own op box, its collapsed module's box, or a "more" box).
  const itemOf = new Map();
  /** @param {number} i */
  function itemFor(i) {
    const cached = itemOf.get(i);
    if (cached !== undefined) return cached;
    const m = nodes.module[i] < 0 ? sel : nodes.module[i];
    let id;
    const r = rep[m - lo];
    if (r >= 0) {
      id = boxId.get(r); // every collapsed box (or the box its surplus folds into) is already in items
    } else if (ops < maxOps) {
      id = `n${i}`;
      ops++;
      items.push({ id, kind: "op", index: i, parent: clusterId(m), width: 0, height: OP_H });
    } else {
      id = `x${m}`;
      hidden++;
      let it = more.get(id);
      if (!it) {
        it = { id, kind: "more", index: m === sel ? -1 : m, parent: clusterId(m), count: 0, width: 0, height: OP_H };
        more.set(id, it);
        items.push(it);
      }
      it.count++;
    }
    itemOf.set(i, id);
    return id;
  }
  // Open clusters first (dagre needs a parent before its children), in pre-order.
  for (let k = lo + 1; k < hi; k++) {
    if (open[k - lo]) items.push({ id: `m${k}`, kind: "cluster", index: k, parent: clusterId(tree.parent[k]), width: 0, height: 0 });
  }
  // Every visible collapsed module gets a box (an empty module is still a module); beyond maxBoxes
  // children of one parent (a ModuleList of thousands), the rest fold into one box.
  /** @type {Map<number, string>} */
  const boxId = new Map();
  const boxes = new Map();
  for (let k = lo + 1; k < hi; k++) {
    if (open[k - lo] || rep[k - lo] !== k) continue;
    const parent = clusterId(tree.parent[k]);
    const n = boxes.get(tree.parent[k]) || 0;
    if (n < maxBoxes) {
      boxes.set(tree.parent[k], n + 1);
      boxId.set(k, `m${k}`);
      items.push({ id: `m${k}`, kind: "module", index: k, parent, width: 0, height: BOX_H });
      continue;
    }
    const id = `y${tree.parent[k]}`;
    let it = more.get(id);
    if (!it) more.set(id, it = { id, kind: "more", index: tree.parent[k], parent, count: 0, modules: 0, width: 0, height: OP_H });
    if (!it.modules) items.push(it);
    it.modules++;
    boxId.set(k, id);
  }
  const ins = nodeInputs(data), outs = nodeOutputs(data);
  /** @type {Map<string, Edge>} */
  const edges = new Map();
  const addEdge = (from, to, v) => {
    if (from === to) return;
    const key = `${from}>${to}`;
    const e = edges.get(key);
    if (e) { if (e.values.length < 64) e.values.push(v); } else edges.set(key, { from, to, values: [v] });
  };
  const ports = { in: 0, out: 0 };
  /** @type {{in?: Item, out?: Item}} */
  const rest = {};
  /** @param {"in" | "out"} kind @param {number} v */
  const port = (kind, v) => {
    const id = `${kind === "in" ? "i" : "o"}${v}`;
    if (seen.has(id)) return id;
    if (ports[kind] >= maxPorts) { // beyond that, one box stands for the rest
      let it = rest[kind];
      if (!it) items.push(it = rest[kind] = { id: `${kind === "in" ? "i" : "o"}+`, kind, index: -1, parent: null, count: 0, width: 0, height: PORT_H });
      it.count++;
      return it.id;
    }
    ports[kind]++;
    seen.add(id);
    items.push({ id, kind, index: v, parent: null, count: 1, width: 0, height: PORT_H });
    return id;
  };
  for (let i = 0; i < nodes.n; i++) {
    if (!inside(nodes.module[i])) continue;
    const me = itemFor(i);
    for (let k = ins.off[i]; k < ins.off[i + 1]; k++) {
      const v = ins.val[k];
      const p = graph.producer[v];
      if (p < 0 || !inside(nodes.module[p])) addEdge(port("in", v), me, v);
    }
    for (let k = outs.off[i]; k < outs.off[i + 1]; k++) {
      const v = outs.val[k];
      let leaves = graph.output[v] === 1;
      for (let c = graph.consumer_offsets[v]; c < graph.consumer_offsets[v + 1]; c++) {
        const j = graph.consumers[c];
        if (inside(nodes.module[j])) addEdge(me, itemFor(j), v);
        else leaves = true;
      }
      if (leaves) addEdge(me, port("out", v), v);
    }
  }
  const label = opts.label || ((m) => tree.names[m]);
  for (const it of items) {
    // The box's second line: class, node count and a metric of up to ~14 characters.
    if (it.kind === "module") it.width = Math.max(textWidth(`▸ ${label(it.index)}`, 90, 240),
      textWidth(`${tree.classes[it.index]} · ${tree.total[it.index]} nodes · 14 characters`, 90, 240) * 0.9);
    else if (it.kind === "op") it.width = textWidth(nodes.ops[nodes.op[it.index]], 44, 160);
    else if (it.kind === "more") it.width = it.modules ? 130 : 110;
    else if (it.kind === "in" || it.kind === "out") it.width = it.index < 0 ? 90 : textWidth(graph.name(it.index), 40, 170);
  }
  return { module: sel, items, edges: [...edges.values()], ops, hidden };
}

/**
 * Lays a level out with dagre (top to bottom) and writes x, y (centres) into its items and
 * points into its edges; clusters get their bounds. Large levels skip dagre's crossing
 * reduction sweeps (their cost grows with ranks × nodes), small ones keep them.
 * @param {Level} level @returns {{width: number, height: number}}
 */
export function layoutLevel(level) {
  const compound = level.items.some((it) => it.kind === "cluster");
  const g = new dagre.graphlib.Graph({ compound, multigraph: false });
  const big = level.items.length > 150;
  // Nested clusters stack their title rows: more space between ranks when there are clusters.
  g.setGraph({ rankdir: "TB", nodesep: 14, ranksep: compound ? 40 : 26, edgesep: 8, marginx: 8, marginy: 8,
    ranker: big ? "longest-path" : "network-simplex" });
  g.setDefaultEdgeLabel(() => ({}));
  for (const it of level.items) {
    g.setNode(it.id, it.kind === "cluster" ? { paddingTop: 22 } : { width: it.width, height: it.height });
  }
  if (compound) for (const it of level.items) if (it.parent) g.setParent(it.id, it.parent);
  for (const e of level.edges) {
    // dagre cannot route an edge that ends on a cluster: those never occur (clusters hold no edges of their own).
    g.setEdge(e.from, e.to, { weight: e.values.length > 1 ? 2 : 1 });
  }
  dagre.layout(g, { disableOptimalOrderHeuristic: big });
  for (const it of level.items) {
    const n = g.node(it.id);
    it.x = n.x; it.y = n.y;
    if (it.kind === "cluster") { it.width = n.width; it.height = n.height; }
  }
  for (const e of level.edges) e.points = g.edge(e.from, e.to).points;
  const gr = g.graph();
  return { width: gr.width || 0, height: gr.height || 0 };
}
