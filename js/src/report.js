// The standalone HTML report (hierx_nb/notebook/report.py): the same explorer, driven by an
// in-page model instead of a kernel. The payload is the JSON in <script id="hierx-data">, with
// binary columns as {"$b64": "..."}.
import widget from "./widget.js";

/** @param {any} v */
function revive(v) {
  if (Array.isArray(v)) return v.map(revive);
  if (v && typeof v === "object") {
    if (typeof v.$b64 === "string") {
      const bin = atob(v.$b64);
      const u8 = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) u8[i] = bin.charCodeAt(i);
      return new DataView(u8.buffer); // what ipywidgets hands to anywidget
    }
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, revive(x)]));
  }
  return v;
}

/** The subset of anywidget's model API the explorer uses; set() fires change events like Backbone. */
export class PageModel {
  /** @param {Record<string, any>} state */
  constructor(state) {
    this.state = state;
    /** @type {Record<string, Function[]>} */
    this.handlers = {};
    /** @type {{selected: string}[]} what save_changes would have sent to a kernel */
    this.saved = [];
    this.widget_manager = { get_model: () => Promise.reject(new Error("no widget manager in a report")) };
  }
  get(k) { return this.state[k]; }
  set(k, v) {
    const old = this.state[k];
    this.state[k] = v;
    if (old !== v) this.emit(`change:${k}`);
  }
  on(ev, fn) { (this.handlers[ev] ||= []).push(fn); }
  off(ev, fn) { this.handlers[ev] = (this.handlers[ev] || []).filter((f) => f !== fn); }
  emit(ev, ...args) { for (const fn of this.handlers[ev] || []) fn(...args); }
  save_changes() { this.saved.push({ selected: this.state.selected }); }
  send() {}
}

const el = document.getElementById("hierx-app");
// The page as it arrived, before the explorer draws into it: what "download HTML report" saves.
const page = "<!doctype html>\n" + document.documentElement.outerHTML;
const t0 = performance.now();
const model = new PageModel(revive(JSON.parse(document.getElementById("hierx-data").textContent)));
/** @type {any} */ (model).reportHtml = page;
/** @type {any} */ (window).hierx = { model };
widget.render(/** @type {any} */ ({ model, el }));
/** @type {any} */ (window).hierx.firstRenderMs = performance.now() - t0;
