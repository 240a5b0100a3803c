"""Complex tensors (FFT filters, Llama-4's complex rotary embedding) export as real pairs (last axis
of 2) through the translation table, and match PyTorch in ONNX Runtime."""
import numpy as np
import pytest
import torch
from test_translations import _session
from torch import nn

import hierx_nb


class SpectralFilter(nn.Module):
    """The issue's spectral filter: rfft, a complex weight from two real ones, complex matmul, irfft."""

    def __init__(self, channels=4):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.re = nn.Parameter(torch.randn(channels, channels, generator=g))
        self.im = nn.Parameter(torch.randn(channels, channels, generator=g))

    def forward(self, x):  # (batch, channels, length)
        spectrum = torch.fft.rfft(x, dim=-1)
        weight = torch.complex(self.re, self.im)
        mixed = torch.matmul(spectrum.transpose(1, 2), weight).transpose(1, 2)
        return torch.fft.irfft(mixed, n=x.shape[-1], dim=-1)


class LowPass(nn.Module):
    """An FNO-style layer: keeps the lowest modes, each scaled by a complex gain (elementwise complex
    mul, a slice and zeros on the complex axis, unsqueeze with a negative axis)."""

    def __init__(self, modes=5):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.modes = modes
        self.gain_re = nn.Parameter(torch.randn(modes, generator=g))
        self.gain_im = nn.Parameter(torch.randn(modes, generator=g))

    def forward(self, x):  # (batch, length)
        spectrum = torch.fft.rfft(x, norm="ortho").unsqueeze(-2)           # (batch, 1, bins)
        gain = torch.complex(self.gain_re, self.gain_im)
        low = spectrum[..., :self.modes] * gain
        kept = torch.cat([low, torch.zeros_like(spectrum[..., self.modes:])], dim=-1)
        return torch.fft.irfft(kept.squeeze(-2), n=x.shape[-1], norm="ortho")


def _max_diff(result, model, *inputs):
    session = _session(result)
    feeds = {i.name: x.numpy() for i, x in zip(session.get_inputs(), inputs)}
    got = session.run(None, feeds)[0]
    with torch.no_grad():
        want = model(*inputs)
    want = want.last_hidden_state if hasattr(want, "last_hidden_state") else want
    assert got.shape == tuple(want.shape)
    return float(np.abs(got - want.numpy()).max())


@pytest.mark.parametrize("strategy", ["dynamo", "htp"])
@pytest.mark.parametrize("model,shape", [(SpectralFilter(), (2, 4, 16)), (LowPass(), (3, 16))])
def test_spectral_filters_export_exactly_and_match(model, shape, strategy):
    model.eval()
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(2))
    result = hierx_nb.export(model, (x,), output=None, strategy=strategy)
    assert not result.warnings
    assert result.coverage_pct == 100.0
    assert _max_diff(result, model, x) < 1e-4
    # other inputs than the export's
    assert _max_diff(result, model, torch.randn(*shape) * 10) < 1e-4 * 10


@pytest.mark.parametrize("strategy", ["dynamo", "htp"])
def test_llama4_complex_rotary_embedding_exports_and_matches(strategy):
    transformers = pytest.importorskip("transformers")
    config = transformers.Llama4TextConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, intermediate_size_mlp=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=8, num_local_experts=2, num_experts_per_tok=1,
        max_position_embeddings=64, interleave_moe_layer_step=1, no_rope_layers=[1, 1], attn_implementation="eager")
    torch.manual_seed(0)
    model = transformers.Llama4TextModel(config).eval()
    ids = torch.randint(0, 64, (1, 7), generator=torch.Generator().manual_seed(3))
    result = hierx_nb.export(model, (ids,), output=None, strategy=strategy)
    assert not result.warnings
    assert _max_diff(result, model, ids) < 1e-4
    assert result.coverage_pct >= 95.0


def test_real_ops_keep_torch_onnx_translation_under_htp():
    """The complex symbolics only take complex inputs: a real matmul/transpose/mul stays one op each."""

    class Real(nn.Module):
        def forward(self, a, b):
            return torch.matmul(a.transpose(0, 1), b) * 2.0

    a, b = torch.randn(3, 2), torch.randn(3, 4)
    result = hierx_nb.export(Real(), (a, b), output=None, strategy="htp")
    ops = [n.op_type for n in result.onnx_model.graph]
    assert ops.count("MatMul") == 1 and ops.count("Transpose") == 1 and "Concat" not in ops
    assert _max_diff(result, Real(), a, b) < 1e-5


def test_complex_registrations_are_scoped_to_the_export():
    from torch.onnx._internal.exporter import _registration

    from hierx_nb.translations import COMPLEX_TABLE, complex_translations

    before = _registration.ONNXRegistry.__dict__["from_torchlib"]
    unsqueeze = torch.ops.aten.unsqueeze.default
    assert unsqueeze in COMPLEX_TABLE
    with complex_translations():
        inside = _registration.ONNXRegistry.from_torchlib()
        complex_ones = [d for d in inside.get_decomps(unsqueeze) if d.is_complex]
        assert [d.onnx_function for d in complex_ones][:1] == [COMPLEX_TABLE[unsqueeze]]
    assert _registration.ONNXRegistry.__dict__["from_torchlib"] is before
    plain = _registration.ONNXRegistry.from_torchlib()
    assert not any(d.is_complex for d in plain.get_decomps(unsqueeze))
