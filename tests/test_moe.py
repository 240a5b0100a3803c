"""Mixture-of-experts models with transformers' default settings: real and structure-only exports.

Each family is built from its default config with sizes shrunk only (layers, hidden, heads, experts,
vocab), so its experts implementation (``grouped_mm``) and attention are transformers' defaults.
"""
from __future__ import annotations

import ast
import json

import pytest
import torch
import transformers as T

import hierx_nb
from hierx_nb.hf_switches import exportable

SMALL = dict(num_hidden_layers=2, hidden_size=64, intermediate_size=128, num_attention_heads=4,
             num_key_value_heads=2, vocab_size=99)
# family -> (config class, model class, size overrides, router, experts, shared experts) in layer 1.
FAMILIES = {
    "mixtral": (T.MixtralConfig, T.MixtralForCausalLM, dict(num_local_experts=4),
                "mlp.gate", "mlp.experts", None),
    "qwen2_moe": (T.Qwen2MoeConfig, T.Qwen2MoeForCausalLM,
                  dict(num_experts=4, moe_intermediate_size=32, shared_expert_intermediate_size=64),
                  "mlp.gate", "mlp.experts", "mlp.shared_expert"),
    "qwen3_moe": (T.Qwen3MoeConfig, T.Qwen3MoeForCausalLM, dict(num_experts=8, moe_intermediate_size=32),
                  "mlp.gate", "mlp.experts", None),
    # 16 experts: the default 8 groups of which 4 are picked must hold the default top-8.
    "deepseek_v3": (T.DeepseekV3Config, T.DeepseekV3ForCausalLM,
                    dict(num_key_value_heads=4, n_routed_experts=16, moe_intermediate_size=32, first_k_dense_replace=1,
                         kv_lora_rank=16, q_lora_rank=32, qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=8),
                    "mlp.gate", "mlp.experts", "mlp.shared_experts"),
    "olmoe": (T.OlmoeConfig, T.OlmoeForCausalLM, dict(num_experts=8),
              "mlp.gate", "mlp.experts", None),
    "gpt_oss": (T.GptOssConfig, T.GptOssForCausalLM, dict(num_local_experts=4, head_dim=16),
                "mlp.router", "mlp.experts", None),
    "granitemoe": (T.GraniteMoeConfig, T.GraniteMoeForCausalLM, dict(num_local_experts=4),
                   "block_sparse_moe.router", "block_sparse_moe.experts", None),
}


def build(family: str, device: str = "cpu") -> torch.nn.Module:
    config_cls, model_cls, sizes = FAMILIES[family][:3]
    torch.manual_seed(0)
    with torch.device(device):
        return model_cls(config_cls(**{**SMALL, **sizes})).eval()


def settings(model) -> tuple:
    """Everything about the config an export could change."""
    c = model.config
    return c.to_json_string(use_diff=False), c._experts_implementation, c._attn_implementation


def exact_share(result) -> float:
    return float((result.nodes["source"] == "exact").mean())


@pytest.mark.parametrize("family", list(FAMILIES))
def test_moe_family_exports_exactly_with_default_config(family, tmp_path):
    model = build(family)
    assert model.config._experts_implementation == "grouped_mm"  # transformers' default, not exportable
    before = settings(model)
    out = tmp_path / f"{family}.onnx"
    result = hierx_nb.export(model, output=out)  # auto, inputs from the config

    assert settings(model) == before
    report = result.validate(atol=1e-4)
    assert report["ok"].all(), report
    assert exact_share(result) >= 0.95, exact_share(result)
    used = result.attempts[-1]
    assert used.ok and used.name == result.strategy
    assert used.switched == ("experts_implementation: grouped_mm -> batched_mm "
                             "(grouped_mm's custom op has no ONNX translation)",)
    side = json.loads(result.sidecar_path.read_text())
    assert side["attempts"][-1]["switched"] == list(used.switched)
    assert hierx_nb.load(out).attempts[-1].switched == used.switched

    # Router, experts and shared experts are distinct modules with their own nodes and tags.
    prefix = "model.layers.1."
    _, _, _, router, experts, shared = FAMILIES[family]
    tags = {}
    for part in filter(None, (router, experts, shared)):
        own = result.nodes[result.nodes["module"] == prefix + part]
        assert len(own), f"no node tagged {prefix + part}"
        cls = type(model.get_submodule(prefix + part)).__name__
        assert own["tag"].str.endswith(cls).all() or own["tag"].str.contains(f"/{cls}").all()
        tags[part] = set(own["tag"])
    assert len({frozenset(t) for t in tags.values()}) == len(tags)


def test_moe_structure_only_is_exact_and_leaves_the_meta_model_as_it_was(tmp_path):
    model = hierx_nb.meta_model(T.DeepseekV3Config(**{**SMALL, **FAMILIES["deepseek_v3"][2]}), T.DeepseekV3Model)
    before = settings(model)
    result = hierx_nb.export(model, output=tmp_path / "dsv3.onnx", structure_only=True)
    assert settings(model) == before
    assert result.strategy == "dynamo" and result.attempts[-1].switched
    assert "\n  switched experts_implementation: grouped_mm -> batched_mm" in repr(result)
    assert exact_share(result) == 1.0
    for node in result.onnx_model.graph:  # every tag is PyTorch's own record
        scopes = ast.literal_eval(node.metadata_props["pkg.torch.onnx.name_scopes"])
        assert node.metadata_props["hierx.module"] == (scopes[-2] if len(scopes) > 1 else "")
    assert {"layers.1.mlp.gate", "layers.1.mlp.experts", "layers.1.mlp.shared_experts"} <= set(result.nodes["module"])


def test_the_config_is_restored_when_every_strategy_fails():
    model = build("mixtral")
    before = settings(model)
    with pytest.raises(hierx_nb.ExportError) as err:
        hierx_nb.export(model, output=None, strategy="fx")  # symbolic tracing cannot trace Mixtral
    assert settings(model) == before
    assert err.value.attempts[0].switched  # what was tried is said even on failure


def test_switches_are_undone_when_the_block_raises():
    model = build("qwen3_moe")
    with pytest.raises(RuntimeError):
        with exportable(model) as switched:
            assert model.config._experts_implementation == "batched_mm"
            assert [s.split(":")[0] for s in switched] == ["experts_implementation"]
            raise RuntimeError("export failed")
    assert model.config._experts_implementation == "grouped_mm"


def test_a_non_moe_model_with_exportable_settings_is_not_switched():
    model = T.LlamaForCausalLM(T.LlamaConfig(**SMALL)).eval()
    with exportable(model) as switched:
        assert switched == []
        assert model.config._attn_implementation == "sdpa"


def test_flex_attention_is_switched_to_sdpa_and_validates():
    """Plain torch.onnx cannot capture flex_attention; the export uses SDPA and matches flex's outputs."""
    model = build("mixtral")
    model.config._experts_implementation = "batched_mm"  # the user's own choice: kept, not reported
    model.config._attn_implementation = "flex_attention"
    result = hierx_nb.export(model, output=None, strategy="dynamo")
    assert result.attempts[0].switched == ("attn_implementation: flex_attention -> sdpa "
                                           "(flex_attention cannot be exported to ONNX)",)
    assert model.config._attn_implementation == "flex_attention"
    assert model.config._experts_implementation == "batched_mm"
    assert result.validate(atol=1e-4)["ok"].all()


def test_cli_exports_a_saved_moe_folder_and_says_what_it_switched(tmp_path, capfd):
    from test_cli import run_inline

    folder = tmp_path / "tiny-qwen3-moe"
    build("qwen3_moe").save_pretrained(folder)  # loaded back with transformers' default experts (grouped_mm)
    code, stdout, err = run_inline(capfd, "export", folder, "-o", tmp_path / "moe.onnx", "--validate")
    assert code == 0, err
    assert "Qwen3MoeForCausalLM exported with dynamo" in stdout and "MISMATCH" not in stdout
    assert "  switched experts_implementation: grouped_mm -> batched_mm" in stdout
