"""What the experts implementation costs in ONNX: transformers' ``batched_mm`` (what hierx switches
MoE models to) against ``grouped_mm`` exported through transformers' own translation of its
``grouped_mm_fallback`` op (``transformers.exporters.exporter_onnx``: one MatMul per expert).

A Qwen3-MoE-shaped model (default 128 experts, top 8; hidden size shrunk) with real weights, exported
with plain ``torch.onnx.export(dynamo=True)`` at each sequence length. Prints export time, node count,
the largest difference from PyTorch and ONNX Runtime (CPU) latency (median of ``--runs``, alternated).

    python benchmarks/moe_experts.py [--experts 128] [--hidden 256] [--seqs 16 256] [--runs 9]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import onnxruntime as ort
import torch
import transformers
from transformers.exporters.exporter_onnx import _aten_grouped_mm

from hierx_nb.quiet import quiet
from hierx_nb.translations import TABLE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experts", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--seqs", type=int, nargs="+", default=[16, 256])
    parser.add_argument("--runs", type=int, default=9)
    opts = parser.parse_args()
    h = opts.hidden
    config = transformers.Qwen3MoeConfig(num_hidden_layers=2, hidden_size=h, intermediate_size=2 * h,
                                         moe_intermediate_size=h // 2, num_attention_heads=4, num_key_value_heads=2,
                                         num_experts=opts.experts, vocab_size=99)
    torch.manual_seed(0)
    model = transformers.Qwen3MoeForCausalLM(config).eval()
    table = {**TABLE, torch.ops.transformers.grouped_mm_fallback.default: _aten_grouped_mm}
    with tempfile.TemporaryDirectory() as tmp:
        for seq in opts.seqs:
            ids = torch.randint(0, config.vocab_size, (1, seq))
            with torch.no_grad():
                want = model(input_ids=ids, use_cache=False).logits.numpy()
            sessions = {}
            for impl in ("batched_mm", "grouped_mm"):
                model.config._experts_implementation = impl
                t0 = time.perf_counter()
                with quiet():
                    program = torch.onnx.export(model, (), kwargs={"input_ids": ids, "use_cache": False}, dynamo=True,
                                                verbose=False, custom_translation_table=table)
                seconds = time.perf_counter() - t0
                path = f"{tmp}/{impl}.onnx"
                program.save(path)
                session = sessions[impl] = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
                feed = {session.get_inputs()[0].name: ids.numpy()}
                diff = float(np.abs(session.run(None, feed)[0] - want).max())
                print(f"{opts.experts} experts, {seq:4d} tokens, {impl:10s}: export {seconds:5.1f} s, "
                      f"{sum(1 for _ in program.model.graph):5d} nodes, max abs diff {diff:.1e}")
            # Runs alternate between the two graphs so drift in machine load hits both alike.
            times = {impl: [] for impl in sessions}
            for _ in range(opts.runs):
                for impl, session in sessions.items():
                    t0 = time.perf_counter()
                    session.run(None, {session.get_inputs()[0].name: ids.numpy()})
                    times[impl].append(time.perf_counter() - t0)
            latency = {impl: statistics.median(t) for impl, t in times.items()}
            print(f"{seq:4d} tokens: ORT median batched_mm {1e3 * latency['batched_mm']:.2f} ms, "
                  f"grouped_mm {1e3 * latency['grouped_mm']:.2f} ms")
            print(f"{seq:4d} tokens: ORT latency batched_mm / grouped_mm = {latency['batched_mm'] / latency['grouped_mm']:.2f}")


if __name__ == "__main__":
    main()
