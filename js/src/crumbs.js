// The breadcrumbs of the selected module: the root (named by the model's class) down to it.
import { h, lastComponent } from "./data.js";

/** @param {{rootName: () => string, onSelect: (i: number) => void}} opts */
export function createCrumbs({ rootName, onSelect }) {
  const el = h("nav", { class: "hx-crumbs", "data-testid": "hierx-breadcrumbs", "aria-label": "selected module path" });
  /** @param {import("./data.js").Data["tree"]} tree @param {number} sel */
  function show(tree, sel) {
    const items = [];
    for (let p = sel; p >= 0; p = tree.parent[p]) items.unshift(p);
    el.replaceChildren(...items.flatMap((i, k) => [
      k ? h("span", { class: "hx-crumb-sep", text: "›" }) : null,
      h("button", { class: "hx-crumb" + (i === sel ? " hx-crumb-cur" : ""), "data-module": tree.names[i],
        title: tree.names[i] || rootName(), text: i === 0 ? rootName() : lastComponent(tree.names[i]),
        onclick: () => onSelect(i) }),
    ].filter(Boolean)));
  }
  return { el, show };
}
