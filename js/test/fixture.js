// Builds explorer payloads in JS for the unit tests: the same layout payload.py writes.
const enc = new TextEncoder();

/** @param {string[]} strings */
function utf8Column(strings) {
  const parts = strings.map((s) => enc.encode(s));
  const off = new Uint32Array(parts.length + 1);
  parts.forEach((p, i) => { off[i + 1] = off[i] + p.length; });
  const blob = new Uint8Array(off[parts.length]);
  parts.forEach((p, i) => blob.set(p, off[i]));
  return { blob, off };
}

/**
 * @param {{modules: [string, string][], nodes: [string, string, string | null][], values?: [string, string | null, string[], boolean?][]}} spec
 *   modules: [qualified name, class] in pre-order (root "" first); nodes: [name, op, module]; values:
 *   [name, producer node name (null: a model input), consumer node names, model output?]
 */
export function payloadOf({ modules, nodes, values = [] }) {
  const names = modules.map((m) => m[0]);
  const n = names.length;
  const parent = new Int32Array(n), depth = new Int32Array(n), size = new Int32Array(n).fill(1);
  const own = new Int32Array(n), total = new Int32Array(n);
  names.forEach((name, i) => {
    if (i === 0) { parent[0] = -1; return; }
    const p = name.includes(".") ? name.slice(0, name.lastIndexOf(".")) : "";
    parent[i] = names.indexOf(p);
    depth[i] = depth[parent[i]] + 1;
  });
  for (let i = n - 1; i > 0; i--) size[parent[i]] += size[i];
  const ops = [...new Set(nodes.map((x) => x[1]))];
  const module = Int32Array.from(nodes.map((x) => (x[2] === null ? -1 : names.indexOf(x[2]))));
  module.forEach((m) => { if (m >= 0) own[m]++; });
  total.set(own);
  for (let i = n - 1; i > 0; i--) total[parent[i]] += total[i];
  const nn = utf8Column(nodes.map((x) => x[0]));
  const tree = { n, names, classes: modules.map((m) => m[1]), parent, depth, size, own, total,
    params: new Float64Array(n), executed: new Uint8Array(n).fill(1) };
  const nodesP = { n: nodes.length, module, op: Uint16Array.from(nodes.map((x) => ops.indexOf(x[1]))), ops,
    confidence: new Float32Array(nodes.length).fill(1), source: new Uint8Array(nodes.length).fill(1),
    names: nn.blob, name_offsets: nn.off };
  const idx = (name) => nodes.findIndex((x) => x[0] === name);
  const vn = utf8Column(values.map((v) => v[0]));
  const consumers = [], coff = new Uint32Array(values.length + 1);
  values.forEach((v, k) => { consumers.push(...v[2].map(idx)); coff[k + 1] = consumers.length; });
  const graph = { n: values.length, uses: consumers.length, dtypes: ["float32"], shapes: ["[1, 8]"],
    names: vn.blob, name_offsets: vn.off, dtype: new Uint8Array(values.length), shape: new Uint32Array(values.length),
    producer: Int32Array.from(values.map((v) => (v[1] === null ? -1 : idx(v[1])))),
    output: Uint8Array.from(values.map((v) => (v[3] ? 1 : 0))), consumer_offsets: coff, consumers: Int32Array.from(consumers) };
  return { tree, nodes: nodesP, graph };
}

/** A small CNN: stem conv, two blocks (conv, relu), a head; x -> stem -> block0 -> block1 -> head -> y. */
export function cnn() {
  return payloadOf({
    modules: [["", "Net"], ["stem", "Conv2d"], ["blocks", "Sequential"], ["blocks.0", "Block"], ["blocks.0.conv", "Conv2d"],
      ["blocks.0.act", "ReLU"], ["blocks.1", "Block"], ["blocks.1.conv", "Conv2d"], ["blocks.1.act", "ReLU"], ["head", "Linear"]],
    nodes: [["conv0", "Conv", "stem"], ["conv1", "Conv", "blocks.0.conv"], ["relu1", "Relu", "blocks.0.act"],
      ["add1", "Add", "blocks.0"], ["conv2", "Conv", "blocks.1.conv"], ["relu2", "Relu", "blocks.1.act"],
      ["flat", "Flatten", null], ["gemm", "Gemm", "head"]],
    values: [["x", null, ["conv0"]], ["s", "conv0", ["conv1", "add1"]], ["c1", "conv1", ["relu1"]], ["r1", "relu1", ["add1"]],
      ["a1", "add1", ["conv2"]], ["c2", "conv2", ["relu2"]], ["r2", "relu2", ["flat"]], ["f", "flat", ["gemm"]],
      ["y", "gemm", [], true]],
  });
}
