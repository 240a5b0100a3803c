// The node table of the selected subtree: 100 rows a page, names decoded only for the page shown.
import { h, fmtInt, fmtMs, SOURCES } from "./data.js";

const PAGE = 100;

/**
 * The ms column appears with per-node times (setTimes, the latency metric with a profile that has them).
 * @param {{data: import("./data.js").Data, rootName: () => string, onSelectModule: (i: number) => void}} opts
 */
export function createTable({ data, rootName, onSelectModule }) {
  const { tree, nodes } = data;
  let all = new Int32Array(0); // node indices of the subtree (graph order)
  let view = all;              // after the op filter and the sort
  let page = 0;
  let sort = "graph";
  let opFilter = -1;
  let selNode = -1;
  /** @type {Float64Array | null} */
  let times = null;

  const tbody = h("tbody");
  const info = h("span", { class: "hx-page-info", "data-testid": "hierx-page-info" });
  const prev = /** @type {HTMLButtonElement} */ (h("button", { class: "hx-btn", text: "‹ prev", "data-testid": "hierx-prev", onclick: () => go(page - 1) }));
  const next = /** @type {HTMLButtonElement} */ (h("button", { class: "hx-btn", text: "next ›", "data-testid": "hierx-next", onclick: () => go(page + 1) }));
  const sortSel = h("select", { class: "hx-select", "aria-label": "sort nodes", "data-testid": "hierx-sort",
    onchange: (e) => { sort = e.target.value; apply(); } },
    h("option", { value: "graph", text: "graph order" }),
    h("option", { value: "conf-asc", text: "lowest confidence first" }),
    h("option", { value: "conf-desc", text: "highest confidence first" }),
    h("option", { value: "ms-desc", text: "slowest first (latency)" }));
  const chip = h("span", { class: "hx-chip-slot" });
  const head = h("tr");
  // replaceChildren, unlike h(), writes a null child as the text "null": only present cells go in.
  const renderHead = () => head.replaceChildren(
    h("th", { text: "node" }), h("th", { text: "op type" }), h("th", { text: "module" }),
    h("th", { class: "hx-num", text: "confidence" }), h("th", { text: "source" }),
    ...(times ? [h("th", { class: "hx-num hx-ms", text: "ms", title: "median kernel ms per run this node carries (– : none of its own: fused into another node's kernel)" })] : []));
  renderHead();
  const table = h("table", { class: "hx-table" }, h("thead", null, head), tbody); // hx-with-ms: setTimes
  const el = h("div", { class: "hx-nodes", "data-testid": "hierx-node-table" },
    h("div", { class: "hx-toolbar" }, h("strong", { text: "Nodes" }), chip, h("span", { class: "hx-spacer" }),
      sortSel, prev, info, next),
    h("div", { class: "hx-table-scroll" }, table));

  function apply() {
    let v = all;
    if (opFilter >= 0) v = v.filter((i) => nodes.op[i] === opFilter);
    if (sort === "ms-desc" && times) {
      const t = times;
      v = Int32Array.from(v).sort((a, b) => Number(t[a] !== t[a]) - Number(t[b] !== t[b]) || t[b] - t[a] || a - b);
    } else if (sort.startsWith("conf")) {
      v = Int32Array.from(v);
      const c = nodes.confidence, s = sort === "conf-asc" ? 1 : -1;
      // NaN (unknown) confidences sort last either way.
      v.sort((a, b) => Number(c[a] !== c[a]) - Number(c[b] !== c[b]) || s * (c[a] - c[b]) || a - b);
    }
    view = v;
    page = 0;
    render();
  }

  function go(p) {
    const pages = Math.max(1, Math.ceil(view.length / PAGE));
    page = Math.min(pages - 1, Math.max(0, p));
    render();
  }

  function render() {
    const a = page * PAGE, b = Math.min(view.length, a + PAGE);
    const trs = [];
    for (let k = a; k < b; k++) {
      const i = view[k];
      const m = nodes.module[i];
      const conf = nodes.confidence[i];
      const mod = m < 0 ? null : tree.names[m];
      const modCell = m < 0
        ? h("td", { class: "hx-untagged", text: "untagged" })
        : h("td", { class: "hx-mod", title: `${mod || rootName()} — ${tree.classes[m] || ""}` },
            h("a", { href: "#", text: mod || rootName(), onclick: (e) => { e.preventDefault(); onSelectModule(m); } }));
      const low = conf === conf && conf < 0.5;
      trs.push(h("tr", { "data-testid": "hierx-node-row", "data-node-index": i, class: i === selNode ? "hx-node-on" : null },
        h("td", { class: "hx-node-name", text: nodes.name(i) }),
        h("td", { text: nodes.ops[nodes.op[i]] ?? "" }),
        modCell,
        h("td", { class: "hx-num" + (low ? " hx-low" : ""), text: conf === conf ? conf.toFixed(3) : "–" }),
        h("td", { class: "hx-src", text: m < 0 ? "" : SOURCES[nodes.source[i]] || "unknown" }),
        times ? h("td", { class: "hx-num hx-ms", text: fmtMs(times[i]) }) : null));
    }
    tbody.replaceChildren(...trs);
    info.textContent = view.length ? `${fmtInt(a + 1)}–${fmtInt(b)} of ${fmtInt(view.length)}` : "no nodes";
    prev.disabled = page === 0;
    next.disabled = b >= view.length;
  }

  function setRows(idx) { all = idx; apply(); }

  /** Shows node i's page and marks its row (-1: none). @param {number} i */
  function setNode(i) {
    selNode = i;
    const k = view.indexOf(i);
    if (k >= 0) page = Math.floor(k / PAGE);
    render();
    const row = tbody.querySelector(".hx-node-on");
    if (row) row.scrollIntoView({ block: "nearest" });
  }

  function setOpFilter(op, onClear) {
    opFilter = op;
    chip.replaceChildren(op >= 0
      ? h("span", { class: "hx-chip", "data-testid": "hierx-op-filter" },
          h("span", { text: `op: ${nodes.ops[op]}` }),
          h("button", { class: "hx-chip-x", "aria-label": "clear op filter", text: "×", onclick: onClear }))
      : "");
    apply();
  }

  /** Per-node ms (null: no ms column). @param {Float64Array | null} t */
  function setTimes(t) {
    if (t === times) return;
    times = t;
    table.classList.toggle("hx-with-ms", !!t);
    renderHead();
    if (!t && sort === "ms-desc") { sort = "graph"; /** @type {HTMLSelectElement} */ (sortSel).value = "graph"; }
    apply();
  }

  return { el, setRows, setOpFilter, setNode, setTimes, rows: () => view };
}
