"""Tiny generative models from transformers' default configs, shrunk (2 layers, hidden 64, vocab 256),
for tests/test_generation.py and benchmarks/generation.py. Nothing is downloaded."""
from __future__ import annotations

import torch

# The twelve causal LMs of issue 18, then models with another kind of cache.
CAUSAL_LMS = ("llama", "qwen2", "qwen3", "mistral", "gemma2", "gemma3_text", "phi3", "gpt2", "gpt_neox", "granite",
              "qwen3_moe", "mixtral")
ENCODER_DECODERS = ("bart", "whisper")
# Hybrid models: layers that keep a recurrent state (Mamba mixers, gated delta nets, short convolutions)
# beside attention layers; sizes of their own on top of SIZES (one layer of each kind).
HYBRIDS = {
    # Mamba-2 mixer, attention and MLP-only layers (the MLP layer has no cache: a DummyLayer).
    "nemotron_h": {"layers_block_type": ["linear_attention", "full_attention", "mlp"], "num_hidden_layers": 3,
                   "ssm_state_size": 16, "mamba_num_heads": 4, "mamba_head_dim": 16, "n_groups": 1, "chunk_size": 16},
    # Attention and a Mamba-2 mixer side by side in every layer: keys, values and both states per layer.
    "falcon_h1": {"mamba_d_ssm": 64, "mamba_n_heads": 4, "mamba_d_head": 16, "mamba_d_state": 16,
                  "mamba_chunk_size": 16, "mamba_n_groups": 1},
    "bamba": {"attn_layer_indices": [1], "mamba_n_heads": 4, "mamba_d_head": 32, "mamba_d_state": 16,
              "mamba_chunk_size": 16},
    "granitemoehybrid": {"layer_types": ["linear_attention", "full_attention"], "mamba_n_heads": 4, "mamba_d_head": 32,
                         "mamba_d_state": 16, "mamba_chunk_size": 16, "num_local_experts": 2, "num_experts_per_tok": 1,
                         "shared_intermediate_size": 64},
    "zamba2": {"layers_block_type": ["linear_attention", "hybrid"], "hybrid_layer_ids": [1], "mamba_d_state": 16,
               "n_mamba_heads": 2, "mamba_headdim": 64, "attention_hidden_size": 128, "attention_head_dim": 32,
               "num_key_value_heads": 4, "chunk_size": 16},
    # A short convolution (conv state only) and an attention layer.
    "lfm2": {"layer_types": ["conv", "full_attention"], "block_ff_dim": 128},
    # Gated delta rule (conv and recurrent states) and an attention layer, MoE MLPs.
    "qwen3_next": {"layer_types": ["linear_attention", "full_attention"], "linear_key_head_dim": 16,
                   "linear_value_head_dim": 16, "linear_num_key_heads": 2, "linear_num_value_heads": 4,
                   "num_experts": 2, "num_experts_per_tok": 1, "moe_intermediate_size": 32,
                   "shared_expert_intermediate_size": 32},
    # A Mamba-1 layer (its reference scan loops over the tokens), then an attention layer.
    "jamba": {"attn_layer_period": 2, "attn_layer_offset": 1, "expert_layer_period": 2, "expert_layer_offset": 1,
              "num_experts": 2, "num_experts_per_tok": 1, "mamba_d_state": 8, "mamba_dt_rank": 8},
}
# Vision-language models that generate in ONNX Runtime: a vision tower of 32x32 images in 8x8 patches,
# the same tiny text model (tiny() builds any model type with a vision config, gemma3 too).
VISION_LANGUAGE = ("llava", "idefics3")
VOCAB = 256
# Sliding-window models get a window shorter than prompt + 32 new tokens, so decoding crosses it.
WINDOW = 16

SIZES = {
    "hidden_size": 64, "n_embd": 64, "d_model": 64, "intermediate_size": 128, "n_inner": 128,
    "num_hidden_layers": 2, "n_layer": 2, "encoder_layers": 2, "decoder_layers": 2,
    "num_attention_heads": 4, "n_head": 4, "encoder_attention_heads": 4, "decoder_attention_heads": 4,
    "num_key_value_heads": 2, "head_dim": 16, "encoder_ffn_dim": 128, "decoder_ffn_dim": 128,
    "num_experts": 4, "num_local_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 64,
    "max_position_embeddings": 512, "max_target_positions": 512, "max_source_positions": 512,
    "num_mel_bins": 16,
    "image_size": 32, "patch_size": 8, "projection_dim": 64, "mm_tokens_per_image": 4, "scale_factor": 2,
}
IMAGE_TOKEN = VOCAB - 1


def tiny_config(model_type: str):
    from transformers import AutoConfig

    config = AutoConfig.for_model(model_type)
    vision = getattr(config, "vision_config", None)
    if vision is not None:  # a vision-language model: its vision and text configs (in place) shrunk as well
        for part in (config, vision, config.get_text_config()):
            _shrink(part)
        tiny_text(config.get_text_config(), model_type)
        for key in ("image_token_id", "image_token_index"):
            if hasattr(config, key):
                setattr(config, key, IMAGE_TOKEN)
        return config
    _shrink(config)
    return tiny_text(config, model_type)


def _shrink(config) -> None:
    for key, value in SIZES.items():
        if isinstance(getattr(config, key, None), int) and not isinstance(getattr(config, key), bool):
            setattr(config, key, value)


def tiny_text(config, model_type: str):
    config.vocab_size = VOCAB
    for key, token in (("pad_token_id", 0), ("bos_token_id", 1), ("eos_token_id", 2), ("decoder_start_token_id", 1)):
        if hasattr(config, key):
            setattr(config, key, token)
    if model_type in HYBRIDS:  # their layer kinds are their own
        for key, value in HYBRIDS[model_type].items():
            setattr(config, key, value)
        return config
    if getattr(config, "sliding_window", None):
        config.sliding_window = WINDOW
    if isinstance(getattr(config, "layer_types", None), list):
        config.layer_types = config.layer_types[: config.num_hidden_layers]
        if "sliding_attention" in config.layer_types and "full_attention" in config.layer_types:
            pass
        elif getattr(config, "sliding_window", None):
            config.layer_types = ["sliding_attention", "full_attention"][: config.num_hidden_layers]
    if model_type == "phi3":
        config.pad_token_id = 0
    return config


def tiny(model_type: str) -> torch.nn.Module:
    """A tiny model of ``model_type`` with a generation head, in eval mode, seeded."""
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoModelForSeq2SeqLM, AutoModelForSpeechSeq2Seq

    config = tiny_config(model_type)
    torch.manual_seed(0)
    if getattr(config, "vision_config", None) is not None:
        return AutoModelForImageTextToText.from_config(config).eval()
    if model_type == "whisper":
        return AutoModelForSpeechSeq2Seq.from_config(config).eval()
    if model_type in ENCODER_DECODERS:
        return AutoModelForSeq2SeqLM.from_config(config).eval()
    return AutoModelForCausalLM.from_config(config).eval()
