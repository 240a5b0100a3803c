"""Tiny generative models from transformers' default configs, shrunk (2 layers, hidden 64, vocab 256),
for tests/test_generation.py and benchmarks/generation.py. Nothing is downloaded."""
from __future__ import annotations

import torch

# The twelve causal LMs of issue 18, then models with another kind of cache.
CAUSAL_LMS = ("llama", "qwen2", "qwen3", "mistral", "gemma2", "gemma3_text", "phi3", "gpt2", "gpt_neox", "granite",
              "qwen3_moe", "mixtral")
ENCODER_DECODERS = ("bart", "whisper")
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
}


def tiny_config(model_type: str):
    from transformers import AutoConfig

    config = AutoConfig.for_model(model_type)
    for key, value in SIZES.items():
        if isinstance(getattr(config, key, None), int) and not isinstance(getattr(config, key), bool):
            setattr(config, key, value)
    config.vocab_size = VOCAB
    for key, token in (("pad_token_id", 0), ("bos_token_id", 1), ("eos_token_id", 2), ("decoder_start_token_id", 1)):
        if hasattr(config, key):
            setattr(config, key, token)
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
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoModelForSpeechSeq2Seq

    config = tiny_config(model_type)
    torch.manual_seed(0)
    if model_type == "whisper":
        return AutoModelForSpeechSeq2Seq.from_config(config).eval()
    if model_type in ENCODER_DECODERS:
        return AutoModelForSeq2SeqLM.from_config(config).eval()
    return AutoModelForCausalLM.from_config(config).eval()
