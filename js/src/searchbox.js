// The filter box: filters the module tree as you type and finds nodes by name or op type; Enter
// (or the button) jumps to the next matching node, Shift+Enter to the previous one.
import { h, fmtInt } from "./data.js";
import { searchNodes } from "./search.js";

/**
 * @param {{nodes: () => import("./data.js").Data["nodes"], filterTree: (q: string) => number, jump: (i: number) => void,
 *   timed: (fn: () => void) => void}} opts
 */
export function createSearchBox({ nodes, filterTree, jump, timed }) {
  /** @type {Int32Array} */
  let hits = new Int32Array(0);
  let at = -1, timer = 0;
  const input = /** @type {HTMLInputElement} */ (h("input", { class: "hx-search", type: "search",
    placeholder: "filter modules (name, class) or find nodes (name, op type)", "data-testid": "hierx-search",
    "aria-label": "filter modules, find nodes",
    onkeydown: (e) => { if (e.key === "Enter") { e.preventDefault(); next(e.shiftKey ? -1 : 1); } } }));
  const matches = h("span", { class: "hx-matches" });
  const button = /** @type {HTMLButtonElement} */ (h("button", { class: "hx-btn", "data-testid": "hierx-next-node", hidden: true,
    title: "jump to the next matching node (Enter; Shift+Enter: previous)", onclick: () => next(1) }));

  function next(step) {
    if (!hits.length) return;
    at = (at + step + hits.length) % hits.length;
    timed(() => jump(hits[at]));
    button.textContent = `node ${at + 1} of ${fmtInt(hits.length)} ↵`;
  }

  function run() {
    const q = input.value;
    const n = filterTree(q);
    hits = searchNodes(nodes(), q);
    at = -1;
    const k = hits.length;
    matches.textContent = q.trim() ? `${n} module match${n === 1 ? "" : "es"}, ${fmtInt(k)} node${k === 1 ? "" : "s"}` : "";
    button.hidden = !k;
    button.textContent = k ? "next node ↵" : "";
  }

  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = window.setTimeout(() => timed(run), 80); // debounce typing
  });

  return { parts: [input, matches, button], run, active: () => !!input.value, dispose: () => clearTimeout(timer) };
}
