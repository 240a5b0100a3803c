// The module tree: a virtualized list of the visible rows (only rows in the viewport are in the
// DOM), so expanding all of a 1,000-module (or 100k-module) tree costs the same as a small one.
import { h, lastComponent } from "./data.js";
import { filterModules } from "./search.js";
import { initialExpanded, visibleRows, openPath, keyAction } from "./treerows.js";

/**
 * A numeric column of the tree (the chosen metric's: three, or compare's four).
 * @typedef {object} Column
 * @property {string} head
 * @property {string} title  what the column means (header tooltip)
 * @property {(i: number) => string} text
 * @property {(i: number) => number} [bar]  0..1: an inline bar under the value
 * @property {(i: number) => string} [cls]  extra class of the cell
 * @property {(i: number) => string} [tip]  the cell's tooltip ("" for none)
 */

const ROW_H = 22; // px; fixed so a row's position is index * ROW_H
const OVERSCAN = 8;

/**
 * @param {{data: import("./data.js").Data, rootLabel: string, columns: Column[], onSelect: (i: number) => void}} opts
 */
export function createTree({ data, rootLabel, columns, onSelect }) {
  const { tree } = data;
  const expanded = initialExpanded(tree);
  let selected = 0;
  let filter = null; // { show: Uint8Array, match: Uint8Array, count } while searching
  let rows = new Int32Array(0);
  let win = [-1, -1];

  const spacer = h("div", { class: "hx-tree-spacer", role: "tree" });
  const scroller = h("div", { class: "hx-tree-scroll", tabindex: "0" }, spacer);
  const head = h("div", { class: "hx-tree-head hx-tree-grid" });
  function renderHead() {
    // The grid's numeric tracks follow the column count (the stylesheet's three widths by default).
    if (columns.length === 3) el.style.removeProperty("--hx-num-cols");
    else el.style.setProperty("--hx-num-cols", `repeat(${columns.length}, 4.4em)`);
    head.replaceChildren(h("span", { text: "module" }), h("span", { text: "class" }),
      ...columns.map((c) => h("span", { class: "hx-num", text: c.head, title: c.title })));
  }
  const el = h("div", { class: "hx-tree", "data-testid": "hierx-tree" }, head, scroller);

  function computeRows() {
    rows = visibleRows(tree, expanded, filter);
    spacer.style.height = `${rows.length * ROW_H}px`;
    win = [-1, -1];
  }

  function rowEl(i, k) {
    const name = tree.names[i];
    const hasKids = tree.size[i] > 1;
    const open = filter ? true : !!expanded[i];
    const caret = hasKids
      ? h("button", { class: "hx-caret", tabindex: "-1", "aria-label": open ? "collapse" : "expand",
          text: open ? "▾" : "▸", disabled: !!filter,
          onclick: (e) => { e.stopPropagation(); toggle(i); } })
      : h("span", { class: "hx-caret" });
    const label = i === 0 ? rootLabel : lastComponent(name);
    const cls = ["hx-row", "hx-tree-grid"];
    if (i === selected) cls.push("hx-selected");
    if (!tree.executed[i]) cls.push("hx-dim");
    if (filter && filter.match[i]) cls.push("hx-match");
    const row = h("div", {
      class: cls.join(" "), role: "treeitem", "data-testid": "hierx-tree-row", "data-module": name,
      "aria-level": tree.depth[i] + 1, "aria-selected": i === selected ? "true" : "false",
      "aria-expanded": hasKids ? String(open) : null,
      title: (i === 0 ? rootLabel : name) + (tree.executed[i] ? "" : " — not executed in the trace"),
      onclick: () => onSelect(i),
    },
      h("span", { class: "hx-name-cell", style: `padding-left:${tree.depth[i] * 14}px` },
        caret, h("span", { class: "hx-name", text: label })),
      h("span", { class: "hx-class", text: tree.classes[i] || "" }),
      ...columns.map((c) => cell(c, i)));
    row.style.top = `${k * ROW_H}px`;
    return row;
  }

  /** @param {Column} c @param {number} i */
  function cell(c, i) {
    const e = h("span", { class: "hx-num" + (c.cls ? " " + c.cls(i) : ""), text: c.text(i), title: c.tip ? c.tip(i) || null : null });
    const f = c.bar ? c.bar(i) : 0;
    if (f > 0) { // the inline bar: a background gradient sized to the value
      e.classList.add("hx-barcell");
      e.style.setProperty("--hx-bar", `${Math.min(100, f * 100).toFixed(1)}%`);
    }
    return e;
  }

  /** @param {Column[]} cols */
  function setColumns(cols) {
    columns = cols;
    renderHead();
    renderWindow(true);
  }

  function renderWindow(force) {
    const top = scroller.scrollTop;
    const vh = scroller.clientHeight || 440;
    const a = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN);
    const b = Math.min(rows.length, Math.ceil((top + vh) / ROW_H) + OVERSCAN);
    if (!force && a === win[0] && b === win[1]) return;
    win = [a, b];
    const frag = [];
    for (let k = a; k < b; k++) frag.push(rowEl(rows[k], k));
    spacer.replaceChildren(...frag);
  }

  function refresh() { computeRows(); renderWindow(true); }

  function toggle(i) {
    if (filter) return;
    expanded[i] = expanded[i] ? 0 : 1;
    refresh();
  }

  // Open every ancestor of i so it is reachable, and scroll it into view.
  function reveal(i) {
    openPath(tree, expanded, i);
    if (filter && !filter.show[i]) return;
    computeRows();
    const k = rows.indexOf(i);
    if (k >= 0) {
      const vh = scroller.clientHeight || 440;
      const y = k * ROW_H;
      if (y < scroller.scrollTop || y + ROW_H > scroller.scrollTop + vh) {
        scroller.scrollTop = Math.max(0, y - vh / 2);
      }
    }
    renderWindow(true);
  }

  function setSelected(i) {
    selected = i;
    reveal(i);
  }

  function setFilter(q) {
    filter = filterModules(tree, q);
    scroller.scrollTop = 0;
    refresh();
    return filter ? filter.count : 0;
  }

  function expandAll() { expanded.fill(1); refresh(); }
  function collapseAll() { expanded.fill(0); expanded[0] = 1; scroller.scrollTop = 0; refresh(); }

  scroller.addEventListener("keydown", (e) => {
    const act = keyAction(e.key, rows, selected, tree, expanded, !!filter);
    if (!act) return;
    if (act.select !== undefined) onSelect(act.select);
    if (act.toggle !== undefined) toggle(act.toggle);
    e.preventDefault();
  });
  scroller.addEventListener("scroll", () => renderWindow(false), { passive: true });

  renderHead();
  refresh();
  return { el, setSelected, setFilter, expandAll, collapseAll, setColumns, refresh: () => renderWindow(true) };
}
