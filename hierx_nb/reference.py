"""The reference an ONNX model is compared against: a PyTorch model and the inputs to run it on."""
from __future__ import annotations

import contextlib

import numpy as np
import torch

from .hf import example_inputs, is_hf_model
from .inputs import named_tensor_inputs, normalize, tensor_leaves
from .preserve import copy_inputs


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """A copy of ``t`` as numpy (bfloat16 widened to float32: numpy has no bfloat16)."""
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        t = t.float()
    return t.numpy().copy()


class Reference:
    """A PyTorch model and the inputs to compare an ONNX file against (eval mode, no grad).

    ``named_inputs``: the input tensors as numpy, named after the forward parameters they feed
    (what ONNX Runtime is fed); ``output_names``: the ONNX outputs to compare, in the order of
    PyTorch's output tensors (None: all of them, in graph order).
    """

    def __init__(self, model: torch.nn.Module, args=(), kwargs: dict | None = None):
        self.model = model
        self.args, self.kwargs = normalize(model, args, kwargs)
        self.named_inputs = [(n, to_numpy(t)) for n, t in named_tensor_inputs(model, self.args, self.kwargs)]
        self.output_names: list[str] | None = None

    @classmethod
    def of(cls, model: torch.nn.Module, args=None, kwargs: dict | None = None) -> Reference:
        """``model`` on ``args``/``kwargs``; an HF model given neither gets inputs from its config."""
        if args is None and not kwargs and is_hf_model(model):
            args, kwargs = example_inputs(model)
        return cls(model, args, kwargs)

    @contextlib.contextmanager
    def evaluating(self):
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                yield
        finally:
            self.model.train(was_training)

    def outputs(self) -> list[tuple[np.ndarray, str]]:
        """PyTorch's output tensors (numpy) with their torch dtype names."""
        args, kwargs = copy_inputs(self.args, self.kwargs)  # a cache object given as input grows when run
        with self.evaluating():
            leaves = tensor_leaves(self.model(*args, **kwargs))
        return [(to_numpy(t), str(t.dtype)) for t in leaves]
