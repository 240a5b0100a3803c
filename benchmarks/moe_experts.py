"""What the experts kernel costs in ONNX Runtime: transformers' ``batched_mm`` (each token gathers the
weights of its top-k experts, one batched matmul) against ``grouped_mm`` (tokens sorted by expert, one
MatMul per expert: transformers' own translation of its ``grouped_mm_fallback`` op).

``stages`` (the default): the grounds of ``export_for_generation``'s per-stage choice. Mixtral- and
Qwen3-MoE-shaped decoders (their real expert counts and top-k: 8 / top 2 and 128 / top 8; hidden size,
layers and vocabulary shrunk, random weights) exported twice with ``export_for_generation``, once with
``experts="batched_mm"`` and once with ``experts="grouped_mm"`` for every stage. Then ORT (CPU, one
thread) latency of both prefill files on a prompt of each ``--tokens`` (batch 1), and of both decode
files for one new token with the cache of that prompt. Runs alternate between the two files in
rounds; medians. Prints ``batched / grouped`` per stage and length: below 1, batched_mm is faster.
``HIERX_MOE_HIDDEN`` (default 256) sets the hidden size (expert widths follow it).

``layer``: the earlier measurement, a whole Qwen3-MoE-shaped model (no cache) exported with plain
``torch.onnx.export`` at each ``--tokens`` with either kernel.

    python benchmarks/moe_experts.py [stages] [--models mixtral,qwen3_moe] [--tokens 1 4 16 64 256] [--rounds 7]
    python benchmarks/moe_experts.py layer [--experts 128] [--hidden 256] [--tokens 16 256] [--rounds 9]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import transformers

from hierx_nb.hf_switches import KERNELS
from hierx_nb.quiet import quiet

HIDDEN = int(os.environ.get("HIERX_MOE_HIDDEN", 256))
# Expert counts, top-k and the expert width relative to hidden are the real models' (Mixtral-8x7B:
# 14336 / 4096; Qwen3-30B-A3B: 768 / 2048); hidden, layers, heads and vocabulary are shrunk.
MODELS = {
    "mixtral": lambda: transformers.MixtralForCausalLM(transformers.MixtralConfig(
        num_hidden_layers=2, hidden_size=HIDDEN, intermediate_size=HIDDEN * 7 // 2, num_attention_heads=8,
        num_key_value_heads=2, num_local_experts=8, num_experts_per_tok=2, vocab_size=1000,
        max_position_embeddings=1024)),
    "qwen3_moe": lambda: transformers.Qwen3MoeForCausalLM(transformers.Qwen3MoeConfig(
        num_hidden_layers=2, hidden_size=HIDDEN, intermediate_size=HIDDEN * 3, moe_intermediate_size=HIDDEN * 3 // 8,
        num_attention_heads=8, num_key_value_heads=2, head_dim=32, num_experts=128, num_experts_per_tok=8,
        vocab_size=1000, max_position_embeddings=1024)),
}


def session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def alternate(runs: dict, rounds: int, per_round: int = 3) -> dict[str, float]:
    """Median seconds of each ``name -> zero-argument call``, run in alternating rounds."""
    for run in runs.values():
        run()  # warm-up
    times = {k: [] for k in runs}
    for _ in range(rounds):
        for k, run in runs.items():
            for _ in range(per_round):
                t0 = time.perf_counter()
                run()
                times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def stages(opts) -> None:
    from hierx_nb.generation import GenerationRunner, export_for_generation

    for name in opts.models.split(","):
        torch.manual_seed(0)
        model = MODELS[name]().eval()
        config = model.config
        with tempfile.TemporaryDirectory() as tmp:
            runners, nodes = {}, {}
            for kernel in KERNELS:
                t0 = time.perf_counter()
                with quiet():
                    result = export_for_generation(model, Path(tmp) / kernel, experts=kernel)
                nodes[kernel] = {n: len(c.nodes) for n, c in result.components.items()}
                print(f"{name} ({config.num_local_experts if hasattr(config, 'num_local_experts') else config.num_experts} "
                      f"experts, top {config.num_experts_per_tok}), {kernel:10s}: export {time.perf_counter() - t0:5.1f} s, "
                      f"nodes prefill {nodes[kernel]['prefill']}, decode {nodes[kernel]['decode']}", flush=True)
                runners[kernel] = GenerationRunner(Path(tmp) / kernel, threads=1)
                runners[kernel].sessions = {s: session(Path(tmp) / kernel / f"{s}.onnx") for s in ("prefill", "decode")}
            for tokens in opts.tokens:
                ids = torch.randint(3, config.vocab_size, (1, tokens), generator=torch.Generator().manual_seed(tokens)).numpy()
                mask = np.ones_like(ids)
                ref = runners[KERNELS[0]]
                feeds = ref._feeds("prefill", ids, mask, {})
                prefill = ref.sessions["prefill"]
                out = dict(zip([o.name for o in prefill.get_outputs()], prefill.run(None, feeds)))
                spec = ref.stages["prefill"]
                past = {spec["feeds_back"][o]: out[o] for o in spec["cache_outputs"]}
                token = out["logits"][:, -1].argmax(-1)[:, None].astype(np.int64)
                decode_feeds = ref._feeds("decode", token, np.ones((1, tokens + 1), np.int64), past)
                row = []
                for stage, stage_feeds in (("prefill", feeds), ("decode", decode_feeds)):
                    calls = {k: (lambda s=r.sessions[stage], f=stage_feeds: s.run(None, f)) for k, r in runners.items()}
                    outs = {k: call()[0] for k, call in calls.items()}
                    diff = float(np.abs(outs["batched_mm"] - outs["grouped_mm"]).max())
                    ms = alternate(calls, opts.rounds)
                    row.append(f"{stage} {1e3 * ms['batched_mm']:7.3f} / {1e3 * ms['grouped_mm']:7.3f} ms = "
                               f"{ms['batched_mm'] / ms['grouped_mm']:.2f} (logits differ by {diff:.0e})")
                print(f"{name} {tokens:4d} tokens: batched_mm / grouped_mm: {row[0]}; one-token decode after them: {row[1]}",
                      flush=True)


def layer(opts) -> None:
    from transformers.exporters.exporter_onnx import _aten_grouped_mm

    from hierx_nb.translations import TABLE

    h = opts.hidden
    config = transformers.Qwen3MoeConfig(num_hidden_layers=2, hidden_size=h, intermediate_size=2 * h,
                                         moe_intermediate_size=h // 2, num_attention_heads=4, num_key_value_heads=2,
                                         num_experts=opts.experts, vocab_size=99)
    torch.manual_seed(0)
    model = transformers.Qwen3MoeForCausalLM(config).eval()
    table = {**TABLE, torch.ops.transformers.grouped_mm_fallback.default: _aten_grouped_mm}
    with tempfile.TemporaryDirectory() as tmp:
        for seq in opts.tokens:
            ids = torch.randint(0, config.vocab_size, (1, seq))
            with torch.no_grad():
                want = model(input_ids=ids, use_cache=False).logits.numpy()
            sessions = {}
            for impl in KERNELS:
                model.config._experts_implementation = impl
                t0 = time.perf_counter()
                with quiet():
                    program = torch.onnx.export(model, (), kwargs={"input_ids": ids, "use_cache": False}, dynamo=True,
                                                verbose=False, custom_translation_table=table)
                seconds = time.perf_counter() - t0
                path = f"{tmp}/{impl}.onnx"
                program.save(path)
                sessions[impl] = session(Path(path))
                diff = float(np.abs(sessions[impl].run(None, {"input_ids": ids.numpy()})[0] - want).max())
                print(f"{opts.experts} experts, {seq:4d} tokens, {impl:10s}: export {seconds:5.1f} s, "
                      f"{sum(1 for _ in program.model.graph):5d} nodes, max abs diff {diff:.1e}")
            feed = {"input_ids": ids.numpy()}
            ms = alternate({k: (lambda s=s, f=feed: s.run(None, f)) for k, s in sessions.items()}, opts.rounds)
            print(f"{seq:4d} tokens: ORT median batched_mm {1e3 * ms['batched_mm']:.2f} ms, "
                  f"grouped_mm {1e3 * ms['grouped_mm']:.2f} ms, batched / grouped = {ms['batched_mm'] / ms['grouped_mm']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", choices=("stages", "layer"), default="stages")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--tokens", type=int, nargs="+", default=None)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--experts", type=int, default=128, help="layer: experts of the Qwen3-MoE-shaped model")
    parser.add_argument("--hidden", type=int, default=256, help="layer: its hidden size")
    opts = parser.parse_args()
    if opts.mode == "stages":
        opts.tokens = opts.tokens or [1, 4, 16, 64, 256]
        stages(opts)
    else:
        opts.tokens = opts.tokens or [16, 256]
        layer(opts)


if __name__ == "__main__":
    main()
