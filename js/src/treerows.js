// The module tree's state, without the DOM (js/test/views.test.js): which rows are visible for the
// expanded set or a filter, opening a path, and what a key press does.

/** Root and depth-1 modules open. @param {import("./data.js").Data["tree"]} tree */
export function initialExpanded(tree) {
  const expanded = new Uint8Array(tree.n);
  for (let i = 0; i < tree.n; i++) if (tree.depth[i] <= 1) expanded[i] = 1;
  return expanded;
}

/**
 * The visible rows, top to bottom: with a filter its matches and their ancestors, else the
 * pre-order walk that skips the subtree of each collapsed row in one step.
 * @param {import("./data.js").Data["tree"]} tree @param {Uint8Array} expanded
 * @param {{show: Uint8Array} | null} filter
 */
export function visibleRows(tree, expanded, filter) {
  const out = [];
  if (filter) {
    for (let i = 0; i < tree.n; i++) if (filter.show[i]) out.push(i);
  } else {
    for (let i = 0; i < tree.n; ) { out.push(i); i += expanded[i] ? 1 : tree.size[i]; }
  }
  return Int32Array.from(out);
}

/** Opens every ancestor of module i. @param {import("./data.js").Data["tree"]} tree @param {Uint8Array} expanded @param {number} i */
export function openPath(tree, expanded, i) {
  for (let p = tree.parent[i]; p >= 0; p = tree.parent[p]) expanded[p] = 1;
}

/**
 * What a key does in the tree: up/down move the selection, right opens, left closes (on a leaf or
 * a closed row it goes to the parent). Returns {select} or {toggle}, or null for other keys.
 * @param {string} key @param {Int32Array} rows @param {number} selected
 * @param {import("./data.js").Data["tree"]} tree @param {Uint8Array} expanded @param {boolean} filtering
 * @returns {{select?: number, toggle?: number} | null}
 */
export function keyAction(key, rows, selected, tree, expanded, filtering) {
  const k = rows.indexOf(selected);
  if (key === "ArrowDown") return k + 1 < rows.length ? { select: rows[k + 1] } : {};
  if (key === "ArrowUp") return k > 0 ? { select: rows[k - 1] } : {};
  if (key === "ArrowRight") return !filtering && tree.size[selected] > 1 && !expanded[selected] ? { toggle: selected } : {};
  if (key === "ArrowLeft") {
    if (filtering) return {};
    if (expanded[selected] && tree.size[selected] > 1 && selected !== 0) return { toggle: selected };
    return tree.parent[selected] >= 0 ? { select: tree.parent[selected] } : {};
  }
  return null;
}
