"""Errors raised by the engine."""
from __future__ import annotations

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
    """An export (or a load) failed. ``attempts`` holds every strategy's reason."""

    def __init__(self, message: str, attempts: list[Attempt] | None = None):
        self.attempts = list(attempts or [])
        self.message = message
        super().__init__(self._render())

    def _render(self) -> str:
        if not self.attempts:
            return self.message
        lines = [self.message]
        for a in self.attempts:
            state = "ok" if a.ok else ("skipped" if a.skipped else "failed")
            lines.append(f"  {a.name}: {state}: {a.reason}")
        return "\n".join(lines)

    def one_line(self) -> str:
        """The message and each strategy's reason on a single line (for CLI and magic)."""
        parts = [self.message]
        last = {a.name: a for a in self.attempts}  # a skipped strategy tried after all: its own reason
        parts += [f"{a.name}: {first_line(a.reason)}" for a in last.values() if not a.ok]
        return " | ".join(parts)


class InputError(ExportError):
    """The caller's input is wrong (model reference, inputs, paths): no strategy was tried."""


class MissingInputs(InputError):
    """No inputs were given, and none can be generated: the model is not a HuggingFace model."""


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
