"""The explorer's Python side: payload encoding, size budget, selection sync, build artifact."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import traitlets
from anywidget._file_contents import FileContents

import hierx_nb.notebook.widget as widget_mod
from hierx_nb.errors import Attempt, UnknownModule
from hierx_nb.notebook.payload import SOURCES
from hierx_nb.result import ExportResult

HierxExplorer = widget_mod.HierxExplorer

EVIL_MODULE = "<img src=x onerror=alert(1)>"


def _result(nodes: list[tuple], modules: list[tuple], **kw) -> ExportResult:
    nodes_df = pd.DataFrame(nodes, columns=["node", "op_type", "module", "module_class", "tag", "confidence", "source"])
    modules_df = pd.DataFrame(modules, columns=["module", "module_class", "parent", "depth", "own_nodes",
                                                "total_nodes", "params", "executed"])
    tagged = nodes_df["module"].notna()
    cov = (nodes_df.assign(tagged=tagged).groupby("op_type")
           .agg(nodes=("node", "size"), tagged=("tagged", "sum")).reset_index())
    cov["pct"] = 100.0 * cov["tagged"] / cov["nodes"]
    defaults = dict(model_class="Toy", strategy="dynamo", seconds=1.25, coverage_pct=100.0 * tagged.mean(),
                    attempts=[Attempt("hooks", False, "cannot trace <dynamic> control flow & stuff", 0.5),
                              Attempt("dynamo", True, "", 0.75)])
    defaults.update(kw)
    return ExportResult(nodes=nodes_df, modules=modules_df, coverage=cov, **defaults)


def small_result() -> ExportResult:
    """A toy model with hostile names: markup in a module name, '&' in a class name, an untagged node."""
    modules = [
        ("", "Toy", None, 0, 0, 6, 120, True),
        ("encoder", "Encoder", "", 1, 0, 4, 100, True),
        ("encoder.layer", "ModuleList", "encoder", 2, 0, 4, 100, True),
        ("encoder.layer.0", "Layer", "encoder.layer", 3, 2, 2, 50, True),
        ("encoder.layer.1", "Layer", "encoder.layer", 3, 1, 2, 50, True),
        ("encoder.layer.1.<b>x</b>", "A&B", "encoder.layer.1", 4, 1, 1, 0, True),
        ("head", "Linear", "", 1, 1, 1, 20, True),
        (EVIL_MODULE, "Evil<script>", "", 1, 0, 0, 0, False),
    ]
    nodes = [
        ("/encoder/layer.0/MatMul", "MatMul", "encoder.layer.0", "Layer", "t", 1.0, "exact"),
        ("/encoder/layer.0/Add", "Add", "encoder.layer.0", "Layer", "t", 0.9, "inferred"),
        ("/encoder/layer.1/MatMul", "MatMul", "encoder.layer.1", "Layer", "t", 0.5, "pattern"),
        ("/encoder/layer.1/<b>x</b>/Relu", "Relu", "encoder.layer.1.<b>x</b>", "A&B", "t", 0.25, "inferred"),
        ("/head/Gemm ünïcødé", "Gemm", "head", "Linear", "t", 1.0, "exact"),
        ("Constant_7", "x::<b>C</b>&", None, None, None, np.nan, None),
    ]
    return _result(nodes, modules)


def llama_like_result(layers: int = 70, nodes_per_layer: int = 214) -> ExportResult:
    """~1,000 modules and ~15k nodes, shaped like a 70B LLaMA export."""
    modules = [("", "LlamaForCausalLM", None, 0), ("model", "LlamaModel", "", 1),
               ("model.embed_tokens", "Embedding", "model", 2), ("model.layers", "ModuleList", "model", 2)]
    leaves = []
    for i in range(layers):
        p = f"model.layers.{i}"
        modules.append((p, "LlamaDecoderLayer", "model.layers", 3))
        for sub, cls in [("self_attn", "LlamaAttention"), ("mlp", "LlamaMLP")]:
            modules.append((f"{p}.{sub}", cls, p, 4))
        for q in ["q_proj", "k_proj", "v_proj", "o_proj", "rotary_emb"]:
            modules.append((f"{p}.self_attn.{q}", "Linear" if q != "rotary_emb" else "LlamaRotaryEmbedding",
                            f"{p}.self_attn", 5))
        for q in ["gate_proj", "up_proj", "down_proj", "act_fn"]:
            modules.append((f"{p}.mlp.{q}", "Linear" if q != "act_fn" else "SiLU", f"{p}.mlp", 5))
        for q in ["input_layernorm", "post_attention_layernorm"]:
            modules.append((f"{p}.{q}", "LlamaRMSNorm", p, 4))
        leaves.append([m[0] for m in modules if m[0].startswith(p + ".")] + [p])
    modules += [("model.norm", "LlamaRMSNorm", "model", 2), ("lm_head", "Linear", "", 1)]
    ops = ["MatMul", "Add", "Mul", "Reshape", "Transpose", "Softmax", "Cast", "Sigmoid", "Pow", "ReduceMean",
           "Sqrt", "Div", "Concat", "Slice", "Gather", "Unsqueeze", "Neg", "Cos", "Sin", "Expand"]
    rng = np.random.default_rng(0)
    nodes = []
    for i in range(layers):
        for k in range(nodes_per_layer):
            m = leaves[i][k % len(leaves[i])]
            op = ops[(k * 7 + i) % len(ops)]
            nodes.append((f"/{m.replace('.', '/')}/{op}_{k}", op, m, "X", m, float(rng.uniform(0.3, 1.0)),
                          "inferred" if k % 11 == 0 else "exact"))
    nodes.append(("/lm_head/MatMul", "MatMul", "lm_head", "Linear", "lm_head", 1.0, "exact"))
    mods = [(n, c, p, d, 0, 0, 1_000_000_000 if d == 0 else 4096 * 4096, True) for n, c, p, d in modules]
    return _result(nodes, mods, model_class="LlamaForCausalLM", strategy="dynamo")


def with_metrics(r):
    """``small_result`` with latency and divergence tables shaped like profile() / validate(per_module=True)."""
    names = ["", "encoder", "encoder.layer", "encoder.layer.0", "encoder.layer.1", "encoder.layer.1.<b>x</b>", "head"]
    self_ms = [0.1, 0.0, 0.0, 2.0, 1.0, 0.5, 0.4]
    total = {"": 4.0, "encoder": 3.5, "encoder.layer": 3.5, "encoder.layer.0": 2.0, "encoder.layer.1": 1.5,
             "encoder.layer.1.<b>x</b>": 0.5, "head": 0.4}
    lat = pd.DataFrame({"module": names, "module_class": "X", "nodes": 1, "self_ms": self_ms,
                        "total_ms": [total[n] for n in names], "share": [total[n] / 4.0 for n in names]})
    lat.attrs.update(kernel_ms=4.0, unattributed_ms=0.0, by_op_type={"MatMul": 2.5, "Relu": 0.5, "Gemm": 0.4, "Add": 0.6})
    div = pd.DataFrame({"module": ["encoder.layer.0", "encoder.layer.1", "encoder.layer.1.<b>x</b>", "head"],
                        "module_class": "X", "outputs": 1, "max_abs_diff": [1e-6, 0.8, 0.8, 0.9],
                        "max_rel_diff": [1e-6, 0.1, 0.1, 0.1], "ok": [True, False, False, False]})
    div.attrs["first_divergent"] = "encoder.layer.1.<b>x</b>"
    r.latency, r.divergence = lat, div
    r.warnings = ["output 0 differs from PyTorch by 0.9 <b>(first divergent module: encoder.layer.1.<b>x</b>)</b>"]
    return r


def _arr(buf, dtype):
    return np.frombuffer(buf, dtype=dtype)


def _decode_names(nodes_payload) -> list[str]:
    off = _arr(nodes_payload["name_offsets"], "<u4")
    blob = nodes_payload["names"]
    return [blob[off[i]:off[i + 1]].decode("utf-8") for i in range(len(off) - 1)]


def test_payload_round_trips():
    r = small_result()
    w = HierxExplorer.from_result(r)
    tree, nodes = w.tree, w.nodes
    names = tree["names"]
    assert names[0] == "" and tree["n"] == len(names) == len(r.modules)
    assert set(names) == set(r.modules["module"].fillna(""))
    parent = _arr(tree["parent"], "<i4")
    depth = _arr(tree["depth"], "<i4")
    size = _arr(tree["size"], "<i4")
    assert parent[0] == -1
    for i, name in enumerate(names[1:], 1):  # pre-order: parents first, parent = name prefix here
        assert parent[i] < i
        assert names[parent[i]] == (name.rsplit(".", 1)[0] if "." in name else "")
        assert depth[i] == depth[parent[i]] + 1
        sub = names[i:i + size[i]]
        assert all(s == name or s.startswith(name + ".") for s in sub)
    classes = dict(zip(names, tree["classes"]))
    assert classes["encoder.layer.1.<b>x</b>"] == "A&B" and classes[EVIL_MODULE] == "Evil<script>"

    mod_idx = _arr(nodes["module"], "<i4")
    decoded_modules = [None if k < 0 else names[k] for k in mod_idx]
    expected = [None if pd.isna(m) else m for m in r.nodes["module"]]
    assert decoded_modules == expected
    ops = [nodes["ops"][k] for k in _arr(nodes["op"], "<u2")]
    assert ops == list(r.nodes["op_type"])
    conf = _arr(nodes["confidence"], "<f4")
    np.testing.assert_allclose(conf[:-1], r.nodes["confidence"].to_numpy(dtype="f4")[:-1])
    assert np.isnan(conf[-1])
    assert _decode_names(nodes) == list(r.nodes["node"])
    sources = [SOURCES[k] for k in _arr(nodes["source"], "u1")]
    assert sources == ["exact", "inferred", "pattern", "inferred", "exact", ""]

    own = _arr(tree["own"], "<i4")
    total = _arr(tree["total"], "<i4")
    idx = {n: i for i, n in enumerate(names)}
    assert own[idx["encoder.layer.0"]] == 2 and total[idx["encoder"]] == 4
    assert total[0] == 5  # the untagged node counts in no module
    np.testing.assert_array_equal(_arr(tree["executed"], "u1")[idx[EVIL_MODULE]], 0)
    assert _arr(tree["params"], "<f8")[0] == 120


def test_header():
    w = HierxExplorer.from_result(small_result())
    h = w.header
    assert h["model_class"] == "Toy" and h["strategy"] == "dynamo"
    assert h["nodes"] == 6 and h["tagged"] == 5 and h["modules"] == 8
    assert abs(h["coverage_pct"] - 100 * 5 / 6) < 1e-6 and h["seconds"] == 1.25
    failed = [a for a in h["attempts"] if not a["ok"]]
    assert failed == [{"name": "hooks", "ok": False, "reason": "cannot trace <dynamic> control flow & stuff",
                       "seconds": 0.5, "skipped": False, "switched": []}]
    assert h["onnx_path"] is None and h["structure_only"] is False
    import json
    json.dumps(h)  # plain JSON


def test_large_payload_budget():
    r = llama_like_result()
    assert 14_000 <= len(r.nodes) <= 16_000 and 950 <= len(r.modules) <= 1_100
    w = HierxExplorer.from_result(r)
    size = w.payload_bytes
    print(f"\n15k-node payload: {size / 1e6:.2f} MB ({len(r.nodes)} nodes, {len(r.modules)} modules)")
    assert size < 2_000_000
    # What ipywidgets actually puts on the wire: JSON state + binary buffers.
    from ipywidgets.widgets.widget import _remove_buffers
    state = w.get_state(["tree", "nodes", "header", "selected"])
    json_state, _paths, buffers = _remove_buffers(state)
    import json
    wire = len(json.dumps(json_state)) + sum(len(b) for b in buffers)
    assert wire < 2_000_000
    assert len(buffers) >= 10  # the columns travel as binary buffers, not base64/JSON lists
    mod_idx = _arr(w.nodes["module"], "<i4")
    assert (mod_idx >= 0).all()
    assert [w.tree["names"][k] for k in mod_idx[:50]] == list(r.nodes["module"][:50])


def test_selected_round_trip_and_selection():
    r = small_result()
    w = HierxExplorer.from_result(r)
    r._widget = w
    assert w.selected == "" and len(r.selection) == len(r.nodes)
    w.selected = "encoder.layer.1"
    assert w.selected == "encoder.layer.1"
    assert list(r.selection["node"]) == ["/encoder/layer.1/MatMul", "/encoder/layer.1/<b>x</b>/Relu"]
    w.selected = "encoder.layer.1.<b>x</b>"
    assert list(r.selection["module"]) == ["encoder.layer.1.<b>x</b>"]
    w.selected = EVIL_MODULE
    assert len(r.selection) == 0
    w.selected = ""
    assert len(r.selection) == len(r.nodes)
    # from the front end: the comm delivers a state update
    w.set_state({"selected": "head"})
    assert w.selected == "head" and list(r.selection["node"]) == ["/head/Gemm ünïcødé"]


def test_bad_module_name_raises():
    w = HierxExplorer.from_result(small_result())
    with pytest.raises(UnknownModule, match="no module named 'encoder.layer.7'"):
        w.selected = "encoder.layer.7"
    assert w.selected == ""
    with pytest.raises(UnknownModule, match="did you mean 'encoder.layer'"):
        w.selected = "encoder.layr"  # a typo
    with pytest.raises(UnknownModule):  # from the front end: refused before the trait changes
        w.set_state({"selected": "nope"})
    assert w.selected == ""
    with pytest.raises(UnknownModule):
        HierxExplorer.from_result(small_result(), selected="nope")


def test_result_widget_property():
    r = small_result()
    w = r.widget
    assert isinstance(w, HierxExplorer) and r.widget is w
    w.selected = "head"
    assert len(r.selection) == 1


def test_missing_modules_are_added():
    """Nodes tagged with a module the table lacks still land in the tree (with their ancestors)."""
    r = small_result()
    r.nodes.loc[0, "module"] = "ghost.inner"
    w = HierxExplorer.from_result(r)
    names = w.tree["names"]
    assert "ghost" in names and "ghost.inner" in names
    assert names[_arr(w.nodes["module"], "<i4")[0]] == "ghost.inner"


def test_front_end_built_and_light():
    """One small bundle and one stylesheet, set on the class (anywidget reads each file once)."""
    for path in (widget_mod.ESM_PATH, widget_mod.CSS_PATH):
        assert path.is_file(), "run `cd js && npm ci && npm run build`"
    src = widget_mod.ESM_PATH.read_text(encoding="utf-8")
    # Charts are SVG (no plotly.js in every saved explorer); the graph layout is dagre (~50 kB), not elkjs (~1.4 MB).
    assert "export" in src and len(src) < 120_000
    import re
    assert not re.search(r"""(import|from)\s*\(?\s*["']https?://""", src)  # nothing fetched at runtime
    assert "<style" not in src  # styles come through _css, once per page
    assert isinstance(HierxExplorer.__dict__["_esm"], FileContents)
    assert isinstance(HierxExplorer.__dict__["_css"], FileContents)
    a, b = HierxExplorer.from_result(small_result()), HierxExplorer.from_result(small_result())
    assert a._esm == b._esm == src
    assert a._css == widget_mod.CSS_PATH.read_text(encoding="utf-8")


def test_bad_payload_is_refused():
    """The contract is checked in Python: a malformed payload fails with what is wrong."""
    w = HierxExplorer.from_result(small_result())
    bad_tree = {**w.tree, "depth": w.tree["depth"][:-4]}
    with pytest.raises(traitlets.TraitError, match=r"tree.depth has 28 bytes, expected 32"):
        w.tree = bad_tree
    with pytest.raises(traitlets.TraitError, match="tree.names has 7 entries"):
        w.tree = {**w.tree, "names": w.tree["names"][:-1]}
    out_of_range = np.frombuffer(w.nodes["module"], "<i4").copy()
    out_of_range[0] = 99
    with pytest.raises(traitlets.TraitError, match=r"nodes.module must index tree \(-1 .. 7\)"):
        w.nodes = {**w.nodes, "module": out_of_range.tobytes()}
    with pytest.raises(traitlets.TraitError, match="nodes.source must be bytes"):
        w.nodes = {k: v for k, v in w.nodes.items() if k != "source"} | {"source": None}
    swapped = np.frombuffer(w.tree["parent"], "<i4").copy()
    swapped[1] = 5
    with pytest.raises(traitlets.TraitError, match="pre-order"):
        w.tree = {**w.tree, "parent": swapped.tobytes()}
    assert np.frombuffer(w.tree["depth"], "<i4").size == 8  # the explorer kept its good payload


def test_missing_bundle_message(monkeypatch, tmp_path):
    monkeypatch.setattr(widget_mod, "ESM_PATH", tmp_path / "widget.js")
    with pytest.raises(FileNotFoundError, match="npm run build.*restart"):
        HierxExplorer.from_result(small_result())


def test_metrics_payload_and_refresh():
    r = small_result()
    w = HierxExplorer.from_result(r)
    r._widget = w
    assert w.metrics == {} and "warnings" in w.header and w.header["warnings"] == []
    with_metrics(r)
    r._metrics_changed()
    names = w.tree["names"]
    lat, div = w.metrics["latency"], w.metrics["divergence"]
    total = dict(zip(names, _arr(lat["total_ms"], "<f8")))
    assert total["encoder"] == 3.5 and np.isnan(total[EVIL_MODULE])  # no row: NaN, not 0
    assert lat["kernel_ms"] == 4.0 and lat["by_op_type"] == {"MatMul": 2.5, "Relu": 0.5, "Gemm": 0.4, "Add": 0.6}
    ok = dict(zip(names, _arr(div["ok"], "u1")))
    assert ok["encoder.layer.0"] == 1 and ok["head"] == 0 and ok["encoder"] == 255
    assert div["first_divergent"] == "encoder.layer.1.<b>x</b>"
    assert w.header["warnings"] == r.warnings


def _cnn_export(tmp_path):
    import torch

    import hierx_nb

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(4, 4, 3, padding=1)
            self.act = torch.nn.ReLU()

        def forward(self, x):
            return x + self.act(self.conv(x))

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), Block(), Block(), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 8 * 8, 5)).eval()
    return hierx_nb.export(model, (torch.randn(1, 3, 8, 8),), output=tmp_path / "cnn.onnx")


def test_graph_payload_is_the_onnx_dataflow(tmp_path):
    """The graph part lists every graph input and node output with its producer, consumers, dtype and
    shape, exactly as the ONNX graph has them; a loaded result gets the same graph from its file."""
    import onnx

    import hierx_nb
    from hierx_nb.notebook.payload import check_payload, payload

    r = _cnn_export(tmp_path)
    p = payload(r)
    g, nodes = p["graph"], p["nodes"]
    check_payload(p["tree"], nodes, g)
    names = _decode_names(nodes)
    off = _arr(g["name_offsets"], "<u4")
    values = [g["names"][off[k]:off[k + 1]].decode() for k in range(g["n"])]
    producer, coff, cons = _arr(g["producer"], "<i4"), _arr(g["consumer_offsets"], "<u4"), _arr(g["consumers"], "<i4")
    proto = onnx.load(tmp_path / "cnn.onnx")
    inits = {i.name for i in proto.graph.initializer}
    made = {o: n.name for n in proto.graph.node for o in n.output if o}
    used: dict[str, set] = {}
    for n in proto.graph.node:
        for i in n.input:
            used.setdefault(i, set()).add(n.name)
    expected = [i.name for i in proto.graph.input if i.name not in inits] + [o for n in proto.graph.node for o in n.output if o]
    assert values == expected
    for k, v in enumerate(values):
        assert (names[producer[k]] if producer[k] >= 0 else None) == made.get(v)
        assert {names[j] for j in cons[coff[k]:coff[k + 1]]} == used.get(v, set())
    out = _arr(g["output"], "u1")
    assert [v for k, v in enumerate(values) if out[k]] == [o.name for o in proto.graph.output]
    x = values.index(proto.graph.input[0].name)
    assert g["dtypes"][_arr(g["dtype"], "u1")[x]] == "float32"
    assert g["shapes"][_arr(g["shape"], "<u4")[x]] == "[1, 3, 8, 8]"
    loaded = payload(hierx_nb.load(tmp_path / "cnn.onnx"))["graph"]
    assert loaded == g
    bad = _arr(g["consumers"], "<i4").copy()
    bad[0] = nodes["n"]
    with pytest.raises(ValueError, match=r"graph.consumers must index nodes"):
        check_payload(nodes=nodes, graph={**g, "consumers": bad.tobytes()})


def test_graph_payload_without_a_graph():
    """A result with no ONNX graph (built from tables) gets an empty, valid graph part."""
    from hierx_nb.notebook.payload import check_payload

    w = HierxExplorer.from_result(small_result())
    assert w.graph["n"] == 0 and w.graph["uses"] == 0
    check_payload(w.tree, w.nodes, w.graph)


def with_chain_graph(r: ExportResult, fan_in: int = 0) -> ExportResult:
    """Gives a table-built result an ONNX graph whose nodes are its rows, in order: each node consumes
    the previous node's output (and, with ``fan_in``, the output ``fan_in`` nodes back: a residual)."""
    import onnx_ir as ir

    x = ir.Value(name="x", shape=ir.Shape([1, "seq", 64]), type=ir.TensorType(ir.DataType.FLOAT))
    prev, outs, nodes = x, [], []
    for k, (name, op) in enumerate(zip(r.nodes["node"].astype(str), r.nodes["op_type"].astype(str))):
        inputs = [prev] + ([outs[k - fan_in]] if fan_in and k >= fan_in and k % fan_in == 0 else [])
        node = ir.Node("", op, inputs, name=name, num_outputs=1)
        node.outputs[0].name = f"v{k}"
        node.outputs[0].shape, node.outputs[0].type = ir.Shape([1, "seq", 64]), ir.TensorType(ir.DataType.FLOAT)
        prev = node.outputs[0]
        outs.append(prev)
        nodes.append(node)
    graph = ir.Graph([x], [prev], nodes=nodes, name="chain")
    r.onnx_model = ir.Model(graph, ir_version=10)
    return r


def test_html_report_download_message():
    """The widget's "HTML report" button asks the kernel, which answers with render_html's page."""
    r = small_result()
    w = HierxExplorer.from_result(r, selected="encoder")
    sent = []
    w.send = lambda content, buffers=None: sent.append(content)
    w._on_front_end_msg(w, {"type": "something else"}, [])
    assert sent == []
    w._on_front_end_msg(w, {"type": "report-html"}, [])
    assert sent[0]["type"] == "report-html"
    page = sent[0]["html"]
    assert page.startswith("<!doctype html>") and 'id="hierx-data"' in page and '"selected": "encoder"' in page


def test_compare_metrics_payload():
    """result.comparison (result.compare(other)) travels per module in tree order, NaN where not measured."""
    r = small_result()
    w = HierxExplorer.from_result(r)
    r._widget = w
    r.comparison = pd.DataFrame({"module": ["encoder", "head"], "ms_a": [2.0, 1.0], "ms_b": [1.0, 1.0], "time_ratio": [0.5, 1.0],
                                 "sqnr_db": [35.0, np.inf], "own_sqnr_db": [18.0, np.inf]})
    r.comparison.attrs.update(first_divergent="encoder", sqnr_threshold_db=20.0)
    r._metrics_changed()
    c = w.metrics["compare"]
    own = dict(zip(w.tree["names"], _arr(c["own_sqnr_db"], "<f8")))
    assert own["encoder"] == 18.0 and own["head"] == np.inf and np.isnan(own[""])
    assert c["first_divergent"] == "encoder" and c["sqnr_threshold_db"] == 20.0
