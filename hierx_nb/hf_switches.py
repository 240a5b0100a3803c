"""HF settings that decide whether a model exports, switched for the duration of one export.

transformers 5 picks kernels through config fields read at every forward:
``config._experts_implementation`` for mixture-of-experts layers (default ``grouped_mm``, whose
``transformers::grouped_mm_fallback`` custom op torch.onnx cannot translate)
and ``config._attn_implementation`` (flash / flex / paged kernels have no ONNX form). Inside
``exportable(model)`` each config that holds a non-exportable choice is set to transformers' own
exportable one; the user's values are restored on exit, even when the export fails.

Experts have two exportable kernels. ``batched_mm`` (the default here) gathers each token's top-k
expert weights and runs one batched matmul: few nodes, and the faster graph for one token.
``grouped_mm`` sorts the tokens by expert and runs one MatMul per expert (transformers' own ONNX
translation of its op, dynamo only): many nodes, and the faster graph for many tokens.
``experts_kernel(kernel, why)`` makes ``exportable`` pick ``kernel`` within a block; ``stage_kernel``
is the rule ``export_for_generation`` follows per stage (figures: README, "Mixtures of experts").
"""
from __future__ import annotations

import contextlib
import contextvars
import sys

import torch

from .errors import UnknownChoice

# transformers' own implementations that torch.export captures and torch.onnx translates exactly.
EXPERTS = "batched_mm"
GROUPED = "grouped_mm"
KERNELS = (EXPERTS, GROUPED)
ATTENTION = ("sdpa", "eager")
# (kernel, why) that exportable() switches experts to within experts_kernel(); None: EXPERTS.
_TARGET: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("hierx_experts_kernel", default=None)

# The rule for generation stages (README "Mixtures of experts"; benchmarks/moe_experts.py, ORT on CPU):
# batched_mm copies top_k experts' weights per token, grouped_mm pays a few nodes per expert whether
# tokens reach it or not. One expert's nodes cost about as much as copying this many weight elements.
EXPERT_NODES_AS_ELEMENTS = 50_000
# Tokens a stage runs on: a prompt (prefill and every stage but decode), one new token (decode),
# a few drafted tokens (multi-token decode).
PROMPT_TOKENS, DECODE_TOKENS, DRAFT_TOKENS = 16, 1, 4


@contextlib.contextmanager
def experts_kernel(kernel: str | None, why: str):
    """Within the block, ``exportable`` sets mixture-of-experts layers to ``kernel`` (one of
    ``KERNELS``; None: ``batched_mm`` as outside) instead of ``batched_mm``; ``why`` is the reason
    its switch line gives."""
    token = _TARGET.set((kernel, why) if kernel else None)
    try:
        yield
    finally:
        _TARGET.reset(token)


def stage_kernel(model: torch.nn.Module, stage: str, choice: str | dict | None = None,
                 multi_token_decode: bool = False) -> tuple[str | None, str]:
    """``(kernel, why)`` for the experts of ``model`` in generation stage ``stage``; ``(None, "")``
    for a model without experts layers.

    ``choice`` None follows the measured rule: ``batched_mm`` when the stage's tokens × top-k ×
    one expert's weight elements (what batched_mm copies) stay below ``EXPERT_NODES_AS_ELEMENTS`` ×
    the number of experts (what grouped_mm's per-expert nodes cost), else ``grouped_mm``; the stage
    runs ``PROMPT_TOKENS`` (prefill), ``DECODE_TOKENS`` (decode) or ``DRAFT_TOKENS`` (multi-token
    decode). A kernel name applies to every stage; a dict stage -> kernel to the stages it names.
    Raises ``UnknownChoice`` for another kernel.
    """
    shape = _experts_shape(model)
    if shape is None:
        return None, ""
    if isinstance(choice, dict):
        choice = choice.get(stage)
    if choice is not None:
        if choice not in KERNELS:
            raise UnknownChoice.of("experts kernel", choice, KERNELS)
        return choice, f"{stage}: experts={choice!r} was asked for"
    experts, top_k, elements = shape
    tokens = PROMPT_TOKENS if stage != "decode" else DRAFT_TOKENS if multi_token_decode else DECODE_TOKENS
    copied, nodes = tokens * top_k * elements, EXPERT_NODES_AS_ELEMENTS * experts
    kernel = EXPERTS if copied < nodes else GROUPED
    return kernel, (f"{stage}: {tokens} token{'s' * (tokens > 1)} x top {top_k} x {elements:,} weights per expert "
                    f"{'<' if copied < nodes else '>='} {experts} experts x {EXPERT_NODES_AS_ELEMENTS:,}: "
                    + ("copying the chosen experts' weights costs less than one MatMul per expert" if kernel == EXPERTS
                       else "one MatMul per expert costs less than copying the chosen experts' weights"))


def _experts_shape(model: torch.nn.Module) -> tuple[int, int, int] | None:
    """``(experts, top-k, weight elements of one expert)`` of the first experts layer; None without one."""
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is None or not _is_experts(module):
            continue
        experts = int(getattr(module, "num_experts", 0) or 0)
        top_k = getattr(config, "num_experts_per_tok", None) or getattr(config, "top_k", None) or 1
        if experts < 1:
            continue
        elements = sum(p.numel() for p in module.parameters(recurse=False)) // experts
        return experts, int(top_k), int(elements)
    return None


def translations() -> dict:
    """transformers' ONNX translation of its ``grouped_mm`` kernel (one MatMul per expert), for
    torch.onnx's ``custom_translation_table``; empty when transformers' exporters are not loaded."""
    if "transformers" not in sys.modules:  # no HF model can be in the export
        return {}
    try:
        from transformers.exporters.exporter_onnx import _aten_grouped_mm
    except ImportError:  # transformers < 5, or onnxscript missing
        return {}
    return {torch.ops.transformers.grouped_mm_fallback.default: _aten_grouped_mm,
            torch.ops.aten._grouped_mm.default: _aten_grouped_mm}


@contextlib.contextmanager
def exportable(model: torch.nn.Module):
    """Within the block, ``model``'s HF configs use exportable experts and attention kernels.

    Yields the list of what was switched, one readable line per change (empty when nothing was).
    """
    saved: list[tuple[object, str, object]] = []
    switched: list[str] = []
    try:
        for config, field, new, why in _switches(model):
            old = getattr(config, field)
            saved.append((config, field, old))
            setattr(config, field, new)
            line = f"{field.strip('_').removesuffix('_internal')}: {old} -> {new} ({why})"
            if line not in switched:
                switched.append(line)
        yield switched
    finally:
        for config, field, old in reversed(saved):
            setattr(config, field, old)


def _is_experts(module: torch.nn.Module) -> bool:
    # Experts classes decorated with transformers' @use_experts_implementation carry these flags.
    return hasattr(module, "has_gate") and hasattr(module, "is_transposed")


def _hf_configs(model: torch.nn.Module) -> tuple[dict, dict]:
    """``({id: config of experts layers}, {id: (config, its PreTrainedModel)})``."""
    transformers = sys.modules.get("transformers")
    experts, attention = {}, {}
    if transformers is None:  # no HF config can exist
        return experts, attention
    for module in model.modules():
        config = getattr(module, "config", None)
        if not isinstance(config, transformers.PretrainedConfig):
            continue
        if _is_experts(module):
            experts[id(config)] = config
        if isinstance(module, transformers.PreTrainedModel):
            attention[id(config)] = (config, module)
    return experts, attention


def _switches(model: torch.nn.Module):
    """``(config, internal field, exportable value, why)`` for each setting to change."""
    experts, attention = _hf_configs(model)
    target, why = _TARGET.get() or (EXPERTS, None)
    for config in experts.values():
        current = config._experts_implementation
        if current != target:
            yield config, "_experts_implementation_internal", target, why or _experts_reason(current)
    for config, owner in attention.values():
        current = config._attn_implementation
        if current is not None and current not in ATTENTION:
            target = "sdpa" if getattr(owner, "_supports_sdpa", False) else "eager"
            yield config, "_attn_implementation_internal", target, f"{current} cannot be exported to ONNX"


def _experts_reason(current) -> str:
    if current in (None, "grouped_mm"):
        return "grouped_mm's custom op has no ONNX translation"
    if current == "eager":
        return "eager loops over the experts a batch hits, which a graph cannot capture"
    return f"{current} is a device kernel with no ONNX form"
