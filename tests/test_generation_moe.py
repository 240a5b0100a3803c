"""Mixture-of-experts decoders exported for generation: the experts kernel is chosen per stage
(``hf_switches.stage_kernel``), the graphs compute with it, tokens still equal ``model.generate``,
and the model's own experts setting is as it was. Tiny configs (tests/decoders.py)."""
from __future__ import annotations

import json

import pytest
import torch
import transformers as T

from hierx_nb.errors import ExportError, UnknownChoice
from hierx_nb.generation import default_inputs, export_for_generation
from hierx_nb.hf_switches import EXPERT_NODES_AS_ELEMENTS, stage_kernel

NEW_TOKENS = 32
EXPERTS = "model.layers.0.mlp.experts"


def settings(model) -> tuple:
    c = model.config
    return c.to_json_string(use_diff=False), c._experts_implementation, c._attn_implementation


def matmuls(component, module: str = EXPERTS) -> int:
    """MatMul nodes tagged with the experts module of layer 0: grouped_mm runs one per expert and
    projection (gate_up, down), batched_mm one batched MatMul per projection."""
    nodes = component.nodes
    return int(((nodes["module"] == module) & (nodes["op_type"] == "MatMul")).sum())


def exported(model, folder, **options):
    inputs = default_inputs(model)
    given = {k: v.clone() for k, v in inputs.items()}
    state = {k: v.clone() for k, v in model.state_dict().items()}
    found = settings(model)
    result = export_for_generation(model, folder, inputs=inputs, **options)
    assert settings(model) == found  # the user's experts (and attention) setting, as found
    after = model.state_dict()
    assert state.keys() == after.keys() and all(torch.equal(state[k], after[k]) for k in state)
    assert all(torch.equal(inputs[k], given[k]) for k in inputs)
    return result


@pytest.mark.slow
def test_each_stage_computes_with_its_kernel_and_generates_the_same_tokens(tmp_path):
    from decoders import tiny

    model = tiny("qwen3_moe")  # 4 experts, top 2, 12,288 weights per expert
    experts = model.config.num_experts
    assert model.config._experts_implementation == "grouped_mm"  # transformers' default
    result = exported(model, tmp_path)

    # The rule: a 16-token prompt copies 16 x 2 x 12,288 weights with batched_mm, more than 4 experts'
    # nodes cost (4 x 50,000): grouped; one decode token copies 2 x 12,288 < 200,000: batched.
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert {n: s["experts"] for n, s in manifest["stages"].items()} == {"prefill": "grouped_mm", "decode": "batched_mm"}
    assert matmuls(result.components["prefill"]) == 2 * experts
    assert matmuls(result.components["decode"]) == 2
    assert "prefill: dynamo" in repr(result) and "experts grouped_mm" in repr(result)
    # What the decode export switched, and why, is in its attempt (the prefill kept the model's own kernel).
    assert result.components["prefill"].attempts[-1].switched == ()
    (line,) = result.components["decode"].attempts[-1].switched
    assert line.startswith("experts_implementation: grouped_mm -> batched_mm (decode: 1 token x top 2 x 12,288")

    report = result.validate(max_new_tokens=NEW_TOKENS)
    assert report.attrs["tokens_equal"] and len(report) == NEW_TOKENS, (report.attrs["reference"], report.attrs["onnx"])
    assert report["max_abs_diff"].max() < 1e-4  # float32 logits, step by step
    for component in result.components.values():
        assert float((component.nodes["source"].astype(str) == "exact").mean()) >= 0.95
    assert settings(model)[1] == "grouped_mm"  # and after validate's generate


@pytest.mark.slow
def test_experts_option_overrides_the_rule_per_stage_and_the_users_setting_is_kept(tmp_path):
    from decoders import tiny

    model = tiny("mixtral")
    model.config._experts_implementation = "batched_mm"  # the user's own choice, restored afterwards
    result = exported(model, tmp_path, experts={"prefill": "batched_mm", "decode": "grouped_mm"})
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert {n: s["experts"] for n, s in manifest["stages"].items()} == {"prefill": "batched_mm", "decode": "grouped_mm"}
    assert matmuls(result.components["prefill"]) == 2
    assert matmuls(result.components["decode"]) == 2 * model.config.num_local_experts
    assert result.components["decode"].attempts[-1].switched == (
        "experts_implementation: batched_mm -> grouped_mm (decode: experts='grouped_mm' was asked for)",)
    report = result.validate(max_new_tokens=NEW_TOKENS)
    assert report.attrs["tokens_equal"] and len(report) == NEW_TOKENS
    assert model.config._experts_implementation == "batched_mm"


def test_the_rule_follows_experts_count_top_k_and_size():
    """Large experts (Mixtral's 8 x top 2 with its width ratio): grouped even for one token; many small
    ones (Qwen3-MoE's 128 x top 8): batched for one token, grouped for a prompt. Built on the meta
    device: only the shapes matter."""
    with torch.device("meta"):
        mixtral = T.MixtralForCausalLM(T.MixtralConfig(num_hidden_layers=1, hidden_size=256, intermediate_size=896,
                                                       num_attention_heads=8, num_key_value_heads=2, vocab_size=99))
        qwen = T.Qwen3MoeForCausalLM(T.Qwen3MoeConfig(num_hidden_layers=1, hidden_size=256, moe_intermediate_size=96,
                                                      num_attention_heads=8, num_key_value_heads=2, vocab_size=99))
    # one token x top k x weights per expert (what batched_mm copies) against experts x the constant
    assert 1 * 2 * (3 * 256 * 896) >= 8 * EXPERT_NODES_AS_ELEMENTS
    assert 4 * 8 * (3 * 256 * 96) < 128 * EXPERT_NODES_AS_ELEMENTS <= 16 * 8 * (3 * 256 * 96)
    assert [stage_kernel(mixtral, s)[0] for s in ("prefill", "decode")] == ["grouped_mm", "grouped_mm"]
    assert [stage_kernel(qwen, s)[0] for s in ("prefill", "decode")] == ["grouped_mm", "batched_mm"]
    # Multi-token decode runs a few drafted tokens (4): still fewer weights copied than 128 experts' nodes cost.
    assert stage_kernel(qwen, "decode", multi_token_decode=True)[0] == "batched_mm"
    assert stage_kernel(qwen, "decode", "grouped_mm") == ("grouped_mm", "decode: experts='grouped_mm' was asked for")
    assert stage_kernel(qwen, "prefill", {"decode": "grouped_mm"})[0] == "grouped_mm"  # left out: the rule
    dense = T.LlamaForCausalLM(T.LlamaConfig(num_hidden_layers=1, hidden_size=32, intermediate_size=64,
                                             num_attention_heads=4, vocab_size=99))
    assert stage_kernel(dense, "decode", "grouped_mm") == (None, "")  # no experts: nothing to choose
    with pytest.raises(UnknownChoice, match="unknown experts kernel 'grouped'") as err:
        stage_kernel(qwen, "decode", "grouped")
    assert "did you mean 'grouped_mm'" in err.value.hint


def test_experts_naming_no_stage_gets_one_line(tmp_path):
    from decoders import tiny

    with pytest.raises(UnknownChoice, match="unknown stage in experts 'prefil'"):
        export_for_generation(tiny("qwen3_moe"), tmp_path, experts={"prefil": "batched_mm"})


@pytest.mark.slow
def test_a_stage_only_another_strategy_captures_falls_back_to_batched_mm(tmp_path):
    """grouped_mm's translation is dynamo's: with htp the rule's prefill kernel cannot export, so the
    stage is exported with batched_mm (said in its switch line and the manifest) instead of failing."""
    from decoders import tiny

    model = tiny("qwen3_moe")
    result = exported(model, tmp_path, strategy="htp")
    assert {n: c.strategy for n, c in result.components.items()} == {"prefill": "htp", "decode": "htp"}
    assert {n: s["experts"] for n, s in result.manifest["stages"].items()} == {"prefill": "batched_mm",
                                                                              "decode": "batched_mm"}
    assert result.components["prefill"].attempts[-1].switched == (
        "experts_implementation: grouped_mm -> batched_mm (prefill: grouped_mm did not export, "
        "batched_mm does with every strategy)",)
    assert matmuls(result.components["prefill"]) == 2
    assert result.validate(max_new_tokens=8).attrs["tokens_equal"]
    # Asked for by the user, grouped_mm is not replaced: the stage fails, naming it.
    with pytest.raises(ExportError, match="stage 'prefill'"):
        export_for_generation(model, tmp_path / "asked", strategy="htp", experts={"prefill": "grouped_mm"})
    assert model.config._experts_implementation == "grouped_mm"
