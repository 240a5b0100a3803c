"""The deployment pipeline on BERT-base (random weights from ``BertConfig()``, inputs generated from
the config): how long ``retag`` and ``compare`` take against what they build on. Prints:

- ``retag / load``: retagging the ORT-optimized file (``ort_all``, tags dropped by ORT) from the
  export, against ``hierx_nb.load`` of the tagged copy it writes (target <= 3);
- ``compare / (2 profile + validate(per_module=True))``: fp32 vs int8 (``quantize_dynamic``)
  against profiling both files and one per-module validation of the fp32 export (target <= 1.5);
- fp32 vs int8: unattributed kernel time as a share of kernel time on each side (target <= 5%),
  and the modules int8 made slower or faster.

Each timing is the median of ``--repeat`` runs (a shared 2-core machine preempts now and then).

    python benchmarks/pipeline.py [--layers 12] [--repeat 3] [--runs 20]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from transforms import TRANSFORMS  # noqa: E402

import hierx_nb  # noqa: E402


def timed(fn, repeat: int):
    seconds, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        seconds.append(time.perf_counter() - t0)
    return statistics.median(seconds), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=12, help="encoder layers (BERT-base: 12)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--runs", type=int, default=20, help="measured runs of each profile")
    opts = parser.parse_args()
    from transformers import BertConfig, BertModel

    model = BertModel(BertConfig(num_hidden_layers=opts.layers)).eval()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        a = hierx_nb.export(model, output=tmp / "bert.onnx")
        print(f"BERT-base ({opts.layers} layers): exported in {time.perf_counter() - t0:.1f} s, {len(a.nodes)} nodes", flush=True)

        optimized = tmp / "bert_ort_all.onnx"
        TRANSFORMS["ort_all"](a.onnx_path, optimized)
        written = tmp / "bert_ort_all.tagged.onnx"
        hierx_nb.retag(optimized, a.onnx_path, output=written)  # warm-up: the process's first ORT session
        t_retag, tagged = timed(lambda: hierx_nb.load(optimized, source=a.onnx_path), opts.repeat)
        t_write, _ = timed(lambda: hierx_nb.retag(optimized, a.onnx_path, output=written), opts.repeat)
        t_load, _ = timed(lambda: hierx_nb.load(written), opts.repeat)
        print(f"retag (load(path, source=)) {t_retag:.2f} s / load of the tagged file {t_load:.2f} s = {t_retag / t_load:.2f} "
              f"(target <= 3); with output= (writes {sum(f.stat().st_size for f in tmp.glob('bert_ort_all.tagged*')) / 1e6:.0f} MB) "
              f"{t_write:.2f} s; {len(tagged.nodes)} nodes", flush=True)

        int8 = tmp / "bert_int8.onnx"
        TRANSFORMS["quantize_dynamic"](a.onnx_path, int8)
        b = hierx_nb.retag(int8, a)
        kw = {"runs": opts.runs, "warmup": 3}
        t_cmp, df = timed(lambda: hierx_nb.compare(a, int8, **kw), opts.repeat)
        t_prof_a, _ = timed(lambda: a.profile(**kw), opts.repeat)
        t_prof_b, _ = timed(lambda: b.profile(inputs=dict(a.reference.named_inputs), **kw), opts.repeat)
        t_val, _ = timed(lambda: a.validate(per_module=True, raise_on_mismatch=False), opts.repeat)
        base = t_prof_a + t_prof_b + t_val
        print(f"compare {t_cmp:.2f} s / (profile {t_prof_a:.2f} + profile {t_prof_b:.2f} + validate(per_module) {t_val:.2f} "
              f"= {base:.2f} s) = {t_cmp / base:.2f} (target <= 1.5)")
        for side in "ab":
            kernel, lost = df.attrs[f"kernel_ms_{side}"], df.attrs[f"unattributed_ms_{side}"]
            print(f"{'fp32' if side == 'a' else 'int8'}: kernel {kernel:.2f} ms per run, unattributed {lost:.3f} ms "
                  f"({100 * lost / kernel:.1f}%, target <= 5%)")
        layers = df[df["module"].str.fullmatch(r"encoder\.layer\.\d+")]
        print(f"encoder layers: time ratio int8/fp32 median {layers['time_ratio'].median():.2f}, "
              f"own SQNR median {layers['own_sqnr_db'].median():.1f} dB; first divergent: {df.attrs['first_divergent']}")
        leaves = df[df["module_class"] == "Linear"].sort_values("time_ratio")
        print("Linear modules, int8/fp32 time ratio: fastest "
              + ", ".join(f"{r.module} {r.time_ratio:.2f}" for r in leaves.head(3).itertuples())
              + "; slowest " + ", ".join(f"{r.module} {r.time_ratio:.2f}" for r in leaves.tail(3).itertuples()))


if __name__ == "__main__":
    main()
