"""What hierx_nb adds to an export: ``hierx_nb.export(strategy="auto")``, with its check against
PyTorch in ONNX Runtime (the default) and with ``check=False``, against plain
``torch.onnx.export(dynamo=True)`` on a BERT-base-sized model (default BertConfig, random weights,
sequence 128), alternating in one process. Prints each round and the median ratios (targets:
<= 1.20 with the check, <= 1.05 without).

    python benchmarks/export_overhead.py [--rounds 5] [--seq 128]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from transformers import BertConfig, BertModel

import hierx_nb
from hierx_nb.quiet import quiet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seq", type=int, default=128)
    opts = parser.parse_args()

    torch.manual_seed(0)
    model = BertModel(BertConfig()).eval()
    kwargs = {"input_ids": torch.randint(0, model.config.vocab_size, (1, opts.seq))}
    params = sum(p.numel() for p in model.parameters())
    print(f"BERT-base: {params / 1e6:.1f} M parameters, sequence {opts.seq}, {opts.rounds} rounds (+1 warm-up)")

    with tempfile.TemporaryDirectory() as tmp:
        plain_path, hierx_path = Path(tmp) / "plain.onnx", Path(tmp) / "hierx.onnx"

        def plain() -> float:
            t0 = time.perf_counter()
            with quiet():
                torch.onnx.export(model, (), str(plain_path), kwargs=kwargs, dynamo=True, verbose=False)
            return time.perf_counter() - t0

        def ours(check: bool) -> float:
            t0 = time.perf_counter()
            result = hierx_nb.export(model, kwargs=kwargs, output=hierx_path, strategy="auto", check=check)
            elapsed = time.perf_counter() - t0
            assert result.strategy == "dynamo" and not result.warnings, result.warnings
            return elapsed

        plain(), ours(True)  # warm-up: imports, registries, caches
        ratios, unchecked = [], []
        for i in range(opts.rounds):
            # Rotate the order so drift in machine load hits all alike.
            runs = [("plain", plain), ("check", lambda: ours(True)), ("nocheck", lambda: ours(False))]
            runs = runs[i % 3:] + runs[:i % 3]
            t = {name: run() for name, run in runs}
            ratios.append(t["check"] / t["plain"])
            unchecked.append(t["nocheck"] / t["plain"])
            print(f"round {i + 1}: plain {t['plain']:6.2f} s   hierx {t['check']:6.2f} s (ratio {ratios[-1]:.3f})   "
                  f"check=False {t['nocheck']:6.2f} s (ratio {unchecked[-1]:.3f})")
        sizes = plain_path.stat().st_size / 2**20, hierx_path.stat().st_size / 2**20
        print(f"files: plain {sizes[0]:.1f} MiB, hierx {sizes[1]:.1f} MiB (+ sidecar "
              f"{(hierx_path.with_name('hierx.hierx.json')).stat().st_size / 2**10:.0f} KiB)")
    print(f"median ratio hierx/plain: {statistics.median(ratios):.3f} with the check (target <= 1.20), "
          f"{statistics.median(unchecked):.3f} with check=False (target <= 1.05)")


if __name__ == "__main__":
    main()
