"""What the per-module answers cost on a BERT-base-sized model (default BertConfig, random weights,
sequence 128), alternating in one process:

1. ``result.profile(runs=N)`` against plain ONNX Runtime doing the same work by hand: a session at
   the same optimization level, the same warm-up and N runs (target <= 1.5);
2. ``result.validate(per_module=True)`` against ``result.validate()`` (target <= 3).

Prints each round and the median ratios. Figures measured on a shared machine are noisy.

    python benchmarks/profile_overhead.py [--rounds 3] [--seq 128] [--runs 20]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import onnxruntime as ort
import torch
from transformers import BertConfig, BertModel

import hierx_nb
from hierx_nb.runtime import match_inputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--runs", type=int, default=20)
    opts = parser.parse_args()
    warmup = 3

    torch.manual_seed(0)
    model = BertModel(BertConfig()).eval()
    kwargs = {"input_ids": torch.randint(0, model.config.vocab_size, (1, opts.seq)),
              "attention_mask": torch.ones(1, opts.seq, dtype=torch.long)}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bert.onnx"
        t0 = time.perf_counter()
        result = hierx_nb.export(model, kwargs=kwargs, output=path, strategy="dynamo")
        print(f"BERT-base, sequence {opts.seq}: exported in {time.perf_counter() - t0:.1f} s, {len(result.nodes)} "
              f"nodes; {opts.runs} runs after {warmup} warm-up, {opts.rounds} rounds (+1 warm-up round)")

        def plain_runs() -> float:
            t0 = time.perf_counter()
            so = ort.SessionOptions()
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
            feeds = match_inputs(session.get_inputs(), result.reference.named_inputs)
            for _ in range(warmup + opts.runs):
                session.run(None, feeds)
            return time.perf_counter() - t0

        def profiled() -> float:
            t0 = time.perf_counter()
            df = result.profile(runs=opts.runs, warmup=warmup, optimization="all")
            elapsed = time.perf_counter() - t0
            assert df.attrs["unattributed_ms"] <= 0.05 * df.attrs["kernel_ms"]
            return elapsed

        def validate_plain() -> float:
            t0 = time.perf_counter()
            assert result.validate()["ok"].all()
            return time.perf_counter() - t0

        def validate_modules() -> float:
            t0 = time.perf_counter()
            assert result.validate(per_module=True).attrs["first_divergent"] is None
            return time.perf_counter() - t0

        for pair in ((plain_runs, profiled), (validate_plain, validate_modules)):
            pair[0](), pair[1]()  # warm-up: imports, caches
        profile_ratios, validate_ratios = [], []
        for i in range(opts.rounds):
            # Alternate which goes first so drift in machine load hits both alike.
            if i % 2:
                t_prof, t_plain = profiled(), plain_runs()
                t_mod, t_val = validate_modules(), validate_plain()
            else:
                t_plain, t_prof = plain_runs(), profiled()
                t_val, t_mod = validate_plain(), validate_modules()
            profile_ratios.append(t_prof / t_plain)
            validate_ratios.append(t_mod / t_val)
            print(f"round {i + 1}: plain ORT {t_plain:6.2f} s  profile() {t_prof:6.2f} s  ratio {profile_ratios[-1]:.2f} | "
                  f"validate() {t_val:6.2f} s  per_module {t_mod:6.2f} s  ratio {validate_ratios[-1]:.2f}")
        df = result.latency
        print(f"kernel time {df.attrs['kernel_ms']:.1f} ms per run, unattributed "
              f"{100 * df.attrs['unattributed_ms'] / df.attrs['kernel_ms']:.1f}%")
    print(f"median ratio profile()/plain ORT runs: {statistics.median(profile_ratios):.2f} (target <= 1.5)")
    print(f"median ratio validate(per_module=True)/validate(): {statistics.median(validate_ratios):.2f} (target <= 3)")


if __name__ == "__main__":
    main()
