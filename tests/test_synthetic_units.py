"""Unit tests on synthetic inputs, no export: small ONNX graphs and ORT profile traces built here for
the trickiest code: placing the optimized graph's (fused) nodes, kernel-time medians, the module
boundaries and the pairing rule of the per-module comparison, and the explorer's tree builder."""
from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import pandas as pd
import pytest
from onnx import TensorProto, helper

from hierx_nb.divergence import boundaries, pair
from hierx_nb.notebook.payload import build_tree
from hierx_nb.profiling import kernel_times, place_optimized_nodes
from hierx_nb.tagging import MODULE_KEY


def node(op: str, inputs: list[str], outputs: list[str], name: str, module: str | None = None) -> onnx.NodeProto:
    n = helper.make_node(op, inputs, outputs, name=name)
    if module is not None:
        n.metadata_props.add(key=MODULE_KEY, value=module)
    return n


def model(nodes, inputs=("x",), outputs=("y",), initializers=()) -> onnx.ModelProto:
    """A model of float vectors (shapes do not matter to the code under test)."""
    vi = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, [4])  # noqa: E731
    inits = [helper.make_tensor(name, TensorProto.FLOAT, [4], [1.0] * 4) for name in initializers]
    graph = helper.make_graph(list(nodes), "g", [vi(i) for i in inputs], [vi(o) for o in outputs], inits)
    return helper.make_model(graph)


# -- place_optimized_nodes -------------------------------------------------------------------------

def test_unchanged_nodes_keep_their_module_and_carry_their_own_time():
    original = model([node("MatMul", ["x", "W"], ["h"], "node_MatMul_1", "enc.q"),
                      node("Relu", ["h"], ["y"], "node_Relu_2", "enc.act")], initializers=["W"])
    placed, carrier = place_optimized_nodes(original, original)
    assert placed == {"node_MatMul_1": "enc.q", "node_Relu_2": "enc.act"}
    assert carrier == {"node_MatMul_1": "node_MatMul_1", "node_Relu_2": "node_Relu_2"}


def test_a_node_with_an_exported_name_but_another_op_is_not_its_twin():
    original = model([node("MatMul", ["x", "W"], ["h"], "mm", "enc.q"), node("Relu", ["h"], ["y"], "act", "enc.act")],
                     initializers=["W"])
    optimized = model([node("MatMul", ["x", "W"], ["h"], "mm"), node("Gelu", ["h"], ["y"], "act")], initializers=["W"])
    placed, _ = place_optimized_nodes(original, optimized)
    assert placed["act"] == "enc.act"  # placed through its output y, not by its name alone


def test_matmul_add_fusion_is_placed_by_the_node_its_name_is_made_from():
    original = model([node("MatMul", ["x", "W"], ["h"], "node_MatMul_7", "enc.layer.0.attn.q"),
                      node("Add", ["h", "b"], ["q"], "node_Add_8", "enc.layer.0.attn.q"),
                      node("Relu", ["q"], ["y"], "node_Relu_9", "enc.layer.0.act")], initializers=["W", "b"])
    optimized = model([node("Gemm", ["x", "W", "b"], ["q"], "node_MatMul_7/MatMulAddFusion"),
                       node("Relu", ["q"], ["y"], "node_Relu_9")], initializers=["W", "b"])
    placed, carrier = place_optimized_nodes(original, optimized)
    assert placed["node_MatMul_7/MatMulAddFusion"] == "enc.layer.0.attn.q"
    assert carrier["node_MatMul_7/MatMulAddFusion"] == "node_MatMul_7"  # the first in graph order
    assert placed["node_Relu_9"] == "enc.layer.0.act"


def test_nchwc_node_named_after_the_relu_it_replaces():
    # ORT's NCHWc layout: "relu_3_nchwc" computes relu_3's value in another layout (a new output
    # name); the Conv before it survives and keeps its own module.
    original = model([node("Conv", ["x", "W"], ["c"], "conv_2", "block.conv"),
                      node("Relu", ["c"], ["y"], "relu_3", "block.act")], initializers=["W"])
    optimized = model([node("Conv", ["x", "W"], ["c"], "conv_2"),
                       node("Relu", ["c"], ["c_nchwc"], "relu_3_nchwc"),
                       node("ReorderOutput", ["c_nchwc"], ["y"], "reorder_out")], initializers=["W"])
    placed, carrier = place_optimized_nodes(original, optimized)
    assert placed["conv_2"] == "block.conv"
    assert placed["relu_3_nchwc"] == "block.act" and carrier["relu_3_nchwc"] == "relu_3"
    # The reorder replaced nothing: it makes relu_3's value y, so it is placed like relu_3.
    assert placed["reorder_out"] == "block.act"


def test_a_fusion_spanning_modules_goes_to_their_common_ancestor():
    # Conv (block.0.conv) + BatchNorm (block.0.bn) + Relu (block.0.act) fused into one kernel whose
    # name names the Conv ("fused conv_2") and whose output is the Relu's value.
    original = model([node("Conv", ["x", "W"], ["c"], "conv_2", "block.0.conv"),
                      node("BatchNormalization", ["c", "s", "b", "m", "v"], ["n"], "bn_3", "block.0.bn"),
                      node("Relu", ["n"], ["r"], "relu_4", "block.0.act"),
                      node("Add", ["r", "x"], ["y"], "add_5", "block")], initializers=["W", "s", "b", "m", "v"])
    optimized = model([node("FusedConv", ["x", "W"], ["r"], "fused conv_2"),
                       node("Add", ["r", "x"], ["y"], "add_5")], initializers=["W"])
    placed, carrier = place_optimized_nodes(original, optimized)
    assert placed["fused conv_2"] == "block.0"  # not split by node counts, not given to one child
    assert carrier["fused conv_2"] == "conv_2"
    assert placed["add_5"] == "block"


def test_a_value_used_elsewhere_stops_the_walk_back():
    # Two kernels each recompute what they need from x, so h is in neither graph's way: the walk
    # back from out1 reaches the MatMul, but h also fed the Sigmoid, so it was a real tensor of its
    # own and the MatMul is not part of the bias+relu fusion.
    original = model([node("MatMul", ["x", "W"], ["h"], "mm", "a"),
                      node("Add", ["h", "b"], ["s"], "add", "b.add"),
                      node("Relu", ["s"], ["out1"], "relu", "b.act"),
                      node("Sigmoid", ["h"], ["out2"], "sig", "c")],
                     outputs=("out1", "out2"), initializers=["W", "b"])
    optimized = model([node("FusedMatMulBiasRelu", ["x", "W", "b"], ["out1"], "BiasReluFusion_0"),
                       node("FusedMatMulSigmoid", ["x", "W"], ["out2"], "SigmoidFusion_1")],
                      outputs=("out1", "out2"), initializers=["W", "b"])
    placed, carrier = place_optimized_nodes(original, optimized)
    assert placed["BiasReluFusion_0"] == "b"  # b.add and b.act; with the MatMul ("a") it would be ""
    assert carrier["BiasReluFusion_0"] == "add"
    assert placed["SigmoidFusion_1"] == "c"


def test_helper_nodes_work_for_the_nodes_they_feed_else_those_feeding_them():
    # The Reshapes ORT wraps around a Gemm replaced nothing of the exported graph.
    original = model([node("MatMul", ["x", "W"], ["y"], "mm", "head.proj")], initializers=["W"])
    optimized = model([node("Reshape", ["x", "shape"], ["x2d"], "reshape_in"),
                       node("Gemm", ["x2d", "W"], ["y2d"], "mm_gemm"),
                       node("Reshape", ["y2d", "shape"], ["y"], "reshape_out")],
                      inputs=("x", "shape"), initializers=["W"])
    placed, carrier = place_optimized_nodes(original, optimized)
    assert placed["reshape_out"] == "head.proj"  # makes y, the MatMul's value
    assert placed["mm_gemm"] == "head.proj"  # feeds reshape_out
    assert placed["reshape_in"] == "head.proj"  # feeds mm_gemm
    assert set(carrier.values()) == {"mm"}


def test_untagged_and_unrelated_nodes_stay_unplaced():
    original = model([node("Relu", ["x"], ["y"], "relu")])  # no module tag
    optimized = model([node("Relu", ["x"], ["y"], "relu"), node("Identity", ["x"], ["z"], "stray")],
                      outputs=("y", "z"))
    placed, carrier = place_optimized_nodes(original, optimized)
    assert placed == {} and carrier == {}


# -- kernel_times ----------------------------------------------------------------------------------

def trace(runs: list[dict[str, list[float]]], ops: dict[str, str], gap: float = 1000.0) -> list[dict]:
    """An ORT profile: one ``model_run`` Session event per run, and per kernel launch a Node event
    ``<name>_kernel_time`` inside it (a kernel may launch several times in a run)."""
    events, t = [], 0.0
    for kernels in runs:
        start, cursor = t, t + 1
        for name, durations in kernels.items():
            for d in durations:
                events.append({"cat": "Node", "name": f"{name}_kernel_time", "ts": cursor, "dur": d,
                               "args": {"op_name": ops[name]}})
                events.append({"cat": "Node", "name": f"{name}_fence_before", "ts": cursor, "dur": 5000.0})
                cursor += d + 1
        events.append({"cat": "Session", "name": "model_run", "ts": start, "dur": cursor - start})
        t = cursor + gap
    return events


def test_kernel_times_are_medians_of_the_measured_runs():
    ops = {"mm": "MatMul", "relu": "Relu"}
    warm = [{"mm": [90000.0], "relu": [50000.0]}] * 2  # first runs allocate: slow, never counted
    measured = [{"mm": [10.0], "relu": [3.0]}, {"mm": [900.0], "relu": [4.0]},  # 900: preempted once
                {"mm": [12.0], "relu": [2.0]}]
    times, op, runs = kernel_times(trace(warm + measured, ops), warmup=2)
    assert runs == 3
    assert times == {"mm": 12.0, "relu": 3.0}  # a mean would give mm 307.3
    assert op == ops


def test_kernel_times_sum_launches_within_a_run_and_count_missing_runs_as_zero():
    ops = {"loop_body": "MatMul", "rare": "Add"}
    runs = [{"loop_body": [2.0, 3.0]}, {"loop_body": [4.0, 4.0], "rare": [7.0]}, {"loop_body": [1.0, 5.0]}]
    times, _, count = kernel_times(trace(runs, ops), warmup=0)
    assert count == 3 and times["loop_body"] == 6.0  # per run: 5, 8, 6
    assert times["rare"] == 0.0  # ran in one run of three: its median is 0


def test_kernel_events_outside_any_measured_run_are_ignored():
    ops = {"mm": "MatMul"}
    events = trace([{"mm": [100.0]}, {"mm": [10.0]}], ops)
    events.append({"cat": "Node", "name": "mm_kernel_time", "ts": 10 ** 9, "dur": 10 ** 6, "args": {"op_name": "MatMul"}})
    times, _, count = kernel_times(events, warmup=1)
    assert count == 1 and times == {"mm": 10.0}


# -- boundaries and the pairing rule -----------------------------------------------------------------

def ir_model(proto: onnx.ModelProto) -> ir.Model:
    return ir.serde.deserialize_model(proto)


def test_boundaries_of_nested_modules():
    proto = model([
        node("MatMul", ["x", "W"], ["h1"], "mm", "enc.l0.attn"),
        node("Constant", [], ["k"], "const", "enc.l0.attn"),
        node("Add", ["h1", "k"], ["h2"], "add", "enc.l0.attn"),
        node("Relu", ["h2"], ["h3"], "relu", "enc.l0.mlp"),
        node("Cast", ["x"], ["xc"], "cast"),  # untagged
        node("Add", ["h2", "h3"], ["h4"], "res", "enc.l1"),
        node("Add", ["h4", "xc"], ["y"], "res2", "enc.l1"),
    ], initializers=["W"])
    proto.graph.node[1].attribute.append(helper.make_attribute("value", helper.make_tensor("k", TensorProto.FLOAT, [4], [0.0] * 4)))
    outs, ins = boundaries(ir_model(proto))
    names = lambda d: {k: [v.name for v in vs] for k, vs in d.items()}  # noqa: E731
    outs, ins = names(outs), names(ins)
    assert outs["enc.l0.attn"] == ["h2"]  # h1 stays inside; the weight W and the Constant are no inputs
    assert outs["enc.l0.mlp"] == ["h3"]
    assert outs["enc.l0"] == ["h2", "h3"]  # both go to enc.l1
    assert outs["enc.l1"] == outs["enc"] == outs[""] == ["y"]  # the graph output
    assert ins["enc.l0.attn"] == ins["enc.l0"] == ["x"]
    assert ins["enc.l0.mlp"] == ["h2"]
    # An untagged producer counts as outside every module but the root.
    assert ins["enc.l1"] == ["h2", "h3", "xc"] and ins["enc"] == ["x", "xc"] and ins[""] == ["x"]


def values(*names: str) -> list[ir.Value]:
    return [ir.Value(name=n) for n in names]


def test_pairing_goes_by_shape_and_dtype_in_order():
    a, b = np.zeros((2, 3), np.float32), np.ones((2, 3), np.float32)
    m = np.zeros((2,), np.int64)
    tensors = [(a, "torch.float32"), (m, "torch.int64"), (b, "torch.float32")]
    got = {"v_a": a + 1e-7, "v_mask": m, "v_b": b}
    pairs, unpaired = pair(tensors, values("v_a", "v_mask", "v_b"), got)
    assert unpaired == 0
    by_name = {name: (onnx_arr, torch_arr, dtype) for name, onnx_arr, torch_arr, dtype in pairs}
    assert by_name["v_a"][1] is a and by_name["v_b"][1] is b  # same group: in order
    assert by_name["v_mask"][1] is m and by_name["v_mask"][2] == "torch.int64"


def test_an_unbalanced_group_is_not_paired_never_guessed():
    a, b = np.zeros((4,), np.float32), np.ones((4,), np.float32)
    # Two PyTorch tensors of one shape, one ONNX value of it: which is which cannot be told.
    pairs, unpaired = pair([(a, "torch.float32"), (b, "torch.float32")], values("v"), {"v": a})
    assert pairs == [] and unpaired == 2
    # A dtype difference is a different group: float64 in ONNX does not pair with float32.
    pairs, unpaired = pair([(a, "torch.float32")], values("v"), {"v": a.astype(np.float64)})
    assert pairs == [] and unpaired == 1
    # ONNX values that were not computed are left out, not paired with something else.
    pairs, unpaired = pair([(a, "torch.float32")], values("gone", "v"), {"v": a})
    assert [p[0] for p in pairs] == ["v"] and unpaired == 0


# -- the explorer's tree builder ------------------------------------------------------------------------

def modules_frame(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["module", "module_class", "parent", "params", "executed"])


def decode(tree: dict, key: str, dtype: str) -> list:
    return np.frombuffer(tree[key], dtype=dtype).tolist()


def test_tree_is_pre_order_with_sizes_and_node_counts():
    frame = modules_frame([("", "Net", None, 10, True), ("enc", "Enc", "", 6, True), ("head", "Linear", "", 4, True),
                           ("enc.0", "Layer", "enc", 3, True), ("enc.1", "Layer", "enc", 3, False)])
    tree = build_tree(frame, ["enc.0", "enc.0", "enc", "head", None])
    assert tree["names"] == ["", "enc", "enc.0", "enc.1", "head"]  # children right after their parent
    assert decode(tree, "parent", "<i4") == [-1, 0, 1, 1, 0]
    assert decode(tree, "depth", "<i4") == [0, 1, 2, 2, 1]
    assert decode(tree, "size", "<i4") == [5, 3, 1, 1, 1]
    assert decode(tree, "own", "<i4") == [0, 1, 2, 0, 1]  # the untagged node counts nowhere
    assert decode(tree, "total", "<i4") == [4, 3, 2, 0, 1]
    assert decode(tree, "executed", "u1") == [1, 1, 1, 0, 1]
    assert tree["classes"][2] == "Layer"


def test_tree_adds_missing_ancestors_and_modules_only_nodes_name():
    frame = modules_frame([("", "Net", None, 0, True), ("a.b.c", "Leaf", None, 0, True)])
    tree = build_tree(frame, ["x.y", "a.b.c"])
    names = tree["names"]
    assert set(names) == {"", "a", "a.b", "a.b.c", "x", "x.y"}
    cls = dict(zip(names, tree["classes"]))
    assert cls["a"] == cls["a.b"] == cls["x.y"] == "?" and cls["a.b.c"] == "Leaf"
    parent = decode(tree, "parent", "<i4")
    assert names[parent[names.index("a.b.c")]] == "a.b" and names[parent[names.index("x.y")]] == "x"


def test_tree_follows_the_parent_column_and_survives_a_cycle():
    # An alias: "shared" is registered under the root but the table says its parent is "enc".
    frame = modules_frame([("", "Net", None, 0, True), ("enc", "Enc", "", 0, True), ("shared", "Lin", "enc", 0, True),
                           ("p", "P", "q", 0, True), ("q", "Q", "p", 0, True)])  # p and q name each other
    tree = build_tree(frame, [])
    names, parent = tree["names"], decode(tree, "parent", "<i4")
    assert names[parent[names.index("shared")]] == "enc"
    assert sorted(names) == sorted(["", "enc", "shared", "p", "q"])  # every module once
    assert all(parent[i] < i for i in range(1, len(names)))  # parents first: a real pre-order


@pytest.mark.parametrize("depth", [3000])
def test_tree_builder_is_not_recursive(depth):
    names = ["m" + ".m" * i for i in range(depth)]
    frame = modules_frame([("", "Net", None, 0, True)] + [(n, "M", None, 0, True) for n in names])
    tree = build_tree(frame, [names[-1]])
    assert decode(tree, "depth", "<i4")[-1] == depth and decode(tree, "total", "<i4")[0] == 1
