"""The translation table (hierx_nb/translations.py): each ATen op torch.onnx lacks, on both exporters,
checked against PyTorch's numbers in ONNX Runtime."""
import io

import numpy as np
import onnx_ir as ir
import onnxruntime as ort
import pytest
import torch

import hierx_nb

STRATEGIES = ["dynamo", "htp"]


def _session(result) -> ort.InferenceSession:
    proto = ir.serde.serialize_model(result.onnx_model)
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


def _run(result, x: torch.Tensor, session=None) -> np.ndarray:
    session = session or _session(result)
    # The tracer folds an input used only for its shape into constants: the graph then has no input.
    return session.run(None, {i.name: x.numpy() for i in session.get_inputs()})[0]


class Histc(torch.nn.Module):
    def __init__(self, bins, low, high, dtype=None):
        super().__init__()
        self.bins, self.low, self.high, self.dtype = bins, low, high, dtype

    def forward(self, x):
        x = x if self.dtype is None else x.to(self.dtype)
        return torch.histc(x, bins=self.bins, min=self.low, max=self.high)


# Values on bin edges, on max, below min, above max, and NaN (ignored by torch).
VALUES = torch.tensor([[0.0, 1.0, 1.0, 3.0, 4.0, -1.0], [7.0, 2.0, 2.5, 0.5, float("nan"), 3.999]])


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("bins,low,high", [(4, 0, 4), (5, 0.5, 3.5), (7, 0, 0)])
def test_histc_float_matches_torch(strategy, bins, low, high):
    model = Histc(bins, low, high)
    result = hierx_nb.export(model, (torch.zeros(2, 6),), output=None, strategy=strategy)
    assert result.strategy == strategy
    values = VALUES if low != high else torch.nan_to_num(VALUES)  # a data range of NaN is an error in torch
    for x in (values, torch.randn(2, 6, generator=torch.Generator().manual_seed(3)) * 3):
        got = _run(result, x)
        want = model(x).numpy()
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want)  # counts: exact


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_histc_single_value_data_range(strategy):
    # min == max and every value equal: torch widens the range to [v - 1, v + 1].
    x = torch.full((3, 2), 2.0)
    result = hierx_nb.export(Histc(4, 0, 0), (x,), output=None, strategy=strategy)
    np.testing.assert_array_equal(_run(result, x), torch.histc(x, bins=4).numpy())


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
def test_histc_integer_input(dtype):
    """MoE routing counts tokens per expert with histc on integer expert ids: torch has no CPU kernel
    for that (only meta and CUDA), so the graph comes from a meta (structure-only) export and its
    counts are checked against float histc of the same ids; the result keeps the integer dtype."""
    experts = 6
    result = hierx_nb.export(Histc(experts, 0, experts, dtype), (torch.zeros(4, 2),), output=None,
                             structure_only=True)
    assert result.strategy == "dynamo"
    ids = torch.randint(0, experts, (4, 2), generator=torch.Generator().manual_seed(0)).float()
    got = _run(result, ids)
    assert got.dtype == {torch.int32: np.int32, torch.int64: np.int64}[dtype]
    want = torch.histc(ids, bins=experts, min=0, max=experts).numpy()
    np.testing.assert_array_equal(got, want.astype(got.dtype))
    assert got.sum() == ids.numel()


class AllTrue(torch.nn.Module):
    def forward(self, x):
        return torch.ops.aten._is_all_true(x > 0)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_is_all_true(strategy):
    x = torch.ones(3, 4)
    result = hierx_nb.export(AllTrue(), (x,), output=None, strategy=strategy)
    assert result.strategy == strategy
    for value in (x, torch.tensor([[1.0, 2, 3, 4], [1, 2, 0, 4], [1, 1, 1, 1]]), -x):
        got = _run(result, value)
        assert got.shape == () and got.dtype == np.bool_
        assert bool(got) == bool(AllTrue()(value))


class Permutation(torch.nn.Module):
    # x's values flow into the graph (times zero): a file whose only use of x was its traced shape would
    # drop the input, which an attempt now fails for (the dropped-input check), whatever the translation.
    def forward(self, x):
        return torch.randperm(x.shape[1]) + (0 * x[0, 0]).long()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_randperm_is_a_permutation(strategy):
    x = torch.zeros(2, 9)
    result = hierx_nb.export(Permutation(), (x,), output=None, strategy=strategy)
    assert result.strategy == strategy
    session = _session(result)
    draws = [_run(result, x, session) for _ in range(5)]
    for perm in draws:
        assert perm.dtype == np.int64 and sorted(perm.tolist()) == list(range(9))
    assert len({tuple(p.tolist()) for p in draws}) > 1, "five draws of 9! orders were all the same"


def test_torchscript_registration_is_scoped():
    """htp registers the symbolics only around its own export: plain torch.onnx is left as it was."""
    hierx_nb.export(Permutation(), (torch.zeros(2, 5),), output=None, strategy="htp")
    with pytest.raises(Exception, match="randperm"):
        torch.onnx.export(Permutation(), (torch.zeros(2, 5),), io.BytesIO(), dynamo=False)
