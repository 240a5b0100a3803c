// The explorer's header: model, strategy, counts, the model's inputs and outputs, warnings, the
// strategies not used and the settings switched for the export. Every string goes through
// textContent (data.js h()). The io text is pure (ioText) and unit-tested.
import { h, fmtInt, fmtSeconds } from "./data.js";

/** `name dtype [batch, 128]` for one input or output. @param {import("./types.js").IoRow} r */
export function ioText(r) {
  return `${r.name} ${r.dtype || "?"} ${r.shape ? `[${r.shape.join(", ")}]` : "[rank unknown]"}`;
}

/** @param {import("./types.js").Header} hd */
export function renderHeader(hd, firstDivergent, firstCompareDivergent) {
  const attempts = hd.attempts || [];
  const failed = attempts.filter((a) => !a.ok);
  const stat = (label, value, testid, title) =>
    h("span", { class: "hx-stat", title }, h("span", { class: "hx-stat-label", text: label }),
      h("span", { class: "hx-stat-value", text: value, "data-testid": testid }));
  const pct = hd.coverage_pct == null ? "–" : `${hd.coverage_pct.toFixed(1)}%`;
  const top = h("div", { class: "hx-header-top" },
    h("span", { class: "hx-model", text: hd.model_class || "model", title: "model class" }),
    h("span", { class: "hx-badge", text: hd.strategy || "?", title: "strategy used", "data-testid": "hierx-strategy" }),
    hd.structure_only ? h("span", { class: "hx-badge hx-badge-warn", text: "structure only",
      title: "exported without weights: the graph cannot be run" }) : null,
    stat("nodes", fmtInt(hd.nodes || 0), "hierx-node-count"),
    stat("modules", fmtInt(hd.modules || 0)),
    stat("known", pct, "hierx-coverage-pct",
      "nodes whose module is known: PyTorch's own record (exact) or an FX match (pattern), not inferred from neighbours"),
    stat("time", fmtSeconds(hd.seconds)),
    h("span", { class: "hx-path", text: hd.onnx_path || "in memory", title: hd.onnx_path || "not saved to disk" }));
  const parts = [top];
  const io = hd.io || [];
  if (io.length) {
    // The model's inputs and outputs: name, dtype and shape with named dynamic axes, as text.
    const one = (r) => h("span", { class: "hx-io-item", "data-io-kind": r.kind, "data-io-name": r.name },
      h("span", { class: "hx-io-name", text: r.name }), h("span", { class: "hx-io-type", text: ioText(r).slice(r.name.length) }));
    const list = (kind) => io.filter((r) => r.kind === kind).flatMap((r, k) => (k ? [", ", one(r)] : [one(r)]));
    parts.push(h("div", { class: "hx-io", "data-testid": "hierx-io" },
      h("span", { class: "hx-stat-label", text: "inputs" }), ...list("input"),
      h("span", { class: "hx-stat-label hx-io-arrow", text: "→ outputs" }), ...list("output")));
  }
  const warnings = hd.warnings || [];
  if (warnings.length || firstDivergent || firstCompareDivergent) {
    parts.push(h("ul", { class: "hx-warnings", "data-testid": "hierx-warnings" },
      ...warnings.map((w) => h("li", { text: w })),
      firstDivergent ? h("li", { text: `first divergent module: ${firstDivergent}` }) : null,
      firstCompareDivergent ? h("li", { text: `first module whose own error exceeds the SQNR threshold (compare): ${firstCompareDivergent}` }) : null));
  }
  if (failed.length) {
    // A <details> so long reasons (tracebacks) stay one click away; the title gives the gist on hover.
    parts.push(h("details", { class: "hx-attempts", "data-testid": "hierx-attempts" },
      h("summary", { text: `${failed.length} strateg${failed.length === 1 ? "y" : "ies"} not used: ${failed.map((a) => a.name).join(", ")}` }),
      ...attempts.map((a) => h("div", { class: "hx-attempt" + (a.ok ? " hx-ok" : ""), title: a.reason || "" },
        h("span", { class: "hx-attempt-name", text: a.name }),
        h("span", { class: "hx-attempt-state", text: a.ok ? `ok (${fmtSeconds(a.seconds)})` : a.skipped ? "skipped" : "failed" }),
        a.reason ? h("pre", { class: "hx-reason", text: a.reason }) : null))));
  }
  // Model settings hierx changed for the export (e.g. MoE experts to batched_mm): said, never hidden.
  const used = attempts.find((a) => a.ok);
  if (used && used.switched && used.switched.length) {
    parts.push(h("div", { class: "hx-switched", "data-testid": "hierx-switched",
      text: `switched for the export: ${used.switched.join("; ")}` }));
  }
  return h("div", { class: "hx-header", "data-testid": "hierx-header" }, ...parts);
}

