"""Per-module latency from ONNX Runtime's profile of its optimized graph (all optimizations on)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn

import hierx_nb


def _bert(layers=4, seq=64):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(hidden_size=64, num_hidden_layers=layers, num_attention_heads=4, intermediate_size=128,
                        vocab_size=500, max_position_embeddings=128)
    model = BertModel(config).eval()
    ids = torch.randint(0, 500, (1, seq), generator=torch.Generator().manual_seed(1))
    return model, (ids, torch.ones(1, seq, dtype=torch.long)), r"encoder\.layer\.\d+"


class _Block(nn.Module):
    def __init__(self, c=16):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(x + self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))


class _CNN(nn.Module):
    def __init__(self, blocks=4, c=16):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU())
        self.blocks = nn.Sequential(*[_Block(c) for _ in range(blocks)])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))


def _cnn():
    torch.manual_seed(0)
    return _CNN().eval(), (torch.randn(1, 3, 48, 48),), r"blocks\.\d+"


def _check_tree(df: pd.DataFrame, modules: pd.DataFrame) -> None:
    kernel, unattributed = df.attrs["kernel_ms"], df.attrs["unattributed_ms"]
    assert kernel > 0
    assert df["self_ms"].sum() + unattributed == pytest.approx(kernel, rel=1e-9)
    assert df.set_index("module").loc["", "total_ms"] == pytest.approx(kernel - unattributed, rel=1e-9)
    assert sum(df.attrs["by_op_type"].values()) == pytest.approx(kernel, rel=1e-9)
    # Subtree totals agree with the module tree: a module's total is its self plus its children's totals.
    self_ms = dict(zip(df["module"], df["self_ms"]))
    total_ms = dict(zip(df["module"], df["total_ms"]))
    children: dict[str, list[str]] = {}
    for row in modules.itertuples():
        if row.module != "":
            children.setdefault(row.parent, []).append(row.module)
    for module in df["module"]:
        expected = self_ms[module] + sum(total_ms[c] for c in children.get(module, []))
        assert total_ms[module] == pytest.approx(expected, rel=1e-9, abs=1e-12), module
    assert np.allclose(df["share"], df["total_ms"] / kernel)


@pytest.mark.parametrize("build,strategy", [(_bert, "dynamo"), (_bert, "htp"), (_cnn, "dynamo")])
def test_profile_places_fused_kernels_on_modules(tmp_path, build, strategy):
    model, args, layer_pattern = build()
    result = hierx_nb.export(model, args, output=tmp_path / "m.onnx", strategy=strategy)
    df = result.profile(runs=20, warmup=3, optimization="all", threads=1)
    assert result.latency is df
    assert list(df.columns)[:6] == ["module", "module_class", "nodes", "self_ms", "total_ms", "share"]
    _check_tree(df, result.modules)
    assert df.attrs["unattributed_ms"] <= 0.05 * df.attrs["kernel_ms"]
    layers = df[df["module"].str.fullmatch(layer_pattern)]["total_ms"]
    assert len(layers) == 4 and layers.min() > 0
    ratio = layers / layers.mean()
    assert ratio.between(0.67, 1.5).all(), ratio.tolist()
    # ORT fused kernels (Gemm, SkipLayerNormalization, Conv with activation) and they were placed:
    # the leaves that own kernels are below the layer level, not all lumped on the root.
    assert df.set_index("module").loc["", "self_ms"] < 0.2 * df.attrs["kernel_ms"]


def test_profile_of_a_loaded_file_needs_no_model(tmp_path):
    model, args, _ = _bert(layers=2, seq=16)
    hierx_nb.export(model, args, output=tmp_path / "m.onnx", strategy="dynamo")
    loaded = hierx_nb.load(tmp_path / "m.onnx")
    df = loaded.profile(runs=3, warmup=1, optimization="basic")  # inputs from the graph's input types
    _check_tree(df, loaded.modules)
    assert df.attrs["runs"] == 3
    spec = loaded.profile(runs=2, warmup=0, inputs="input_ids=1x16:int64[0,500),attention_mask=1x16:int64[1,2)")
    assert spec.attrs["kernel_ms"] > 0
    with pytest.raises(hierx_nb.InputError, match="optimization"):
        loaded.profile(optimization="max")
