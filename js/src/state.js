// The explorer's state: the selected module (mirrors the synced `selected` trait), the metric,
// the op-type filter and the marked node. Views subscribe and get the keys that changed; set()
// with equal values notifies nobody. Pure (js/test/views.test.js).

/**
 * @typedef {object} ExplorerState
 * @property {number} sel  selected module (tree index)
 * @property {import("./metrics.js").Metric} metric
 * @property {number} opFilter  op type index shown in the node table (-1: all)
 * @property {number} node  marked node (-1: none)
 */

/** @param {ExplorerState} initial */
export function createState(initial) {
  let state = { ...initial };
  /** @type {Set<(s: ExplorerState, changed: Set<string>) => void>} */
  const subs = new Set();
  return {
    get: () => state,
    /** @param {Partial<ExplorerState>} patch */
    set(patch) {
      const changed = new Set(Object.keys(patch).filter((k) => state[k] !== patch[k]));
      if (!changed.size) return;
      state = { ...state, ...patch };
      for (const f of subs) f(state, changed);
    },
    /**
     * Sets `patch` and notifies each of its keys as changed, equal or not: one redraw for new data
     * or new metrics. @param {Partial<ExplorerState>} patch
     */
    redraw(patch) {
      state = { ...state, ...patch };
      for (const f of subs) f(state, new Set(Object.keys(patch)));
    },
    /** @param {(s: ExplorerState, changed: Set<string>) => void} f @returns {() => void} unsubscribe */
    on(f) { subs.add(f); return () => subs.delete(f); },
  };
}
