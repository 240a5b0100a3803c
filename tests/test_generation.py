"""export_for_generation: prefill + decode files with the KV cache as inputs and outputs, checked by
generating tokens in ONNX Runtime against model.generate. Tiny configs; one export shared per model."""
from __future__ import annotations

import json

import numpy as np
import onnx_ir as ir
import pytest
import torch
from decoders import CAUSAL_LMS, IMAGE_TOKEN, VISION_LANGUAGE, tiny

import hierx_nb
from hierx_nb.caches import cache_name
from hierx_nb.errors import CannotGenerate
from hierx_nb.generation import GenerationRunner, default_inputs, export_for_generation

NEW_TOKENS = 32


def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=256)
    return LlamaForCausalLM(config).eval()


def exact_share(result) -> float:
    """Share of the file's nodes tagged ``exact``, from its coverage table (node counts by op type)."""
    coverage = result.coverage
    nodes = int(coverage["nodes"].sum())
    assert nodes == len(result.nodes) > 0  # the table counts every node of the file
    return int(coverage["exact"].sum()) / nodes


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    model = tiny_llama()
    inputs = default_inputs(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    given = {k: v.clone() for k, v in inputs.items()}
    result = export_for_generation(model, tmp_path_factory.mktemp("llama"), inputs=inputs)
    return model, inputs, before, given, result


def test_llama_generates_the_same_tokens_as_generate(llama):
    model, inputs, _, _, result = llama
    report = result.validate(max_new_tokens=NEW_TOKENS)
    assert report.attrs["tokens_equal"], (report.attrs["reference"], report.attrs["onnx"])
    assert len(report) == NEW_TOKENS  # no early stop hides steps: every step compared
    assert report["tokens_equal"].all()
    assert report["max_abs_diff"].max() < 1e-4  # float32 logits, step by step
    # generate() on other prompts than the export's (batch of 3, other length) works as well
    ids = torch.randint(3, 256, (3, 5), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                              max_new_tokens=8).numpy()
    np.testing.assert_array_equal(result.generate(ids, max_new_tokens=8), want)


def test_llama_files_names_and_axes(llama):
    _, _, _, _, result = llama
    assert set(result.components) == {"prefill", "decode"}
    folder = result.output_dir
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["stages"]["decode"]["feeds_back"]["present.1.value"] == "past_key_values.1.value"
    for name, component in result.components.items():
        assert (folder / f"{name}.onnx").is_file() and component.sidecar_path.is_file()
        assert exact_share(component) >= 0.95, name
    decode = ir.load(folder / "decode.onnx").graph
    inputs = {v.name: v.shape for v in decode.inputs}
    outputs = {v.name: v.shape for v in decode.outputs}
    assert [str(d) for d in inputs["past_key_values.0.key"]] == ["batch", "2", "past_sequence", "16"]
    assert [str(d) for d in outputs["present.0.key"]] == ["batch", "2", "total_sequence", "16"]
    assert [str(d) for d in inputs["attention_mask"]] == ["batch", "total_sequence"]
    prefill = ir.load(folder / "prefill.onnx").graph
    assert not [v.name for v in prefill.inputs if v.name.startswith("past_key_values")]
    assert [str(d) for d in {v.name: v.shape for v in prefill.inputs}["input_ids"]] == ["batch", "sequence"]
    # decode is tagged like prefill: the same modules carry its nodes
    modules = {n: set(c.nodes["module"]) for n, c in result.components.items()}
    assert "model.layers.1.self_attn" in modules["decode"] & modules["prefill"]


def test_llama_model_and_inputs_unchanged(llama):
    model, inputs, before, given, result = llama
    result.validate(max_new_tokens=4)
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert inputs.keys() == given.keys() and all(torch.equal(inputs[k], given[k]) for k in inputs)
    assert "forward" not in model.__dict__  # the flat forward lives on a copy only


def test_runner_reads_the_folder_alone(llama):
    _, inputs, _, _, result = llama
    runner = GenerationRunner(result.output_dir)
    np.testing.assert_array_equal(runner.generate(inputs["input_ids"], inputs["attention_mask"], 4),
                                  result.generate(inputs["input_ids"], inputs["attention_mask"], 4))


def test_cache_names():
    assert cache_name("past_key_values", ("layers", 3, "keys")) == "past_key_values.3.key"
    assert cache_name("present", ("self_attention_cache", "layers", 0, "values")) == "present.0.decoder.value"
    assert cache_name("past_key_values", ("layers", 1, "conv_states", 0)) == "past_key_values.1.conv_state"


def test_a_model_that_cannot_generate_gets_one_line(tmp_path):
    from transformers import BertConfig, BertModel

    model = BertModel(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                                 vocab_size=100))
    with pytest.raises(CannotGenerate) as e:
        export_for_generation(model, tmp_path)
    assert isinstance(e.value, hierx_nb.InputError)
    assert "cannot generate" in str(e.value) and "\n" not in str(e.value)
    assert not list(tmp_path.iterdir())


def test_a_cache_passed_to_export_is_never_frozen(tmp_path):
    """export(model, kwargs={..., "past_key_values": cache}): the cache's tensors are graph inputs
    and the new cache graph outputs; another cache fed to the file gives PyTorch's answer for it;
    the caller's cache does not grow."""
    import copy

    import onnxruntime as ort

    def tensors(cache):
        return [t for layer in cache.layers for t in (layer.keys, layer.values)]

    model = tiny_llama()
    ids = torch.randint(3, 256, (2, 6), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        cache = model(input_ids=ids[:, :5], use_cache=True).past_key_values
    kept = [t.clone() for t in tensors(cache)]
    result = hierx_nb.export(model, kwargs={"input_ids": ids[:, 5:], "past_key_values": cache},
                             output=tmp_path / "step.onnx")
    assert cache.get_seq_length() == 5
    assert all(torch.equal(a, b) for a, b in zip(kept, tensors(cache)))
    graph = result.onnx_model.graph
    inputs = [v.name for v in graph.inputs if v.name not in graph.initializers]
    assert inputs == ["input_ids", "past_key_values.0.key", "past_key_values.0.value", "past_key_values.1.key",
                      "past_key_values.1.value"]
    assert [v.name for v in graph.outputs] == ["logits", "present.0.key", "present.0.value", "present.1.key",
                                               "present.1.value"]
    # Another cache (of other tokens): the file answers for it, as PyTorch does.
    with torch.no_grad():
        other = model(input_ids=ids[:, :5].flip(1), use_cache=True).past_key_values
        want = model(input_ids=ids[:, 5:], past_key_values=copy.deepcopy(other), use_cache=True)
    session = ort.InferenceSession(str(tmp_path / "step.onnx"), providers=["CPUExecutionProvider"])
    feeds = {"input_ids": ids[:, 5:].numpy(),
             **{n: t.numpy() for n, t in zip(inputs[1:], tensors(other))}}
    logits, *present = session.run(None, feeds)
    np.testing.assert_allclose(logits, want.logits.numpy(), atol=1e-4)
    assert present[0].shape[2] == 6  # 5 past + 1 new position
    np.testing.assert_allclose(present[0][:, :, :5], tensors(other)[0].numpy())


def test_a_cache_with_options_naming_parameters_is_refused(tmp_path):
    model = tiny_llama()
    ids = torch.randint(3, 256, (1, 4), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        cache = model(input_ids=ids[:, :3], use_cache=True).past_key_values
    with pytest.raises(hierx_nb.CacheOptions) as e:
        hierx_nb.export(model, kwargs={"input_ids": ids[:, 3:], "past_key_values": cache}, output=tmp_path / "x.onnx",
                        dynamic_shapes={"input_ids": {0: "batch"}})
    assert "export_for_generation" in str(e.value) and "dynamic_shapes" in str(e.value)
    assert not (tmp_path / "x.onnx").exists()


def test_cli_generate_prints_the_tokens_of_generate(llama, capsys):
    from hierx_nb import cli

    model, _, _, _, result = llama
    code = cli.main(["generate", str(result.output_dir), "--prompt-ids", "5,6,7", "--max-new-tokens", "6"])
    out, err = capsys.readouterr()
    with torch.no_grad():
        want = model.generate(input_ids=torch.tensor([[5, 6, 7]]), attention_mask=torch.ones(1, 3, dtype=torch.long),
                              do_sample=False, max_new_tokens=6)[0, 3:].tolist()
    assert code == 0 and out.strip() == ",".join(map(str, want))
    assert "ms/token over 5 steps" in err
    assert cli.main(["generate", str(result.output_dir / "nowhere"), "--prompt-ids", "1"]) == 2
    assert "hierx export MODEL --task text-generation" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_exports_a_saved_folder_for_text_generation(tmp_path, capsys):
    from hierx_nb import cli

    model = tiny_llama()
    model.save_pretrained(tmp_path / "llama")
    code = cli.main(["export", str(tmp_path / "llama"), "--task", "text-generation", "-o", str(tmp_path / "out"),
                     "-q", "--validate"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "the same tokens as model.generate over 32 steps" in out
    assert {p.name for p in (tmp_path / "out").glob("*.onnx")} == {"prefill.onnx", "decode.onnx"}


def test_profile_of_the_decode_step_by_module(llama):
    """profile() of the decode file: where one generated token's time goes (attention, MLP, lm_head)."""
    _, _, _, _, result = llama
    latency = result.components["decode"].profile(runs=5, warmup=1)
    rows = latency.set_index("module")
    for module in ("lm_head", "model.layers.0.self_attn", "model.layers.1.mlp"):
        assert rows.loc[module, "total_ms"] > 0, module
    assert rows.loc["model.layers", "total_ms"] >= rows.loc["model.layers.0", "total_ms"]


def model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer (non-persistent ones too: rotary inv_freq), cloned."""
    return {f"{kind}:{name}": t.detach().clone()
            for kind, named in (("param", model.named_parameters()), ("buffer", model.named_buffers()))
            for name, t in named}


def bit_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> list[str]:
    """Names whose tensors differ in dtype, shape or any bit (NaN-safe: compared as raw bytes)."""
    def raw(t):
        return t.reshape(-1).contiguous().view(torch.uint8)
    return sorted(set(a) ^ set(b)) + [k for k in a.keys() & b.keys()
                                      if a[k].dtype != b[k].dtype or a[k].shape != b[k].shape
                                      or not torch.equal(raw(a[k]), raw(b[k]))]


@pytest.mark.slow
@pytest.mark.parametrize("model_type", [t for t in CAUSAL_LMS if t != "llama"])
def test_causal_lm_zoo_generates_the_same_tokens(model_type, tmp_path):
    """Issue 18's twelve causal LMs (llama has its own tests above), from tests/decoders.py's tiny
    configs (2 layers, hidden 64, vocab 256; sliding windows of 16, crossed by 8 + 32 tokens; 4
    experts for the MoEs): 32 greedy tokens in ONNX Runtime equal model.generate(do_sample=False),
    each stage has >= 95% of its nodes tagged exact (its coverage table), and the model's
    parameters and buffers and the given inputs are bit-identical afterwards."""
    model = tiny(model_type)
    inputs = default_inputs(model)
    before, given = model_state(model), {k: v.clone() for k, v in inputs.items()}
    result = export_for_generation(model, tmp_path, inputs=inputs)
    assert set(result.components) == {"prefill", "decode"}
    for name, component in result.components.items():
        assert exact_share(component) >= 0.95, (name, exact_share(component))
    report = result.validate(max_new_tokens=NEW_TOKENS)
    assert report.attrs["tokens_equal"], (report.attrs["reference"], report.attrs["onnx"])
    assert len(report) == NEW_TOKENS and report["tokens_equal"].all()
    assert report.attrs["onnx"].shape == (2, 8 + NEW_TOKENS)  # no early stop: 32 tokens were compared
    assert not bit_identical(before, model_state(model))
    assert not bit_identical(given, inputs)


@pytest.mark.slow
@pytest.mark.parametrize("model_type", ["bart", "whisper"])
def test_an_encoder_decoder_generates_with_its_cache(model_type, tmp_path):
    """BART and Whisper: an encoder stage, then decoder stages that take the cache of both attentions
    (self: grown; cross: computed at prefill, carried; BART's also the encoder's output, which
    Whisper's decode step no longer reads); 32 tokens as model.generate."""
    model = tiny(model_type)
    result = export_for_generation(model, tmp_path)
    decode = result.components["decode"]
    graph = decode.onnx_model.graph
    inputs = {v.name for v in graph.inputs if v.name not in graph.initializers}
    assert {"past_key_values.0.decoder.key", "past_key_values.0.encoder.key", "past_key_values.1.decoder.value"} <= inputs
    assert "present.1.decoder.key" in {v.name for v in graph.outputs}
    for name, component in result.components.items():
        assert not component.warnings, (name, component.warnings)  # matched PyTorch on the export's inputs
        assert exact_share(component) >= 0.95, name
        assert component.strategy == "dynamo", name  # the decode stage's axes let torch.export capture it
    assert set(result.components) == {"encoder", "prefill", "decode"}
    report = result.validate(max_new_tokens=NEW_TOKENS)
    assert report.attrs["tokens_equal"], (report.attrs["reference"], report.attrs["onnx"])
    assert report["max_abs_diff"].max() < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("model_type", VISION_LANGUAGE)
def test_a_vision_language_model_generates_from_pixels(model_type, tmp_path):
    """LLaVA and Idefics3: decompose_for_generation splits them into language_model (inputs_embeds in,
    the cache out), lm_head and decode; generate() computes the image features before the first
    forward, so the image stage (vision tower, feature selection, projector) and the token embeddings
    are stages of their own. ONNX Runtime then generates from pixel_values the tokens of
    model.generate(do_sample=False), 32 of them; the model and the inputs are unchanged."""
    model = tiny(model_type)
    inputs = default_inputs(model)
    before, given = model_state(model), {k: v.clone() for k, v in inputs.items()}
    assert {"input_ids", "attention_mask", "pixel_values"} == set(inputs)
    assert (inputs["input_ids"] == IMAGE_TOKEN).sum() > 0
    result = export_for_generation(model, tmp_path, inputs=inputs)
    assert list(result.components) == ["image_encoder", "embed_tokens", "language_model", "lm_head", "decode"]
    for name, component in result.components.items():
        assert exact_share(component) >= 0.95, (name, exact_share(component))
    io = {n: set(c.io["name"]) for n, c in result.components.items()}
    assert io["image_encoder"] == {"pixel_values", "image_features"}
    assert {"inputs_embeds", "present.1.value", "last_hidden_state"} <= io["language_model"]
    assert "past_key_values.0.key" not in io["language_model"] and "past_key_values.0.key" in io["decode"]
    assert "pixel_values" not in io["decode"]
    # tagged as in the whole model
    assert any(m.startswith("model.vision") for m in result.components["image_encoder"].nodes["module"])
    report = result.validate(max_new_tokens=NEW_TOKENS)
    assert report.attrs["tokens_equal"], (report.attrs["reference"], report.attrs["onnx"])
    assert len(report) == NEW_TOKENS and report["max_abs_diff"].max() < 1e-4
    # the images matter: other pixels give other tokens, in ONNX Runtime as in PyTorch
    other = dict(inputs, pixel_values=inputs["pixel_values"].flip(-1) * 3)
    with torch.no_grad():
        want = model.generate(**other, do_sample=False, max_new_tokens=8).numpy()
    got = result.generate(other["input_ids"], other["attention_mask"], 8, pixel_values=other["pixel_values"])
    np.testing.assert_array_equal(got, want)
    assert not np.array_equal(got, report.attrs["onnx"][:, : got.shape[1]])
    # the folder alone (manifest + files) generates the same, no PyTorch model
    alone = GenerationRunner(result.output_dir).generate(other["input_ids"], other["attention_mask"], 8,
                                                         images={"pixel_values": other["pixel_values"].numpy()})
    np.testing.assert_array_equal(alone, want)
    assert not bit_identical(before, model_state(model))
    assert not bit_identical(given, inputs)
    with pytest.raises(hierx_nb.InputError, match="pixel_values"):
        result.generate(inputs["input_ids"], inputs["attention_mask"], 2)


def test_a_vision_language_model_the_runner_cannot_feed_gets_one_line(tmp_path):
    """Gemma 3: its language model takes one 4-D mask per attention type, which the model builds in
    Python (bidirectional over each image's tokens): no file computes it, so export_for_generation
    says so in one line, naming the stage, before exporting anything."""
    model = tiny("gemma3")
    with pytest.raises(CannotGenerate) as e:
        export_for_generation(model, tmp_path)
    line = str(e.value)
    assert "\n" not in line and "language_model" in line and "attention_mask" in line, line
    assert not list(tmp_path.glob("*.onnx"))
