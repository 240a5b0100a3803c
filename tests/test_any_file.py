"""The engine's answers on a file hierx did not export: one whose nodes were rewritten (every node
renamed, the model's own metadata and sidecar gone) so that nothing but the copied module tags
survive — what ``retag`` produces. validate, validate(per_module=True), profile and extract run on it
through the same functions as an export's result, with a PyTorch reference and without one."""
from __future__ import annotations

import onnx_ir as ir
import pytest
import torch

import hierx_nb
from hierx_nb import extraction, profiling, validation
from hierx_nb.reference import Reference


class _Block(torch.nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.linear = torch.nn.Linear(width, width)
        self.norm = torch.nn.LayerNorm(width)

    def forward(self, x):
        return self.norm(torch.relu(self.linear(x)) + x)


class _Net(torch.nn.Module):
    def __init__(self, width: int = 16):
        super().__init__()
        self.blocks = torch.nn.ModuleList([_Block(width) for _ in range(3)])
        self.head = torch.nn.Linear(width, 4)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.head(x)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """(model, inputs, exported file, the same graph with every node renamed and only the node tags kept)."""
    tmp = tmp_path_factory.mktemp("any_file")
    torch.manual_seed(0)
    model, x = _Net().eval(), torch.randn(2, 16)
    exported = tmp / "net.onnx"
    hierx_nb.export(model, (x,), output=exported, strategy="dynamo")
    graph = ir.load(exported)
    for i, node in enumerate(graph.graph):
        node.name = f"rewritten_{i}"
    graph.metadata_props.clear()  # no strategy, version or structure-only mark: only the node tags
    other = tmp / "elsewhere" / "other.onnx"
    other.parent.mkdir()
    ir.save(graph, other)  # no sidecar beside it
    return model, x, exported, other


def test_validate_with_and_without_a_reference(files):
    model, x, _, other = files
    report = validation.validate(other, Reference(model, (x,)))
    assert report["ok"].all() and len(report) == 1
    with pytest.raises(hierx_nb.NoReference):
        validation.validate(other, None)


def test_per_module_divergence_reads_the_modules_from_the_tags(files):
    model, x, exported, other = files
    ref = Reference(model, (x,))
    ours = validation.validate(other, ref, per_module=True)
    theirs = hierx_nb.load(exported).validate(model, (x,), per_module=True)
    assert list(ours["module"]) == list(theirs["module"])  # same modules, same call order
    assert {"blocks.0", "blocks.1.linear", "blocks.2.norm", "head"} <= set(ours["module"])
    compared = ours.dropna(subset=["max_abs_diff"])
    assert len(compared) >= 10 and compared["ok"].all() and ours.attrs["first_divergent"] is None
    assert (compared.set_index("module")["max_abs_diff"]
            == theirs.dropna(subset=["max_abs_diff"]).set_index("module")["max_abs_diff"]).all()
    # A weight changed in PyTorch is blamed on its module, found through the tags alone.
    changed = _Net().eval()
    changed.load_state_dict(model.state_dict())
    with torch.no_grad():
        changed.blocks[1].linear.bias.add_(torch.linspace(0, 2, 16))  # uneven: LayerNorm cannot hide it
    blamed = validation.validate(other, Reference(changed, (x,)), per_module=True)
    assert blamed.attrs["first_divergent"] == "blocks.1.linear"


@pytest.mark.parametrize("with_reference", [True, False])
def test_profile_places_kernel_time_by_the_tags(files, with_reference):
    model, x, _, other = files
    ref = Reference(model, (x,)) if with_reference else None  # without one: inputs from the graph's types
    latency = profiling.profile(other, ref, runs=3, warmup=1)
    root = latency.set_index("module").loc[""]
    assert latency.attrs["kernel_ms"] > 0
    assert root["total_ms"] == pytest.approx(latency.attrs["kernel_ms"] - latency.attrs["unattributed_ms"], rel=1e-6)
    assert latency.attrs["unattributed_ms"] <= 0.05 * latency.attrs["kernel_ms"]
    timed = latency[latency["nodes"] > 0]["module"]
    assert any(m.startswith("blocks.2") for m in timed) and "head" in set(timed)


@pytest.mark.parametrize("with_reference", [True, False])
def test_extract_a_module_of_the_rewritten_file(files, tmp_path, with_reference):
    model, x, _, other = files
    ref = Reference(model, (x,)) if with_reference else None
    piece = extraction.extract(other, "blocks.1", tmp_path / "block.onnx", ref)
    loaded = hierx_nb.load(piece.path)
    assert set(loaded.nodes["module"].dropna()) <= {m for m in loaded.modules["module"] if m.startswith("blocks.1")}
    if with_reference:  # validated against the block's own forward on the inputs it received
        assert piece.reference is not None and not piece.warnings
        assert validation.validate(piece.path, piece.reference)["ok"].all()
    else:  # no PyTorch: the piece still runs, on inputs made from its types
        assert piece.reference is None
        assert profiling.profile(piece.path, runs=1, warmup=0).attrs["kernel_ms"] > 0
    with pytest.raises(hierx_nb.UnknownModule):
        extraction.extract(other, "blocks.7", tmp_path / "none.onnx", ref)


def test_the_loaded_result_is_a_front_over_the_same_functions(files, tmp_path):
    model, x, _, other = files
    result = hierx_nb.load(other)
    assert result.sidecar_path is None and result.strategy == "unknown"
    assert result.validate(model, (x,))["ok"].all()
    assert result.validate(model, (x,), per_module=True).attrs["first_divergent"] is None
    assert result.profile(runs=2, warmup=1).attrs["kernel_ms"] > 0
    piece = result.extract("head", tmp_path / "head.onnx", model, (x,))
    assert piece.validate()["ok"].all()
