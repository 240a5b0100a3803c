"""Test model zoo for hierx_nb.

Every entry of ``ZOO`` is a factory returning a :class:`Case`: a tiny, seeded
model in ``eval()`` mode plus its example inputs. The ``fx_traceable`` and
``dynamo_ok`` flags are *measured* values (checked by
``tests/test_zoo_sanity.py``), not guesses:

* ``fx_traceable``: plain ``torch.fx.symbolic_trace(model)`` succeeds.
* ``dynamo_ok``: ``torch.onnx.export(model, args, kwargs=kwargs, dynamo=True)``
  succeeds.

``hierx_dynamo`` is what hierx's own dynamo strategy should do, which also exports
some models plain torch.onnx cannot (its translation table, its attention fix).

Nothing here downloads anything: HuggingFace models are built from tiny configs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn as nn


@dataclass
class Case:
    name: str
    model: nn.Module
    args: tuple
    kwargs: dict = field(default_factory=dict)
    fx_traceable: bool = True
    dynamo_ok: bool = True
    family: str = "misc"
    # Extra (not required by callers): does torch.onnx.export(dynamo=False) of a wrapper
    # ``forward(*args) -> model(*args, **kwargs)`` succeed? Only False for randperm.
    torchscript_ok: bool = True
    # hierx's dynamo strategy exports it (True wherever plain dynamo does).
    hierx_dynamo: bool = True


ZOO: dict[str, Callable[[], Case]] = {}


def _register(name: str, *, fx: bool, dynamo: bool, family: str, torchscript: bool = True,
              hierx_dynamo: bool | None = None):
    def deco(build: Callable[[], tuple]):
        def factory() -> Case:
            torch.manual_seed(0)
            model, args, kwargs = build()
            model.eval()
            return Case(name=name, model=model, args=args, kwargs=kwargs,
                        fx_traceable=fx, dynamo_ok=dynamo, family=family,
                        torchscript_ok=torchscript,
                        hierx_dynamo=dynamo if hierx_dynamo is None else hierx_dynamo)
        factory.__name__ = f"case_{name}"
        factory.__doc__ = build.__doc__
        ZOO[name] = factory
        return factory
    return deco


def case(name: str) -> Case:
    return ZOO[name]()


def _randn(*shape, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g)


def _ids(batch: int, seq: int, vocab: int, seed: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (batch, seq), generator=g, dtype=torch.long)


# ---------------------------------------------------------------------------
# Vision / sequential / attention architectures
# ---------------------------------------------------------------------------


class MLP(nn.Module):
    """Linear stack in an nn.Sequential; one ReLU instance reused twice in forward."""

    def __init__(self, d_in=16, hidden=32, d_out=4):
        super().__init__()
        self.fc1 = nn.Linear(d_in, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.act = nn.ReLU()  # shared: called twice
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, d_out))

    def forward(self, x):
        x = self.act(self.fc1(x))
        x = self.act(self.fc2(x))
        return self.head(x)


class SmallCNN(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.pool = nn.MaxPool2d(2)  # shared: called twice
        self.relu = nn.ReLU()  # shared: called twice
        self.fc = nn.Linear(16 * 4 * 4, num_classes)

    def forward(self, x):
        x = self.pool(self.relu(self.conv1(x)))
        x = self.pool(self.relu(self.conv2(x)))
        return self.fc(torch.flatten(x, 1))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()  # shared: called twice
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class MiniResNet(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.layers = nn.Sequential(BasicBlock(8, 8), BasicBlock(8, 16, stride=2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x):
        x = self.layers(self.stem(x))
        return self.fc(torch.flatten(self.pool(x), 1))


def _randomize_bn(model: nn.Module) -> None:
    """Give BatchNorm layers non-trivial running stats so eval() isn't an identity."""
    g = torch.Generator().manual_seed(3)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)


class LSTMClassifier(nn.Module):
    def __init__(self, vocab=50, emb=16, hidden=24, num_classes=3):
        super().__init__()
        self.embed = nn.Embedding(vocab, emb)
        self.lstm = nn.LSTM(emb, hidden, num_layers=2, batch_first=True)
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, tokens):
        out, _ = self.lstm(self.embed(tokens))
        return self.fc(out[:, -1])


class GRUEncoder(nn.Module):
    def __init__(self, d_in=12, hidden=16):
        super().__init__()
        self.proj = nn.Linear(d_in, hidden)
        self.gru = nn.GRU(hidden, hidden, batch_first=True, bidirectional=True)
        self.norm = nn.LayerNorm(2 * hidden)

    def forward(self, x):
        out, h = self.gru(self.proj(x))
        return self.norm(out), h


class TransformerBlock(nn.Module):
    def __init__(self, d=32, heads=4, ff=64):
        super().__init__()
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.norm1 = nn.LayerNorm(d)
        self.norm2 = nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, ff), nn.GELU(), nn.Linear(ff, d))

    def forward(self, x):
        h = self.norm1(x)
        a, _ = self.attn(h, h, h, need_weights=False)
        x = x + a
        return x + self.ffn(self.norm2(x))


class ViTPatch(nn.Module):
    def __init__(self, img=16, patch=4, d=32, depth=2, heads=4, num_classes=5):
        super().__init__()
        n = (img // patch) ** 2
        self.patch_embed = nn.Conv2d(3, d, patch, patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, n + 1, d) * 0.02)
        self.blocks = nn.ModuleList([TransformerBlock(d, heads, 2 * d) for _ in range(depth)])
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, num_classes)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.norm(x)[:, 0])


class DenseLayer(nn.Module):
    def __init__(self, cin, growth):
        super().__init__()
        self.bn = nn.BatchNorm2d(cin)
        self.relu = nn.ReLU()
        self.conv = nn.Conv2d(cin, growth, 3, padding=1, bias=False)

    def forward(self, x):
        return self.conv(self.relu(self.bn(x)))


class DenseBlock(nn.Module):
    def __init__(self, cin=8, growth=4, n_layers=3):
        super().__init__()
        self.layers = nn.ModuleList([DenseLayer(cin + i * growth, growth) for i in range(n_layers)])

    def forward(self, x):
        feats = [x]
        for layer in self.layers:
            feats.append(layer(torch.cat(feats, dim=1)))
        return torch.cat(feats, dim=1)


class AutoEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(16, 8, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
            nn.ConvTranspose2d(8, 1, 3, stride=2, padding=1, output_padding=1), nn.Sigmoid())

    def forward(self, x):
        return self.decoder(self.encoder(x))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: expand 1x1 -> depthwise 3x3 -> project 1x1 (+ residual)."""

    def __init__(self, cin, cout, stride=1, expand=4):
        super().__init__()
        hid = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.expand = nn.Sequential(nn.Conv2d(cin, hid, 1, bias=False), nn.BatchNorm2d(hid), nn.ReLU6())
        self.depthwise = nn.Sequential(
            nn.Conv2d(hid, hid, 3, stride, 1, groups=hid, bias=False), nn.BatchNorm2d(hid), nn.ReLU6())
        self.project = nn.Sequential(nn.Conv2d(hid, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.project(self.depthwise(self.expand(x)))
        return x + out if self.use_res else out


class MobileNetBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.Sequential(InvertedResidual(8, 8), InvertedResidual(8, 16, stride=2),
                                    InvertedResidual(16, 16))

    def forward(self, x):
        return self.blocks(x)


class SqueezeExcitation(nn.Module):
    def __init__(self, c, reduced):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(c, reduced, 1)
        self.act = nn.SiLU()
        self.fc2 = nn.Conv2d(reduced, c, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x):
        return x * self.gate(self.fc2(self.act(self.fc1(self.pool(x)))))


class MBConvSE(nn.Module):
    """EfficientNet MBConv block with squeeze-excitation."""

    def __init__(self, c=8, expand=4):
        super().__init__()
        hid = c * expand
        self.expand = nn.Sequential(nn.Conv2d(c, hid, 1, bias=False), nn.BatchNorm2d(hid), nn.SiLU())
        self.depthwise = nn.Sequential(
            nn.Conv2d(hid, hid, 3, 1, 1, groups=hid, bias=False), nn.BatchNorm2d(hid), nn.SiLU())
        self.se = SqueezeExcitation(hid, max(1, c // 4))
        self.project = nn.Sequential(nn.Conv2d(hid, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        return x + self.project(self.se(self.depthwise(self.expand(x))))


class VGGStyle(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        cfg = [(3, 8), (8, 16), (16, 16)]
        stages = []
        for cin, cout in cfg:
            stages.append(nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(),
                nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU(),
                nn.MaxPool2d(2)))
        self.features = nn.Sequential(*stages)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * 2 * 2, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


@_register("mlp", fx=True, dynamo=True, family="sequential")
def _mlp():
    return MLP(), (_randn(2, 16),), {}


@_register("small_cnn", fx=True, dynamo=True, family="vision")
def _small_cnn():
    return SmallCNN(), (_randn(2, 3, 16, 16),), {}


@_register("mini_resnet", fx=True, dynamo=True, family="vision")
def _mini_resnet():
    m = MiniResNet()
    _randomize_bn(m)
    return m, (_randn(2, 3, 16, 16),), {}


@_register("lstm_classifier", fx=True, dynamo=True, family="sequential")
def _lstm():
    return LSTMClassifier(), (_ids(2, 7, 50),), {}


@_register("gru_encoder", fx=True, dynamo=True, family="sequential")
def _gru():
    return GRUEncoder(), (_randn(2, 6, 12),), {}


@_register("attention_block", fx=True, dynamo=True, family="attention")
def _attention_block():
    return TransformerBlock(), (_randn(2, 8, 32),), {}


@_register("vit_patch", fx=True, dynamo=True, family="attention")
def _vit_patch():
    return ViTPatch(), (_randn(2, 3, 16, 16),), {}


@_register("dense_block", fx=True, dynamo=True, family="vision")
def _dense_block():
    m = DenseBlock()
    _randomize_bn(m)
    return m, (_randn(1, 8, 8, 8),), {}


@_register("autoencoder", fx=True, dynamo=True, family="vision")
def _autoencoder():
    return AutoEncoder(), (_randn(2, 1, 16, 16),), {}


@_register("mobilenet_block", fx=True, dynamo=True, family="vision")
def _mobilenet_block():
    m = MobileNetBlock()
    _randomize_bn(m)
    return m, (_randn(1, 8, 16, 16),), {}


@_register("efficientnet_se", fx=True, dynamo=True, family="vision")
def _efficientnet_se():
    m = MBConvSE()
    _randomize_bn(m)
    return m, (_randn(1, 8, 16, 16),), {}


@_register("vgg_style", fx=True, dynamo=True, family="vision")
def _vgg():
    return VGGStyle(), (_randn(2, 3, 16, 16),), {}


# ---------------------------------------------------------------------------
# Cases that break one tracer or another
# ---------------------------------------------------------------------------


class DataDependentBranch(nn.Module):
    """``if x.sum() > 0`` picks a submodule: Python control flow on tensor data."""

    def __init__(self, d=8):
        super().__init__()
        self.pos_branch = nn.Sequential(nn.Linear(d, d), nn.ReLU())
        self.neg_branch = nn.Sequential(nn.Linear(d, d), nn.Tanh())
        self.out = nn.Linear(d, 2)

    def forward(self, x):
        if x.sum() > 0:
            h = self.pos_branch(x)
        else:
            h = self.neg_branch(x)
        return self.out(h)


class GraphMLP(nn.Module):
    """Graph-MLP-like: adjacency from features, plus ``torch.eye(x.shape[1])`` self-loops."""

    def __init__(self, d=8, hidden=16):
        super().__init__()
        self.enc = nn.Linear(d, hidden)
        self.act = nn.ReLU()
        self.dec = nn.Linear(hidden, hidden)

    def forward(self, x):  # x: (batch, nodes, d)
        h = self.act(self.enc(x))
        adj = torch.softmax(h @ h.transpose(1, 2), dim=-1)
        adj = adj + torch.eye(x.shape[1])  # identity sized from a runtime shape
        return self.dec(adj @ h)


class RandpermShuffle(nn.Module):
    """Uses ``torch.randperm`` in forward, but the output does not depend on the permutation.

    The sequence is shuffled, passed through a position-wise layer, then un-shuffled
    with ``argsort(perm)``. Seeding alone would not make an exported ONNX graph
    reproduce eager results (ONNX has no equivalent of torch's RNG stream), so the
    permutation is made numerically irrelevant instead: any perm gives the same output.
    """

    def __init__(self, d=8):
        super().__init__()
        self.proj = nn.Linear(d, d)
        self.act = nn.GELU()
        self.head = nn.Linear(d, d)

    def forward(self, x):  # x: (batch, seq, d)
        perm = torch.randperm(x.shape[1])
        h = self.act(self.proj(x[:, perm]))
        inv = torch.argsort(perm)
        return self.head(h[:, inv])


class CrossAttention(nn.Module):
    """Queries from ``x``, keys/values from ``context`` (two inputs)."""

    def __init__(self, d=32, d_ctx=16, heads=4):
        super().__init__()
        self.ctx_proj = nn.Linear(d_ctx, d)
        self.norm_q = nn.LayerNorm(d)
        self.norm_kv = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def forward(self, x, context):
        kv = self.norm_kv(self.ctx_proj(context))
        a, _ = self.attn(self.norm_q(x), kv, kv, need_weights=False)
        x = x + a
        return x + self.ffn(x)


@_register("data_dependent_if", fx=False, dynamo=False, family="failing")
def _data_dependent_if():
    x = _randn(2, 8).abs() + 0.1  # sum() > 0: the positive branch is always taken
    return DataDependentBranch(), (x,), {}


# Kept in the "failing" family (it is one of the seed's failing cases), but on torch 2.13
# both fx (records torch.eye(<proxy>) as a call) and dynamo export succeed; TorchScript
# export works too.
@_register("graph_mlp_eye", fx=True, dynamo=True, family="failing")
def _graph_mlp_eye():
    return GraphMLP(), (_randn(2, 6, 8),), {}


# No ONNX lowering for aten::randperm: dynamo fails at step 3/3 (conversion) and the
# TorchScript exporter raises UnsupportedOperatorError. fx traces fine; hierx translates it.
@_register("randperm_shuffle", fx=True, dynamo=False, family="failing", torchscript=False, hierx_dynamo=True)
def _randperm_shuffle():
    return RandpermShuffle(), (_randn(2, 7, 8),), {}


@_register("cross_attention", fx=True, dynamo=True, family="attention")
def _cross_attention():
    return CrossAttention(), (_randn(2, 5, 32, seed=1), _randn(2, 9, 16, seed=4)), {}


# ---------------------------------------------------------------------------
# HuggingFace tiny models (built from configs, never downloaded)
# ---------------------------------------------------------------------------

_SEQ = 8
_VOCAB = 99


def _text_kwargs(batch=2, seq=_SEQ, vocab=_VOCAB):
    ids = _ids(batch, seq, vocab)
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[-1, -2:] = 0  # some padding in the last row
    return {"input_ids": ids, "attention_mask": mask}


@_register("hf_bert", fx=False, dynamo=True, family="hf")
def _hf_bert():
    from transformers import BertConfig, BertModel

    cfg = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=37, vocab_size=_VOCAB, max_position_embeddings=64)
    return BertModel(cfg), (), _text_kwargs()


def _gpt2_config():
    from transformers import GPT2Config

    return GPT2Config(n_embd=32, n_layer=2, n_head=2, n_positions=64, vocab_size=_VOCAB,
                      n_inner=37, bos_token_id=_VOCAB - 1, eos_token_id=_VOCAB - 1)


@_register("hf_gpt2", fx=False, dynamo=True, family="hf")
def _hf_gpt2():
    from transformers import GPT2Model

    return GPT2Model(_gpt2_config()), (), {**_text_kwargs(), "use_cache": False}


@_register("hf_gpt2_lm", fx=False, dynamo=True, family="hf")
def _hf_gpt2_lm():
    from transformers import GPT2LMHeadModel

    return GPT2LMHeadModel(_gpt2_config()), (), {**_text_kwargs(), "use_cache": False}


def _t5_case(attn_implementation: str | None):
    from transformers import T5Config, T5Model

    cfg = T5Config(vocab_size=_VOCAB, d_model=32, d_kv=8, d_ff=37, num_layers=2,
                   num_decoder_layers=2, num_heads=4, relative_attention_num_buckets=8,
                   relative_attention_max_distance=20, decoder_start_token_id=0,
                   pad_token_id=0)
    if attn_implementation is not None:
        cfg._attn_implementation = attn_implementation
    kw = _text_kwargs()
    kw["decoder_input_ids"] = _ids(2, 5, _VOCAB, seed=5)
    kw["use_cache"] = False
    return T5Model(cfg), (), kw


@_register("hf_t5", fx=False, dynamo=True, family="hf")
def _hf_t5():
    # Eager attention: with the default (sdpa) plain torch.onnx fails, see hf_t5_sdpa.
    return _t5_case("eager")


@_register("hf_t5_sdpa", fx=False, dynamo=False, family="hf", hierx_dynamo=True)
def _hf_t5_sdpa():
    """T5 with its default sdpa attention: torch.onnx dynamo export fails at step 2/3
    (decomposition): "Cannot view a tensor with shape torch.Size([2, 8, 4, 8]) and strides
    (256, 8, 64, 1) as a tensor with shape (2, 8, 32)!" (attn_output.reshape in
    T5Attention.forward). hierx's dynamo strategy exports it (math attention kernel)."""
    return _t5_case(None)


@_register("hf_vit", fx=False, dynamo=True, family="hf")
def _hf_vit():
    from transformers import ViTConfig, ViTModel

    cfg = ViTConfig(image_size=32, patch_size=8, num_channels=3, hidden_size=32,
                    num_hidden_layers=2, num_attention_heads=2, intermediate_size=37)
    return ViTModel(cfg), (), {"pixel_values": _randn(2, 3, 32, 32)}


@_register("hf_resnet", fx=False, dynamo=True, family="hf")
def _hf_resnet():
    from transformers import ResNetConfig, ResNetModel

    cfg = ResNetConfig(num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
                       layer_type="basic")
    m = ResNetModel(cfg)
    _randomize_bn(m)
    return m, (), {"pixel_values": _randn(2, 3, 32, 32)}


@_register("hf_llama", fx=False, dynamo=True, family="hf")
def _hf_llama():
    from transformers import LlamaConfig, LlamaModel

    cfg = LlamaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, intermediate_size=64, vocab_size=_VOCAB,
                      max_position_embeddings=64)
    return LlamaModel(cfg), (), {**_text_kwargs(), "use_cache": False}


# Two HF models whose decompositions torch.onnx's dynamo path cannot translate ("Cannot view a
# tensor ... as a tensor with shape ...", window attention reshapes): the seed's Swin/SAM failures.
# hierx's dynamo strategy exports them (it captures attention again with the math kernel).
@_register("hf_swin", fx=False, dynamo=False, family="hf", hierx_dynamo=True)
def _hf_swin():
    from transformers import SwinConfig, SwinModel

    cfg = SwinConfig(image_size=32, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[2, 2], window_size=4)
    return SwinModel(cfg), (), {"pixel_values": _randn(1, 3, 32, 32)}


@_register("hf_sam", fx=False, dynamo=False, family="hf", hierx_dynamo=True)
def _hf_sam():
    from transformers import SamConfig, SamMaskDecoderConfig, SamModel, SamPromptEncoderConfig, SamVisionConfig

    # Every width meets the prompt encoder's: output_channels == 2 * num_pos_feats == hidden sizes.
    vision = SamVisionConfig(hidden_size=32, output_channels=16, num_hidden_layers=2, num_attention_heads=2,
                             image_size=64, patch_size=16, mlp_dim=64, global_attn_indexes=[1], window_size=2,
                             num_pos_feats=8)
    prompt = SamPromptEncoderConfig(hidden_size=16, image_size=64, patch_size=16, mask_input_channels=4)
    decoder = SamMaskDecoderConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, mlp_dim=32,
                                   iou_head_hidden_dim=16)
    cfg = SamConfig(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder)
    points = torch.tensor([[[[20.0, 30.0]]]])  # one point prompt on the 64x64 image
    return SamModel(cfg), (), {"pixel_values": _randn(1, 3, 64, 64), "input_points": points}


@_register("hf_bart", fx=False, dynamo=True, family="hf")
def _hf_bart():
    from transformers import BartConfig, BartModel

    cfg = BartConfig(vocab_size=_VOCAB, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
                     decoder_attention_heads=2, encoder_ffn_dim=37, decoder_ffn_dim=37, max_position_embeddings=64,
                     pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2)
    kwargs = _text_kwargs()
    kwargs["decoder_input_ids"] = _ids(2, 5, _VOCAB, seed=5)
    return BartModel(cfg), (), {**kwargs, "use_cache": False}


@_register("hf_fsmt", fx=False, dynamo=False, family="hf")
def _hf_fsmt():
    """FSMT (fairseq translation), an HF encoder-decoder torch.export cannot capture, even with hierx's
    fixes: "GuardOnDataDependentSymNode: Could not guard on data-dependent expression Eq(u0, 1)".
    The TorchScript path exports it."""
    from transformers import FSMTConfig, FSMTModel

    cfg = FSMTConfig(langs=["en", "de"], src_vocab_size=_VOCAB, tgt_vocab_size=_VOCAB, d_model=32, encoder_layers=2,
                     decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=37,
                     decoder_ffn_dim=37, max_position_embeddings=64)
    kwargs = _text_kwargs()
    kwargs["decoder_input_ids"] = _ids(2, 5, _VOCAB, seed=5)
    return FSMTModel(cfg), (), {**kwargs, "use_cache": False}
