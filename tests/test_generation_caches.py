"""export_for_generation with caches other than growing keys and values: hybrid models whose layers
keep a recurrent state (Mamba-2 mixers: NemotronH, Falcon-H1), one whose Mamba-1 scan cannot take a
prompt of any length (Jamba: one clear error), and sliding windows smaller than the prompt. Tiny
configs built in code, nothing downloaded; 32 greedy tokens in ONNX Runtime against model.generate."""
from __future__ import annotations

import pytest
import torch
from decoders import tiny, tiny_config
from transformers import AutoModelForCausalLM

import hierx_nb
from hierx_nb.caches import cache_name
from hierx_nb.errors import FixedLengthPrefill
from hierx_nb.generation import export_for_generation

NEW_TOKENS = 32


def exact_share(result) -> float:
    return float((result.nodes["source"].astype(str) == "exact").mean())


def graph_names(result) -> tuple[set[str], set[str]]:
    graph = result.onnx_model.graph
    return ({v.name for v in graph.inputs if v.name not in graph.initializers}, {v.name for v in graph.outputs})


def test_state_names():
    assert cache_name("past_key_values", ("layers", 0, "conv_states", 0)) == "past_key_values.0.conv_state"
    assert cache_name("present", ("layers", 3, "recurrent_states", 0)) == "present.3.recurrent_state"
    assert cache_name("present", ("layers", 3, "recurrent_states", 1)) == "present.3.recurrent_state.1"
    assert cache_name("past_key_values", ("layers", 1, "keys")) == "past_key_values.1.key"


def test_failure_memory_tells_requested_dynamic_axes_apart():
    """A failure caused by an axis asked to be dynamic is not remembered for the same model asked
    for other axes (it pushed BART's decode stage to htp after its axes were fixed)."""
    from hierx_nb.memory import kind_of

    model, x = torch.nn.Linear(4, 4), torch.randn(2, 4)
    assert kind_of(model, (x,)) == kind_of(model, (x,), None, {})
    assert kind_of(model, (x,), None, {"x": {0: "batch"}}) != kind_of(model, (x,))
    assert kind_of(model, (x,), None, {"x": {0: "batch"}}) != kind_of(model, (x,), None, {"x": {0: "rows"}})


@pytest.mark.slow
@pytest.mark.parametrize("model_type", ["nemotron_h", "falcon_h1"])
def test_hybrid_mamba_caches_generate_the_same_tokens(model_type, tmp_path):
    """Conv and recurrent states are cache inputs and outputs (past_key_values.{i}.conv_state ->
    present.{i}.conv_state, .recurrent_state likewise) beside the attention layers' keys and values;
    the decode step returns the updated states (transformers updates them in place) so each step feeds
    the next: 32 tokens as model.generate, logits step by step within float32 noise."""
    model = tiny(model_type)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = export_for_generation(model, tmp_path)
    layers = range(model.config.num_hidden_layers)
    stateful = [i for i in layers if f"present.{i}.conv_state" in graph_names(result.components["prefill"])[1]]
    attention = [i for i in layers if f"present.{i}.key" in graph_names(result.components["prefill"])[1]]
    assert stateful and attention, (stateful, attention)
    decode_in, decode_out = graph_names(result.components["decode"])
    for i in stateful:
        for state in ("conv_state", "recurrent_state"):
            assert f"past_key_values.{i}.{state}" in decode_in and f"present.{i}.{state}" in decode_out
            assert result.manifest["stages"]["decode"]["feeds_back"][f"present.{i}.{state}"] == \
                f"past_key_values.{i}.{state}"
    for i in attention:
        assert f"past_key_values.{i}.key" in decode_in and f"present.{i}.value" in decode_out
    report = result.validate(max_new_tokens=NEW_TOKENS)
    assert report.attrs["tokens_equal"], (report.attrs["reference"], report.attrs["onnx"])
    assert len(report) == NEW_TOKENS and report["max_abs_diff"].max() < 1e-4
    for name, component in result.components.items():
        assert component.strategy == "dynamo" and not component.warnings, (name, component.warnings)
        assert exact_share(component) >= 0.9, name
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # The example prompt spans two chunks of the scan (chunk_size 16: 33 tokens), so the number of chunks
    # stays dynamic: prompts of one chunk and of five run too (with one, Falcon-H1's prefill was fixed to it).
    assert result.inputs["input_ids"].shape[1] == 33
    for length in (5, 70):
        ids = torch.randint(3, 256, (2, length), generator=torch.Generator().manual_seed(length))
        with torch.no_grad():
            want = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                  max_new_tokens=4).numpy()
        assert (result.generate(ids, max_new_tokens=4) == want).all(), length


def test_a_scan_fixed_to_the_prompt_length_fails_with_one_line(tmp_path):
    """Jamba's Mamba-1 layer scans the prompt token by token: torch.export fixes the prefill to the
    example's 8 tokens. One error names the model type, the layer kind and module, and why."""
    model = tiny("jamba")
    with pytest.raises(FixedLengthPrefill) as caught:
        export_for_generation(model, tmp_path / "jamba")
    line = caught.value.one_line()
    for part in ("jamba (JambaForCausalLM)", "JambaMambaMixer", "model.layers.0.mamba", "exactly 8 tokens",
                 "'prefill'"):
        assert part in line, (part, line)
    assert isinstance(caught.value, hierx_nb.ExportError) and caught.value.attempts
    assert not (tmp_path / "jamba" / "manifest.json").exists()


@pytest.mark.slow
def test_a_prefill_bounded_by_a_chunk_loop_fails_with_one_line(tmp_path):
    """Qwen3-Next's gated delta rule loops over 64-token chunks in Python: its prefill traces to the
    example's one chunk while the sequence axis stays dynamic, so the file runs the 8-token example
    (and twice it) but not a longer prompt. The run at 257 tokens refuses it, naming the layer class."""
    model = tiny("qwen3_next")
    with pytest.raises(FixedLengthPrefill) as caught:
        export_for_generation(model, tmp_path / "qwen3_next")
    line = caught.value.one_line()
    for part in ("qwen3_next (Qwen3NextForCausalLM)", "'prefill'", "Qwen3NextGatedDeltaNet",
                 "prompt of 8 tokens but not one of 257", "ONNX Runtime"):
        assert part in line, (part, line)
    assert not (tmp_path / "qwen3_next" / "manifest.json").exists()


@pytest.mark.slow
def test_a_window_smaller_than_the_prompt_generates_the_same_tokens(tmp_path):
    """Mistral with every layer a sliding window of 4 tokens: the 8-token prompt already crosses it, and
    the 32 new tokens cross it again and again; the window is applied by the mask, the cache grows."""
    config = tiny_config("mistral")
    config.sliding_window, config.layer_types = 4, ["sliding_attention", "sliding_attention"]
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    result = export_for_generation(model, tmp_path)
    report = result.validate(max_new_tokens=NEW_TOKENS)
    assert report.attrs["tokens_equal"], (report.attrs["reference"], report.attrs["onnx"])
    assert len(report) == NEW_TOKENS and report["max_abs_diff"].max() < 1e-4
    # The window is a setting of the graph, not a cache tensor: only keys and values are fed back.
    assert set(result.manifest["stages"]["decode"]["cache_inputs"]) == {
        f"past_key_values.{i}.{kv}" for i in range(2) for kv in ("key", "value")}
