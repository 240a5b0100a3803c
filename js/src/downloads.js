// The download buttons: the node table of the selection and every module as CSV (csv.js), and the
// explorer as one offline HTML file (the report's own page, or the kernel renders it for a widget).
import { h } from "./data.js";
import { nodesCsv, modulesCsv } from "./csv.js";

/** Saves `text` as a file through a temporary blob link (works offline and under the report's CSP). */
export function download(filename, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h("a", { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** A file-name-safe stem from the model's name. @param {string} s */
export const stem = (s) => (s || "model").replace(/[^A-Za-z0-9_.-]+/g, "_").slice(0, 60);

/**
 * @param {{model: any, rootName: () => string, data: () => import("./data.js").Data, metrics: () => any, rows: () => ArrayLike<number>}} opts
 */
export function createDownloads({ model, rootName, data, metrics, rows }) {
  const btn = (text, testid, fn, title) => h("button", { class: "hx-btn", text, "data-testid": testid, onclick: fn, title });
  const save = (ext, text, type) => download(`${stem(rootName())}.${ext}`, text, type);
  function report() {
    if (typeof model.reportHtml === "string") return save("hierx.html", model.reportHtml, "text/html");
    model.send({ type: "report-html" }); // the kernel answers with the page (onMessage)
  }
  /** @param {any} msg */
  function onMessage(msg) {
    if (msg && msg.type === "report-html" && typeof msg.html === "string") save("hierx.html", msg.html, "text/html");
  }
  const el = h("div", { class: "hx-downloads" }, h("span", { class: "hx-stat-label", text: "download" }),
    btn("nodes CSV", "hierx-download-nodes", () => save("nodes.csv", nodesCsv(data(), rows(), metrics()), "text/csv"),
      "the node table of the selection, as filtered and sorted"),
    btn("modules CSV", "hierx-download-modules", () => save("modules.csv", modulesCsv(data(), metrics()), "text/csv"),
      "every module with its node counts and measured metrics"),
    btn("HTML report", "hierx-download-report", report, "this explorer as one offline HTML file"));
  return { el, onMessage };
}
