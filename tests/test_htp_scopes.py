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
