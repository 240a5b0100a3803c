"""Structure-only export of LLaMA-shaped models built on the ``meta`` device (no weights), next to
plain ``torch.onnx.export(dynamo=True, optimize=False)`` of the same meta model, in one run.

Each export runs in a fresh subprocess so peak RSS is its own. Prints wall time, peak RSS, node
count and coverage per shape and mode, the time ratio hierx/plain, and how many tags agree with
PyTorch's own ``name_scopes`` record. Targets (70B shape): ratio <= 1.15, peak RSS <= 1.5 GiB,
100% of nodes tagged.

    python benchmarks/structure_only.py [--shapes 7b 70b] [--rounds 2] [--seq 16]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile

SHAPES = {
    "7b": dict(num_hidden_layers=32, hidden_size=4096, intermediate_size=11008, num_attention_heads=32,
               num_key_value_heads=32, vocab_size=32000),
    "70b": dict(num_hidden_layers=80, hidden_size=8192, intermediate_size=28672, num_attention_heads=64,
                num_key_value_heads=8, vocab_size=32000),
}

CHILD = r'''
import ast, json, resource, sys, time
import torch
from transformers import LlamaConfig, LlamaModel
mode, shape, seq, out = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
with torch.device("meta"):
    model = LlamaModel(LlamaConfig(**shape)).eval()
ids = torch.zeros((1, seq), dtype=torch.int64, device="meta")
t0 = time.perf_counter()
if mode == "plain":
    from hierx_nb.quiet import quiet
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
            "strategy": result.strategy}
info.update(seconds=seconds, peak_rss_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
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
            ratios = []
            for r in range(opts.rounds):
                # Alternate which goes first so drift in machine load hits both alike.
                order = ("plain", "hierx") if r % 2 == 0 else ("hierx", "plain")
                runs = {mode: run(mode, SHAPES[name], opts.seq, f"{tmp}/{name}_{mode}.onnx") for mode in order}
                plain, ours = runs["plain"], runs["hierx"]
                ratios.append(ours["seconds"] / plain["seconds"])
                print(f"{name} round {r + 1}: plain {plain['seconds']:6.1f} s {plain['peak_rss_gib']:.2f} GiB "
                      f"{plain['nodes']} nodes | hierx {ours['seconds']:6.1f} s {ours['peak_rss_gib']:.2f} GiB "
                      f"{ours['nodes']} nodes, {ours['coverage']:.1f}% tagged, tags agree with name_scopes on "
                      f"{ours['agree']}/{ours['with_record']} | time ratio {ratios[-1]:.3f}")
            print(f"{name}: median time ratio hierx/plain {statistics.median(ratios):.3f}")
    print("targets (70b): time ratio <= 1.15, hierx peak RSS <= 1.5 GiB, 100% tagged")


if __name__ == "__main__":
    main()
