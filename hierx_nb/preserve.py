"""``export`` never changes the user's model or inputs: the state an export may touch, kept and put back.

Tracing (TorchScript, symbolic FX runs) and the eager runs that check a file execute the model's
``forward`` for real, and a forward may write: a KV cache kept in buffers (``self.cache_k[:, p] = k``),
a step counter (``self.step.add_(1)``), BatchNorm statistics, a ``DynamicCache`` input that grows.

* Inputs: the strategies and checks get copies (``copy_inputs``); the caller's objects are never run.
* Buffers: copied up front (small). Parameters: copied on their first in-place write (a dispatch
  mode watching mutating ATen ops, so nothing is copied for a model that writes none: cloning
  BERT-base's weights up front costs ~1.5 s). Both written back when the block ends. Ops under ``torch.export`` run on fake
  tensors and never reach the real ones; a tensor that changed anyway (its version counter moved
  without a copy) is named in a warning rather than passed over.
* ``training`` flags of every module and the HF config's attributes are put back as found.
"""
from __future__ import annotations

import contextlib
import copy

import torch
from torch._dynamo import convert_frame
from torch._dynamo.eval_frame import reset_code
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes


def copy_inputs(args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """Deep copies of ``args``/``kwargs`` (tensors cloned, cache objects such as a ``DynamicCache`` copied)."""
    memo: dict[int, object] = {}
    for leaf in pytree.tree_leaves((args, kwargs)):
        if isinstance(leaf, torch.Tensor) and id(leaf) not in memo:
            # deepcopy refuses non-leaf tensors that require grad; their values are what matters here.
            memo[id(leaf)] = leaf.detach().clone().requires_grad_(leaf.requires_grad and leaf.is_leaf)
    return copy.deepcopy((args, kwargs), memo)


class _CopyOnWrite(TorchDispatchMode):
    """Keeps a copy of each watched tensor before the first ATen op that writes into its storage."""

    # torch.cond, while_loop, scan, map run as usual (their branches' ops are not watched: a branch
    # cannot write a tensor it did not create, or torch.export would refuse it too).
    supports_higher_order_operators = True

    def __init__(self, tensors: list[tuple[str, torch.Tensor]]):
        super().__init__()
        self.watched: dict[int, list[tuple[str, torch.Tensor]]] = {}
        for name, t in tensors:
            if t.device.type != "meta":  # no data to keep, and every meta storage has address 0
                self.watched.setdefault(t.untyped_storage().data_ptr(), []).append((name, t))
        self.saved: dict[int, tuple[str, torch.Tensor, torch.Tensor]] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if isinstance(func, torch._ops.HigherOrderOperator):
            return func(*args, **kwargs)
        schema = func._schema
        if schema.is_mutable and self.watched:
            for i, arg in enumerate(schema.arguments):
                if arg.alias_info is None or not arg.alias_info.is_write:
                    continue
                value = args[i] if i < len(args) else kwargs.get(arg.name)
                if isinstance(value, torch.Tensor) and not isinstance(value, torch._subclasses.FakeTensor):
                    self._keep(value)
        return func(*args, **kwargs)

    def _keep(self, written: torch.Tensor) -> None:
        try:
            ptr = written.untyped_storage().data_ptr()
        except (RuntimeError, NotImplementedError):  # tensors without storage (subclasses)
            return
        for name, t in self.watched.get(ptr, ()):
            if id(t) not in self.saved:
                self.saved[id(t)] = (name, t, _copy(t))


def _copy(t: torch.Tensor) -> torch.Tensor:
    with _disable_current_modes(), torch.no_grad():
        return t.detach().clone()


class ModelState:
    """What ``export`` puts back: parameters and buffers, ``training`` flags, the HF config.

    Use as a context manager around everything that may run the model. Buffers (running statistics,
    caches, counters: small next to the weights) are copied on entering; parameters are copied on
    their first write, seen by a dispatch mode while the block runs eagerly — the eager run before the
    strategies sees what an exporter's tracer (unwatched) writes again. ``restore`` puts both back
    (between attempts); on exit ``warnings`` lists any tensor that changed without a copy to restore
    it from. ``stop_watching`` is for models the mode cannot run (``torch.cond`` compiles its call
    with dynamo, which refuses an active dispatch mode).
    """

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.warnings: list[str] = []
        params = list(model.named_parameters(remove_duplicate=False))
        buffers = list(model.named_buffers(remove_duplicate=False))
        self._buffers = [(t, _copy(t)) for _, t in buffers if t.device.type != "meta"]
        self._versions = [(name, t, t._version) for name, t in [*params, *buffers] if not t.is_inference()]
        self._training = [(m, m.training) for m in model.modules()]
        config = getattr(model, "config", None)
        self._config = (config, copy.deepcopy(vars(config))) if config is not None and hasattr(config, "__dict__") else None
        self._mode = _CopyOnWrite(params)
        self._watching = False
        self.stopped = False  # stop_watching was called: the model ran unwatched

    def __enter__(self) -> ModelState:
        self._mode.__enter__()
        self._watching = True
        return self

    def stop_watching(self) -> None:
        """No more copies on write: parameters written from now on are named in ``warnings``."""
        self.stopped = True
        self._pop()

    def _pop(self) -> None:
        if self._watching:
            self._mode.__exit__(None, None, None)
            self._watching = False

    def restore(self) -> None:
        """Parameters and buffers back to their values before the block."""
        with _disable_current_modes(), torch.no_grad():
            for _, tensor, original in self._mode.saved.values():
                tensor.copy_(original)
            for tensor, original in self._buffers:
                if not torch.equal(tensor, original):
                    tensor.copy_(original)

    def __exit__(self, *exc) -> None:
        self._pop()
        kept = set(self._mode.saved) | {id(t) for t, _ in self._buffers}
        changed = [name for name, t, version in self._versions if t._version != version and id(t) not in kept]
        self.restore()
        if changed:
            self.warnings.append(f"the export changed {', '.join(changed[:5])}{' ...' if len(changed) > 5 else ''} "
                                 "in place where hierx_nb could not keep a copy: the model's state may differ")
        for module, training in self._training:
            module.training = training
        if self._config is not None:
            config, attrs = self._config
            if vars(config) != attrs:
                vars(config).clear()
                vars(config).update(attrs)


def unwatched():
    """A context in which no copy-on-write watch (no Python dispatch mode) is active, for the exporters:
    ``torch.export`` must see none (its fake tensors never write the real ones), and under a Python
    mode TorchScript's tracer records wrong graphs. What the tracer's run of the forward writes was
    written, and copied, by the eager run before (``ModelState``), or is a buffer, copied anyway."""
    return _disable_current_modes()


class DynamoCodes:
    """What dynamo compiles during an export, forgotten when asked, and only that.

    ``torch.cond`` & co. compile their calls with dynamo, in the export's eager run as in its captures;
    those compiled calls, kept by dynamo per code object, change how a later capture goes (a capture
    after the eager run fails with another error than plain torch.onnx) and trip the user's next
    eager run. ``torch._dynamo.reset()`` forgets them, with every compiled function of the user's
    too. ``forget()`` resets only the code objects dynamo first saw, or compiled more of, since this
    object was made: the user's ``torch.compile`` caches stay warm."""

    def __init__(self):
        self._entries = {id(code): (code, _cache_entries(code)) for code in _seen_codes()}

    def forget(self) -> None:
        for code in _seen_codes():
            if not self._users(code):
                reset_code(code)

    def _users(self, code) -> bool:
        """Whether ``code`` was compiled before the export and the export compiled no more of it."""
        known = self._entries.get(id(code))
        return known is not None and known[0] is code and _cache_entries(code) == known[1]

    @contextlib.contextmanager
    def keeping_users(self):
        """A block in which ``torch._dynamo.reset()`` (strict ``torch.export`` calls it before it captures)
        forgets everything but the user's compiled code, which stays seen by dynamo."""
        users = [code for code in _seen_codes() if self._users(code)]
        kept = {id(code) for code in users}
        original = torch._dynamo.reset_code  # what reset() calls per code object
        torch._dynamo.reset_code = lambda code: None if id(code) in kept else original(code)
        try:
            yield
        finally:
            torch._dynamo.reset_code = original
            for code in users:
                convert_frame.input_codes.add(code)


def _seen_codes() -> list:
    refs = [*convert_frame.input_codes.seen, *convert_frame.output_codes.seen]
    return [code for code in (ref() for ref in refs) if code is not None]


def _cache_entries(code) -> int:
    return len(torch._C._dynamo.eval_frame._debug_get_cache_entry_list(code))
