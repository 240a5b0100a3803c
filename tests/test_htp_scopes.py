"""htp: a TorchScript scope that names exactly one module by its trailing name parts places the
node exactly, also for modules reached through a container that never ran as a whole (a ModuleDict
picked by key, a Sequential's items called one by one, a root Sequential) and keys holding '/'."""
import pytest
import torch
from torch import nn

import hierx_nb
from hierx_nb.hierarchy import ModuleTree
from hierx_nb.tagging import MODULE_KEY, SOURCE_KEY


class Picked(nn.Module):
    def __init__(self):
        super().__init__()
        self.heads = nn.ModuleDict({"cls": nn.Linear(4, 4), "reg/box": nn.Linear(4, 4), "x y": nn.Linear(4, 4)})
        self.layers = nn.ModuleList([nn.Sequential(nn.Linear(4, 4), nn.ReLU()) for _ in range(2)])
        self.blocks = nn.Sequential(nn.Linear(4, 4), nn.Tanh())  # never called as a whole

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        x = self.blocks[1](self.blocks[0](x))
        return self.heads["cls"](x) + self.heads["reg/box"](x) + self.heads["x y"](x)


def _modules(result, op_type):
    return [(n.metadata_props[MODULE_KEY], n.metadata_props[SOURCE_KEY]) for n in result.onnx_model.graph
            if n.op_type == op_type]


def test_modules_picked_from_a_moduledict_by_key_are_exact():
    result = hierx_nb.export(Picked().eval(), (torch.randn(2, 4),), output=None, strategy="htp")
    assert _modules(result, "Gemm") == [("layers.0.0", "exact"), ("layers.1.0", "exact"), ("blocks.0", "exact"),
                                        ("heads.cls", "exact"), ("heads.reg/box", "exact"), ("heads.x y", "exact")]
    assert _modules(result, "Tanh") == [("blocks.1", "exact")]
    assert result.coverage_pct == 100.0
    # dynamo's record agrees node for node
    dyn = hierx_nb.export(Picked().eval(), (torch.randn(2, 4),), output=None, strategy="dynamo")
    assert [m for m, _ in _modules(dyn, "Gemm")] == [m for m, _ in _modules(result, "Gemm")]


def test_a_root_sequential_is_exact():
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2)).eval()
    result = hierx_nb.export(model, (torch.randn(2, 6),), output=None, strategy="htp")
    assert _modules(result, "Gemm") == [("0", "exact"), ("2", "exact")]
    assert _modules(result, "Relu") == [("1", "exact")]


@pytest.mark.parametrize("scopes,expected", [
    (["cls"], ("heads.cls", True)),                  # unique by its key
    (["reg", "box"], ("heads.reg/box", True)),        # a key with '/' spans two scopes
    (["cls_1"], ("heads.cls", True)),                # its second call
    (["0"], ("", False)),                            # layers.0, layers.0.0, blocks.0...: ambiguous, not guessed
    (["layers.1", "layers.1.0"], ("layers.1.0", True)),
    (["model.blocks.0"], ("blocks.0", True)),        # through the wrapper's attribute
    (["nothing"], ("", False)),
])
def test_resolve_scopes_by_unique_suffix(scopes, expected):
    assert ModuleTree(Picked()).resolve_scopes(scopes, wrapper="model") == expected


class SharedShortNames(nn.Module):
    """``enc.proj``/``dec.proj`` (and ``enc.block``/``dec.block``) share their short names: the tracer
    names both ``proj`` (``proj``, ``proj_1``, ``proj_2`` by call), no tree suffix tells them apart;
    ``spare.proj`` never runs."""

    def __init__(self):
        super().__init__()
        self.enc = nn.ModuleDict({"proj": nn.Linear(4, 4), "block": nn.Sequential(nn.Linear(4, 4), nn.ReLU())})
        self.dec = nn.ModuleDict({"proj": nn.Linear(4, 4), "block": nn.Sequential(nn.Linear(4, 4), nn.Tanh())})
        self.spare = nn.ModuleDict({"proj": nn.Linear(4, 4)})

    def forward(self, x):
        h = self.enc["block"](self.enc["proj"](x))
        h = self.dec["block"](self.dec["proj"](h))
        return self.enc["proj"](h)  # enc.proj again: its second call


def test_modules_sharing_a_short_name_are_told_apart_by_the_eager_runs_calls():
    model = SharedShortNames().eval()
    result = hierx_nb.export(model, (torch.randn(2, 4),), output=None, strategy="htp")
    placed = [(n.name, n.metadata_props[MODULE_KEY], n.metadata_props[SOURCE_KEY]) for n in result.onnx_model.graph]
    assert placed == [("/model/proj/Gemm", "enc.proj", "exact"),
                      ("/model/block/block.0/Gemm", "enc.block.0", "exact"),
                      ("/model/block/block.1/Relu", "enc.block.1", "exact"),
                      ("/model/proj_1/Gemm", "dec.proj", "exact"),
                      ("/model/block/block.0_1/Gemm", "dec.block.0", "exact"),
                      ("/model/block/block.1_1/Tanh", "dec.block.1", "exact"),
                      ("/model/proj_2/Gemm", "enc.proj", "exact")]
    dyn = hierx_nb.export(model, (torch.randn(2, 4),), output=None, strategy="dynamo")  # PyTorch's own record
    assert [n.metadata_props[MODULE_KEY] for n in dyn.onnx_model.graph] == [m for _, m, _ in placed]


class SilentNamesake(nn.Module):
    """``enc.act`` (an Identity) runs but leaves no node; ``dec.act`` shares its name: numbering the
    calls would give ``dec.act``'s Relu to ``enc.act``."""

    def __init__(self):
        super().__init__()
        self.enc = nn.ModuleDict({"act": nn.Identity()})
        self.dec = nn.ModuleDict({"act": nn.ReLU()})
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(self.dec["act"](self.enc["act"](x)))


def test_a_call_that_left_no_node_is_not_counted_into_a_wrong_exact_tag():
    result = hierx_nb.export(SilentNamesake().eval(), (torch.randn(2, 4),), output=None, strategy="htp")
    relu = next(n for n in result.onnx_model.graph if n.op_type == "Relu")
    assert (relu.metadata_props[MODULE_KEY], relu.metadata_props[SOURCE_KEY]) != ("enc.act", "exact")


def test_call_scopes_follow_the_tracers_names():
    from hierx_nb.strategies.htp import call_scopes

    calls = [("",), ("", "enc.proj"), ("", "dec.proj"), ("", "layers"), ("", "layers", "layers.0"),
             ("", "layers", "layers.0", "layers.0.0"), ("", "enc.proj")]
    graph = {"proj", "proj_1", "proj_2", "layers/layers.0/layers.0.0"}
    assert call_scopes(calls, graph) == {"proj": "enc.proj", "proj_1": "dec.proj", "proj_2": "enc.proj",
                                         "layers/layers.0/layers.0.0": "layers.0.0"}
    # a path whose calls the graph does not all name (one left no node) is not numbered
    assert "proj" not in call_scopes(calls, {"proj", "proj_1"})
    assert "proj" not in call_scopes(calls, {"proj", "proj_1", "proj_2", "proj_3"})
