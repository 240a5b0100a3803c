"""Nodes an optimizer made from several modules' nodes (BatchNorm folded into a Conv, ConvTranspose or
Linear) carry the module whose operation they compute, the folded modules in ``hierx.fused``, and
every answer (modules table, divergence, latency, a loaded file) says where the folded module went."""
import json

import pytest
import torch
from torch import nn

import hierx_nb
from hierx_nb.tagging import FUSED_KEY, MODULE_KEY, SOURCE_KEY, fused_modules, fused_text

STRATEGIES = [("dynamo", True), ("dynamo", False), ("htp", True), ("htp", False), ("fx", True)]


def _with_stats(model: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm statistics (fresh ones scale by ~1, which would hide a missed fold)."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) * 2 - 1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) - 0.5)
    return model.eval()


class Stem(nn.Module):
    """The issue's ResNet-like stem."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())

    def forward(self, x):
        return self.stem(x)


class Block(nn.Module):
    """A ResNet basic block: two Conv+BN(+ReLU) and a residual, the BatchNorms named apart from their Convs."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)
        self.conv2, self.bn2 = nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)
        self.relu = nn.ReLU()

    def forward(self, x):
        h = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(h)) + x)


def _compute_nodes(result, op_type):
    return [n for n in result.onnx_model.graph if n.op_type == op_type]


@pytest.mark.parametrize("strategy,optimize", STRATEGIES)
def test_folded_batchnorm_conv_keeps_the_conv_module(strategy, optimize):
    model = _with_stats(Stem())
    result = hierx_nb.export(model, (torch.randn(1, 3, 16, 16),), output=None, strategy=strategy, optimize=optimize)
    [conv] = _compute_nodes(result, "Conv")
    assert conv.metadata_props[MODULE_KEY] == "stem.0"
    assert conv.metadata_props[SOURCE_KEY] == ("pattern" if strategy == "fx" else "exact")
    folded = not any(n.op_type == "BatchNormalization" for n in result.onnx_model.graph)
    modules = result.modules.set_index("module")
    if folded:
        assert fused_modules(conv.metadata_props) == ["stem.1"]
        assert modules.loc["stem.1", "folded_into"] == "stem.0"
        assert modules.loc["stem.0", "own_nodes"] >= 1
    else:  # nothing folded: nothing claimed
        assert FUSED_KEY not in conv.metadata_props
        assert modules.loc["stem.1", "folded_into"] == ""
        assert modules.loc["stem.1", "own_nodes"] >= 1
    assert not result.warnings


@pytest.mark.parametrize("strategy", ["dynamo", "htp"])
def test_folded_module_is_reported_as_folded_in_divergence_and_latency(strategy):
    model = _with_stats(Stem())
    result = hierx_nb.export(model, (torch.randn(1, 3, 16, 16),), output=None, strategy=strategy)
    div = result.validate(per_module=True, raise_on_mismatch=False).set_index("module")
    # The Conv's module is compared (with the BatchNorm's output, which its node computes) and agrees.
    assert div.loc["stem.0", "ok"] is True and div.loc["stem.0", "outputs"] == 1
    assert div.loc["stem.0", "max_abs_diff"] < 1e-4
    assert div.loc["stem.1", "ok"] is None and "folded into 'stem.0'" in div.loc["stem.1", "note"]
    assert div.attrs["first_divergent"] is None
    # Basic optimizations keep the Conv a kernel of its own (all would fuse it with the ReLU: their block).
    lat = result.profile(runs=3, warmup=1, optimization="basic").set_index("module")
    assert lat.loc["stem.0", "nodes"] == 1 and lat.loc["stem.0", "self_ms"] > 0
    assert lat.loc["stem.1", "nodes"] == 0 and lat.loc["stem.1", "fused_into"] == "stem.0"


@pytest.mark.parametrize("strategy", ["dynamo", "htp"])
def test_linear_batchnorm1d(strategy):
    model = _with_stats(nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU()))
    result = hierx_nb.export(model, (torch.randn(4, 6),), output=None, strategy=strategy)
    [gemm] = _compute_nodes(result, "Gemm")
    assert gemm.metadata_props[MODULE_KEY] == "0"
    folded = not any(n.op_type == "BatchNormalization" for n in result.onnx_model.graph)
    assert fused_modules(gemm.metadata_props) == (["1"] if folded else [])
    if strategy == "dynamo":
        assert folded  # dynamo's optimizer folds it (htp's TorchScript passes leave Linear+BN alone)
    div = result.validate(per_module=True, raise_on_mismatch=False).set_index("module")
    assert div.loc["0", "ok"] is True


@pytest.mark.parametrize("strategy", ["dynamo", "htp"])
def test_resnet_block_and_conv_transpose(strategy):
    block = _with_stats(Block())
    result = hierx_nb.export(block, (torch.randn(1, 4, 8, 8),), output=None, strategy=strategy)
    convs = _compute_nodes(result, "Conv")
    assert sorted(n.metadata_props[MODULE_KEY] for n in convs) == ["conv1", "conv2"]
    assert sorted(json.dumps(fused_modules(n.metadata_props)) for n in convs) == ['["bn1"]', '["bn2"]']
    assert {c.metadata_props[MODULE_KEY]: fused_modules(c.metadata_props) for c in convs} == {
        "conv1": ["bn1"], "conv2": ["bn2"]}
    div = result.validate(per_module=True, raise_on_mismatch=False).set_index("module")
    assert div.loc["conv1", "ok"] is True and div.loc["conv2", "ok"] is True

    up = _with_stats(nn.Sequential(nn.ConvTranspose2d(3, 4, 3, stride=2), nn.BatchNorm2d(4)))
    result = hierx_nb.export(up, (torch.randn(1, 3, 5, 5),), output=None, strategy=strategy)
    [node] = _compute_nodes(result, "ConvTranspose")
    assert node.metadata_props[MODULE_KEY] == "0"
    folded = not any(n.op_type == "BatchNormalization" for n in result.onnx_model.graph)
    assert fused_modules(node.metadata_props) == (["1"] if folded else [])


def test_a_loaded_file_says_where_the_folded_module_went(tmp_path):
    result = hierx_nb.export(_with_stats(Stem()), (torch.randn(1, 3, 16, 16),), output=tmp_path / "m.onnx",
                             strategy="dynamo")
    loaded = hierx_nb.load(tmp_path / "m.onnx")
    assert loaded.modules.set_index("module").loc["stem.1", "folded_into"] == "stem.0"
    (tmp_path / "m.hierx.json").unlink()  # from the tags alone
    assert hierx_nb.load(tmp_path / "m.onnx").modules.set_index("module").loc["stem.1", "folded_into"] == "stem.0"
    assert result.modules.equals(loaded.modules)


def test_fused_prop_format_round_trips_any_name():
    names = ["a.b", "key,with,commas", 'q"uote', "slash/key"]
    assert fused_modules({FUSED_KEY: fused_text(names)}) == names
    assert fused_modules({}) == []
    with pytest.raises(ValueError, match="JSON list"):
        fused_modules({FUSED_KEY: '{"a": 1}'})


def test_cli_analyze_says_folded_into(tmp_path):
    from hierx_nb.cli import main

    hierx_nb.export(_with_stats(Stem()), (torch.randn(1, 3, 16, 16),), output=tmp_path / "m.onnx", strategy="htp")
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["analyze", str(tmp_path / "m.onnx")]) == 0
    [line] = [ln for ln in out.getvalue().splitlines() if ln.strip().startswith("1 ")]
    assert "(folded into stem.0)" in line and "BatchNorm2d" in line
