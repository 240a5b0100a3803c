"""The ``hierx`` command (also ``python -m hierx_nb``): ``export``, ``analyze``, ``report``, ``profile``,
``extract``, ``retag``, ``compare``, ``cache`` and ``demo``.

stdout carries the report (summary, tree, tables); progress and errors go to stderr. An error is
exactly one line, ``hierx: error: ...``, with exit code 2 for bad input (arguments, model
reference, inputs, paths) and 1 for a failed export; ``HIERX_DEBUG=1`` adds the traceback. Errors
carry a hint for the shell (``ExportError.one_line(shell=True)``): flags, not Python arguments.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import traceback
from pathlib import Path

import pandas as pd

from .errors import ExportError, InputError, Mismatch, NoReference, NoSuchFile, StructureOnly, describe, first_line
from .hierarchy import NameTree, module_label, root_label
from .version import __version__

EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 1, 2, 130
DEMO_FILE = "demo_bert.onnx"
DEMO_TREE_DEPTH = 3


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = _parser()
    try:
        ns = parser.parse_args(argv)
        if ns.command is None:
            parser.error("choose a command: export, generate, analyze, report, profile, extract, retag, compare, cache or demo")
    except SystemExit as e:  # --help / --version (0) or a usage error already reported (2)
        return e.code if isinstance(e.code, int) else EXIT_BAD_INPUT
    try:
        code = ns.run(ns)
        sys.stdout.flush()  # a closed pipe (hierx analyze f.onnx | head) surfaces here, not at exit
        return code
    except KeyboardInterrupt:
        _error_line("interrupted", prefix="hierx: ")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _drop_stdout()
        return EXIT_FAILED
    except InputError as e:
        return _report(e.one_line(shell=True), EXIT_BAD_INPUT)
    except ExportError as e:
        return _report(e.one_line(shell=True), EXIT_FAILED)
    except OSError as e:
        where = f": {e.filename!r}" if e.filename else ""
        return _report(f"{e.strerror or e}{where}", EXIT_FAILED)
    except Exception as e:
        return _report(f"unexpected {describe(e)} "
                       "(rerun with HIERX_DEBUG=1 to see the traceback)", EXIT_FAILED)


# -- arguments -------------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (the full usage is one ``--help`` away)."""

    def error(self, message):
        _error_line(f"{message} (see '{self.prog} --help')", prefix=f"{self.prog}: error: ")
        self.exit(EXIT_BAD_INPUT)


def _parser() -> argparse.ArgumentParser:
    from . import strategies
    from .model_ref import INPUTS_GRAMMAR
    from .shapes import DYNAMIC_GRAMMAR

    parser = _Parser(prog="hierx", description="Hierarchy-preserving PyTorch -> ONNX export: every ONNX node "
                                               "tagged with the nn.Module it came from.")
    parser.add_argument("--version", action="version", version=f"hierx_nb {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    exp = sub.add_parser("export", help="export a model to a tagged ONNX file",
                         description="Export MODEL to ONNX with every node tagged by its nn.Module; a "
                                     ".hierx.json sidecar with the module tables is written beside it.")
    exp.add_argument("model", metavar="MODEL",
                     help="package.module:factory, path/to/file.py:factory, a save_pretrained folder, or "
                          "(with --structure-only) a config.json; a factory returns a model, (model, args) "
                          "or (model, args, kwargs)")
    exp.add_argument("-o", "--output", required=True, metavar="FILE.onnx", help="the ONNX file to write")
    exp.add_argument("--strategy", default=strategies.AUTO, choices=strategies.CHOICES,
                     help=f"auto (default) tries {strategies.describe_auto()}")
    exp.add_argument("--inputs", metavar="SPEC",
                     help=INPUTS_GRAMMAR.format(dtypes="float32, float16, bfloat16, int64, int32, bool, ...")
                     + ". Default: the factory's inputs, or inputs generated from a HuggingFace config")
    exp.add_argument("--structure-only", action="store_true",
                     help="no weights: build the model on the meta device and write the graph and tags only "
                          "(for analysing models too big to load)")
    exp.add_argument("--torch-nn-filter", action="store_true",
                     help="fold torch.nn leaf modules into their parent in the readable hierx.tag")
    exp.add_argument("--validate", action="store_true",
                     help="run the ONNX file in ONNX Runtime and compare its outputs with PyTorch's")
    exp.add_argument("--no-check", dest="check", action="store_false",
                     help="skip the check export does by default (the file run once in ONNX Runtime against "
                          "PyTorch's outputs; a mismatch is a warning)")
    exp.add_argument("--dynamic", action="append", metavar="SPEC",
                     help="dynamic dimensions, named in the file: " + DYNAMIC_GRAMMAR)
    exp.add_argument("--opset", type=int, metavar="N", help="ONNX opset version (default: the exporter's)")
    exp.add_argument("--allow-dropped-input", dest="allow_dropped_inputs", action="append", default=[],
                     metavar="NAME", help="an input tensor the file may drop (it then computes with the "
                     "export-time value, said in a warning); repeat for several")
    exp.add_argument("--task", choices=("text-generation",),
                     help="text-generation: a decoder as shipped, in the folder -o: one tagged file per generation "
                          "stage (prefill.onnx, decode.onnx) with the KV cache as inputs and outputs, and "
                          "manifest.json (run it with 'hierx generate FOLDER')")
    exp.add_argument("-q", "--quiet", action="store_true",
                     help="no progress on stderr (and no library warnings); errors are still reported")
    exp.set_defaults(run=_cmd_export)

    gen = sub.add_parser("generate", help="greedy decoding with the files of 'hierx export --task text-generation'",
                         description="Generate tokens greedily in ONNX Runtime with the prefill and decode files "
                                     "in FOLDER, the KV cache fed back step to step; prints the new token ids and "
                                     "the time of the prefill and of each decode step.")
    gen.add_argument("folder", metavar="FOLDER", help="the folder 'hierx export --task text-generation -o' wrote")
    gen.add_argument("--prompt-ids", required=True, type=_token_ids, metavar="IDS",
                     help="the prompt's token ids, comma-separated (e.g. 1,2,3)")
    gen.add_argument("--max-new-tokens", type=_positive, default=32, metavar="N", help="tokens to generate (32)")
    gen.set_defaults(run=_cmd_generate)

    ana = sub.add_parser("analyze", help="print the module tree of a tagged ONNX file",
                         description="Print the module tree of a file written by hierx export, with each "
                                     "module's own and total (subtree) node counts.")
    ana.add_argument("file", metavar="FILE.onnx")
    _table_options(ana, json="summary, coverage and modules")
    ana.set_defaults(run=_cmd_analyze)

    rep = sub.add_parser("report", help="write the explorer of a tagged ONNX file as one HTML file",
                         description="Write the explorer (module tree, charts, node table) of a file written by "
                                     "hierx export as one self-contained HTML file: it opens from disk in a "
                                     "browser, with no kernel, server or network.")
    rep.add_argument("file", metavar="FILE.onnx")
    rep.add_argument("-o", "--output", metavar="FILE.html", help="the HTML file (default: FILE.html beside FILE.onnx)")
    rep.add_argument("--profile", action="store_true",
                     help="time each module in ONNX Runtime first (as hierx profile), so the report shows latency")
    rep.add_argument("--runs", type=_positive, default=20, metavar="N", help="measured runs for --profile (default 20)")
    rep.add_argument("--validate", nargs="?", const="", metavar="MODEL",
                     help="compare each module's ONNX outputs with PyTorch's first, so the report shows divergence; "
                          "MODEL is the model exported (as for hierx export: module:factory, file.py:factory or "
                          "a save_pretrained folder; default: the MODEL hierx export was given for FILE)")
    rep.add_argument("--inputs", metavar="SPEC",
                     help="inputs for --profile and --validate, as for export --inputs (default: the factory's, "
                          "a HuggingFace config's, or made from the graph's input types)")
    rep.set_defaults(run=_cmd_report)

    prof = sub.add_parser("profile", help="time each module of a tagged ONNX file in ONNX Runtime",
                          description="Run FILE.onnx in ONNX Runtime (CPU) with its profiler and print the "
                                      "module tree with each module's own and subtree kernel time per run "
                                      "(fused kernels of the optimized graph mapped back to modules).")
    prof.add_argument("file", metavar="FILE.onnx")
    prof.add_argument("--runs", type=_positive, default=20, metavar="N", help="measured runs (default 20)")
    prof.add_argument("--warmup", type=_non_negative, default=3, metavar="N",
                      help="runs before measuring, not counted (default 3)")
    prof.add_argument("--optimization", default="all", choices=["all", "extended", "basic", "none"],
                      help="ONNX Runtime's graph optimization level (default all, ORT's default)")
    prof.add_argument("--threads", type=_positive, metavar="N", help="intra-op threads (default: ORT's)")
    prof.add_argument("--inputs", metavar="SPEC",
                      help="inputs as for export --inputs (default: from the graph's input types, symbolic "
                           "dimensions 1 and integers 0)")
    _table_options(prof, json="totals, time by op type and modules")
    prof.set_defaults(run=_cmd_profile)

    ext = sub.add_parser("extract", help="write one module's subtree as a runnable ONNX model",
                         description="Write MODULE's subtree of a tagged FILE.onnx as an ONNX model of its own: "
                                     "its inputs are the values the module takes from outside, its outputs "
                                     "those it hands outside; weights and tags come along.")
    ext.add_argument("file", metavar="FILE.onnx")
    ext.add_argument("module", metavar="MODULE", help="qualified name as in model.named_modules(), e.g. encoder.layer.0")
    ext.add_argument("-o", "--output", required=True, metavar="OUT.onnx", help="the ONNX file to write")
    ext.set_defaults(run=_cmd_extract)

    ret = sub.add_parser("retag", help="carry the module tags onto a file made from a tagged one",
                         description="Give every node of FILE.onnx (made from SOURCE.onnx by ONNX Runtime's optimizer, "
                                     "onnxslim, onnxsim, fp16 conversion, quantization...) the module of the source "
                                     "nodes it came from, and write a tagged copy: only metadata is added.")
    ret.add_argument("file", metavar="FILE.onnx", help="the transformed file (its tags lost or partial)")
    ret.add_argument("--from", dest="source", required=True, metavar="SOURCE.onnx",
                     help="the tagged file hierx export wrote, that FILE.onnx was made from")
    ret.add_argument("-o", "--output", required=True, metavar="OUT.onnx", help="the tagged copy to write")
    ret.set_defaults(run=_cmd_retag)

    cmp = sub.add_parser("compare", help="compare two files of one model, module by module",
                         description="Compare B.onnx with A.onnx module by module: node and op changes, ONNX Runtime "
                                     "kernel time of each, and B's numeric error against A (SQNR, dB), inherited and "
                                     "its own (B's module run on A's values at its inputs). An untagged B is "
                                     "retagged from A first.")
    cmp.add_argument("a", metavar="A.onnx", help="the reference file (tagged, e.g. the export)")
    cmp.add_argument("b", metavar="B.onnx", help="the file to check (fp16, int8, optimized, another export)")
    cmp.add_argument("--inputs", metavar="SPEC", help="inputs as for export --inputs (default: from A's graph input types)")
    cmp.add_argument("--runs", type=_positive, default=20, metavar="N", help="measured runs per file (default 20)")
    cmp.add_argument("--warmup", type=_non_negative, default=3, metavar="N", help="runs before measuring (default 3)")
    cmp.add_argument("--threads", type=_positive, metavar="N", help="intra-op threads (default: ORT's)")
    cmp.add_argument("--sqnr-db", type=float, metavar="DB",
                     help="own SQNR below which a module is divergent (default 20 dB)")
    _table_options(cmp, json="totals and modules")
    cmp.set_defaults(run=_cmd_compare)

    cache = sub.add_parser("cache", help="the failure memory of auto (clear)",
                           description="auto remembers, on disk, the strategies that failed for a kind of model "
                                       "(class and code, HF config, torch version) and skips them next time. "
                                       "HIERX_CACHE_DIR moves the cache; HIERX_NO_CACHE=1 keeps it off disk.")
    cache.add_argument("action", choices=["clear"], help="clear: forget every remembered failure")
    cache.set_defaults(run=_cmd_cache)

    demo = sub.add_parser("demo", help="export and validate a tiny built-in BERT (no download)",
                          description="Export a tiny BERT built from a config (no download), validate it "
                                      "with ONNX Runtime and print its summary and module tree.")
    demo.add_argument("-o", "--output-dir", default="build/demo", metavar="DIR",
                      help=f"folder for {DEMO_FILE} and its sidecar (created if missing; default build/demo)")
    demo.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    demo.set_defaults(run=_cmd_demo)
    return parser


def _token_ids(text: str) -> list[int]:
    try:
        ids = [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated token ids (e.g. 1,2,3), got {text!r}") from None
    if not ids or min(ids) < 0:
        raise argparse.ArgumentTypeError(f"expected comma-separated token ids (e.g. 1,2,3), got {text!r}")
    return ids


def _positive(text: str) -> int:
    value = _non_negative(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 1 or more, got {value}")
    return value


def _table_options(parser: argparse.ArgumentParser, json: str) -> None:
    """--format and --depth of the commands that print a module table (analyze, profile, compare)."""
    parser.add_argument("--format", default="text", choices=["text", "json", "csv"],
                        help=f"text: indented tree (default); json: {json}; csv: modules")
    parser.add_argument("--depth", type=_non_negative, metavar="N", help="show modules down to depth N only")


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {value}")
    return value


# -- commands --------------------------------------------------------------------------------------

def _cmd_export(ns) -> int:
    from .exporter import export
    from .files import check_output
    from .model_ref import parse_inputs, resolve_model
    from .shapes import parse_dynamic

    if ns.task == "text-generation":
        return _export_for_generation(ns)
    if ns.validate and ns.structure_only:
        raise StructureOnly("--validate needs weights: it cannot be combined with --structure-only",
                            shell_hint="drop one of them")
    # Cheap checks first: a wrong -o or --inputs must not cost minutes of model loading.
    check_output(ns.output)
    given = parse_inputs(ns.inputs) if ns.inputs is not None else None
    dynamic = parse_dynamic(ns.dynamic) if ns.dynamic else None
    say = _progress(ns.quiet)
    with _libraries_muted(ns.quiet):
        say(f"loading {ns.model}")
        model, args, kwargs, _ = resolve_model(ns.model, structure_only=ns.structure_only)
        if given is not None:
            args, kwargs = given
        # Without inputs, export() generates them for HuggingFace models (else MissingInputs).
        result = export(model, args, kwargs, output=ns.output, strategy=ns.strategy,
                        structure_only=ns.structure_only, opset=ns.opset, torch_nn_filter=ns.torch_nn_filter,
                        dynamic_shapes=dynamic, check=ns.check, allow_dropped_inputs=ns.allow_dropped_inputs,
                        progress=say)
    if result.sidecar_path is not None and not ns.structure_only:  # for hierx report --validate later
        from . import sidecar
        from .model_ref import portable_ref

        try:
            sidecar.update(result.sidecar_path, model_ref={"model": portable_ref(ns.model), "inputs": ns.inputs})
        except (OSError, ValueError) as e:  # the export stands; only report --validate loses its default
            result.warnings.append(f"the sidecar does not name the model for hierx report --validate: {e}")
    _print_summary(result)
    if ns.validate:
        with _libraries_muted(ns.quiet):
            say("validating with ONNX Runtime")
            report = result.validate(raise_on_mismatch=False)
        _print_validation(report)
    return 0


def _export_for_generation(ns) -> int:
    from .generation import export_for_generation
    from .model_ref import parse_inputs, resolve_model

    for flag, given in (("--structure-only", ns.structure_only), ("--dynamic", ns.dynamic),
                        ("--torch-nn-filter", ns.torch_nn_filter)):
        if given:
            raise InputError(f"{flag} does not apply to --task text-generation (batch, sequence and cache lengths "
                             "are dynamic already)", shell_hint=f"drop {flag}")
    given = parse_inputs(ns.inputs) if ns.inputs is not None else None
    say = _progress(ns.quiet)
    with _libraries_muted(ns.quiet):
        say(f"loading {ns.model}")
        model, _, _, _ = resolve_model(ns.model)
        inputs = None
        if given is not None:
            args, kwargs = given
            inputs = dict(kwargs) or {"input_ids": args[0]}
        result = export_for_generation(model, ns.output, inputs=inputs, strategy=ns.strategy, opset=ns.opset,
                                       progress=say)
    for name, component in result.components.items():
        print(f"{name:8s} {component.onnx_path}  {component.strategy}, {len(component.nodes)} nodes, "
              f"{component.coverage_pct:.1f}% known")
        for w in component.warnings:
            print(f"  warning: {w}")
    print(f"manifest {result.output_dir / 'manifest.json'}  ({result.manifest['cache_naming']})")
    if ns.validate:
        with _libraries_muted(ns.quiet):
            say("generating 32 tokens in ONNX Runtime and with model.generate")
            report = result.validate(32)
        same = "the same tokens as" if report.attrs["tokens_equal"] else "OTHER tokens than"
        print(f"validate: ONNX Runtime generated {same} model.generate over {len(report)} steps; "
              f"largest logit difference {report['max_abs_diff'].max():.3g}")
        return 0 if report.attrs["tokens_equal"] else EXIT_FAILED
    return 0


def _cmd_generate(ns) -> int:
    import numpy as np

    from .generation import GenerationRunner

    runner = GenerationRunner(ns.folder)
    prompt = np.array([ns.prompt_ids], dtype=np.int64)
    timings: list[float] = []
    tokens = runner.generate(prompt, max_new_tokens=ns.max_new_tokens, timings=timings)
    # One run per new token: the rest is the prompt (or an encoder-decoder's start token).
    print(",".join(str(int(t)) for t in tokens[0, tokens.shape[1] - len(timings):]))
    decode = timings[1:]
    per_token = f", decode {1000 * sum(decode) / len(decode):.2f} ms/token over {len(decode)} steps" if decode else ""
    print(f"prefill {1000 * timings[0]:.2f} ms ({prompt.shape[1]} tokens){per_token}", file=sys.stderr)
    return 0


def _load_input(file: str):
    from .result import load

    return load(file)  # a missing, unreadable or untagged file is an InputError


def _cmd_report(ns) -> int:
    """The HTML report, after profiling and validating when asked (both also kept in the sidecar)."""
    from .model_ref import parse_inputs, resolve_model

    given = parse_inputs(ns.inputs) if ns.inputs is not None else None
    result = _load_input(ns.file)
    if ns.validate == "":  # the model hierx export was given, as its sidecar remembers it
        from . import sidecar

        ref = sidecar.read(result.sidecar_path).get("model_ref") if result.sidecar_path is not None else None
        if not ref:
            raise NoReference("--validate needs the PyTorch model to compare with (this file's sidecar does not "
                              "name it: it was not written by hierx export)",
                              shell_hint="give the MODEL: --validate pkg.models:make or --validate path/to/hf-folder")
        ns.validate = ref["model"]
        if given is None and ref.get("inputs"):
            given = parse_inputs(ref["inputs"])
    if ns.validate:
        with _libraries_muted(True):
            model, args, kwargs, _ = resolve_model(ns.validate)
            if given is not None:
                args, kwargs = given
            report = result.validate(model, args, kwargs, per_module=True, raise_on_mismatch=False)
        first = report.attrs["first_divergent"]
        bad = int(report["ok"].eq(False).sum())  # ok is None where a module was not compared
        print(f"divergence: {len(report)} modules compared with PyTorch, "
              + (f"{bad} beyond tolerance, first divergent: {module_label(first, result.model_class)}" if first is not None
                 else "all within tolerance"))
    if ns.profile:
        with _libraries_muted(True):
            df = result.profile(runs=ns.runs, inputs=ns.inputs)
        print(f"latency: {df.attrs['kernel_ms']:.3f} ms of kernel time per run (median of {ns.runs} runs)")
    out = result.to_html(ns.output or Path(ns.file).with_suffix(".html"))
    print(f"hierx: wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return 0


def _cmd_analyze(ns) -> int:
    result = _load_input(ns.file)
    modules = result.modules if ns.depth is None else result.modules[result.modules["depth"] <= ns.depth]
    if ns.format == "csv":
        modules.to_csv(sys.stdout, index=False)
    elif ns.format == "json":
        doc = {"summary": result.summary(), "io": _records(result.io), "coverage": _records(result.coverage),
               "modules": _records(modules)}
        print(json.dumps(doc, indent=2))
    else:
        print(_headline(result))
        _print_io(result)
        _print_warnings(result)
        print("\n".join(_tree_lines(result.modules, ns.depth)))
    return 0


def _cmd_profile(ns) -> int:
    result = _load_input(ns.file)
    with _libraries_muted(True):
        df = result.profile(runs=ns.runs, warmup=ns.warmup, optimization=ns.optimization, threads=ns.threads,
                            inputs=ns.inputs)
    fused = ["fused_into"] if "fused_into" in df else []
    table = result.modules.merge(df[["module", "nodes", "self_ms", "total_ms", "share", *fused]], on="module",
                                 how="left", suffixes=("", "_kernels")).rename(columns={"nodes": "kernels"})
    if ns.depth is not None:
        table = table[table["depth"] <= ns.depth]
    kernel, lost = df.attrs["kernel_ms"], df.attrs["unattributed_ms"]
    columns = ["module", "module_class", "depth", "kernels", "self_ms", "total_ms", "share", *fused]
    if ns.format == "csv":
        table[columns].to_csv(sys.stdout, index=False)
    elif ns.format == "json":
        doc = {"file": str(result.onnx_path), "runs": ns.runs, "optimization": ns.optimization,
               "kernel_ms": kernel, "unattributed_ms": lost, "by_op_type": df.attrs["by_op_type"],
               "modules": _records(table[columns])}
        print(json.dumps(doc, indent=2))
    else:
        print(f"{_headline(result)}\n{kernel:.3f} ms of kernel time per run (median of {ns.runs} runs, "
              f"optimization {ns.optimization}); unattributed {lost:.3f} ms "
              f"({100 * lost / kernel if kernel else 0:.1f}%)")
        cells = {r.module: (f"{r.self_ms:9.3f}", f"{r.total_ms:9.3f}", f"{100 * r.share:5.1f}%") for r in df.itertuples()}
        notes = {m: f"  (fused into {module_label(t, result.model_class)})"
                 for m, t in zip(df["module"], df["fused_into"] if fused else []) if isinstance(t, str)}
        print("\n".join(_tree_lines(result.modules, ns.depth, ("self ms", "total ms", "share"), cells, notes)))
    return 0


def _cmd_extract(ns) -> int:
    result = _load_input(ns.file)
    from .files import check_output

    check_output(ns.output)
    with _libraries_muted(True):
        piece = result.extract(ns.module, ns.output)
    import onnx

    graph = onnx.load(str(piece.onnx_path), load_external_data=False).graph
    print(f"{module_label(ns.module, result.model_class)}: {len(piece.nodes)} ONNX nodes -> {piece.onnx_path}")
    print(f"  inputs   {', '.join(i.name for i in graph.input)}")
    print(f"  outputs  {', '.join(o.name for o in graph.output)}")
    _print_warnings(piece)
    return 0


def _cmd_retag(ns) -> int:
    from .files import check_output
    from .result import retag
    from .retag import rule_counts

    check_output(ns.output)
    for label, path in (("file", ns.file), ("--from", ns.source)):
        if not Path(path).is_file():
            raise NoSuchFile(f"no such file: {path!r} ({label})")
    with _libraries_muted(True):
        result = retag(ns.file, ns.source, output=ns.output)
    counts = rule_counts(result)
    print(f"{_headline(result)}\n  rules: " + ", ".join(f"{rule} {n}" for rule, n in counts.most_common()))
    print(f"hierx: wrote {result.onnx_path}")
    return 0


def _cmd_compare(ns) -> int:
    from .compare import DEFAULT_SQNR_DB
    from .result import compare

    for label, path in (("A", ns.a), ("B", ns.b)):
        if not Path(path).is_file():
            raise InputError(f"no such file: {path!r} ({label})")
    a = _load_input(ns.a)
    with _libraries_muted(True):
        df = compare(a, ns.b, inputs=ns.inputs, runs=ns.runs, warmup=ns.warmup, threads=ns.threads,
                     sqnr_db=DEFAULT_SQNR_DB if ns.sqnr_db is None else ns.sqnr_db)
    depth = df["module"].map(lambda m: m.count(".") + 1 if m else 0)
    shown = df if ns.depth is None else df[depth <= ns.depth]
    attrs = {k: (v if not isinstance(v, float) or v == v else None) for k, v in df.attrs.items()}
    if ns.format == "csv":
        shown.to_csv(sys.stdout, index=False)
    elif ns.format == "json":
        print(json.dumps({"a": ns.a, "b": ns.b, **attrs, "modules": _records(shown)}, indent=2, default=str))
    else:
        first = df.attrs["first_divergent"]
        print(f"a {ns.a}: {df.attrs['kernel_ms_a']:.3f} ms of kernel time per run ({df.attrs['unattributed_ms_a']:.3f} "
              f"unattributed); b {ns.b}: {df.attrs['kernel_ms_b']:.3f} ms ({df.attrs['unattributed_ms_b']:.3f} unattributed)")
        print(f"first divergent: {first!r}" if first is not None else
              f"first divergent: none (no module's own SQNR is below {df.attrs['sqnr_threshold_db']:g} dB)")

        def db(x):
            return "" if x != x else ("inf" if x == float("inf") else f"{x:.1f}")
        cells = {r.module: (f"{r.ms_a:.3f}", f"{r.ms_b:.3f}", "" if r.time_ratio != r.time_ratio else f"{r.time_ratio:.2f}",
                            db(r.sqnr_db), db(r.own_sqnr_db)) for r in df.itertuples()}
        notes = {r.module: f"  {r.op_changes}" for r in df.itertuples() if r.op_changes}
        if first is not None:
            notes[first] = "  <- first divergent" + notes.get(first, "")
        print("\n".join(_tree_lines(a.modules, ns.depth, ("ms a", "ms b", "ratio", "SQNR dB", "own dB"), cells, notes)))
    return 0


def _cmd_cache(ns) -> int:
    from .memory import FailureMemory

    store = FailureMemory(enabled=True)  # clear the file even where HIERX_NO_CACHE keeps exports off it
    try:
        count = store.clear()
    except OSError as e:
        raise ExportError(f"cannot clear the failure cache {str(store.path)!r}: {e.strerror or e}") from None
    print(f"forgot the failures of {count} kind{'s' if count != 1 else ''} of model ({store.path})")
    return 0


def _cmd_demo(ns) -> int:
    from .exporter import export

    folder = Path(ns.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    say = _progress(ns.quiet)
    with _libraries_muted(ns.quiet):
        say("building a tiny BERT from a config (2 layers, hidden 32; nothing is downloaded)")
        model = _demo_model()
        result = export(model, output=folder / DEMO_FILE, progress=say)  # inputs from the config
    _print_summary(result)
    with _libraries_muted(ns.quiet):
        say("validating with ONNX Runtime")
        report = result.validate(raise_on_mismatch=False)
    _print_validation(report)
    print(f"\nmodule tree (down to depth {DEMO_TREE_DEPTH}):")
    print("\n".join(_tree_lines(result.modules, DEMO_TREE_DEPTH)))
    print(f"\nnext: hierx analyze {result.onnx_path}   (--format json|csv for the tables)")
    return 0


def _demo_model():
    import torch

    from .hf import require_transformers

    transformers = require_transformers()
    config = transformers.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=37, vocab_size=99, max_position_embeddings=64)
    torch.manual_seed(0)  # the same weights, hence the same file, on every run
    return transformers.BertModel(config).eval()


# -- output ----------------------------------------------------------------------------------------

def _print_summary(result) -> None:
    s = result.summary()
    kind = ", structure only (no weights)" if result.structure_only else ""
    print(f"{s['model_class']} exported with {s['strategy']} in {s['seconds']:.1f} s{kind}")
    for attempt in result.attempts:
        if not attempt.ok:
            state = "skipped" if attempt.skipped else "failed"
            print(f"  {attempt.name} {state}: {first_line(attempt.reason, 200)}")
        else:
            for change in attempt.switched:
                print(f"  switched {change}")
    src = s["sources"]
    print(f"  nodes    {s['nodes']} ONNX nodes, module known for {s['coverage_pct']:.1f}% "
          f"({src['exact']} exact, {src['pattern']} pattern); {src['inferred']} inferred from their neighbours")
    _print_io(result)
    print(f"  output   {s['onnx_path']}")
    print(f"  sidecar  {s['sidecar_path']}")
    _print_warnings(result)
    by_depth = result.modules.groupby("depth").agg(
        modules=("module", "size"), executed=("executed", "sum"),
        own_nodes=("own_nodes", "sum"), subtree_nodes=("total_nodes", "sum"))
    print("\nmodules by depth (own nodes: tagged with a module of that depth; subtree: with it or below)")
    print(by_depth.reset_index().rename(columns=lambda c: c.replace("_", " ")).to_string(index=False))


def _print_validation(report: pd.DataFrame) -> None:
    """The per-output comparison; ``Mismatch`` (after printing) when an output differs."""
    print("\nONNX Runtime vs PyTorch")
    for row in report.itertuples():
        verdict = "ok" if row.ok else "MISMATCH"
        print(f"  {row.output}  shape {tuple(row.shape)}  max abs diff {row.max_abs_diff:.3g}  {verdict}")
    sys.stdout.flush()  # the table before the error line, when both go to a terminal
    bad = report[~report["ok"]]
    if len(bad):
        raise Mismatch(f"validation failed: ONNX Runtime output {bad.iloc[0].output!r} differs from PyTorch's "
                       f"(max abs diff {bad.iloc[0].max_abs_diff:.3g}); the files were written")


def _print_io(result) -> None:
    """The model's inputs and outputs: names, dtypes, shapes with their dynamic axes' names."""
    from .graph_io import describe_io

    print(f"  inputs   {describe_io(result.io, 'input')}")
    print(f"  outputs  {describe_io(result.io, 'output')}")


def _print_warnings(result) -> None:
    for warning in result.warnings:
        print(f"  warning  {warning}")


def _headline(result) -> str:
    s = result.summary()
    kind = ", structure only" if result.structure_only else ""
    return (f"{s['model_class']}: {s['nodes']} ONNX nodes, known {s['coverage_pct']:.1f}%, {s['modules']} modules, "
            f"exported with {s['strategy']}{kind}")


def _tree_lines(modules: pd.DataFrame, max_depth: int | None, headers: tuple[str, ...] = ("own", "total"),
                cells: dict[str, tuple[str, ...]] | None = None, notes: dict[str, str] | None = None) -> list[str]:
    """The module tree, children under their parent in table order, with own/total node counts
    (or ``cells[module]`` under ``headers``), and ``notes[module]`` at the end of its line."""
    by_name = {row.module: row for row in modules.itertuples(index=False)}
    tree = NameTree(by_name, {m: r.parent for m, r in by_name.items()})
    rows: list[tuple[str, object]] = []
    hidden = 0
    for name in tree.names:  # pre-order, children under their parent in table order
        row = by_name.get(name)
        if row is None:  # an ancestor the table does not list
            continue
        depth = tree.depth[name]
        if max_depth is not None and depth > max_depth:
            hidden += 1
            continue
        parent = tree.parent[name]
        label = root_label(row.module_class) if name == "" else name[len(parent) + 1:] if parent else name
        rows.append(("  " * depth + label, row))
    width = min(max((len(label) for label, _ in rows), default=6), 60)
    cls_width = min(max((len(str(r.module_class)) for _, r in rows), default=5), 40)
    if cells is None:
        cells = {r.module: (str(r.own_nodes), str(r.total_nodes)) for _, r in rows}
    widths = [max([len(h)] + [len(c[i]) for c in cells.values()]) for i, h in enumerate(headers)]
    lines = [f"{'module':<{width}}  {'class':<{cls_width}}  " + "  ".join(f"{h:>{w}}" for h, w in zip(headers, widths))]
    for label, r in rows:
        # Containers such as ModuleList are never called themselves; only an empty subtree never ran.
        note = "  (not executed)" if not r.executed and r.total_nodes == 0 else (notes or {}).get(r.module, "")
        if r.folded_into:
            note = f"  (folded into {r.folded_into})"
        values = cells.get(r.module, ("",) * len(headers))
        lines.append(f"{label:<{width}}  {str(r.module_class):<{cls_width}}  "
                     + "  ".join(f"{v:>{w}}" for v, w in zip(values, widths)) + note)
    if hidden:
        lines.append(f"... {hidden} deeper modules not shown (raise --depth to see them)")
    return lines


def _records(df: pd.DataFrame) -> list[dict]:
    # pandas' JSON writer turns categories, numpy scalars and NaN into plain JSON values.
    return json.loads(df.to_json(orient="records"))


# -- console plumbing -----------------------------------------------------------------------------

def _progress(quiet: bool):
    """A progress callback printing timed steps to stderr, or one doing nothing when quiet."""
    from .progress import StderrProgress

    return (lambda step, fraction=None: None) if quiet else StderrProgress("hierx")


@contextlib.contextmanager
def _libraries_muted(quiet: bool):
    """Keep stdout for hierx's report: library prints go to stderr, or nowhere when quiet.

    Quiet also drops warnings, log records and progress bars (transformers' weight loading).
    """
    if quiet:
        from .quiet import quiet as muted

        with muted():
            yield
        return
    with contextlib.redirect_stdout(sys.stderr):
        yield


def _report(message: str, code: int) -> int:
    if os.environ.get("HIERX_DEBUG"):
        traceback.print_exc()
    _error_line(message)
    return code


def _error_line(message: str, prefix: str = "hierx: error: ") -> None:
    text = " ".join(part.strip() for part in str(message).splitlines() if part.strip())
    print(prefix + text, file=sys.stderr, flush=True)


def _drop_stdout() -> None:
    """After the reader closed our stdout: point it at /dev/null so the exit flush cannot fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass
