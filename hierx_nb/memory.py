"""Failure memory: the strategies that failed for a kind of model, kept on disk so that ``auto``
skips them in later processes too.

A kind of model is its class (qualified name plus a fingerprint of its code), its HF config
(with the attention kernel, which decides too) and the torch version. The file lives in the user's
cache folder (``platformdirs``); ``HIERX_CACHE_DIR`` points it elsewhere and ``HIERX_NO_CACHE=1``
keeps it off disk. A corrupt, unreadable or read-only cache never fails an export: the problem is
reported as a warning and the memory lives on in the process.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import torch

from .errors import describe, first_line
from .files import publish, staging

ENV_DIR = "HIERX_CACHE_DIR"
ENV_OFF = "HIERX_NO_CACHE"
FILE_NAME = "failures.json"
FORMAT = 1
MAX_KINDS = 500  # the oldest kinds are forgotten beyond this: the file stays small and fast to read


def cache_dir() -> Path:
    """The folder of the cache: ``$HIERX_CACHE_DIR``, else the user's cache folder for hierx_nb."""
    explicit = os.environ.get(ENV_DIR)
    if explicit:
        return Path(explicit).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("hierx_nb", appauthor=False))


def disabled() -> bool:
    return os.environ.get(ENV_OFF, "").strip().lower() not in ("", "0", "false", "no")


def kind_of(model: torch.nn.Module, args: tuple = (), kwargs: dict | None = None,
            dynamic_axes: dict | None = None) -> tuple[str, str]:
    """``(key, label)``: a digest of what makes a model of this kind fail or not, and its class name.

    The inputs' structure (``input_structure``) and the dynamic axes asked for are part of the key: a
    failure caused by what was passed (a ``DynamicCache`` torch.export does not take, a dict where a
    tensor goes, an axis asked to be dynamic that the model fixes) is remembered for the model *with
    such inputs and axes* only, never for the model itself.
    """
    cls = type(model)
    label = f"{cls.__module__}.{cls.__qualname__}"
    config = getattr(model, "config", None)
    config_text = ""
    if config is not None and hasattr(config, "to_json_string"):
        config_text = config.to_json_string(use_diff=False) + str(getattr(config, "_attn_implementation", ""))
    axes = json.dumps({str(k): {str(a): str(n) for a, n in v.items()} for k, v in (dynamic_axes or {}).items()},
                      sort_keys=True)
    parts = [label, _source_fingerprint(cls), config_text, torch.__version__, input_structure(args, kwargs or {}), axes]
    return hashlib.sha256("\0".join(parts).encode("utf-8", "replace")).hexdigest()[:32], label


def input_structure(args: tuple, kwargs: dict) -> str:
    """The inputs' types and nesting, without sizes or values: ``(Tensor[int64]) {past_key_values: DynamicCache}``."""
    def describe_value(v) -> str:
        if isinstance(v, torch.Tensor):
            return f"Tensor[{str(v.dtype).removeprefix('torch.')}]"
        if isinstance(v, (list, tuple)):
            return f"{type(v).__name__}({', '.join(describe_value(x) for x in v)})"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k}: {describe_value(x)}" for k, x in sorted(v.items(), key=lambda i: str(i[0]))) + "}"
        return type(v).__qualname__

    return f"{describe_value(tuple(args))} {describe_value(dict(kwargs))}"


def _source_fingerprint(cls: type) -> str:
    """A digest of the code of ``cls`` and its bases outside torch: what their methods compute
    (bytecode, constants, names), not where they stand, so a notebook cell run again in another
    process is the same kind and an edited one is a new kind. Microseconds, unlike parsing sources."""
    digest = hashlib.sha256()
    for klass in cls.__mro__:
        if klass.__module__.split(".")[0] in ("torch", "builtins"):
            continue
        digest.update(klass.__qualname__.encode())
        for name, member in sorted(vars(klass).items(), key=lambda item: item[0]):
            for func in (getattr(member, "__func__", member), getattr(member, "fget", None)):
                code = getattr(func, "__code__", None)
                if code is not None:
                    digest.update(name.encode())
                    _digest_code(code, digest)
    return digest.hexdigest()


def _digest_code(code, digest) -> None:
    digest.update(code.co_code)
    digest.update(repr(code.co_names).encode())
    for const in code.co_consts:
        if hasattr(const, "co_code"):
            _digest_code(const, digest)  # nested functions, comprehensions
        else:
            digest.update(repr(const).encode())


class FailureMemory:
    """The remembered failures, read from disk on first use and written back after each change."""

    def __init__(self, folder: Path | None = None, enabled: bool | None = None):
        self.folder = folder if folder is not None else cache_dir()
        self.enabled = (not disabled()) if enabled is None else enabled
        self._kinds: dict[str, dict] | None = None
        self._unreadable: str | None = None  # why the file could not be read: said with every export

    @property
    def path(self) -> Path:
        return self.folder / FILE_NAME

    def failed(self, key: str, warnings: list[str]) -> dict[str, str]:
        """Strategy name -> the reason it failed for this kind of model."""
        kind = self._load(warnings).get(key)
        if self._unreadable:
            warnings.append(self._unreadable)
        return dict(kind["failed"]) if kind else {}

    def remember(self, key: str, label: str, failures: dict[str, str], warnings: list[str],
                 succeeded: str | None = None) -> None:
        """Add ``failures`` (strategy name -> reason) to this kind's record, drop ``succeeded`` from it, and save."""
        kinds = self._load(warnings)
        if not failures and (succeeded is None or succeeded not in kinds.get(key, {}).get("failed", {})):
            return  # nothing new: no write
        kind = kinds.pop(key, None) or {"model": label, "torch": torch.__version__, "failed": {}}
        kind["failed"].update({name: first_line(reason, 200) for name, reason in failures.items()})
        kind["failed"].pop(succeeded, None)
        kind["at"] = time.time()
        kinds[key] = kind  # re-inserted last: the dict's order is the age order
        while len(kinds) > MAX_KINDS:
            kinds.pop(next(iter(kinds)))
        self._save(warnings)

    def clear(self) -> int:
        """Forget everything (in the process and on disk); the number of kinds forgotten."""
        count = len(self._load([]))
        self._kinds, self._unreadable = {}, None
        self.path.unlink(missing_ok=True)
        return count

    def _load(self, warnings: list[str]) -> dict[str, dict]:
        if self._kinds is not None:
            return self._kinds
        self._kinds = {}
        if not self.enabled or not self.path.exists():
            return self._kinds
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("kinds"), dict):
                raise ValueError("not a hierx_nb failure cache")
            self._kinds = {k: v for k, v in data["kinds"].items()
                           if isinstance(v, dict) and isinstance(v.get("failed"), dict)}
        except (OSError, ValueError, UnicodeDecodeError) as e:
            self._unreadable = (f"the failure cache {str(self.path)!r} is unreadable ({describe(e)}): auto "
                                "remembers nothing from earlier processes (hierx cache clear removes it)")
        return self._kinds

    def _save(self, warnings: list[str]) -> None:
        if not self.enabled:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with staging(self.folder) as tmp:
                staged = tmp / FILE_NAME
                staged.write_text(json.dumps({"format": FORMAT, "kinds": self._kinds}), encoding="utf-8")
                publish([(staged, self.path)])
        except OSError as e:
            warnings.append(f"cannot write the failure cache in {str(self.folder)!r} ({describe(e)}): failures are "
                            f"remembered in this process only (set {ENV_DIR} to a writable folder)")
        else:
            self._unreadable = None  # a fresh file replaced the bad one


_MEMORY: FailureMemory | None = None


def memory() -> FailureMemory:
    """The process's failure memory; made anew when the cache folder or switch changed (tests do)."""
    global _MEMORY
    folder, enabled = cache_dir(), not disabled()
    if _MEMORY is None or _MEMORY.folder != folder or _MEMORY.enabled != enabled:
        _MEMORY = FailureMemory(folder, enabled)
    return _MEMORY
