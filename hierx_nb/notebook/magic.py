"""``%hierexport``: the IPython line magic around ``hierx_nb.export`` (``%load_ext hierx_nb``)."""
from __future__ import annotations

import ast
import io
import keyword
import re
import sys
import tokenize

from IPython.core import magic_arguments
from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class, needs_local_scope, no_var_expand, output_can_be_silenced
from IPython.utils.text import DollarFormatter

from .. import ExportError, ExportResult, MissingInputs, export, export_for_generation, strategies
from ..errors import Mismatch, StructureOnly, describe
from ..shapes import DYNAMIC_GRAMMAR, parse_dynamic
from .progress import Progress

MAGIC = "hierexport"

# One table feeds both the parser (help, checks) and the line scanner, which must know which options
# take a value to tell that value from the start of MODEL or ARGS.
_OPTIONS = (
    (("-o", "--output"), {"metavar": "OUTPUT", "help": (
        "write the ONNX file here, with its .hierx.json sidecar beside it; {expr} and $name are "
        "expanded. Without -o nothing is written: the ONNX model stays in memory (result.onnx_model)")}),
    (("-s", "--strategy"), {"metavar": "STRATEGY", "default": strategies.AUTO, "choices": strategies.CHOICES, "help": (
        f"auto (default: tries {strategies.describe_auto()} until one exports the model) or one of "
        f"{', '.join(strategies.NAMES)}")}),
    (("-k", "--kwargs"), {"metavar": "KWARGS", "help": (
        "a Python expression for a dict of keyword inputs: -k {'input_ids': ids} or "
        "-k \"dict(input_ids=ids)\" (quote it if it has spaces outside brackets)")}),
    (("--validate",), {"action": "store_true", "help": (
        "run the ONNX model in ONNX Runtime on the same inputs and show how its outputs compare with "
        "PyTorch's, per output and per module (the explorer's divergence view); a mismatch fails the "
        "cell (after -r has bound the result)")}),
    (("--no-check",), {"action": "store_true", "help": (
        "skip the check export does by default (the file run once in ONNX Runtime against PyTorch's "
        "outputs, a mismatch shown as a warning): export(check=False)")}),
    (("--profile",), {"action": "store_true", "help": (
        "time each module in ONNX Runtime (result.profile(): kernel ms per run, fused kernels mapped "
        "back to modules) for the explorer's latency view")}),
    (("--compare",), {"metavar": "B.onnx", "help": (
        "after the export, compare it (a) with B.onnx, a file made from it (fp16, int8, optimized; an "
        "untagged one is retagged from a), module by module: result.compare(B.onnx), which fills "
        "result.comparison and the explorer's compare metric (ms a / ms b / ratio, own SQNR); {expr} and $name are expanded")}),
    (("--no-widget",), {"action": "store_true", "help": (
        "the returned ExportResult displays as a static HTML summary instead of the explorer widget "
        "(result.widget still builds the explorer on request)")}),
    (("--generate",), {"action": "store_true", "help": (
        "a decoder as shipped: one tagged file per generation stage (prefill, decode) with the KV cache as inputs "
        "and outputs, in the folder -o (a temporary one without -o), shown side by side; -k gives generate()'s "
        "inputs (default: from the config); with --validate, 32 greedy tokens against model.generate")}),
    (("-r", "--result"), {"metavar": "NAME", "help": "also bind the ExportResult to NAME in the notebook's namespace"}),
    (("--structure-only",), {"action": "store_true", "help": (
        "export on the meta device without weights: graph and tags only, for analysis (it cannot run); "
        "its weights are not copied")}),
    (("--dynamic",), {"metavar": "SPEC", "action": "append", "help": (
        "dynamic dimensions, named in the file: " + DYNAMIC_GRAMMAR)}),
    (("--allow-dropped-input",), {"metavar": "NAME", "action": "append", "help": (
        "an input tensor the file may drop (it then computes with the export-time value, said in a "
        "warning); repeat for several")}),
    (("--torch-nn-filter",), {"action": "store_true", "help": (
        "fold torch.nn leaves (Linear, LayerNorm, ...) into their parent module in the readable "
        "hierx.tag; hierx.module stays exact")}),
)
_FLAGS = frozenset(flag for flags, _ in _OPTIONS for flag in flags)
# The usage line, from the table the parser is built from.
USAGE = "%(prog)s MODEL [ARGS] " + " ".join(
    f"[{flags[0]}]" if kw.get("action") == "store_true" else f"[{flags[0]} {kw['metavar']}]" for flags, kw in _OPTIONS)
_LAYOUT = frozenset({tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER, tokenize.INDENT, tokenize.DEDENT})
_VALUE_FLAGS = frozenset(flag for flags, kw in _OPTIONS if kw.get("action") in (None, "append") for flag in flags)
_OPTION_WORD = re.compile(r"--?[A-Za-z]")


class HierexportError(Exception):
    """A ``%hierexport`` line that cannot be run as written (its own syntax, expressions, -r, writing):
    IPython shows only its one-line message, and the cell fails. The library's mistakes keep their
    own class (``hierx_nb.StructureOnly``, ...), shown the same way (``_one_line``)."""

    def _render_traceback_(self) -> list[str]:  # IPython's hook for exceptions that draw themselves
        return [f"{MAGIC}: error: {self}"]


def _one_line(e: ExportError, prefix: str = "") -> ExportError:
    """``e``, still of its own class (the README's error table), drawn by IPython as one line."""
    e._render_traceback_ = lambda: [f"{MAGIC}: error: {prefix}{e.one_line()}"]
    return e


class HierexportInterrupted(KeyboardInterrupt):
    """``%hierexport`` stopped by a kernel interrupt: one line, and code around it still sees an interrupt."""

    def _render_traceback_(self) -> list[str]:
        return [f"{MAGIC}: {self}"]


class SummaryResult(ExportResult):
    """An ``ExportResult`` displayed as its static HTML summary (``--no-widget``)."""

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/plain": repr(self), "text/html": self._repr_html_()}


def _with_options(func):
    # Applied last-first: magic_arguments builds the parser in reverse order of application.
    for flags, kw in reversed(_OPTIONS):
        func = magic_arguments.argument(*flags, **kw)(func)
    return func


@magics_class
class HierxMagics(Magics):
    """The magics of ``%load_ext hierx_nb``."""

    @magic_arguments.magic_arguments()
    @magic_arguments.kwds(usage=USAGE)
    @magic_arguments.argument("model", metavar="MODEL", help=(
        "a Python expression for the nn.Module to export: the first expression on the line"))
    @magic_arguments.argument("args", metavar="ARGS", nargs="?", help=(
        "a Python expression for the positional inputs, a tensor or a tuple: the rest of the line "
        "outside the options (spaces and commas are fine). May be left out for HuggingFace models: "
        "inputs are generated from the config"))
    @_with_options
    @output_can_be_silenced
    @no_var_expand  # MODEL, ARGS and -k are Python code: IPython's {}/$ expansion would corrupt dict literals
    @needs_local_scope
    @line_magic
    def hierexport(self, line: str, local_ns: dict | None = None):
        """
        Export a PyTorch model to ONNX with every node tagged by the nn.Module that produced it.

        MODEL and ARGS are Python expressions evaluated in the notebook's namespace: MODEL is the
        first expression on the line, ARGS the rest (a tensor or a tuple). Options may come before
        or after them; an expression that starts with '-' must be put in parentheses.

        Returns the ExportResult, so it is the cell's output and displays as the explorer widget
        (the module tree, coverage, node table; result.selection is the selected subtree).
        Without -o nothing is written to disk. A failed or interrupted export prints a single
        line "hierexport: ...", fails the cell, and leaves existing files untouched.

        Examples::

          %hierexport mlp torch.randn(4, 16)
          %hierexport model (ids, mask) -o bert.onnx -r result
          %hierexport model.encoder torch.randn(1, 8, 32) -s htp
          %hierexport bert -k "dict(input_ids=ids, attention_mask=mask)" --validate
          %hierexport bert -o {OUT}/bert.onnx     # HuggingFace model: inputs from its config
          %hierexport hierx_nb.meta_model(config) --structure-only -o big.onnx
          %hierexport cnn images --no-widget -r res   # static summary, result in res
          %hierexport mlp x -o a.onnx --compare a_int8.onnx   # explorer with the compare metric
        """
        opts = _parse(line, self.hierexport.parser)
        for flag in ("validate", "profile", "compare"):
            if getattr(opts, flag) and opts.structure_only:
                raise _one_line(StructureOnly(f"--{flag} needs weights: it cannot be combined with --structure-only",
                                              hint="drop one of them"))
        if opts.result is not None and (not opts.result.isidentifier() or keyword.iskeyword(opts.result)):
            raise HierexportError(f"-r {opts.result!r} is not a Python variable name")
        user_ns = self.shell.user_ns
        # Inside a function, its locals shadow the notebook's globals; one merged dict also lets
        # comprehensions in the expressions see those locals.
        ns = user_ns if local_ns is None or local_ns is user_ns else {**user_ns, **local_ns}
        model = _evaluate("MODEL", opts.model, ns)
        args = _evaluate("ARGS", opts.args, ns) if opts.args is not None else ()
        kwargs = _evaluate("-k", opts.kwargs, ns) if opts.kwargs is not None else None
        output = _expand_path(opts.output, ns) if opts.output is not None else None
        other = _expand_path(opts.compare, ns, "--compare") if opts.compare is not None else None

        progress = Progress(self.shell, prefix=MAGIC)
        if opts.generate:
            return _generate(model, kwargs, output, opts, progress, user_ns)
        try:
            dynamic = parse_dynamic(opts.dynamic) if opts.dynamic else None
            result = export(model, args, kwargs, output=output, strategy=opts.strategy,
                            structure_only=opts.structure_only, torch_nn_filter=opts.torch_nn_filter,
                            dynamic_shapes=dynamic, allow_dropped_inputs=opts.allow_dropped_input or (),
                            check=not opts.no_check, progress=progress)
            if opts.no_widget:
                result.__class__ = SummaryResult  # the export's own fresh object: nobody else holds it
            if opts.result is not None:
                user_ns[opts.result] = result  # bound before validation, so a mismatch keeps the result
            if opts.validate:
                progress("validating with ONNX Runtime")
                report = _validate(result)
            if opts.profile:
                progress("profiling with ONNX Runtime")
                result.profile()
            if other is not None:
                progress(f"comparing with {other} in ONNX Runtime")
                result.compare(other)
        except KeyboardInterrupt:
            where = f" during '{progress.step}'" if progress.step else ""
            raise HierexportInterrupted(f"interrupted{where} after {progress.elapsed:.1f} s") from None
        except MissingInputs:
            raise _one_line(MissingInputs(f"{type(model).__name__} needs inputs", hint="give ARGS (a tensor or a tuple) "
                                          "or -k KWARGS; only HuggingFace models get inputs generated from their config")) from None
        except ExportError as e:
            raise _one_line(e) from None
        except OSError as e:  # the disk filled up or the folder vanished while writing
            where = f" {e.filename!r}" if e.filename else ""
            raise HierexportError(f"cannot write{where}: {e.strerror or e}") from None
        finally:
            progress.close()
        for warning in result.warnings:
            print(f"{MAGIC}: warning: {warning}", file=sys.stderr)
        if opts.validate:
            _show_validation(report, opts.result, result)
        return result


def _generate(model, kwargs, output, opts, progress, user_ns):
    """``%hierexport model --generate``: ``export_for_generation``; the GenerationResult is returned."""
    import tempfile

    for flag in ("structure_only", "dynamic", "torch_nn_filter", "profile", "no_widget", "compare", "allow_dropped_input",
                 "no_check"):
        if getattr(opts, flag):
            raise HierexportError(f"--{flag.replace('_', '-')} does not apply with --generate")
    folder = output or tempfile.mkdtemp(prefix="hierx-generate-")
    try:
        result = export_for_generation(model, folder, inputs=kwargs, strategy=opts.strategy, progress=progress)
        if opts.result is not None:
            user_ns[opts.result] = result
        if opts.validate:
            progress("generating 32 tokens in ONNX Runtime and with model.generate")
            report = result.validate(32)
    except KeyboardInterrupt:
        where = f" during '{progress.step}'" if progress.step else ""
        raise HierexportInterrupted(f"interrupted{where} after {progress.elapsed:.1f} s") from None
    except ExportError as e:
        raise _one_line(e) from None
    finally:
        progress.close()
    for name, component in result.components.items():
        for warning in component.warnings:
            print(f"{MAGIC}: warning: {name}: {warning}", file=sys.stderr)
    if opts.validate:
        same = "the same tokens as" if report.attrs["tokens_equal"] else "OTHER tokens than"
        print(f"ONNX Runtime generated {same} model.generate over {len(report)} steps; largest logit difference "
              f"{report['max_abs_diff'].max():.3g}")
    return result


def _parse(line: str, parser):
    """The parsed options of a ``%hierexport`` line, with ``model`` and ``args`` as source text."""
    words = _words(line)
    if words and words[-1].endswith(";"):  # a trailing ';' silences the output; it is not an expression
        words[-1] = words[-1][:-1]
        if not words[-1]:
            words.pop()
    argv, positional, i = [], [], 0
    while i < len(words):
        word = words[i]
        i += 1
        if not _OPTION_WORD.match(word):
            positional.append(word)
            continue
        flag, eq, value = word.partition("=")
        if flag not in _FLAGS and word[:2] not in _VALUE_FLAGS:  # word[:2]: a value glued on, as in -oout.onnx
            raise HierexportError(f"unknown option {flag} (see %{MAGIC}?); put an expression that starts "
                                  "with '-' in parentheses")
        if eq and flag in _VALUE_FLAGS:
            argv += [flag, _unquote(value)]
        elif word in _VALUE_FLAGS and i < len(words) and not _OPTION_WORD.match(words[i]):
            argv += [word, _unquote(words[i])]
            i += 1
        else:  # a flag, or an option missing its value: argparse says which
            argv.append(word)
    if not positional:
        raise HierexportError(f"give the model to export: %{MAGIC} MODEL [ARGS] [options] (see %{MAGIC}?)")
    model, args = _split_expressions(positional)
    try:
        return parser.parse_args([*argv, "--", model, *([args] if args is not None else [])])
    except UsageError as e:
        raise HierexportError(f"{e} (see %{MAGIC}?)") from None


def _words(line: str) -> list[str]:
    """``line`` split at whitespace outside brackets and string literals, as Python's own tokenizer
    reads it (so triple-quoted and prefixed strings work); a ``#`` after whitespace starts a comment,
    one inside a word (a file name such as ``o#1.onnx``) does not."""
    words: list[str] = []
    start = end = None  # the span of the word being read
    depth = 0
    try:
        for tok in tokenize.generate_tokens(io.StringIO(line).readline):
            if tok.type in _LAYOUT or not tok.string.strip():
                continue  # tokenize reports the space before a character it does not know ($, ?) as a token
            first, last = tok.start[1], tok.end[1] if tok.end[0] == 1 else len(line)
            if tok.type == tokenize.COMMENT:
                if start is None or first > end:
                    break  # a real comment
                # '#' glued to a word: the word runs to the next whitespace; read the rest afresh
                stop = next((i for i in range(first, len(line)) if line[i].isspace()), len(line))
                return [*words, line[start:stop], *_words(line[stop:])]
            if start is not None and first > end and depth == 0:
                words.append(line[start:end])
                start = None
            if start is None:
                start = first
            end = last
            if tok.type == tokenize.OP and tok.string in "([{":
                depth += 1
            elif tok.type == tokenize.OP and tok.string in ")]}":
                depth = max(depth - 1, 0)  # a stray closer is the parser's error to report, not a split
    except (tokenize.TokenError, SyntaxError):  # an unclosed bracket or string: the rest is one word,
        if start is None:                       # which the expression parser then reports
            start = len(line) - len(line.lstrip())
        end = len(line.rstrip())
    if start is not None and end is not None and end > start:
        words.append(line[start:end])
    return words


def _split_expressions(words: list[str]) -> tuple[str, str | None]:
    """``(MODEL, ARGS)``: the fewest leading words that form an expression such that the rest is one too.

    ``model (ids, mask)`` is also a call, so the first split wins: MODEL ``model``, ARGS ``(ids, mask)``.
    """
    def error(text: str) -> SyntaxError | None:
        try:
            ast.parse(text, mode="eval")
        except SyntaxError as e:
            return e
        return None

    first_model = None
    for n in range(1, len(words) + 1):
        model, rest = " ".join(words[:n]), " ".join(words[n:])
        if error(model) is not None:
            continue
        if not rest or error(rest) is None:
            return model, rest or None
        first_model = first_model or (model, rest)
    if first_model is None:
        raise HierexportError(f"MODEL {_short(words[0])} is not a Python expression: {error(words[0]).msg}")
    model, rest = first_model
    raise HierexportError(f"ARGS {_short(rest)} is not a Python expression: {error(rest).msg}")


def _unquote(word: str) -> str:
    """An option value with one pair of enclosing quotes (single or triple) removed, as a shell would (no escapes)."""
    for quote in ('"""', "'''", '"', "'"):
        if len(word) >= 2 * len(quote) and word.startswith(quote) and word.endswith(quote):
            return word[len(quote):-len(quote)]
    return word


def _evaluate(what: str, source: str, ns: dict):
    """``source`` evaluated in ``ns``; ``HierexportError`` naming ``what`` if it does not parse or fails."""
    try:
        code = compile(source, f"<{MAGIC} {what}>", "eval")
    except SyntaxError as e:
        raise HierexportError(f"{what} {_short(source)} is not a Python expression: {e.msg}") from None
    try:
        return eval(code, ns)
    except Exception as e:
        raise HierexportError(f"{what} {_short(source)} failed: {describe(e)}") from None


def _expand_path(value: str, ns: dict, flag: str = "-o") -> str:
    """A path option (``-o``, ``--compare``) with ``{expr}`` and ``$name`` expanded, as IPython does
    for other magics' arguments."""
    try:
        return DollarFormatter().vformat(value, args=[], kwargs=ns)
    except Exception as e:
        raise HierexportError(f"{flag} {value!r}: cannot expand it: {describe(e)}") from None


def _short(source: str, limit: int = 60) -> str:
    return repr(source if len(source) <= limit else source[: limit - 1] + "…")


def _validate(result):
    """The ONNX Runtime vs PyTorch report; the library's error (one line) when ONNX Runtime cannot run the model."""
    try:
        report = result.validate(raise_on_mismatch=False)
        result.validate(per_module=True, raise_on_mismatch=False)  # fills result.divergence for the explorer
        return report
    except ImportError:
        raise HierexportError("--validate needs onnxruntime: pip install onnxruntime") from None
    except ExportError as e:
        raise _one_line(e, "validation failed: ") from None
    except Exception as e:  # ONNX Runtime rejecting the exported graph is the finding validation is for
        raise HierexportError(f"validation failed: ONNX Runtime cannot run the exported model: "
                              f"{describe(e)}") from None


def _show_validation(report, bound: str | None, result=None) -> None:
    """Display the report; ``Mismatch`` (one line) after it when an output differs from PyTorch's,
    naming the first divergent module when the per-module comparison found one."""
    from IPython.display import display

    display(report)
    bad = report[~report["ok"]]
    if len(bad):
        kept = f"; the result is in {bound}" if bound else ""
        divergence = getattr(result, "divergence", None)
        first = divergence.attrs.get("first_divergent") if divergence is not None else None
        blame = f"; first divergent module {first!r}" if first is not None else ""
        raise _one_line(Mismatch(f"validation failed: ONNX Runtime output {bad.iloc[0].output!r} differs from "
                                 f"PyTorch's (max abs diff {bad.iloc[0].max_abs_diff:.3g}){blame}{kept}"))


def load_ipython_extension(shell) -> None:
    """Register ``%hierexport`` (``%load_ext hierx_nb``)."""
    shell.register_magics(HierxMagics)


def unload_ipython_extension(shell) -> None:
    """Remove ``%hierexport`` (``%unload_ext hierx_nb``); a magic of that name from elsewhere is left alone."""
    manager = shell.magics_manager
    if isinstance(getattr(manager.magics["line"].get(MAGIC), "__self__", None), HierxMagics):
        del manager.magics["line"][MAGIC]
    manager.registry.pop(HierxMagics.__name__, None)
