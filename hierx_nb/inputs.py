"""Model inputs: normalising args/kwargs, HuggingFace practicalities, flattening for ONNX Runtime; the
names of the model's output tensors after its output structure."""
from __future__ import annotations

import inspect
from typing import Any

import torch
from torch.utils import _pytree as pytree

from .errors import InputError, InputsRejected, MissingInputs, NotAModule


def normalize(model: Any, args: Any, kwargs: dict | None) -> tuple[tuple, dict]:
    """``(args, kwargs)`` checked, with HF cache outputs switched off. ``InputError`` on bad input.

    Model outputs may be any pytree (HF ``ModelOutput`` included): the exporters flatten them.
    """
    if not isinstance(model, torch.nn.Module):
        raise NotAModule.of(model)
    if isinstance(args, torch.Tensor):
        args = (args,)
    elif args is None:
        args = ()
    elif isinstance(args, list):
        args = tuple(args)
    elif not isinstance(args, tuple):
        raise InputError(f"args must be a tensor or a tuple of inputs, got {type(args).__name__}")
    if kwargs is None:
        kwargs = {}
    elif not isinstance(kwargs, dict):
        raise InputError(f"kwargs must be a dict, got {type(kwargs).__name__}")
    kwargs = dict(kwargs)
    # Cache objects in HF outputs break torch.export and add nothing to the graph's structure.
    if getattr(model, "config", None) is not None and "use_cache" not in kwargs and "use_cache" in forward_params(model):
        kwargs["use_cache"] = False
    if not args and not [v for v in kwargs.values() if isinstance(v, torch.Tensor)]:
        raise MissingInputs(f"no inputs given for {type(model).__name__} (only HuggingFace models get inputs "
                            "generated from their config)")
    try:
        sig = inspect.signature(model.forward)
        sig.bind(*args, **kwargs)
    except TypeError as e:
        raise InputsRejected(f"inputs do not fit {type(model).__name__}.forward{_sig(model)}: {e}") from None
    except ValueError:
        pass
    return args, kwargs


def forward_params(model: torch.nn.Module) -> dict[str, inspect.Parameter]:
    """The parameters of ``model.forward`` by name ({} when it has no readable signature)."""
    try:
        return dict(inspect.signature(model.forward).parameters)
    except (TypeError, ValueError):
        return {}


def _sig(model: torch.nn.Module) -> str:
    try:
        return str(inspect.signature(model.forward))
    except (TypeError, ValueError):
        return "(...)"


def named_tensor_inputs(model: torch.nn.Module, args: tuple, kwargs: dict) -> list[tuple[str, torch.Tensor]]:
    """Every tensor among the inputs, in pytree order, named after the forward parameter it feeds."""
    names = [p.name for p in forward_params(model).values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    out = []
    for i, a in enumerate(args):
        base = names[i] if i < len(names) else f"input_{i}"
        out += _named_leaves(base, a)
    for k, v in kwargs.items():
        out += _named_leaves(k, v)
    return out


def _named_leaves(base: str, value) -> list[tuple[str, torch.Tensor]]:
    leaves = [x for x in pytree.tree_leaves(value) if isinstance(x, torch.Tensor)]
    if len(leaves) == 1 and isinstance(value, torch.Tensor):
        return [(base, leaves[0])]
    return [(f"{base}_{i}", t) for i, t in enumerate(leaves)]


def tensor_leaves(value) -> list[torch.Tensor]:
    """The tensors in a (nested) model output, in pytree order."""
    return [x for x in pytree.tree_leaves(value) if isinstance(x, torch.Tensor)]


def tensor_leaf_names(value) -> list[str] | None:
    """Names for ``tensor_leaves(value)`` after the output's structure, or None for a bare tensor.

    HF ``ModelOutput`` and dict keys name their tensors (``last_hidden_state``, ``pooler_output``),
    nested containers add dotted keys and indices (``hidden_states.0``); the items of a top-level
    tuple or list are ``output_0``, ``output_1``, ...
    """
    if isinstance(value, torch.Tensor):
        return None
    names = []
    for path, leaf in pytree.tree_flatten_with_path(value)[0]:
        if not isinstance(leaf, torch.Tensor):
            continue
        parts = [str(_key(k)) for k in path]
        if path and isinstance(path[0], pytree.SequenceKey):
            parts[0] = f"output_{parts[0]}"
        names.append(".".join(parts) or "output")
    seen: dict[str, int] = {}
    for i, name in enumerate(names):  # keys that contain dots could collide once joined
        if name in seen:
            names[i] = f"{name}_{i}"
        seen[names[i]] = i
    return names


def _key(k):
    for attr in ("key", "idx", "name"):  # MappingKey, SequenceKey, GetAttrKey
        if hasattr(k, attr):
            return getattr(k, attr)
    return str(k)


class CallWithInputs(torch.nn.Module):
    """Calls ``model(*args, **kwargs)`` from flat tensor inputs, with non-tensor inputs bound.

    TorchScript export takes positional tensors only; HF forwards want keywords. The model is
    registered as ``model``, so scope names start with ``/model/``; outputs are flattened to tensors.
    """

    def __init__(self, model: torch.nn.Module, args: tuple, kwargs: dict):
        super().__init__()
        self.model = model
        self._slots = []  # (kind, key): where each flat tensor goes
        self._args = list(args)
        self._kwargs = dict(kwargs)
        flat = []
        for i, a in enumerate(args):
            if isinstance(a, torch.Tensor):
                self._slots.append(("arg", i))
                flat.append(a)
        for k, v in kwargs.items():
            if isinstance(v, torch.Tensor):
                self._slots.append(("kw", k))
                flat.append(v)
        self.flat_inputs = tuple(flat)
        positional = [n for n, _ in named_tensor_inputs(model, tuple(a for a in args), {})]
        self.input_names = [positional[key] if kind == "arg" else str(key) for kind, key in self._slots]

    def forward(self, *flat):
        args = list(self._args)
        kwargs = dict(self._kwargs)
        for (kind, key), t in zip(self._slots, flat):
            if kind == "arg":
                args[key] = t
            else:
                kwargs[key] = t
        return tuple(tensor_leaves(self.model(*args, **kwargs)))
