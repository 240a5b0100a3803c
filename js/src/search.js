// The filter box: modules by name or class, nodes by name or op type. Pure functions of the
// decoded payload (js/test/views.test.js).

/**
 * Modules whose name or class contains `q` (case-insensitive), with their ancestors shown.
 * @param {import("./data.js").Data["tree"]} tree @param {string} q
 * @returns {{show: Uint8Array, match: Uint8Array, count: number} | null}  null: no filter
 */
export function filterModules(tree, q) {
  q = (q || "").trim().toLowerCase();
  if (!q) return null;
  if (!tree.lower) tree.lower = tree.names.map((s, i) => `${s}\u0000${tree.classes[i] || ""}`.toLowerCase());
  const show = new Uint8Array(tree.n), match = new Uint8Array(tree.n);
  let count = 0;
  for (let i = 0; i < tree.n; i++) {
    if (!tree.lower[i].includes(q)) continue;
    match[i] = 1; count++;
    for (let p = i; p >= 0 && !show[p]; p = tree.parent[p]) show[p] = 1; // a match and its ancestors
  }
  return { show, match, count };
}

/**
 * Nodes whose name contains `q` or whose op type is `q` (both case-insensitive), in graph order.
 * Names are decoded and lower-cased once, on the first node search.
 * @param {import("./data.js").Data["nodes"]} nodes @param {string} q
 * @returns {Int32Array}
 */
export function searchNodes(nodes, q) {
  q = (q || "").trim().toLowerCase();
  if (!q) return new Int32Array(0);
  const cache = /** @type {any} */ (nodes);
  if (!cache.lower) cache.lower = Array.from({ length: nodes.n }, (_, i) => nodes.name(i).toLowerCase());
  const opMatch = nodes.ops.map((o) => o.toLowerCase() === q);
  const out = [];
  for (let i = 0; i < nodes.n; i++) if (opMatch[nodes.op[i]] || cache.lower[i].includes(q)) out.push(i);
  return Int32Array.from(out);
}
