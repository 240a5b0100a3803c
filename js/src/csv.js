// The node and module tables as CSV (RFC 4180: fields with a comma, quote or line break are quoted),
// for the download buttons. Pure (js/test/views.test.js).
// Module and node names can be anything: a text cell that a spreadsheet would run as a formula
// (starting with = + - @, a tab or a carriage return) gets a leading apostrophe, as OWASP advises.
import { SOURCES } from "./data.js";

/** @param {(string | number | null | undefined)[]} cells */
export function csvLine(cells) {
  return cells.map((c) => {
    if (c == null || (typeof c === "number" && c !== c)) return "";
    let s = String(c);
    if (typeof c === "string" && /^[=+\-@\t\r]/.test(s)) s = `'${s}`;
    return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  }).join(",");
}

/**
 * The nodes `idx` (the selection's, in table order): node, op_type, module, confidence, source, and
 * ms when the profile has per-node times.
 * @param {import("./data.js").Data} data @param {ArrayLike<number>} idx
 * @param {ReturnType<typeof import("./data.js").decodeMetrics>} metrics
 */
export function nodesCsv(data, idx, metrics) {
  const { tree, nodes } = data;
  const ms = metrics.latency && metrics.latency.nodeMs;
  const lines = [csvLine(["node", "op_type", "module", "module_class", "confidence", "source", ...(ms ? ["ms"] : [])])];
  for (let k = 0; k < idx.length; k++) {
    const i = idx[k], m = nodes.module[i];
    lines.push(csvLine([nodes.name(i), nodes.ops[nodes.op[i]], m < 0 ? null : tree.names[m], m < 0 ? null : tree.classes[m],
      nodes.confidence[i], m < 0 ? "untagged" : SOURCES[nodes.source[i]] || "unknown", ...(ms ? [ms[i]] : [])]));
  }
  return lines.join("\r\n") + "\r\n";
}

/**
 * Every module in tree order: module, module_class, parent, own_nodes, total_nodes, params, executed,
 * and the latency, divergence and compare columns that are measured.
 * @param {import("./data.js").Data} data @param {ReturnType<typeof import("./data.js").decodeMetrics>} metrics
 */
export function modulesCsv(data, metrics) {
  const t = data.tree, L = metrics.latency, D = metrics.divergence, C = metrics.compare;
  const head = ["module", "module_class", "parent", "own_nodes", "total_nodes", "params", "executed"];
  if (L) head.push("self_ms", "total_ms", "share", ...(L.fusedInto ? ["fused_into"] : []));
  if (D) head.push("max_abs_diff", "ok");
  if (C) head.push("ms_a", "ms_b", "time_ratio", "sqnr_db", "own_sqnr_db");
  const lines = [csvLine(head)];
  for (let i = 0; i < t.n; i++) {
    const row = [t.names[i], t.classes[i], i ? t.names[t.parent[i]] : null, t.own[i], t.total[i], t.params[i], t.executed[i] ? "true" : "false"];
    if (L) row.push(L.self[i], L.total[i], L.share[i], ...(L.fusedInto ? [L.fusedInto[i]] : []));
    if (D) row.push(D.maxAbs[i], D.ok[i] === 255 ? null : D.ok[i] ? "true" : "false");
    if (C) row.push(C.msA[i], C.msB[i], C.ratio[i], ...[C.sqnr[i], C.ownSqnr[i]].map((v) => (v === Infinity ? "inf" : v)));
    lines.push(csvLine(row));
  }
  return lines.join("\r\n") + "\r\n";
}
