import { test } from "node:test";
import assert from "node:assert/strict";
import { decode } from "../src/data.js";
import { buildLevel, layoutLevel } from "../src/graphmodel.js";
import { cnn } from "./fixture.js";

const data = () => { const p = cnn(); return decode(p.tree, p.nodes, p.graph); };
const ids = (level, kind) => level.items.filter((it) => it.kind === kind).map((it) => it.id).sort();
const edge = (level, from, to) => level.edges.find((e) => e.from === from && e.to === to);

test("the root level: child modules as boxes, own nodes as ops, model inputs and outputs as ports", () => {
  const d = data();
  const lv = buildLevel(d, 0, new Set());
  const name = (id) => d.tree.names[+id.slice(1)];
  assert.deepEqual(ids(lv, "module").map(name).sort(), ["blocks", "head", "stem"]);
  assert.deepEqual(ids(lv, "op"), ["n6"]); // the untagged Flatten belongs to the root's own level
  assert.deepEqual(ids(lv, "in"), ["i0"]);
  assert.deepEqual(ids(lv, "out"), ["o8"]);
  const m = (s) => `m${d.tree.index.get(s)}`;
  assert.ok(edge(lv, "i0", m("stem")) && edge(lv, m("stem"), m("blocks")) && edge(lv, m("blocks"), "n6")
    && edge(lv, "n6", m("head")) && edge(lv, m("head"), "o8"));
  assert.equal(lv.edges.length, 5); // values inside a box (c1, r1, ...) draw no edge
});

test("a module's level: values from outside are input ports, values leaving are output ports", () => {
  const d = data();
  const b0 = d.tree.index.get("blocks.0");
  const lv = buildLevel(d, b0, new Set());
  assert.deepEqual(ids(lv, "op"), ["n3"]); // its own Add
  assert.deepEqual(ids(lv, "in"), ["i1"]); // s enters twice (conv1 and add1): one port
  assert.deepEqual(ids(lv, "out"), ["o4"]);
  const conv = `m${d.tree.index.get("blocks.0.conv")}`;
  assert.deepEqual(edge(lv, "i1", conv).values, [1]);
  assert.ok(edge(lv, "i1", "n3"));
});

test("expanding a child opens it in place as a cluster; collapsing restores the box", () => {
  const d = data();
  const blocks = d.tree.index.get("blocks"), b1 = d.tree.index.get("blocks.1");
  const lv = buildLevel(d, 0, new Set([blocks]));
  assert.deepEqual(ids(lv, "cluster"), [`m${blocks}`]);
  const inside = lv.items.filter((it) => it.parent === `m${blocks}`).map((it) => d.tree.names[it.index]).sort();
  assert.deepEqual(inside, ["blocks.0", "blocks.1"]);
  // an expanded grandchild whose parent is closed stays hidden
  const lv2 = buildLevel(d, 0, new Set([b1]));
  assert.deepEqual(ids(lv2, "cluster"), []);
  assert.equal(lv2.items.length, buildLevel(d, 0, new Set()).items.length);
});

test("beyond maxOps, op nodes fold into one 'more' box per module, edges kept", () => {
  const d = data();
  const b0 = d.tree.index.get("blocks.0");
  const lv = buildLevel(d, 0, new Set([d.tree.index.get("blocks"), b0, d.tree.index.get("blocks.0.conv"),
    d.tree.index.get("blocks.0.act")]), { maxOps: 2 });
  assert.equal(lv.ops, 2);
  assert.equal(lv.hidden, 2);
  const more = lv.items.filter((it) => it.kind === "more");
  assert.equal(more.reduce((a, it) => a + it.count, 0), 2);
});

test("layout: every item placed, clusters around their children, edges routed", () => {
  const d = data();
  const blocks = d.tree.index.get("blocks");
  const lv = buildLevel(d, 0, new Set([blocks]));
  const size = layoutLevel(lv);
  assert.ok(size.width > 0 && size.height > 0);
  for (const it of lv.items) assert.ok(Number.isFinite(it.x) && Number.isFinite(it.y), it.id);
  const cl = lv.items.find((it) => it.id === `m${blocks}`);
  for (const it of lv.items.filter((x) => x.parent === cl.id)) {
    assert.ok(Math.abs(it.x - cl.x) <= cl.width / 2 && Math.abs(it.y - cl.y) <= cl.height / 2, it.id);
  }
  for (const e of lv.edges) assert.ok(e.points.length >= 2);
  const y = (id) => lv.items.find((it) => it.id === id).y;
  assert.ok(y("i0") < y("o8")); // top to bottom
});

test("beyond maxBoxes children of one parent, the rest fold into one box", () => {
  const d = data();
  const lv = buildLevel(d, 0, new Set([d.tree.index.get("blocks")]), { maxBoxes: 1 });
  const boxes = lv.items.filter((it) => it.kind === "module").map((it) => d.tree.names[it.index]);
  assert.deepEqual(boxes, ["stem", "blocks.0"]); // one per parent
  const more = lv.items.filter((it) => it.kind === "more" && it.modules);
  assert.deepEqual(more.map((it) => [it.id, it.modules]).sort(), [["y0", 1], [`y${d.tree.index.get("blocks")}`, 1]]);
  for (const e of lv.edges) assert.ok(lv.items.some((it) => it.id === e.from) && lv.items.some((it) => it.id === e.to), `${e.from}>${e.to}`);
  layoutLevel(lv);
});
