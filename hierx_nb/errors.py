"""Errors raised by the engine."""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Attempt:
    """One strategy's try: ``ok`` with the seconds it took, or the reason it failed or was skipped.

    ``switched``: model settings changed for the duration of the try (hf_switches), one line each.
    ``exception`` is what the strategy raised (None when it worked, was skipped, or was loaded from a sidecar).
    """

    name: str
    ok: bool
    reason: str = ""
    seconds: float = 0.0
    skipped: bool = False
    switched: tuple[str, ...] = ()
    exception: BaseException | None = field(default=None, compare=False, repr=False)

    def as_dict(self) -> dict:
        return {"name": self.name, "ok": self.ok, "reason": self.reason,
                "seconds": round(self.seconds, 4), "skipped": self.skipped, "switched": list(self.switched)}


class ExportError(Exception):
    """No strategy could export the model (``attempts`` holds each one's reason), or running it failed.

    Every error says what is wrong (``message``) and what to do, in the terms of where the user is:
    ``hint`` in Python (arguments: ``result.extract('encoder.layer.0', 'x.onnx')``), ``shell_hint``
    on the command line (``hierx`` flags: ``hierx extract FILE MODULE -o OUT``; defaults to ``hint``).
    ``str(e)`` and ``one_line()`` show the Python hint; the CLI shows ``one_line(shell=True)``.
    Subclasses name one mistake each (see the README's error table). Advice that never changes is
    the class's own ``hint``/``shell_hint``; advice that depends on the case is given when raising,
    or built by the class's constructor method (``UnknownModule.of``), so each mistake reads the
    same from every entry point.
    """

    hint: str = ""
    shell_hint: str | None = None  # None: the same as the Python hint

    def __init__(self, message: str, attempts: list[Attempt] | None = None, *, hint: str | None = None,
                 shell_hint: str | None = None):
        self.attempts = list(attempts or [])
        self.message = message
        if hint is None:  # the class's advice, for both
            hint, shell_hint = type(self).hint, type(self).shell_hint if shell_hint is None else shell_hint
        self.hint = hint
        self.shell_hint = hint if shell_hint is None else shell_hint
        super().__init__(self._render())

    def text(self, shell: bool = False) -> str:
        """The message with the hint for the shell (``shell=True``) or for Python."""
        hint = self.shell_hint if shell else self.hint
        return f"{self.message}; {hint}" if hint else self.message

    def _render(self) -> str:
        lines = [self.text()]
        for a in self.attempts:
            state = "ok" if a.ok else ("skipped" if a.skipped else "failed")
            lines.append(f"  {a.name}: {state}: {a.reason}")
        return "\n".join(lines)

    def one_line(self, shell: bool = False) -> str:
        """The message, the hint (the shell's with ``shell=True``: CLI) and each strategy's reason on
        a single line (for CLI and magic)."""
        parts = [self.text(shell)]
        last = {a.name: a for a in self.attempts}  # a skipped strategy tried after all: its own reason
        parts += [f"{a.name}: {first_line(a.reason)}" for a in last.values() if not a.ok]
        return " | ".join(parts)


class InputError(ExportError):
    """The caller's input is wrong (arguments, model reference, inputs, paths): nothing was run."""


class MissingInputs(InputError):
    """No inputs were given, and none can be generated: the model is not a HuggingFace model."""

    hint = "pass args=(tensor, ...) or kwargs={...}"
    shell_hint = "give them with --inputs SPEC (e.g. --inputs 1x3x224x224) or return (model, args) from the factory"


class InputsRejected(InputError):
    """The PyTorch model does not take the inputs given (its ``forward``'s signature) or does not run on them."""

    hint = "pass args=(...) / kwargs={...} that its forward takes"
    shell_hint = "give them with --inputs SPEC, or return (model, args) from the factory"


class InputMismatch(InputError):
    """Inputs given to run an ONNX model (``inputs=``, ``--inputs``) do not fit its graph: an input it
    does not have, one it needs left out, or a wrong shape or dtype."""

    @classmethod
    def of(cls, message: str, wanted: list[tuple[str, list, str]]) -> InputMismatch:
        """The error with what to give instead, from the graph's inputs ``wanted`` as (name, dims, dtype
        name): a dict of arrays in Python, an ``--inputs`` SPEC in the shell (symbolic dimensions as 1)."""
        if not wanted:
            return cls(message)
        shape = lambda dims: "(" + ", ".join(map(str, dims)) + ("," if len(dims) == 1 else "") + ")"  # noqa: E731
        size = lambda d: str(d) if isinstance(d, int) and d > 0 else "1"  # noqa: E731
        spec = ",".join(f"{name}={'x'.join(size(d) for d in dims) or '1'}:{dtype}" for name, dims, dtype in wanted)
        symbols = sorted({str(d) for _, dims, _ in wanted for d in dims if not (isinstance(d, int) and d > 0)})
        free = f" ({', '.join(symbols)}: any size)" if symbols else ""
        return cls(message,
                   hint="pass inputs={" + ", ".join(f"{name!r}: {dtype} array {shape(dims)}" for name, dims, dtype in wanted)
                        + "}" + free,
                   shell_hint=f"pass --inputs {spec}{free}")


class NotAModule(InputError):
    """Something other than a ``torch.nn.Module`` given as the model (or returned by a factory)."""

    @classmethod
    def of(cls, value) -> NotAModule:
        return cls(f"model must be a torch.nn.Module, got {type(value).__name__}")


class BadSpec(InputError):
    """An inputs or dynamic-shape SPEC string (``--inputs``/``inputs=``, ``--dynamic``/``dynamic_shapes=``)
    that does not follow its grammar."""


class NotPretrainedFolder(InputError):
    """A path given as a ``save_pretrained`` folder that is not one (not a folder, or no ``config.json``)."""


class NoWeights(InputError):
    """A model given without weights (a config file, a folder without weight files) to an export that needs them."""


class MissingDependency(InputError, ImportError):
    """An optional library the call needs is not installed (transformers, plotly).

    Also an ``ImportError``, so ``except ImportError`` keeps working.
    """

    __str__ = Exception.__str__

    @classmethod
    def of(cls, what: str, library: str, extra: str) -> MissingDependency:
        """``what`` needs ``library``, which comes with ``hierx_nb[extra]``."""
        return cls(f"{what} need{'' if what.endswith('s') else 's'} {library}, which is not installed",
                   hint=f"pip install 'hierx_nb[{extra}]' (or pip install {library})")


class UnknownModule(InputError, KeyError):
    """A module name the model does not have (``mapping``, ``extract``, the explorer's ``selected``).

    Also a ``KeyError``: the name is a key into the model's modules, so ``except KeyError`` keeps
    working where the name is looked up like a key.
    """

    __str__ = Exception.__str__  # KeyError's would show the message quoted, as a repr

    @classmethod
    def of(cls, name: str, known, file=None) -> UnknownModule:
        """The error for ``name`` among the qualified names ``known``; ``file`` (the ONNX file, if
        any) goes into the shell hint. "Did you mean" lists names ending in ``.name`` first (a name
        given without its parents), then close spellings (``difflib``)."""
        names = [str(n) for n in known if n]
        close = [n for n in names if n.endswith("." + name)][:3]
        close += [n for n in difflib.get_close_matches(name, names, n=3, cutoff=0.6) if n not in close]
        guess = f"did you mean {' or '.join(repr(n) for n in close[:3])}? " if close else ""
        where = str(file) if file is not None else "FILE.onnx"
        return cls(f"no module named {name!r} in this model",
                   hint=f"{guess}names are qualified as in model.named_modules(), '' is the whole model "
                        "(all of them: result.modules['module'])",
                   shell_hint=f"{guess}names are qualified as in model.named_modules() "
                              f"(all of them: hierx analyze {where})")


class StructureOnly(InputError):
    """Running a structure-only export (``validate``, ``profile``, ``extract``): it has no weights."""

    @classmethod
    def for_action(cls, action: str) -> StructureOnly:
        return cls(f"cannot {action} a structure-only export: it has no weights, so ONNX Runtime cannot run it",
                   hint="export it with weights: hierx_nb.export(model, ..., structure_only=False)",
                   shell_hint="export it again without --structure-only: hierx export MODEL -o FILE.onnx")


class NoReference(InputError):
    """Comparing with PyTorch without a PyTorch model: the result was loaded from a file."""

    @classmethod
    def for_action(cls, action: str) -> NoReference:
        return cls(f"cannot {action}: this result has no PyTorch model to compare with (it was loaded from a file)",
                   hint="pass it: result.validate(model, args, kwargs)",
                   shell_hint="compare when exporting: hierx export MODEL -o FILE.onnx --validate")


class UnknownChoice(InputError):
    """A value that is not one of the choices (strategy, metric, optimization level, figure kind)."""

    @classmethod
    def of(cls, what: str, value, choices) -> UnknownChoice:
        choices = [str(c) for c in choices]
        close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.5)
        guess = f"did you mean {close[0]!r}? " if close else ""
        return cls(f"unknown {what} {value!r}", hint=f"{guess}choose one of {', '.join(choices)}")


class NotComputed(InputError):
    """Asking for a per-module metric (``latency``, ``divergence``) before computing it."""

    _HOW = {"latency": ("result.profile()", "hierx profile FILE.onnx"),
            "divergence": ("result.validate(per_module=True)", None),
            "comparison": ("result.compare(other)", "hierx compare A.onnx B.onnx")}

    @classmethod
    def of(cls, metric: str) -> NotComputed:
        how, shell = cls._HOW[metric]
        return cls(f"this result has no {metric} yet", hint=f"call {how} first", shell_hint=shell)


class OutputIsFolder(InputError):
    """The output path names a folder, not a file."""


class OutputFolderMissing(InputError):
    """The output's folder does not exist."""


class OutputNotWritable(InputError):
    """The output cannot be written: its folder is read-only or a file, or the file is read-only."""

    hint = "pass another path"
    shell_hint = "choose another -o path"


class NoSuchFile(InputError):
    """The file to read does not exist."""


class NotOnnxFile(InputError):
    """The file to read is not a readable ONNX model (or its sidecar is unreadable)."""

    hint = "give the .onnx file written by hierx_nb.export"
    shell_hint = "give the .onnx file written by hierx export"


class NotTagged(InputError):
    """The ONNX file has no hierx module tags: hierx did not export (or tag) it."""

    hint = "export the model with hierx_nb.export"
    shell_hint = "export the model with hierx export MODEL -o FILE.onnx"


class CannotGenerate(InputError):
    """``export_for_generation`` was given a model that cannot generate (no generation head, an
    encoder-only config) or whose ``generate`` fails on the inputs given."""


class FixedLengthPrefill(ExportError):
    """A hybrid model's recurrent layers (Mamba, linear attention) trace to the example prompt's length:
    their scan over the prompt is unrolled token by token, so no prefill graph takes prompts of any length."""

    hint = ("transformers' own exporter fixes the prompt length the same way, silently; export the single "
            "forward for that prompt length with hierx_nb.export(model, kwargs=...) instead")
    shell_hint = "export the single forward for one prompt length with hierx export MODEL -o FILE.onnx instead"


class CacheOptions(InputError):
    """A KV cache was passed to ``export`` with ``dynamic_shapes``, ``input_names`` or ``output_names``,
    which name the forward's parameters: the cache's tensors have names of their own."""


class Mismatch(ExportError):
    """ONNX Runtime's outputs differ from PyTorch's beyond the tolerance (validation)."""


class StrategyFailed(Exception):
    """A strategy cannot export this model; the message is the reason shown to the user.
    (Here rather than in ``strategies.base``: the post-export checks in ``shapes`` raise it too.)"""


def first_line(text: str, limit: int = 300) -> str:
    """The first non-empty line of ``text``, shortened to ``limit`` characters."""
    for line in str(text).splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= limit else line[: limit - 1] + "…"
    return ""


def describe(e: BaseException, limit: int = 300) -> str:
    """``"KindOfError: its first line"``: how an exception is shown in one-line messages."""
    return first_line(f"{type(e).__name__}: {e}", limit)


class UntaggedSource(NotTagged):
    """``retag``/``compare``: the file to carry tags from has none (hierx did not export it).

    A ``NotTagged`` whose advice names the source (``--from``): ``except NotTagged`` catches both.
    """


class NotMadeFrom(InputError):
    """``retag``: the file was not made from the source: its inputs, outputs or weights differ, or too few of its nodes trace back to it."""


class UnloadableModel(InputError):
    """A file (or model) ONNX Runtime cannot load, given to retag or compare."""


class DifferentModels(InputError):
    """``compare``: the two files are not the same model (too few modules or values in common)."""
