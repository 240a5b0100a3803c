"""What hierx_nb adds to an export: ``hierx_nb.export(strategy="auto")``, with its check against
PyTorch in ONNX Runtime (the default) and with ``check=False``, against plain
``torch.onnx.export(dynamo=True)`` on a BERT-base-sized model (default BertConfig, random weights,
sequence 128), alternating in one process. Prints each round, the median ratios (targets:
<= 1.20 with the check, <= 1.05 without), the load average, and where hierx's time goes: the
median seconds from each progress step to the next (export's own ``progress`` callback).

    python benchmarks/export_overhead.py [--rounds 5] [--seq 128]
"""
from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import tempfile
import time
from collections import defaultdict
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
    print(f"BERT-base: {params / 1e6:.1f} M parameters, sequence {opts.seq}, {opts.rounds} rounds (+1 warm-up); "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    steps: dict[bool, dict[str, list[float]]] = {True: defaultdict(list), False: defaultdict(list)}
    cpu: dict[str, float] = {}

    with tempfile.TemporaryDirectory() as tmp:
        plain_path, hierx_path = Path(tmp) / "plain.onnx", Path(tmp) / "hierx.onnx"

        def plain() -> float:
            t0, c0 = time.perf_counter(), cpu_seconds()
            with quiet():
                torch.onnx.export(model, (), str(plain_path), kwargs=kwargs, dynamo=True, verbose=False)
            cpu["plain"] = cpu_seconds() - c0
            return time.perf_counter() - t0

        def ours(check: bool) -> float:
            marks = []
            t0, c0 = time.perf_counter(), cpu_seconds()
            result = hierx_nb.export(model, kwargs=kwargs, output=hierx_path, strategy="auto", check=check,
                                     progress=lambda step, fraction=None: marks.append((time.perf_counter(), step)))
            elapsed = time.perf_counter() - t0
            cpu["check" if check else "nocheck"] = cpu_seconds() - c0
            assert result.strategy == "dynamo" and not result.warnings, result.warnings
            assert result.checked is check
            ends = [t for t, _ in marks[1:]] + [t0 + elapsed]
            for (start, step), end in zip(marks, ends):
                steps[check][re.sub(r"[0-9.]+ s$", "N s", step)].append(end - start)
            return elapsed

        plain(), ours(True)  # warm-up: imports, registries, caches
        ratios, unchecked, cpu_ratios, cpu_unchecked = [], [], [], []
        for i in range(opts.rounds):
            # Rotate the order so drift in machine load hits all alike.
            runs = [("plain", plain), ("check", lambda: ours(True)), ("nocheck", lambda: ours(False))]
            runs = runs[i % 3:] + runs[:i % 3]
            t = {name: run() for name, run in runs}
            ratios.append(t["check"] / t["plain"])
            unchecked.append(t["nocheck"] / t["plain"])
            cpu_ratios.append(cpu["check"] / cpu["plain"])
            cpu_unchecked.append(cpu["nocheck"] / cpu["plain"])
            print(f"round {i + 1}: plain {t['plain']:6.2f} s   hierx {t['check']:6.2f} s (ratio {ratios[-1]:.3f})   "
                  f"check=False {t['nocheck']:6.2f} s (ratio {unchecked[-1]:.3f});   CPU s: plain {cpu['plain']:.2f}, "
                  f"hierx {cpu['check']:.2f} ({cpu_ratios[-1]:.3f}), check=False {cpu['nocheck']:.2f} ({cpu_unchecked[-1]:.3f})")
        sizes = plain_path.stat().st_size / 2**20, hierx_path.stat().st_size / 2**20
        print(f"files: plain {sizes[0]:.1f} MiB, hierx {sizes[1]:.1f} MiB (+ sidecar "
              f"{(hierx_path.with_name('hierx.hierx.json')).stat().st_size / 2**10:.0f} KiB)")
    for check in (True, False):
        print(f"hierx steps, check={check} (median s over the rounds, the warm-up's included):")
        for step, seconds in steps[check].items():
            print(f"  {statistics.median(seconds):6.2f}  {step}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print(f"median ratio hierx/plain: {statistics.median(ratios):.3f} with the check (target <= 1.20, "
          f"range {min(ratios):.3f}-{max(ratios):.3f}), {statistics.median(unchecked):.3f} with check=False "
          f"(target <= 1.05, range {min(unchecked):.3f}-{max(unchecked):.3f})")
    print(f"median CPU-time ratio (user + system, all threads): {statistics.median(cpu_ratios):.3f} with the check, "
          f"{statistics.median(cpu_unchecked):.3f} with check=False")


def cpu_seconds() -> float:
    """This process's CPU time so far, all threads (less swayed by other processes than wall time)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
