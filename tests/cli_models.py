"""Model factories for the CLI tests, referenced as ``cli_models:NAME`` (tests/ on PYTHONPATH)."""
from __future__ import annotations

import torch
import torch.nn as nn
from zoo import case


def mlp():
    """The zoo MLP with its example inputs: (model, args)."""
    c = case("mlp")
    return c.model, c.args


def mlp_without_inputs():
    """A bare model: the CLI needs --inputs for it."""
    return case("mlp").model


def broken_factory():
    """A factory that fails: the CLI must report its error in one line."""
    raise RuntimeError("weights file missing")


class Unexportable(nn.Module):
    """No strategy can export this model.

    ``.tolist()`` feeding an ``if`` is data-dependent Python control flow: torch.export cannot
    guard on it and fx symbolic tracing cannot branch on a proxy. The TorchScript tracer would just
    follow the branch taken, but ``linalg.svdvals`` has no ONNX translation.
    """

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        y = self.lin(x)
        if y.sum().tolist() > 0:
            y = y * 2
        return torch.linalg.svdvals(y)


def unexportable():
    torch.manual_seed(0)
    return Unexportable().eval(), (torch.randn(3, 4),)


class PickHeads(nn.Module):
    """An index tensor read as a number (``.item()``): the TorchScript tracer bakes it into the graph."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x, heads):
        return self.fc(x)[:, : int(heads.item())]


def pick_heads():
    torch.manual_seed(0)
    return PickHeads().eval(), (torch.randn(2, 8), torch.tensor(3))
