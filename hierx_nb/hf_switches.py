"""HF settings that decide whether a model exports, switched for the duration of one export.

transformers 5 picks kernels through config fields read at every forward:
``config._experts_implementation`` for mixture-of-experts layers (default ``grouped_mm``, whose
``transformers::grouped_mm_fallback`` custom op torch.onnx cannot translate)
and ``config._attn_implementation`` (flash / flex / paged kernels have no ONNX form). Inside
``exportable(model)`` each config that holds a non-exportable choice is set to transformers' own
exportable one; the user's values are restored on exit, even when the export fails.
"""
from __future__ import annotations

import contextlib
import sys

import torch

# transformers' own implementations that torch.export captures and torch.onnx translates exactly.
EXPERTS = "batched_mm"
ATTENTION = ("sdpa", "eager")


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


def _switches(model: torch.nn.Module):
    """``(config, internal field, exportable value, why)`` for each setting to change."""
    transformers = sys.modules.get("transformers")
    if transformers is None:  # no HF config can exist
        return
    experts, attention = {}, {}
    for module in model.modules():
        config = getattr(module, "config", None)
        if not isinstance(config, transformers.PretrainedConfig):
            continue
        # Experts classes decorated with transformers' @use_experts_implementation carry these flags.
        if hasattr(module, "has_gate") and hasattr(module, "is_transposed"):
            experts[id(config)] = config
        if isinstance(module, transformers.PreTrainedModel):
            attention[id(config)] = (config, module)
    for config in experts.values():
        current = config._experts_implementation
        if current != EXPERTS:
            yield config, "_experts_implementation_internal", EXPERTS, _experts_reason(current)
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
