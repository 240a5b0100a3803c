"""A call with a KV cache as a graph of tensors: the cache's tensors become graph inputs and the
cache the call returns becomes graph outputs, never constants.

The stage's module is shallow-copied (it shares every submodule and weight with the user's model,
whose own ``forward`` is never touched) and the copy's ``forward`` takes flat tensors. The cache
object is rebuilt inside it from its tensors with transformers' own pytree flattening of cache
classes (the one that lets ``torch.export`` accept them), the original forward runs, and the cache it
returns comes back flattened again. Names (``CACHE_NAMING``):

* inputs ``past_key_values.{layer}.key`` / ``past_key_values.{layer}.value`` and outputs
  ``present.{layer}.key`` / ``present.{layer}.value`` for attention layers;
  ``past_key_values.{layer}.conv_state`` / ``.recurrent_state`` -> ``present.{layer}.conv_state`` /
  ``.recurrent_state`` for layers that keep a recurrent state (Mamba, linear attention; a layer's
  later states add their index, ``conv_state.1``); other cache tensors keep their attribute, an
  encoder-decoder cache adds ``decoder`` / ``encoder`` after the layer (Optimum's
  ``past_key_values.{i}.decoder.key``);
* dynamic axes ``batch`` (axis 0 of everything), ``sequence`` (the new tokens), ``past_sequence``
  (the cache fed in) and ``total_sequence`` (``past_sequence`` + ``sequence``: the attention mask and
  the cache coming out); for encoder-decoders ``encoder_sequence`` (the encoder's output, its
  attention mask and the cross-attention cache).

Cache tensors the call returns as they came in are either settings (an integer or scalar tensor: a
sliding window's size), which stay constants of the graph, or state carried unchanged (a
cross-attention cache), which stays an input and is not returned again.
"""
from __future__ import annotations

import contextlib
import copy
import inspect
from dataclasses import dataclass, field

import torch
from torch.utils import _pytree as pytree

from .errors import CacheOptions, ExportError, InputError

CACHE_INPUT = "past_key_values"
CACHE_OUTPUT = "present"
CACHE_NAMING = (f"{CACHE_INPUT}.{{layer}}.key / {CACHE_INPUT}.{{layer}}.value in, "
                f"{CACHE_OUTPUT}.{{layer}}.key / {CACHE_OUTPUT}.{{layer}}.value out; recurrent layers "
                f"{CACHE_INPUT}.{{layer}}.conv_state / .recurrent_state -> {CACHE_OUTPUT}.{{layer}}.conv_state / "
                ".recurrent_state")
BATCH, SEQUENCE, PAST, TOTAL = "batch", "sequence", "past_sequence", "total_sequence"
ENCODER_SEQUENCE = "encoder_sequence"
# Names of cache sub-objects in the flat names (EncoderDecoderCache's two caches).
_CACHE_PARTS = {"self_attention_cache": "decoder", "cross_attention_cache": "encoder"}
_LEAF_NAMES = {"keys": "key", "values": "value", "conv_states": "conv_state", "recurrent_states": "recurrent_state"}
# A linear-attention layer keeps its states by index (one per mixer); the first has no index in the name.
_INDEXED = {"conv_states", "recurrent_states"}
# Inputs whose axes are named by their role.
TOKENS, MASK, POSITIONS, CACHE_POSITION = "input_ids", "attention_mask", "position_ids", "cache_position"


@dataclass
class Stage:
    """One stage ready for ``hierx_nb.export``: a module with a flat forward and its flat inputs."""

    name: str
    module: torch.nn.Module
    kwargs: dict[str, torch.Tensor]  # by input name (the graph's); the forward's parameters are _identifier(name)
    output_names: list[str]
    dynamic_axes: dict[str, dict[int, str]]
    cache_inputs: list[str] = field(default_factory=list)
    cache_outputs: list[str] = field(default_factory=list)
    constants: dict = field(default_factory=dict)  # non-tensor forward inputs, bound in the graph

    def feeds(self) -> dict[str, torch.Tensor]:
        """The flat forward's keyword inputs (copies)."""
        return {_identifier(k): v.clone() for k, v in self.kwargs.items()}


def is_cache(value) -> bool:
    """Whether ``value`` is a transformers cache object (``DynamicCache``, ``EncoderDecoderCache``, a model's own)."""
    if not type(value).__module__.startswith("transformers") or isinstance(value, (torch.Tensor, type)):
        return False
    from transformers.exporters.exporter_dynamo import is_cache_object

    return is_cache_object(value)


def _leaf_paths(context, path=()) -> dict[int, tuple]:
    """Leaf index -> attribute path, read from the context transformers' cache flattening writes."""
    out: dict[int, tuple] = {}
    if isinstance(context, dict):
        if context.get("_t") in ("tensor", "sym"):
            out[context["i"]] = path
            return out
        if context.get("_t") == "obj":
            return _leaf_paths(context["s"], path)
        if context.get("_t") in ("seq", "map"):
            return _leaf_paths(context["v"], path)
        if context.get("_t") == "items":  # a dict with non-string keys, as [key, value] pairs
            for k, v in context["v"]:
                out.update(_leaf_paths(v, (*path, k)))
            return out
        for k, v in context.items():
            out.update(_leaf_paths(v, (*path, k)))
    elif isinstance(context, list):
        for i, v in enumerate(context):
            out.update(_leaf_paths(v, (*path, i)))
    return out


def cache_name(prefix: str, path: tuple) -> str:
    """The flat name of one cache tensor: ``("layers", 3, "keys")`` -> ``past_key_values.3.key``,
    ``("layers", 0, "conv_states", 0)`` -> ``past_key_values.0.conv_state`` (a later state of the same
    layer keeps its index: ``conv_state.1``)."""
    parts = []
    layer = None
    for before, p in zip((None, *path), path):
        if p == "layers":
            continue
        if isinstance(p, int) and layer is None:
            layer = p
            continue
        if p == 0 and before in _INDEXED:
            continue
        parts.append(_CACHE_PARTS.get(p, _LEAF_NAMES.get(p, str(p))))
    # The part (decoder/encoder) comes after the layer, as in Optimum's names.
    return ".".join([prefix, *([str(layer)] if layer is not None else []), *parts])


def _flatten_cache(cache) -> tuple[list[torch.Tensor], object, list[tuple]]:
    leaves, spec = pytree.tree_flatten(cache)
    if leaves and not all(isinstance(x, torch.Tensor) for x in leaves):
        raise ExportError(f"the {type(cache).__name__} holds values that are not tensors; it cannot be graph inputs")
    node = spec if spec.type is type(cache) else None
    paths = _leaf_paths(node.context) if node is not None else {}
    return leaves, spec, [paths.get(i, (i,)) for i in range(len(leaves))]


@contextlib.contextmanager
def export_patches():
    """transformers' reversible export patches (sliding-window cache layers traced as growing ones,
    ONNX-friendly ``where``/``sdpa``...): what its own exporter applies, so the graphs are the same."""
    from transformers.exporters.utils import apply_patches

    with apply_patches("dynamo"):
        yield


def plan_stage(name: str, module: torch.nn.Module, captured: dict, dynamic: bool) -> Stage:
    """The flat form of one captured stage. The user's module is not changed: a shallow copy sharing
    its submodules gets the flat ``forward``."""
    from transformers.exporters.exporter_dynamo import register_cache_pytrees_for_model

    register_cache_pytrees_for_model(module)
    tensors: dict[str, torch.Tensor] = {}
    constants: dict = {}
    cache_key = None
    cache_spec = None
    cache_inputs: list[str] = []
    structured: dict[str, tuple] = {}  # input -> (pytree spec, leaf names)
    for key, value in captured.items():
        if isinstance(value, torch.Tensor):
            tensors[key] = value.detach().clone()
        elif is_cache(value):
            if cache_key is not None:
                raise ExportError(f"stage {name!r} takes two caches ({cache_key}, {key})")
            cache_key = key
            leaves, cache_spec, paths = _flatten_cache(copy.deepcopy(value))
            for leaf, path in zip(leaves, paths):
                n = cache_name(CACHE_INPUT, path)
                tensors[n] = leaf.detach().clone()
                cache_inputs.append(n)
        elif value is None or isinstance(value, (bool, int, float, str)):
            constants[key] = value
        else:  # a structure of tensors (an encoder's ModelOutput): one input per tensor, named by its path
            leaves, spec = pytree.tree_flatten(value)
            if not leaves or not all(isinstance(x, torch.Tensor) or x is None for x in leaves):
                raise ExportError(f"stage {name!r} takes {key}={type(value).__name__}, which cannot be graph inputs")
            names = [f"{key}.{pytree.keystr(path).strip('.[]').replace('][', '.').strip(chr(39))}"
                     for path, _ in pytree.tree_flatten_with_path(value)[0]]
            for n, leaf in zip(names, leaves):
                if leaf is not None:
                    tensors[n] = leaf.detach().clone()
            structured[key] = (spec, names)
    tensor_keys = [k for k in tensors if k not in cache_inputs and not any(k in ns for _, ns in structured.values())]
    own = module.__dict__.get("forward")
    if getattr(own, "__func__", None) is type(module).forward:
        own = None  # the class's forward, left bound on the instance by a capture: not a patch of the user's
    flat = copy.copy(module)  # shares submodules, parameters and buffers; its own __dict__

    def call_original(kw):
        return own(**kw) if own is not None else type(module).forward(flat, **kw)

    fixed: dict[str, torch.Tensor] = {}  # cache tensors the stage returns untouched: baked into the graph
    kept: list[int] = []  # the outputs the graph returns (by position in the forward's flat outputs)
    unused: dict[str, torch.Tensor] = {}  # structured inputs the call does not read: constants, not inputs

    def run(**feeds):
        kw = dict(constants)
        kw.update({k: feeds[k] for k in tensor_keys})
        for key, (spec, names) in structured.items():
            kw[key] = pytree.tree_unflatten([unused[n] if n in unused else feeds.get(_identifier(n)) for n in names],
                                            spec)
        if cache_key is not None:
            leaves = [fixed[n] if n in fixed else feeds[_identifier(n)].clone() if n in mutated else feeds[_identifier(n)]
                      for n in cache_names]
            kw[cache_key] = pytree.tree_unflatten(leaves, cache_spec)
        return _flat_outputs(call_original(kw))

    def forward(**feeds):
        outs = run(**feeds)
        return tuple(outs[i][1] for i in kept)

    # One eager run names the outputs, finds the cache tensors that are settings rather than state
    # (a sliding window's size: returned as they came in) and the cache's growing axis (present vs past).
    cache_names = list(cache_inputs)
    # A linear-attention layer (Mamba, gated delta rule) updates its conv and recurrent states in place
    # (copy_ into the cache's tensor): such a state is cloned inside the call, so the updated state is a
    # new tensor the graph returns, not an input it would overwrite and drop.
    mutated: set[str] = set()
    feeds = {_identifier(k): v.clone() for k, v in tensors.items()}
    versions = {n: feeds[_identifier(n)]._version for n in cache_names}
    with torch.no_grad(), export_patches():
        outs = run(**feeds)
    mutated.update(n for n in cache_names if feeds[_identifier(n)]._version != versions[n])
    if mutated:  # again on fresh inputs, the states cloned
        feeds = {_identifier(k): v.clone() for k, v in tensors.items()}
        with torch.no_grad(), export_patches():
            outs = run(**feeds)
    returned = {id(v) for _, v, _ in outs}
    for n in cache_names:
        t = tensors[n]
        # Returned as it came in: a setting (an integer or scalar tensor) is baked into the graph; state
        # (a cross-attention cache, computed once from the encoder's output) stays an input.
        if id(feeds[_identifier(n)]) in returned and (not t.is_floating_point() or t.dim() == 0):
            fixed[n] = tensors.pop(n)
            cache_inputs.remove(n)
    # An encoder's output the stage no longer reads (a decoder step that has the cross-attention cache)
    # would be dropped from the graph: it stays a constant of the call instead of an input. Reading only
    # its shape is reading it (BART's decoder sizes the cross-attention mask by it): a constant would fix
    # the batch and the encoder's length, so it is probed with other values and with a larger shape.
    inputs = {id(v) for v in feeds.values()}  # outputs that only pass an input through do not count
    for _spec, names in structured.values():
        for n in [n for n in names if n in tensors and tensors[n].is_floating_point()]:
            value = feeds[_identifier(n)]
            larger = value
            for axis in range(min(2, value.dim())):
                larger = torch.cat([larger, larger.narrow(axis, 0, 1)], axis)
            if not any(_reads(run, outs, inputs, dict(feeds, **{_identifier(n): v})) for v in (value + 1.0, larger)):
                unused[n] = tensors.pop(n)
    # Outputs that are inputs passed through (a carried cache, the encoder's output) are not graph outputs.
    kept.extend(i for i, (_, v, _) in enumerate(outs) if id(v) not in inputs)
    outs = [outs[i] for i in kept]
    forward.__signature__ = inspect.Signature(
        [inspect.Parameter(_identifier(k), inspect.Parameter.POSITIONAL_OR_KEYWORD) for k in tensors])
    flat.forward = forward
    output_names, cache_outputs = [], []
    for key, _value, path in outs:
        if path is None:
            output_names.append(key)
        else:
            n = cache_name(CACHE_OUTPUT, path)
            output_names.append(n)
            cache_outputs.append(n)
    axes: dict[str, dict[int, str]] = {}
    if dynamic:
        batch = tensors[next(iter(tensors))].shape[0] if tensors else None
        query = _query_length(tensors)
        # Encoder-decoder stages: the attention mask and the encoder's output span the encoder's tokens.
        seq2seq = any(k.startswith(("encoder_outputs", "decoder_input_ids")) for k in tensors)
        past = {n: tensors[n] for n in cache_inputs if not (seq2seq and ".encoder." in n)}
        for k in [*tensor_keys, *(n for _, ns in structured.values() for n in ns if n in tensors)]:
            t = tensors[k]
            a = {0: BATCH} if t.dim() and t.shape[0] == batch else {}
            if t.dim() >= 2 and k in (TOKENS, POSITIONS, "inputs_embeds", "decoder_input_ids") and query and query > 1:
                a[1] = SEQUENCE
            if k == MASK and t.dim() == 2:
                a[1] = ENCODER_SEQUENCE if seq2seq else TOTAL if past else SEQUENCE
            if k == "decoder_attention_mask" and t.dim() == 2:
                a[1] = TOTAL if past else SEQUENCE
            if k.startswith("encoder_outputs.") and t.dim() >= 2:
                a[1] = ENCODER_SEQUENCE
            if k == CACHE_POSITION and query and query > 1:
                a = {0: SEQUENCE}
            if a:
                axes[k] = a
        present = {n: v for (_, v, _), n in zip(outs, output_names) if n in cache_outputs}
        for n_in in cache_inputs:  # the cross-attention cache too: its keys span the encoder's tokens
            t = tensors[n_in]
            n_out = CACHE_OUTPUT + n_in[len(CACHE_INPUT):]
            grown = present.get(n_out) if n_in in past else None
            a = {0: BATCH} if t.dim() and t.shape[0] == batch else {}
            if grown is not None and grown.dim() == t.dim():
                for i, (x, y) in enumerate(zip(t.shape, grown.shape)):
                    if x != y and i != 0:
                        a[i] = PAST
                        axes.setdefault(n_out, {0: BATCH} if a.get(0) else {})[i] = TOTAL
            if seq2seq and ".encoder." in n_in and t.dim() == 4:
                a[2] = ENCODER_SEQUENCE  # cross-attention: computed from the encoder's output
            if a:
                axes[n_in] = a
        for (_key, value, path), n in zip(outs, output_names):
            if n in axes or value.dim() == 0:
                continue
            a = {0: BATCH} if value.shape[0] == batch else {}
            if seq2seq and ".encoder." in n and value.dim() == 4:
                a[2] = ENCODER_SEQUENCE
            if n == "logits" and value.dim() == 3 and query and query > 1 and value.shape[1] == query:
                a[1] = SEQUENCE
            if path is not None and not past and value.dim() == 4 and query and query > 1 and value.shape[2] == query:
                a[2] = SEQUENCE  # a prefill's cache out: as long as the prompt
            if a:
                axes[n] = a
    return Stage(name, flat, tensors, output_names, axes, cache_inputs, cache_outputs, constants)


def state_layers(module: torch.nn.Module, captured: dict) -> dict[str, str]:
    """The modules of a hybrid model's layers that keep a recurrent state rather than keys and values
    (Mamba mixers, gated delta nets, short convolutions: the cache's linear-attention layers), qualified
    name -> class name; ``{}`` for a model whose cache holds attention layers only.

    The cache's layer ``i`` is the ``i``-th entry of the model's layer list; its state is the one of
    the child that holds the causal convolution (every such layer keeps a ``conv_state``)."""
    cache = next((v for v in captured.values() if is_cache(v)), None)
    layers = getattr(getattr(cache, "self_attention_cache", cache), "layers", None) or []
    stateful = [i for i, layer in enumerate(layers) if hasattr(layer, "conv_states")]
    if not stateful:
        return {}
    blocks = next((name for name, m in module.named_modules()
                   if isinstance(m, torch.nn.ModuleList) and len(m) == len(layers)), None)
    if blocks is None:
        return {f"layer {i}": type(layers[i]).__name__ for i in stateful}
    found = {}
    for i in stateful:
        prefix = f"{blocks}.{i}" if blocks else str(i)
        layer = module.get_submodule(prefix)
        holder = next(((n, m) for n, m in layer.named_children()
                       if any(isinstance(x, torch.nn.Conv1d) for x in m.modules())), None)
        name, owner = (f"{prefix}.{holder[0]}", holder[1]) if holder else (prefix, layer)
        found[name] = type(owner).__name__
    return found


def _reads(run, outs: list, inputs: set[int], probe: dict) -> bool:
    """Whether the stage's outputs on ``probe`` differ from ``outs`` (or it fails on them)."""
    try:
        with torch.no_grad(), export_patches():
            again = run(**probe)
    except Exception:
        return True
    return len(again) != len(outs) or not all(torch.equal(a[1], b[1]) for a, b in zip(outs, again)
                                              if id(a[1]) not in inputs)


def _identifier(name: str) -> str:
    """The forward parameter for an input name (``past_key_values.0.key`` -> ``past_key_values_0_key``)."""
    return name.replace(".", "_")


def _query_length(tensors: dict) -> int | None:
    for k in (TOKENS, "inputs_embeds", "decoder_input_ids"):
        if k in tensors and tensors[k].dim() >= 2:
            return int(tensors[k].shape[1])
    return None


def _flat_outputs(out) -> list[tuple[str, torch.Tensor, tuple | None]]:
    """``(name, tensor, cache path or None)`` for every tensor the stage returns, the cache flattened."""
    items = out.items() if hasattr(out, "items") else enumerate(out if isinstance(out, (tuple, list)) else [out])
    flat = []
    for key, value in items:
        key = str(key)
        if value is None:
            continue
        if isinstance(value, torch.Tensor):
            flat.append((key, value, None))
        elif is_cache(value):
            leaves, _, paths = _flatten_cache(value)
            flat += [(key, leaf, path) for leaf, path in zip(leaves, paths)]
        else:
            flat += [(f"{key}.{i}", leaf, None) for i, leaf in enumerate(pytree.tree_leaves(value))
                     if isinstance(leaf, torch.Tensor)]
    return flat


def holds_cache(kwargs: dict | None) -> bool:
    """Whether ``export``'s keyword inputs include a transformers cache object."""
    return bool(kwargs) and any(is_cache(v) for v in kwargs.values())


def flat_call(model: torch.nn.Module, args: tuple, kwargs: dict, dynamic_shapes, input_names, output_names) -> Stage:
    """``export(model, args, kwargs)`` with a cache among ``kwargs`` as a stage of tensors only: the
    cache's tensors become the graph inputs ``past_key_values.*`` and the cache the model returns
    the outputs ``present.*`` (``use_cache=True`` unless given), never constants of the graph.

    ``CacheOptions`` when ``dynamic_shapes``, ``input_names`` or ``output_names`` are given: they name
    the forward's parameters, and the cache's tensors have names of their own (give ``dynamic_axes``
    by those names instead).
    """
    given = [n for n, v in (("dynamic_shapes", dynamic_shapes), ("input_names", input_names),
                            ("output_names", output_names)) if v is not None]
    if given:
        raise CacheOptions(f"a cache passed to export names its tensors itself ({CACHE_NAMING}), so "
                           f"{' and '.join(given)} cannot apply",
                           hint="give dynamic_axes by those names (e.g. {'past_key_values.0.key': {2: 'past_sequence'}}),"
                                " or use hierx_nb.export_for_generation(model, output_dir) for prefill and decode files")
    signature = inspect.signature(model.forward)
    parameters = signature.parameters
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as e:
        raise InputError(f"inputs do not fit {type(model).__name__}.forward: {e}") from None
    captured = {}
    for name, value in bound.arguments.items():
        kind = parameters[name].kind
        if kind == inspect.Parameter.VAR_KEYWORD:
            captured.update(value)
        elif kind != inspect.Parameter.VAR_POSITIONAL:
            captured[name] = value
    if "use_cache" in parameters and "use_cache" not in captured:
        captured["use_cache"] = True
    return plan_stage(type(model).__name__, model, captured, dynamic=False)
