"""What ``auto`` costs when a model's first strategies cannot work: ``auto`` in a fresh process,
after one earlier process met the failure, against the winning strategy alone (also in a fresh
process). Each run is its own Python process; the export call alone is timed (imports and model
building are the same for both). Rounds alternate which goes first; prints each round, the median
ratio (target <= 1.2) and the pre-check's share of the cold run (target <= 5%).

Models (from tests/zoo.py): ``data_dependent_if`` (control flow on tensor values: torch.export
cannot capture it) and ``hf_fsmt`` (an HF encoder-decoder torch.export cannot capture).

    python benchmarks/auto_overhead.py [--rounds 5] [--models data_dependent_if,hf_fsmt]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def child(name: str, strategy: str) -> None:
    """One export in this (fresh) process; prints a JSON line with its timings."""
    sys.path.insert(0, str(ROOT / "tests"))
    from zoo import case

    import hierx_nb
    from hierx_nb import precheck

    c = case(name)
    t0 = time.perf_counter()
    result = hierx_nb.export(c.model, c.args, c.kwargs, output=None, strategy=strategy)
    seconds = time.perf_counter() - t0
    # The pre-check's FX trace alone (it runs inside auto only for a kind of model seen for the first time).
    t0 = time.perf_counter()
    precheck.predict(c.model, c.kwargs, ("dynamo", "htp"))
    probe = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "strategy": result.strategy, "precheck": probe,
                      "attempts": [(a.name, "ok" if a.ok else "skipped" if a.skipped else "failed") for a in result.attempts],
                      "warnings": result.warnings}))


def run(name: str, strategy: str, cache: Path) -> dict:
    env = {**os.environ, "HIERX_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    env.pop("HIERX_NO_CACHE", None)
    proc = subprocess.run([sys.executable, __file__, "--child", name, strategy], capture_output=True, text=True,
                          env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{name} {strategy} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench(name: str, rounds: int) -> float:
    with tempfile.TemporaryDirectory(prefix="hierx-bench-cache-") as tmp:
        cache = Path(tmp)
        cold = run(name, "auto", cache)  # the earlier process: meets the failure (or predicts it)
        winner = cold["strategy"]
        print(f"{name}: cold auto {cold['seconds']:.2f} s {cold['attempts']}, its pre-check's FX trace "
              f"{cold['precheck']:.3f} s ({100 * cold['precheck'] / cold['seconds']:.1f}% of the export; target <= 5%)")
        ratios = []
        for i in range(rounds):
            pair = [("auto", None), (winner, None)] if i % 2 == 0 else [(winner, None), ("auto", None)]
            timed = {s: run(name, s, cache) for s, _ in pair}
            auto, alone = timed["auto"], timed[winner]
            assert auto["strategy"] == winner, auto
            ratios.append(auto["seconds"] / alone["seconds"])
            print(f"  round {i + 1}: auto {auto['seconds']:.3f} s {auto['attempts']}  {winner} alone "
                  f"{alone['seconds']:.3f} s  ratio {ratios[-1]:.2f}")
        median = statistics.median(ratios)
        print(f"{name}: median ratio auto / {winner} alone = {median:.2f} (target <= 1.2)")
        return median


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--models", default="data_dependent_if,hf_fsmt")
    opts = parser.parse_args()
    print("(each figure is one fresh process; on a shared machine, read the medians)")
    for name in opts.models.split(","):
        bench(name, opts.rounds)


if __name__ == "__main__":
    main()
