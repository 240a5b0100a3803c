// The explorer's views without a browser: their logic is pure functions of the decoded payload.
import { test } from "node:test";
import assert from "node:assert/strict";
import { decode, decodeMetrics, subtreeStats } from "../src/data.js";
import { metricOptions, treeColumns, graphMetric, chartSpecs, byModule } from "../src/metrics.js";
import { filterModules, searchNodes } from "../src/search.js";
import { csvLine, nodesCsv, modulesCsv } from "../src/csv.js";
import { createState } from "../src/state.js";
import { initialExpanded, visibleRows, openPath, keyAction } from "../src/treerows.js";
import { chartGeometry } from "../src/chartgeom.js";
import { ioText } from "../src/header.js";
import { cnn } from "./fixture.js";

const data = () => { const p = cnn(); return decode(p.tree, p.nodes, p.graph); };
const f64 = (a) => new Float64Array(a);
const latency = (d) => {
  const n = d.tree.n;
  const self = f64(Array.from({ length: n }, (_, i) => (d.tree.names[i] === "blocks.0.conv" ? 2 : d.tree.names[i] === "head" ? 1 : 0)));
  const total = f64(Array.from({ length: n }, (_, i) => {
    let s = 0;
    for (let c = i; c < i + d.tree.size[i]; c++) s += self[c];
    return s;
  }));
  const nodeMs = f64(Array.from({ length: d.nodes.n }, (_, i) => (d.nodes.name(i) === "conv1" ? 2 : d.nodes.name(i) === "gemm" ? 1 : NaN)));
  const fused = d.tree.names.map((m) => (m === "blocks.0.act" ? "blocks.0.conv" : null));
  return decodeMetrics({ latency: { self_ms: self, total_ms: total, share: f64(Array.from(total, (t) => t / 3)), kernel_ms: 3,
    unattributed_ms: 0, by_op_type: { Conv: 2, Gemm: 1 }, node_ms: nodeMs, fused_into: fused } }, n, d.nodes.n);
};

test("metric selector: latency and divergence listed before they exist, with how to fill them", () => {
  const opts = metricOptions({});
  assert.deepEqual(opts.map((o) => [o.value, o.enabled]), [["nodes", true], ["latency", false], ["divergence", false], ["compare", false]]);
  assert.match(opts[1].text, /result\.profile\(\)/);
  assert.match(opts[2].hint, /hierx report --validate/);
  assert.equal(metricOptions(latency(data()))[1].text, "latency (ms)");
});

test("latency columns say 'median' and name the module a fused one runs in", () => {
  const d = data(), L = latency(d);
  const cols = treeColumns("latency", d, L);
  assert.ok(cols.every((c) => !/mean/.test(c.title)) && /median/.test(cols[0].title));
  const act = d.tree.index.get("blocks.0.act");
  assert.equal(cols[0].text(act), "fused");
  assert.match(cols[0].tip(act), /fused into blocks\.0\.conv/);
  assert.equal(cols[1].text(d.tree.index.get("blocks")), "2.00");
  const g = graphMetric("latency", d, L, 0);
  assert.equal(g.text(act), "fused into blocks.0.conv");
  assert.equal(g.module(d.tree.index.get("blocks")), 1); // the largest in the selection
  assert.equal(d.nodes.name(1), "conv1");
  assert.equal(g.node(1), 1); // conv1 carries the most time
  assert.equal(graphMetric("nodes", d, L, 0), null);
});

test("charts follow the selection: the op-type chart too, from per-node times", () => {
  const d = data(), L = latency(d);
  const b0 = d.tree.index.get("blocks.0");
  const specs = chartSpecs({ metric: "latency", data: d, metrics: L, stats: subtreeStats(d, b0), sel: b0, opFilter: -1, rootName: "Net" });
  assert.deepEqual(specs.a.categories, ["Conv"]);
  assert.deepEqual(specs.a.series[0].values, [2]);
  assert.match(specs.a.title, /in 0 \(median ms per run\)/);
  assert.deepEqual(byModule(d, 0, L.latency.total, L.latency.self[0]), [["blocks", 2], ["head", 1]]);
  const root = chartSpecs({ metric: "latency", data: d, metrics: L, stats: subtreeStats(d, 0), sel: 0, opFilter: -1, rootName: "Net" });
  assert.deepEqual(root.a.categories, ["Conv", "Gemm"]);
  assert.match(root.b.title, /in Net/);
});

test("the confidence histogram says 'all N nodes exact' instead of one bar", () => {
  const d = data();
  const untagged = chartSpecs({ metric: "nodes", data: d, metrics: {}, stats: subtreeStats(d, 0), sel: 0, opFilter: -1, rootName: "Net" });
  assert.equal(untagged.b.categories.length, 20); // the untagged Flatten is not exact
  d.nodes.module[6] = 0;
  const specs = chartSpecs({ metric: "nodes", data: d, metrics: {}, stats: subtreeStats(d, 0), sel: 0, opFilter: -1, rootName: "Net" });
  assert.deepEqual(specs.b.categories, []);
  assert.equal(specs.b.empty, "all 8 nodes exact (confidence 1.0)");
  d.nodes.confidence[0] = 0.5;
  const mixed = chartSpecs({ metric: "nodes", data: d, metrics: {}, stats: subtreeStats(d, 0), sel: 0, opFilter: -1, rootName: "Net" });
  assert.equal(mixed.b.categories.length, 20);
  assert.equal(mixed.b.series[0].values.reduce((a, b) => a + b, 0), 8);
});

test("search: modules by name or class, nodes by name or op type", () => {
  const d = data();
  const f = filterModules(d.tree, "ReLU");
  assert.equal(f.count, 2);
  assert.ok(f.show[d.tree.index.get("blocks")] && !f.match[d.tree.index.get("blocks")]);
  assert.equal(filterModules(d.tree, "  "), null);
  const byName = Array.from(searchNodes(d.nodes, "RELU1"), (i) => d.nodes.name(i));
  assert.deepEqual(byName, ["relu1"]);
  const byOp = Array.from(searchNodes(d.nodes, "conv"), (i) => d.nodes.name(i));
  assert.deepEqual(byOp, ["conv0", "conv1", "conv2"]); // op type Conv (and names containing "conv")
  assert.deepEqual(Array.from(searchNodes(d.nodes, "gemm"), (i) => d.nodes.name(i)), ["gemm"]);
});

test("CSV: quoted where needed, every node and module, measured columns only", () => {
  assert.equal(csvLine(["a,b", 'say "hi"', "x\ny", null, NaN, 1.5]), '"a,b","say ""hi""","x\ny",,,1.5');
  // Names a spreadsheet would run as formulas stay text; numbers (negative ones too) stay numbers.
  assert.equal(csvLine(["=HYPERLINK(1)", "+x", "-y", "@SUM(A1)", "\tz", -2.5, "a=b"]), "'=HYPERLINK(1),'+x,'-y,'@SUM(A1),'\tz,-2.5,a=b");
  const d = data();
  const lines = nodesCsv(d, subtreeStats(d, 0).idx, {}).trim().split("\r\n");
  assert.equal(lines[0], "node,op_type,module,module_class,confidence,source");
  assert.equal(lines.length, 9);
  assert.equal(lines[7], "flat,Flatten,,,1,untagged");
  const withMs = nodesCsv(d, [1], latency(d)).trim().split("\r\n");
  assert.equal(withMs[1], "conv1,Conv,blocks.0.conv,Conv2d,1,exact,2");
  const mods = modulesCsv(d, latency(d)).trim().split("\r\n");
  assert.equal(mods[0], "module,module_class,parent,own_nodes,total_nodes,params,executed,self_ms,total_ms,share,fused_into");
  assert.equal(mods.length, 1 + d.tree.n);
  assert.ok(mods.some((l) => l.startsWith("blocks.0.act,ReLU,blocks.0,1,1,0,true,0,0,0,blocks.0.conv")));
});

test("state: subscribers get the keys that changed, and nothing for equal values", () => {
  const s = createState({ sel: 0, metric: "nodes", opFilter: -1, node: -1 });
  const seen = [];
  s.on((_, changed) => seen.push([...changed].sort().join(",")));
  s.set({ sel: 3, metric: "nodes" });
  s.set({ sel: 3 });
  s.redraw({ metric: "nodes" });
  assert.deepEqual(seen, ["sel", "metric"]);
  assert.equal(s.get().sel, 3);
  s.redraw({ metric: "latency" });
  assert.deepEqual(seen, ["sel", "metric", "metric"]);
  assert.equal(s.get().metric, "latency");
});

test("tree rows: collapsed subtrees skipped, paths opened, keys", () => {
  const d = data(), t = d.tree;
  const exp = initialExpanded(t);
  const names = (rows) => Array.from(rows, (i) => t.names[i]);
  assert.deepEqual(names(visibleRows(t, exp, null)), ["", "stem", "blocks", "blocks.0", "blocks.1", "head"]);
  openPath(t, exp, t.index.get("blocks.1.act"));
  assert.ok(names(visibleRows(t, exp, null)).includes("blocks.1.act"));
  const rows = visibleRows(t, exp, null);
  assert.deepEqual(keyAction("ArrowDown", rows, 0, t, exp, false), { select: t.index.get("stem") });
  assert.deepEqual(keyAction("ArrowLeft", rows, t.index.get("stem"), t, exp, false), { select: 0 });
  assert.deepEqual(keyAction("ArrowLeft", rows, t.index.get("blocks.1"), t, exp, false), { toggle: t.index.get("blocks.1") });
  assert.equal(keyAction("a", rows, 0, t, exp, false), null);
  assert.deepEqual(names(visibleRows(t, exp, filterModules(t, "head"))), ["", "head"]);
});

test("chart geometry: integer ticks for counts, stacked bars, hit areas under the bars", () => {
  const g = chartGeometry({ title: "t", categories: ["a", "b"], series: [{ name: "exact", values: [1, 2] }, { name: "inferred", values: [1, 0] }],
    integer: true }, 400);
  assert.ok(g.ticks.every((t) => Number.isInteger(t.v)), JSON.stringify(g.ticks.map((t) => t.v)));
  assert.equal(g.bars[0].rects.length, 2);
  assert.ok(g.bars[0].rects[1].y < g.bars[0].rects[0].y); // stacked upwards
  assert.equal(g.bars[0].tip, "a: 1 exact 1 inferred");
  const hit = g.bars[1].hit, r = g.bars[1].rects[0];
  assert.ok(hit.x <= r.x && hit.x + hit.w >= r.x + r.w);
  assert.equal(chartGeometry({ title: "t", categories: [], series: [], empty: "all 3 nodes exact" }, 400).empty, "all 3 nodes exact");
});

test("header: inputs and outputs with dtypes and named dynamic axes", () => {
  assert.equal(ioText({ kind: "input", name: "input_ids", dtype: "int64", shape: ["batch", "seq"] }), "input_ids int64 [batch, seq]");
  assert.equal(ioText({ kind: "output", name: "last_hidden_state", dtype: "float32", shape: ["batch", "seq", 32] }),
    "last_hidden_state float32 [batch, seq, 32]");
  assert.equal(ioText({ kind: "output", name: "y", dtype: "", shape: null }), "y ? [rank unknown]");
});

test("compare: own SQNR colours the graph (below the threshold at full strength), columns and charts", () => {
  const d = data(), n = d.tree.n;
  const col = (f) => new Float64Array(Array.from({ length: n }, (_, i) => f(d.tree.names[i])));
  const own = { "blocks.0": 12, "blocks.1": 70, head: Infinity };
  const m = decodeMetrics({ compare: { ms_a: col(() => 1), ms_b: col(() => 2), time_ratio: col((x) => (x === "head" ? 0.5 : 2)),
    sqnr_db: col((x) => own[x] ?? NaN), own_sqnr_db: col((x) => own[x] ?? NaN), first_divergent: "blocks.0", sqnr_threshold_db: 20 } }, n, d.nodes.n);
  assert.equal(metricOptions(m)[3].text, "compare (own SQNR dB)");
  const cols = treeColumns("compare", d, m);
  const b0 = d.tree.index.get("blocks.0"), b1 = d.tree.index.get("blocks.1"), head = d.tree.index.get("head");
  assert.deepEqual(cols.map((c) => c.head), ["ms a", "ms b", "b/a", "own dB"]);
  assert.deepEqual(cols.map((c) => c.text(head)), ["1.00", "2.00", "0.50×", "∞"]);
  assert.deepEqual([cols[3].text(b0), cols[3].cls(b0), cols[3].cls(b1)], ["12.0", "hx-bad", ""]);
  assert.match(cols[3].tip(b0), /boundary.*12\.0 dB/);
  const g = graphMetric("compare", d, m, 0);
  assert.equal(g.module(b0), 1);
  assert.ok(g.module(b1) < 0.2);
  assert.equal(g.module(head), null); // equal outputs: nothing to colour
  assert.equal(g.text(b0), "own 12.0 dB");
  const specs = chartSpecs({ metric: "compare", data: d, metrics: m, stats: subtreeStats(d, 0), sel: 0, opFilter: -1, rootName: "Net" });
  assert.deepEqual(specs.a.categories, ["stem", "blocks", "head"]); // time by module, a and b side by side
  assert.deepEqual(specs.a.series.map((x) => [x.name, x.values]), [["a", [1, 1, 1]], ["b", [2, 2, 2]]]);
  const g2 = chartGeometry(specs.a, 400);
  const [ra, rb] = g2.bars[0].rects; // side by side: both start at the axis, b below a, b twice as long
  assert.deepEqual([ra.series, rb.series, ra.x, (rb.y - ra.y).toFixed(6), rb.w / ra.w], ["a", "b", rb.x, ra.h.toFixed(6), 2]);
  assert.equal(g2.bars[0].value.text, "1.00 / 2.00");
  const blocks = chartSpecs({ metric: "compare", data: d, metrics: m, stats: subtreeStats(d, d.tree.index.get("blocks")), sel: d.tree.index.get("blocks"), opFilter: -1, rootName: "Net" });
  assert.deepEqual(blocks.b.categories, ["0", "1"]); // 0 adds the most error
  assert.ok(modulesCsv(d, m).split("\r\n")[0].endsWith("ms_a,ms_b,time_ratio,sqnr_db,own_sqnr_db"));
});
