"""Decoders with their KV cache: hierx's export_for_generation on tiny causal LMs.

    python benchmarks/generation.py sweep [--types llama,gpt2,...] [--new-tokens 32]
    python benchmarks/generation.py compare [--types llama,qwen2,gpt2,mixtral] [--repeats 200]

``sweep``: every model of issue 18 (tests/decoders.py: twelve causal LMs, 2 layers, hidden 64, vocab
256, sliding windows of 16 so decoding crosses them; BART, Whisper; the vision-language models LLaVA
and Idefics3 on 32x32 images) exported with ``export_for_generation``; per model:
seconds, strategy and % of nodes exact per stage, and whether ``.generate`` in ONNX Runtime gives the
tokens of ``model.generate(do_sample=False)`` for 32 new tokens (largest per-step logit difference).
Each model runs in its own subprocess.

``compare``: for a few models, hierx's export time / transformers' own
``OnnxExporter().export_for_generation(..., OnnxConfig(dynamic=True))`` on the same model and inputs
(target <= 1.2), and ONNX Runtime's decode-step latency of both decode files (one token, the cache
of the prompt; median of ``--repeats`` alternating runs, one thread; target <= 1.05), and of both
prefill files on the prompt (for MoE models: hierx's experts kernel per stage, grouped in transformers'). Wall times on a
shared machine: the ratios are what to read.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from decoders import CAUSAL_LMS, ENCODER_DECODERS, VISION_LANGUAGE  # noqa: E402
from subprocess_rows import row_of  # noqa: E402  (benchmarks/, the script's own folder)

COMPARED = ("llama", "qwen2", "gpt2", "mixtral")


def sweep_one(model_type: str, new_tokens: int) -> dict:
    from decoders import tiny

    from hierx_nb.generation import export_for_generation
    from hierx_nb.quiet import quiet

    row: dict = {"type": model_type}
    try:
        model = tiny(model_type)
        row["class"] = type(model).__name__
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            with quiet():
                result = export_for_generation(model, tmp)
            row["seconds"] = round(time.perf_counter() - t0, 1)
            row["stages"] = {n: {"strategy": c.strategy, "nodes": len(c.nodes),
                                 "exact_pct": round(100 * float((c.nodes["source"].astype(str) == "exact").mean()), 1),
                                 "warnings": len(c.warnings)} for n, c in result.components.items()}
            report = result.validate(new_tokens)
            row.update(tokens_equal=report.attrs["tokens_equal"], steps=len(report),
                       max_logit_diff=float(report["max_abs_diff"].max()))
    except Exception as e:
        text = e.one_line() if hasattr(e, "one_line") else f"{type(e).__name__}: {e}"
        row["why"] = text.splitlines()[0][:400] if text else type(e).__name__
    return row


def decode_latency(path: Path, feeds: dict, repeats: int) -> list[float]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    feeds = {k: v for k, v in feeds.items() if k in names}
    for _ in range(5):
        session.run(None, feeds)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - t0)
    return times


def compare_one(model_type: str, repeats: int) -> dict:
    import numpy as np
    from decoders import tiny
    from transformers.exporters.configs import OnnxConfig
    from transformers.exporters.exporter_onnx import OnnxExporter

    from hierx_nb.generation import default_inputs, export_for_generation
    from hierx_nb.quiet import quiet

    model = tiny(model_type)
    inputs = default_inputs(model)
    row: dict = {"type": model_type}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # Alternate who goes first is not possible within one process (warm caches): transformers first,
        # so the first-export costs (imports, registrations) are charged to it, not to hierx.
        t0 = time.perf_counter()
        with quiet():
            theirs = OnnxExporter().export_for_generation(model, {k: v.clone() for k, v in inputs.items()},
                                                          OnnxConfig(dynamic=True))
        row["transformers_s"] = round(time.perf_counter() - t0, 2)
        theirs.save_pretrained(tmp / "transformers")
        t0 = time.perf_counter()
        with quiet():
            ours = export_for_generation(model, tmp / "hierx", inputs=inputs)
        row["hierx_s"] = round(time.perf_counter() - t0, 2)
        row["hierx_export_s"] = {n: round(c.attempts[-1].seconds, 2) for n, c in ours.components.items()}
        row["export_ratio"] = round(row["hierx_s"] / row["transformers_s"], 2)
        # One decode step: the last prompt token's successor with the prompt's cache, from our prefill.
        runner = ours.runner
        ids = inputs["input_ids"].numpy()
        mask = inputs["attention_mask"].numpy()
        prefill = runner.sessions["prefill"]
        out = dict(zip([o.name for o in prefill.get_outputs()], prefill.run(None, runner._feeds("prefill", ids, mask, {}))))
        token = out["logits"][:, -1].argmax(-1)[:, None].astype(np.int64)
        past = {runner.stages["prefill"]["feeds_back"][o]: out[o] for o in runner.stages["prefill"]["cache_outputs"]}
        mask1 = np.concatenate([mask, np.ones((mask.shape[0], 1), np.int64)], axis=1)
        feeds = runner._feeds("decode", token, mask1, past)
        # transformers names the same tensors input.cache.layers.{i}.keys / values
        for name, value in list(feeds.items()):
            if name.startswith("past_key_values."):
                _, layer, kind = name.split(".")
                feeds[f"input.cache.layers.{layer}.{kind}s"] = value
        prefill_feeds = runner._feeds("prefill", ids, mask, {})
        for stage, stage_feeds in (("decode", feeds), ("prefill", prefill_feeds)):
            files = {"hierx": tmp / "hierx" / f"{stage}.onnx", "transformers": tmp / "transformers" / f"{stage}.onnx"}
            samples = {k: [] for k in files}
            for _ in range(4):  # alternate in blocks: load drifts on a shared machine
                for k, path in files.items():
                    samples[k] += decode_latency(path, stage_feeds, repeats // 4)
            for k, v in samples.items():
                row[f"{k}_{stage}_ms"] = round(1000 * statistics.median(v), 4)
            row[f"{stage}_ratio"] = round(row[f"hierx_{stage}_ms"] / row[f"transformers_{stage}_ms"], 3)
        row["nodes"] = {"hierx": len(ours.components["decode"].nodes),
                        "transformers": len(list(theirs.components["decode"].program.graph))}
    return row


def in_subprocess(mode: str, model_type: str, extra: list[str], timeout: float) -> dict:
    return row_of(__file__, [mode, "--one", model_type, *extra], model_type, timeout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("sweep", "compare"))
    parser.add_argument("--types", default=None)
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    if args.one:
        row = sweep_one(args.one, args.new_tokens) if args.mode == "sweep" else compare_one(args.one, args.repeats)
        print("ROW " + json.dumps(row))
        return
    default = (*CAUSAL_LMS, *ENCODER_DECODERS, *VISION_LANGUAGE) if args.mode == "sweep" else COMPARED
    types = args.types.split(",") if args.types else list(default)
    extra = ["--new-tokens", str(args.new_tokens), "--repeats", str(args.repeats)]
    for t in types:
        print(json.dumps(in_subprocess(args.mode, t, extra, args.timeout)), flush=True)


if __name__ == "__main__":
    main()
