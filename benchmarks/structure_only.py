"""Structure-only export of LLaMA- and mixture-of-experts-shaped models built on the ``meta`` device
(no weights), next to plain ``torch.onnx.export(dynamo=True, optimize=False)`` of the same meta
model, in one run.

Each export runs in a fresh subprocess so peak RSS is its own. Prints wall time, peak RSS, node
count and coverage per shape and mode, the time ratio hierx/plain, the share of exact tags and how
many tags agree with PyTorch's own ``name_scopes`` record. The MoE shapes (DeepSeek-V3 671B,
Qwen3-235B-A22B) keep transformers' default settings for hierx, which switches the experts to
``batched_mm`` itself; plain torch.onnx cannot export them so, and gets ``batched_mm`` set by hand.
Targets (70B and MoE shapes): ratio <= 1.15, peak RSS <= 1.5 GiB, 100% of nodes tagged, exact.

    python benchmarks/structure_only.py [--shapes 7b 70b deepseek_v3 qwen3_235b] [--rounds 2] [--seq 16]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile

# name -> (config class, model class, config arguments)
SHAPES = {
    "7b": ("LlamaConfig", "LlamaModel",
           dict(num_hidden_layers=32, hidden_size=4096, intermediate_size=11008, num_attention_heads=32,
                num_key_value_heads=32, vocab_size=32000)),
    "70b": ("LlamaConfig", "LlamaModel",
            dict(num_hidden_layers=80, hidden_size=8192, intermediate_size=28672, num_attention_heads=64,
                 num_key_value_heads=8, vocab_size=32000)),
    # DeepseekV3Config's defaults are DeepSeek-V3's 671B shape: 61 layers, 256 routed experts + 1 shared.
    "deepseek_v3": ("DeepseekV3Config", "DeepseekV3Model", {}),
    # Qwen3-235B-A22B's config.json (Qwen3MoeConfig's defaults are the 30B-A3B model).
    "qwen3_235b": ("Qwen3MoeConfig", "Qwen3MoeModel",
                   dict(num_hidden_layers=94, hidden_size=4096, intermediate_size=12288, moe_intermediate_size=1536,
                        num_attention_heads=64, num_key_value_heads=4, head_dim=128, num_experts=128,
                        num_experts_per_tok=8, vocab_size=151936, max_position_embeddings=40960)),
}

CHILD = r'''
import ast, json, resource, sys, time
import torch
import transformers
mode, (config_cls, model_cls, shape), seq, out = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
with torch.device("meta"):
    model = getattr(transformers, model_cls)(getattr(transformers, config_cls)(**shape)).eval()
ids = torch.zeros((1, seq), dtype=torch.int64, device="meta")
t0, c0 = time.perf_counter(), time.process_time()
if mode == "plain":
    from hierx_nb.quiet import quiet
    if hasattr(model.config, "_experts_implementation"):
        model.config._experts_implementation = "batched_mm"  # by hand: the default does not export
    with quiet():
        program = torch.onnx.export(model, (), kwargs={"input_ids": ids, "use_cache": False}, dynamo=True,
                                    optimize=False, verbose=False)
        program.save(out, include_initializers=False)
    seconds = time.perf_counter() - t0
    nodes = sum(1 for _ in program.model.graph)
    info = {"nodes": nodes}
else:
    import hierx_nb
    result = hierx_nb.export(model, kwargs={"input_ids": ids}, output=out, structure_only=True)
    seconds = time.perf_counter() - t0
    agree = total = 0
    for node in result.onnx_model.graph:
        raw = node.metadata_props.get("pkg.torch.onnx.name_scopes")
        if raw:
            scopes = ast.literal_eval(raw)
            total += 1
            agree += node.metadata_props["hierx.module"] == (scopes[-2] if len(scopes) > 1 else "")
    info = {"nodes": len(result.nodes), "coverage": result.coverage_pct, "agree": agree, "with_record": total,
            "strategy": result.strategy, "exact_pct": 100 * float((result.nodes["source"] == "exact").mean())}
info.update(seconds=seconds, cpu_seconds=time.process_time() - c0, peak_rss_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
print("RESULT " + json.dumps(info))
'''


def run(mode: str, shape: dict, seq: int, out: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, mode, json.dumps(shape), str(seq), out],
                          capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise SystemExit(f"{mode} export failed:\n{proc.stderr[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seq", type=int, default=16)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name in opts.shapes:
            ratios, cpu_ratios = [], []
            for r in range(opts.rounds):
                # Alternate which goes first so drift in machine load hits both alike.
                order = ("plain", "hierx") if r % 2 == 0 else ("hierx", "plain")
                runs = {mode: run(mode, SHAPES[name], opts.seq, f"{tmp}/{name}_{mode}.onnx") for mode in order}
                plain, ours = runs["plain"], runs["hierx"]
                ratios.append(ours["seconds"] / plain["seconds"])
                cpu_ratios.append(ours["cpu_seconds"] / plain["cpu_seconds"])
                print(f"{name} round {r + 1}: plain {plain['seconds']:6.1f} s {plain['peak_rss_gib']:.2f} GiB "
                      f"{plain['nodes']} nodes | hierx {ours['seconds']:6.1f} s {ours['peak_rss_gib']:.2f} GiB "
                      f"{ours['nodes']} nodes, {ours['coverage']:.1f}% tagged, {ours['exact_pct']:.1f}% exact, tags agree with name_scopes on "
                      f"{ours['agree']}/{ours['with_record']} | time ratio {ratios[-1]:.3f}, CPU time ratio {cpu_ratios[-1]:.3f}")
            # CPU time is the steadier figure on a shared machine: other processes stretch wall time.
            print(f"{name}: median time ratio hierx/plain {statistics.median(ratios):.3f}, "
                  f"median CPU time ratio {statistics.median(cpu_ratios):.3f}")
    print("targets (70b, deepseek_v3, qwen3_235b): time ratio <= 1.15, hierx peak RSS <= 1.5 GiB, 100% tagged, exact")


if __name__ == "__main__":
    main()
