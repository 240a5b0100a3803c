"""Decoders as shipped: one ONNX file per generation stage, the KV cache as graph inputs and outputs.

``export_for_generation`` builds on ``transformers.exporters.utils.decompose_for_generation``: a real
``model.generate`` call is captured into the forward inputs of each stage (``prefill``, ``decode``;
for vision-language models ``language_model``, ``lm_head`` and ``decode``, to which this adds the
image stage ``generate`` runs before the first forward and the token embeddings). Each stage is then
exported by hierx's own ``export`` (strategies, module tags, checks against PyTorch), so the decode
graph is tagged exactly like the prefill.

How a stage becomes a graph with only tensors at its boundary, and the names of the cache's
tensors in every file: ``hierx_nb/caches.py``.

``manifest.json`` in the output folder says how to run the files: which file each stage is, its
inputs by role (token ids, mask, positions, cache), and which output feeds which cache input of the
next step. ``GenerationRunner`` reads it and decodes greedily in ONNX Runtime; it needs no PyTorch model.
"""
from __future__ import annotations

import contextlib
import copy
import inspect
import json
import re
import time
from collections.abc import Callable
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .caches import BATCH, CACHE_INPUT, CACHE_NAMING, CACHE_OUTPUT, SEQUENCE, TOTAL, Stage, export_patches, plan_stage, state_layers
from .errors import (
    CannotGenerate,
    ExportError,
    FixedLengthPrefill,
    InputError,
    MissingDependency,
    NoReference,
    NoSuchFile,
    NotAModule,
    UnknownChoice,
    describe,
    first_line,
)
from .exporter import export
from .files import publish, staging
from .hf_switches import EXPERTS, GROUPED, experts_kernel, stage_kernel
from .reference import Reference
from .result import ExportResult, load
from .validation import compare_outputs, mismatch_line

MANIFEST = "manifest.json"
MANIFEST_SCHEMA = 1
# Forward inputs the runner builds at each step.
TOKENS, MASK, POSITIONS, CACHE_POSITION = "input_ids", "attention_mask", "position_ids", "cache_position"
# ----------------------------------------------------------------------------------------------- export

def can_generate(model) -> bool:
    can = getattr(model, "can_generate", None)
    try:
        return bool(callable(can) and can()) and hasattr(model, "generate")
    except Exception:
        return False


def default_inputs(model, batch: int = 2, length: int = 8) -> dict[str, torch.Tensor]:
    """``generate`` inputs from the config: ``batch`` prompts of ``length`` tokens, one token of the
    first masked out, so the capture keeps the attention mask and every axis stays dynamic. The masked
    token is in the middle, not at the start as in left padding: a padding query at the start attends
    to no key at all, and what attention returns for such a row (garbage in PyTorch, something else in
    ONNX Runtime) would show up as a difference in the checks although no token depends on it.

    A model whose recurrent layers scan the prompt in chunks (Mamba-2's ``chunk_size``) gets a prompt of
    at least two chunks: with one, torch.export specializes the number of chunks to 1 and the prefill
    would only take prompts of up to one chunk (Falcon-H1), although its sequence axis is dynamic."""
    config = model.config
    chunks = [v for k, v in config.to_dict().items() if k.endswith("chunk_size") and isinstance(v, int) and v > 0]
    length = max([length, *(2 * c + 1 for c in chunks)])
    generator = torch.Generator().manual_seed(0)
    mels, positions = getattr(config, "num_mel_bins", None), getattr(config, "max_source_positions", None)
    if mels and positions:  # a speech encoder-decoder (Whisper): log-mel features, two frames per encoder position
        return {"input_features": torch.randn(batch, mels, 2 * positions, generator=generator)}
    text = config.get_text_config() if hasattr(config, "get_text_config") else config  # a VLM's own vocab_size may be stale
    vocab = getattr(text, "vocab_size", None) or getattr(config, "vocab_size", None) or 100
    image_token = image_token_id(model)
    special = {getattr(c, k, None) for c in (config, text)
               for k in ("pad_token_id", "eos_token_id", "bos_token_id")} | {image_token}
    ids = torch.randint(3, max(4, vocab), (batch, length), generator=generator)
    ids = torch.where(torch.isin(ids, torch.tensor([s for s in special if isinstance(s, int)] or [-1])), 3, ids)
    mask = torch.ones(batch, length, dtype=torch.long)
    if batch > 1:
        mask[0, length // 2] = 0
    if image_token is not None and getattr(config, "vision_config", None) is not None:
        return _with_images(model, ids, mask, image_token, generator)
    return {"input_ids": ids, "attention_mask": mask}


def _with_images(model, ids: torch.Tensor, mask: torch.Tensor, token: int, generator) -> dict[str, torch.Tensor]:
    """A vision-language model's prompts: one image each (``pixel_values`` of the vision config's
    ``image_size``; ``(batch, channels, size, size)``, or ``(batch, 1, channels, size, size)`` for models
    that take several images per prompt), its placeholder tokens first, as many as
    ``get_image_features`` gives rows for one image."""
    vision = model.config.vision_config
    size, channels = getattr(vision, "image_size", None), getattr(vision, "num_channels", 3)
    base = getattr(model, "base_model", None)
    why = "its vision config has no image_size" if not isinstance(size, int) else None
    if why is None and getattr(base, "get_image_features", None) is None:
        why = "its base model has no get_image_features"
    rows = None
    for shape in ((ids.shape[0], channels, size, size), (ids.shape[0], 1, channels, size, size)) if why is None else ():
        pixels = torch.randn(*shape, generator=generator)
        try:
            with torch.no_grad():
                rows = ImageFeatures(base)(pixel_values=pixels[:1])["image_features"].shape[0]
            break
        except Exception as e:  # the other layout, else the reason
            why = f"get_image_features fails on pixel_values of shape {tuple(pixels[:1].shape)}: {describe(e)}"
    if rows is None:
        raise CannotGenerate(f"{type(model).__name__}: no example image can be made from its config ({why})",
                             hint="pass inputs=dict(input_ids=..., attention_mask=..., pixel_values=...) "
                                  "as you would to model.generate")
    placeholders = torch.full((ids.shape[0], rows), token, dtype=ids.dtype)
    return {"input_ids": torch.cat([placeholders, ids], 1),
            "attention_mask": torch.cat([torch.ones_like(placeholders), mask], 1), "pixel_values": pixels}


@contextlib.contextmanager
def _forward_kept(model: torch.nn.Module):
    """Undo what ``decompose_for_generation``'s capture leaves behind: it wraps ``forward`` on the
    instance and restores it by assigning the bound method, so the model would keep an instance
    attribute ``forward`` it did not have."""
    had = {m: m.__dict__["forward"] for m in model.modules() if "forward" in m.__dict__}
    try:
        yield
    finally:
        for m in model.modules():
            if m in had:
                m.__dict__["forward"] = had[m]
            else:
                m.__dict__.pop("forward", None)


def _clone(value):
    return copy.deepcopy(value)


def _model_state(model: torch.nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class GenerationResult:
    """What ``export_for_generation`` made: ``components`` (stage name -> ``ExportResult``), the
    ``manifest`` written beside them and a runner that generates in ONNX Runtime."""

    def __init__(self, components: dict[str, ExportResult], manifest: dict, output_dir: Path,
                 model: torch.nn.Module | None = None, inputs: dict | None = None, seconds: float = 0.0):
        self.components = components
        self.manifest = manifest
        self.output_dir = output_dir
        self.model = model
        self.inputs = inputs
        self.seconds = seconds
        self._runner: GenerationRunner | None = None

    def __repr__(self) -> str:
        stages = self.manifest.get("stages", {})
        parts = ", ".join(f"{n}: {r.strategy} {r.coverage_pct:.1f}% known"
                          + (f", experts {stages[n]['experts']}" if stages.get(n, {}).get("experts") else "")
                          for n, r in self.components.items())
        return f"<GenerationResult {self.manifest.get('model_class')} in {self.output_dir} ({parts})>"

    def _repr_mimebundle_(self, include=None, exclude=None):
        """The stages' explorers side by side (each its own module tree, graph and metrics); text without widgets."""
        bundle = {"text/plain": repr(self)}
        try:
            import ipywidgets

            columns = [ipywidgets.VBox([ipywidgets.Label(f"{name}: {r.onnx_path.name if r.onnx_path else name}"),
                                        r.widget], layout=ipywidgets.Layout(flex="1 1 0", min_width="0"))
                       for name, r in self.components.items()]
            widget_bundle = ipywidgets.HBox(columns)._repr_mimebundle_(include=include, exclude=exclude)
        except Exception:  # no notebook extra, or no kernel comm: the text stands
            return bundle
        if isinstance(widget_bundle, tuple):
            widget_bundle = widget_bundle[0]
        bundle.update({k: v for k, v in (widget_bundle or {}).items() if k != "text/plain"})
        return bundle

    @property
    def runner(self) -> GenerationRunner:
        if self._runner is None:
            self._runner = GenerationRunner(self.output_dir)
        return self._runner

    def generate(self, input_ids, attention_mask=None, max_new_tokens: int = 32, **images) -> np.ndarray:
        """Greedy decoding in ONNX Runtime; ``(batch, prompt + new)`` int64 token ids (see ``GenerationRunner``).
        ``images``: a vision-language model's image inputs (``pixel_values=...``)."""
        return self.runner.generate(input_ids, attention_mask, max_new_tokens, images=images)

    def validate(self, max_new_tokens: int = 32, inputs: dict | None = None) -> pd.DataFrame:
        """The ONNX files' greedy tokens against ``model.generate(do_sample=False)`` on ``inputs``
        (the export's by default): one row per generated step with ``tokens_equal`` (every row of
        the batch) and ``max_abs_diff`` of that step's logits (ONNX Runtime vs PyTorch, float32).
        ``attrs["tokens_equal"]`` is the verdict over all steps. Neither the model nor the inputs
        are changed."""
        if self.model is None:
            raise NoReference("this result has no PyTorch model to compare with (it was loaded from files)",
                              hint="export it with export_for_generation(model, ...) to validate")
        inputs = _clone(inputs if inputs is not None else self.inputs)
        ids, mask = inputs.get("input_ids", inputs.get("input_features")), inputs.get("attention_mask")
        with torch.no_grad():
            ref = self.model.generate(**_clone(inputs), do_sample=False, max_new_tokens=max_new_tokens,
                                      output_logits=True, return_dict_in_generate=True)
        steps = []
        images = ({k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")}
                  if IMAGE_ENCODER in self.runner.stages else {})
        tokens = self.runner.generate(ids, mask, max_new_tokens, logits=steps, images=images)
        want = ref.sequences.numpy()
        rows = []
        start = tokens.shape[1] - len(steps)  # the prompt (decoder-only) or the decoder's start token
        for i in range(max(len(ref.logits), len(steps))):
            col = start + i
            equal = (col < want.shape[1] and col < tokens.shape[1] and bool((want[:, col] == tokens[:, col]).all()))
            diff = (float(np.abs(steps[i] - ref.logits[i].float().numpy()).max())
                    if i < len(steps) and i < len(ref.logits) else float("inf"))
            rows.append((i, equal, diff))
        frame = pd.DataFrame(rows, columns=["step", "tokens_equal", "max_abs_diff"])
        frame.attrs["tokens_equal"] = bool(want.shape == tokens.shape and (want == tokens).all())
        frame.attrs["reference"] = want
        frame.attrs["onnx"] = tokens
        return frame


def export_for_generation(model: torch.nn.Module, output_dir: str | PathLike, *, inputs: dict | None = None,
                          dynamic: bool = True, strategy: str = "auto", multi_token_decode: bool = False,
                          experts: str | dict | None = None, progress: Callable[[str, float | None], None] | None = None,
                          **export_kwargs) -> GenerationResult:
    """Export a generative model as one tagged ONNX file per generation stage, its KV cache as
    graph inputs and outputs (names in the module docstring), plus ``manifest.json``.

    ``inputs``: what you would pass to ``model.generate`` (``input_ids``, ``attention_mask``, and
    modality inputs); generated from the config when left out (two prompts of 8 tokens, one with
    a masked token). ``dynamic``: batch, sequence and cache lengths are dynamic axes (the example
    batch must then be at least 2: torch.export fixes a dimension whose example is 1).
    ``strategy`` and ``export_kwargs`` go to ``hierx_nb.export`` for every stage.
    ``multi_token_decode``: the decode stage takes any number of new tokens (transformers' option).
    ``experts``: the kernel of mixture-of-experts layers, chosen per stage when None by how many
    tokens the stage runs and how large the experts are (``hf_switches.stage_kernel``; README
    "Mixtures of experts"); ``"batched_mm"`` / ``"grouped_mm"`` for every stage, or a dict stage ->
    kernel. Each stage's manifest entry says which it computes with (``experts``). A stage for which
    the rule chose ``grouped_mm`` (dynamo only) and no strategy exports it gets ``batched_mm``.

    Raises ``CannotGenerate`` (an ``InputError``) for a model without ``generate``, and
    ``ExportError`` naming the stage and every strategy's reason when a stage cannot be exported.
    The model and ``inputs`` are left as they were.
    """
    try:
        from transformers.exporters.utils import decompose_for_generation
    except ImportError:
        raise MissingDependency("export_for_generation builds on transformers.exporters (transformers 5)",
                                hint="pip install 'transformers>=5'") from None

    started = time.perf_counter()
    say = progress or (lambda step, fraction=None: None)
    if not isinstance(model, torch.nn.Module):
        raise NotAModule.of(model)
    if not can_generate(model):
        raise CannotGenerate(f"{type(model).__name__} cannot generate (it has no generation head)",
                             hint="export it with hierx_nb.export(model, ...) instead",
                             shell_hint="export it with hierx export MODEL -o FILE.onnx instead")
    if inputs is None:
        inputs = default_inputs(model)
    elif not isinstance(inputs, dict) or not any(k in inputs for k in ("input_ids", "inputs_embeds", "input_features")):
        raise InputError("inputs must be a dict of generate() inputs with 'input_ids' (and 'attention_mask') "
                         "or, for speech models, 'input_features'")
    out_dir = Path(output_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir} is a file: give a folder for the ONNX files")
    out_dir.mkdir(parents=True, exist_ok=True)
    kept = _clone(inputs)
    was_training = model.training
    model.eval()
    try:
        say("capturing prefill and decode inputs from model.generate", 0.0)
        try:
            with torch.no_grad(), _forward_kept(model):
                parts = decompose_for_generation(model, _clone(inputs), multi_token_decode=multi_token_decode)
        except Exception as e:
            cause = e.__cause__ or e
            raise CannotGenerate(f"{type(model).__name__}.generate cannot be captured on these inputs: "
                                 f"{describe(cause)}") from None
        components: dict[str, ExportResult] = {}
        stages: dict[str, Stage] = {}
        parts = {**_encoder_stage(model, inputs, parts), **_image_stages(model, inputs, parts), **parts}
        if isinstance(experts, dict) and set(experts) - set(parts):
            raise UnknownChoice.of("stage in experts", next(iter(set(experts) - set(parts))), parts)
        kernels: dict[str, str | None] = {}
        for i, (name, (module, captured)) in enumerate(parts.items()):
            say(f"{name}: preparing its flat inputs", i / len(parts))
            stage = plan_stage(name, module, captured, dynamic)
            if name == LM_HEAD:
                _head_names(stage, dynamic)
            if name == IMAGE_ENCODER:  # one image per run: its axes are the image's own
                stage.dynamic_axes = {}
            stages[name] = stage
            say(f"{name}: exporting", i / len(parts))
            for kernel, why in _kernel_tries(model, name, experts, multi_token_decode):
                try:
                    with export_patches(), experts_kernel(kernel, why):
                        components[name] = export(stage.module, kwargs=stage.feeds(), output=out_dir / f"{name}.onnx",
                                                  strategy=strategy, dynamic_axes=stage.dynamic_axes or None,
                                                  input_names=list(stage.kwargs), output_names=stage.output_names,
                                                  **export_kwargs)
                    kernels[name] = kernel
                    break
                except ExportError as e:
                    failed = e
            else:
                _raise_fixed_length(model, name, stage, state_layers(module, captured), failed)
                raise ExportError(f"stage {name!r} ({type(module).__name__}) could not be exported: {failed.message}",
                                  failed.attempts) from None
            if export_kwargs.get("check", True):
                _check_long_prompt(model, name, stage, components[name], state_layers(module, captured))
        manifest = _manifest(model, stages, components, kernels)
        with staging(out_dir) as tmp:  # staged beside the target and moved into place, like the .onnx files
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
            publish([(tmp / MANIFEST, out_dir / MANIFEST)])
    finally:
        model.train(was_training)
    return GenerationResult(components, manifest, out_dir, model=model, inputs=kept,
                            seconds=time.perf_counter() - started)


_FIXED_AXIS = re.compile(r"inferred a static shape of (\d+) for dimension inputs\['(\w+)'\]\.shape\[(\d+)\]")


def _raise_fixed_length(model, name: str, stage: Stage, layers: dict[str, str], error: ExportError) -> None:
    """``FixedLengthPrefill`` when a hybrid model's stage failed because torch.export fixed its prompt's
    length (the ``sequence`` axis), which its recurrent layers' token-by-token scan does."""
    if not layers:
        return
    for attempt in error.attempts:
        found = _FIXED_AXIS.search(attempt.reason or "")
        if found is None:
            continue
        size, param, axis = int(found.group(1)), found.group(2), int(found.group(3))
        graph_name = next((k for k in stage.kwargs if k.replace(".", "_") == param), param)
        if stage.dynamic_axes.get(graph_name, {}).get(axis) != SEQUENCE:
            continue
        kinds = sorted(set(layers.values()))
        raise FixedLengthPrefill(
            f"{getattr(model.config, 'model_type', type(model).__name__)} ({type(model).__name__}): stage {name!r} "
            f"cannot take prompts of any length: its recurrent layers ({', '.join(kinds)}: {', '.join(layers)}) "
            f"keep a state instead of keys and values, and their scan over the prompt traces to exactly {size} "
            f"tokens (torch.export fixed {graph_name}'s axis {axis})", error.attempts)


LONG_PROMPT = 257  # past the 64-token chunks of gated delta rules and most Mamba-2 chunk sizes


def _check_long_prompt(model, name: str, stage: Stage, component: ExportResult, layers: dict[str, str]) -> None:
    """``FixedLengthPrefill`` when a hybrid model's prompt-reading stage, right at the example's length
    (and at twice it: the export's own check), is wrong or fails at ``LONG_PROMPT`` tokens (or the
    config's ``max_position_embeddings`` when shorter).

    A recurrent layer that scans the prompt chunk by chunk in a Python loop (Qwen3-Next's gated delta
    rule: 64 tokens) traces to the example's number of chunks while the sequence axis stays dynamic:
    the file loads and runs short prompts, and breaks past one chunk. Attention-only models and stages
    that take no prompt (decode reads one token) are not run again."""
    seq_inputs = {k: axis for k, axes in stage.dynamic_axes.items() for axis, dim in axes.items()
                  if dim in (SEQUENCE, TOTAL) and k in stage.kwargs}
    if not layers or not seq_inputs or any(v.shape[seq_inputs[k]] <= 1 for k, v in stage.kwargs.items()
                                           if k in seq_inputs):
        return
    limit = getattr(getattr(model, "config", None), "max_position_embeddings", None) or LONG_PROMPT
    length = min(LONG_PROMPT, limit)
    feeds = stage.feeds()
    param = dict(zip(stage.kwargs, feeds))  # graph input name -> forward parameter (same order)
    for graph_name, axis in seq_inputs.items():
        key = param[graph_name]
        tensor = feeds[key]
        times = -(-length // tensor.shape[axis])
        feeds[key] = torch.cat([tensor] * times, dim=axis).narrow(axis, 0, length)
    try:
        report = compare_outputs(component.onnx(), Reference(stage.module, (), feeds))
        problem = None if report["ok"].all() else mismatch_line(report)
    except Exception as e:  # the file does not run at that length
        problem = f"ONNX Runtime: {first_line(str(e))}"
    if problem is None:
        return
    example = next(iter(stage.kwargs[k].shape[a] for k, a in seq_inputs.items()))
    kinds = sorted(set(layers.values()))
    raise FixedLengthPrefill(
        f"{getattr(model.config, 'model_type', type(model).__name__)} ({type(model).__name__}): stage {name!r} "
        f"runs the example's prompt of {example} tokens but not one of {length}: its recurrent layers "
        f"({', '.join(kinds)}) scan the prompt in a loop traced to the example's length ({problem})",
        component.attempts)


def _kernel_tries(model, stage: str, asked, multi_token_decode: bool):
    """``(experts kernel, why)`` to export ``stage`` with, in order: the chosen one, then, when the rule
    (not the user) chose ``grouped_mm``, ``batched_mm``: grouped_mm's translation is dynamo's alone, and
    a stage another strategy captures must not fail for a kernel the user did not ask for."""
    kernel, why = stage_kernel(model, stage, asked, multi_token_decode)
    yield kernel, why
    if kernel == GROUPED and asked is None:
        yield EXPERTS, f"{stage}: grouped_mm did not export, batched_mm does with every strategy"


def _encoder_stage(model, inputs: dict, parts: dict) -> dict:
    """``{"encoder": (encoder, its inputs)}`` for an encoder-decoder whose decoder stages take the encoder's
    output (``generate`` runs the encoder before the first forward, so the capture has no stage for it)."""
    prefill = parts.get("prefill", (None, {}))[1]
    get_encoder = getattr(model, "get_encoder", None)
    if "encoder_outputs" not in prefill or get_encoder is None:
        return {}
    encoder = get_encoder()
    names = [n for n in ("input_ids", "attention_mask", "input_features") if inputs.get(n) is not None]
    return {"encoder": (encoder, {n: inputs[n].clone() for n in names} | {"return_dict": True})}


class ImageFeatures(torch.nn.Module):
    """What ``generate`` runs before the first forward of a vision-language model:
    ``base_model.get_image_features(...)`` (vision tower, feature selection, projector), the
    features of every image concatenated into ``image_features`` ``(image tokens, hidden)``, the
    rows that replace the image placeholder tokens' embeddings in order. Exported for one image
    (the runner runs it once per image). The base model is the child ``model``, so the tags read
    as in the whole model (``model.vision_tower...``)."""

    def __init__(self, base: torch.nn.Module):
        super().__init__()
        self.model = base

    def forward(self, **image_inputs):
        out = self.model.get_image_features(**image_inputs, return_dict=True)
        features = out.pooler_output if hasattr(out, "pooler_output") else out
        if isinstance(features, (list, tuple)):
            features = torch.cat(list(features), dim=0)
        return {"image_features": features.reshape(-1, features.shape[-1])}


class TokenEmbeddings(torch.nn.Module):
    """The language model's input embeddings (``model.get_input_embeddings()``, scaled as the model
    scales them): ``input_ids`` ``(batch, sequence)`` -> ``inputs_embeds`` ``(batch, sequence, hidden)``."""

    def __init__(self, embed_tokens: torch.nn.Module):
        super().__init__()
        self.embed_tokens = embed_tokens

    def forward(self, input_ids):
        return {"inputs_embeds": self.embed_tokens(input_ids)}


# The stages of a vision-language model: decompose_for_generation's language_model, lm_head and decode,
# and before them the two steps that run outside its captured forwards.
IMAGE_ENCODER, EMBED_TOKENS, LANGUAGE_MODEL, LM_HEAD = "image_encoder", "embed_tokens", "language_model", "lm_head"
VLM_STAGES = {IMAGE_ENCODER, EMBED_TOKENS, LANGUAGE_MODEL, LM_HEAD, "decode"}


def image_token_id(model) -> int | None:
    config = getattr(model, "config", None)
    for key in ("image_token_id", "image_token_index"):
        value = getattr(config, key, None)
        if isinstance(value, int):
            return value
    return None


def _image_stages(model, inputs: dict, parts: dict) -> dict:
    """``{"image_encoder": ..., "embed_tokens": ...}`` for a vision-language model that
    ``decompose_for_generation`` split into ``language_model`` (which takes ``inputs_embeds``),
    ``lm_head`` and ``decode``. ``generate`` computes the image features before the first forward
    (``mm_encoder_outputs``), so the split's capture never sees the vision tower or the projector
    run, and the token embeddings the features are merged into are computed in the model's
    Python; both become stages here. Raises ``CannotGenerate`` naming what is missing."""
    name = type(model).__name__
    if LANGUAGE_MODEL not in parts:
        if (parts.get("prefill", (None, {}))[1].get("mm_encoder_outputs") or None) is not None:
            raise CannotGenerate(f"{name}: decompose_for_generation did not split it (no language_model stage), and "
                                 "its prefill takes the image features generate computed in Python "
                                 "(mm_encoder_outputs), which no file here would make")
        return {}
    base = getattr(model, "base_model", None)
    features = getattr(base, "get_image_features", None)
    token = image_token_id(model)
    takes = [k for k in inspect.signature(features).parameters if k != "kwargs"] if features is not None else []
    given = [k for k in takes if isinstance(inputs.get(k), torch.Tensor)]
    why = ("its base model has no get_image_features" if features is None else
           "the config names no image_token_id" if token is None else
           f"the inputs hold none of get_image_features' tensors ({', '.join(takes)})" if not given else
           f"decompose_for_generation split it into {', '.join(parts)}, without a stage taking input_ids "
           "before language_model" if "input_ids" not in inputs else None)
    if why:
        raise CannotGenerate(f"{name} cannot be exported for generation here: {why}",
                             hint="pass inputs=dict(input_ids=..., attention_mask=..., pixel_values=...) "
                                  "as you would to model.generate")
    why = _unbuildable(parts[LANGUAGE_MODEL][1])
    if why:
        raise CannotGenerate(f"{name} cannot be exported for generation here: {why}",
                             hint="vision-language models whose language model takes a 2-D padding mask and 2-D "
                                  "positions (LLaVA, Idefics3, SmolVLM) generate in ONNX Runtime here")
    # One image per run: get_image_features splits its output into a list per image, which fixes the
    # number of images in a traced graph (torch.export specializes the unbind), so the file takes one.
    return {IMAGE_ENCODER: (ImageFeatures(base), {k: inputs[k][:1].clone() for k in given}),
            EMBED_TOKENS: (TokenEmbeddings(model.get_input_embeddings()), {"input_ids": inputs["input_ids"].clone()})}


def _unbuildable(captured: dict) -> str | None:
    """Why the runner could not feed the ``language_model`` stage from a prompt (``None`` if it can):
    it builds a 2-D padding mask, 2-D positions and the cache position, and takes ``inputs_embeds``
    from ``embed_tokens`` and ``image_encoder``; masks or positions the model builds in Python from
    the prompt and its images (a prefix-LM's 4-D mask, one mask per attention type, 3-D m-RoPE
    positions) have no file that makes them."""
    odd = []
    for key, value in captured.items():
        if key == MASK and isinstance(value, dict):
            odd.append(f"{key} as one mask per attention type ({', '.join(map(str, value))})")
        elif key in (MASK, POSITIONS) and isinstance(value, torch.Tensor) and value.dim() != 2:
            odd.append(f"{key} of {value.dim()} dimensions")
        elif isinstance(value, torch.Tensor) and key not in ("inputs_embeds", MASK, POSITIONS, CACHE_POSITION):
            odd.append(key)
    if not odd:
        return None
    return (f"its language_model stage takes {'; '.join(odd)}, which the model builds in Python from the prompt "
            "and its images and no exported file computes, so greedy decoding in ONNX Runtime could not feed it")


def _head_names(stage: Stage, dynamic: bool) -> None:
    """``lm_head`` (a ``Linear`` from the split: input ``input``, one unnamed output) returns ``logits``;
    its input is the language model's hidden states, ``(batch, sequence, hidden)``."""
    if stage.output_names == ["0"]:
        stage.output_names = ["logits"]
        stage.dynamic_axes.pop("0", None)
    if dynamic:
        for n in (*stage.kwargs, *stage.output_names):
            stage.dynamic_axes[n] = {0: BATCH, 1: SEQUENCE}


def _manifest(model, stages: dict[str, Stage], components: dict[str, ExportResult], kernels: dict[str, str]) -> dict:
    gen = getattr(model, "generation_config", None)
    eos = getattr(gen, "eos_token_id", None)
    pad = getattr(gen, "pad_token_id", None)
    entries = {}
    for name, stage in stages.items():
        entries[name] = {
            "file": f"{name}.onnx",
            "sidecar": components[name].sidecar_path.name if components[name].sidecar_path else None,
            "inputs": list(stage.kwargs),
            "outputs": stage.output_names,
            "cache_inputs": stage.cache_inputs,
            "cache_outputs": stage.cache_outputs,
            # Each cache output feeds the cache input of the same name (present -> past_key_values) at the next step.
            "feeds_back": {o: CACHE_INPUT + o[len(CACHE_OUTPUT):] for o in stage.cache_outputs},
            "constants": {k: v for k, v in stage.constants.items()},
            "dynamic_axes": {k: {str(a): n for a, n in v.items()} for k, v in stage.dynamic_axes.items()},
            "strategy": components[name].strategy,
            # The mixture-of-experts kernel the stage's graph computes with (None: the model has no experts).
            "experts": kernels.get(name),
        }
    return {"schema": MANIFEST_SCHEMA, "model_class": type(model).__name__,
            "model_type": getattr(getattr(model, "config", None), "model_type", None),
            "cache_naming": CACHE_NAMING, "eos_token_id": eos, "pad_token_id": pad,
            "decoder_start_token_id": getattr(gen, "decoder_start_token_id", None),
            "forced_eos_token_id": getattr(gen, "forced_eos_token_id", None),
            "image_token_id": image_token_id(model) if IMAGE_ENCODER in stages else None,
            "stages": entries,
            "how_to_run": ("run 'prefill' on the prompt (input_ids, attention_mask, position_ids = cumsum(mask) - 1), "
                           "then 'decode' once per new token: input_ids = the last token, attention_mask grown by one, "
                           "position_ids = the next position, and every past_key_values.* = the previous step's "
                           "present.*; the next token is the argmax of the last logits"
                           + ("; a vision-language model's prefill is embed_tokens on the prompt, its rows at "
                              "image_token_id replaced in order by image_encoder's image_features, then "
                              "language_model on those inputs_embeds (its present.* feed decode) and lm_head on "
                              "its last_hidden_state" if IMAGE_ENCODER in stages else ""))}


# ----------------------------------------------------------------------------------------------- runner

class GenerationRunner:
    """Greedy decoding with the files ``export_for_generation`` wrote, in ONNX Runtime (CPU).

    Runs ``prefill`` + ``decode``, after an ``encoder`` for encoder-decoders (its output and the
    encoder's attention mask are fed to every decoder step; the decoder starts from the manifest's
    ``decoder_start_token_id``). For a vision-language model the prompt's step is ``embed_tokens``,
    the rows at ``image_token_id`` replaced by ``image_encoder``'s features (one run per image), then
    ``language_model`` and ``lm_head``; ``decode`` takes the tokens after it.
    """

    def __init__(self, folder: str | PathLike, threads: int | None = None):
        import onnxruntime as ort

        folder = Path(folder)
        path = folder / MANIFEST
        if not path.is_file():
            raise NoSuchFile(f"no such file: '{path}'", hint="export the model with hierx_nb.export_for_generation("
                             "model, folder) first", shell_hint="export the model with hierx export MODEL --task "
                             "text-generation -o FOLDER first")
        self.manifest = json.loads(path.read_text(encoding="utf-8"))
        stages = self.manifest["stages"]
        if set(stages) not in ({"prefill", "decode"}, {"encoder", "prefill", "decode"}, VLM_STAGES):
            raise InputError(f"this export has the stages {', '.join(stages)}: only prefill + decode (with an "
                             "encoder before them, or a vision-language model's image_encoder, embed_tokens, "
                             "language_model and lm_head) can be generated from in ONNX Runtime here")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads is not None:
            opts.intra_op_num_threads = int(threads)
        self.sessions = {n: ort.InferenceSession(str(folder / s["file"]), opts, providers=["CPUExecutionProvider"])
                         for n, s in stages.items()}
        self.stages = stages
        self.folder = folder

    encoded: dict[str, np.ndarray] = {}  # the encoder's outputs for the current generate() (encoder-decoders)

    def _feeds(self, stage: str, ids: np.ndarray, mask: np.ndarray, past: dict[str, np.ndarray],
               given: dict[str, np.ndarray] | None = None) -> dict:
        session = self.sessions[stage]
        feeds = {}
        given = given or {}
        query = ids.shape[1]
        total = mask.shape[1] if mask is not None else query
        positions = None
        if mask is not None:
            positions = np.cumsum(mask, axis=1) - 1
            positions = np.where(mask == 0, 1, positions)[:, total - query:]
        for i in session.get_inputs():
            n = i.name
            if n in given:
                feeds[n] = given[n]
            elif n == TOKENS:
                feeds[n] = ids
            elif n == MASK and mask is not None:
                feeds[n] = mask
            elif n == POSITIONS and positions is not None:
                feeds[n] = positions.astype(np.int64)
            elif n == CACHE_POSITION:
                feeds[n] = np.arange(total - query, total, dtype=np.int64)
            elif n == "decoder_input_ids":
                feeds[n] = ids
            elif n in self.encoded:
                feeds[n] = self.encoded[n]
            elif n in past:
                feeds[n] = past[n]
            else:
                raise InputError(f"the {stage} file takes {n!r}, which greedy decoding here cannot build")
        return feeds

    def generate(self, input_ids, attention_mask=None, max_new_tokens: int = 32,
                 logits: list | None = None, timings: list | None = None, images: dict | None = None) -> np.ndarray:
        """``(batch, prompt + new)`` int64 token ids: the prompt, then up to ``max_new_tokens``
        greedy tokens (a row that produced the end-of-sequence token continues with the pad token,
        and decoding stops when every row has; as ``model.generate`` does).

        ``logits``: a list receiving each step's last-position logits, float32 ``(batch, vocab)``.
        ``timings``: a list receiving each run's seconds (the prefill first, then one per decode step).
        ``images``: a vision-language model's image inputs (``pixel_values``, and what else its
        ``image_encoder`` file takes), one image's features per run of ``image_token_id`` in the prompt.
        """
        ids = np.asarray(input_ids.numpy() if isinstance(input_ids, torch.Tensor) else input_ids)
        encoder_inputs = [i.name for i in self.sessions["encoder"].get_inputs()] if "encoder" in self.sessions else []
        if "input_features" in encoder_inputs:  # a speech encoder-decoder: the first argument is the audio features
            return self._generate(ids.astype(np.float32), None, max_new_tokens, logits, timings)
        ids = ids.astype(np.int64)
        if ids.ndim != 2:
            raise InputError(f"input_ids must be (batch, sequence), got shape {ids.shape}")
        if attention_mask is None:
            mask = np.ones_like(ids)
        else:
            mask = np.asarray(attention_mask.numpy() if isinstance(attention_mask, torch.Tensor) else attention_mask,
                              dtype=np.int64)
            if mask.shape != ids.shape:
                raise InputError(f"attention_mask has shape {mask.shape}, input_ids {ids.shape}: they must match")
        self.images = self._image_feeds(images)
        return self._generate(ids, mask, max_new_tokens, logits, timings)

    images: dict[str, np.ndarray] = {}  # the image inputs of the current generate() (vision-language models)

    def _image_feeds(self, images: dict | None) -> dict[str, np.ndarray]:
        if IMAGE_ENCODER not in self.sessions:
            if images:
                raise InputError(f"this export takes no images (stages {', '.join(self.stages)}): "
                                 f"drop {', '.join(images)}")
            return {}
        names = [i.name for i in self.sessions[IMAGE_ENCODER].get_inputs()]
        images = {k: (v.numpy() if isinstance(v, torch.Tensor) else np.asarray(v)) for k, v in (images or {}).items()}
        missing = [n for n in names if n not in images]
        if missing:
            raise InputError(f"this vision-language model's image_encoder takes {', '.join(names)}: "
                             f"give {', '.join(missing)} (generate(..., pixel_values=...))")
        return {n: images[n] for n in names}

    def _vlm_prefill(self, ids: np.ndarray, mask: np.ndarray) -> tuple[dict, dict]:
        """The prompt's embeddings with the image features in place of the image tokens, through
        ``language_model`` and ``lm_head``: ``({"logits": ...}, language_model's outputs)``."""
        embeds = self.sessions[EMBED_TOKENS].run(None, {"input_ids": ids})[0]
        count = len(next(iter(self.images.values())))
        features = np.concatenate([self.sessions[IMAGE_ENCODER].run(None, {k: v[i:i + 1] for k, v in self.images.items()})[0]
                                   for i in range(count)])
        slots = ids == self.manifest["image_token_id"]
        if int(slots.sum()) != features.shape[0]:
            raise InputError(f"the prompt has {int(slots.sum())} image tokens (id {self.manifest['image_token_id']}) "
                             f"and the images give {features.shape[0]} feature rows: they must match")
        embeds = embeds.copy()
        embeds[slots] = features.astype(embeds.dtype)  # row-major order, as masked_scatter fills them
        session = self.sessions[LANGUAGE_MODEL]
        out = dict(zip([o.name for o in session.get_outputs()],
                       session.run(None, self._feeds(LANGUAGE_MODEL, ids, mask, {}, {"inputs_embeds": embeds}))))
        hidden = out["last_hidden_state"]
        head = self.sessions[LM_HEAD]
        return {"logits": head.run(None, {head.get_inputs()[0].name: hidden})[0]}, out

    def _generate(self, ids, mask, max_new_tokens, logits, timings) -> np.ndarray:
        eos = self.manifest.get("eos_token_id")
        eos = set(eos if isinstance(eos, list) else [] if eos is None else [eos])
        pad = self.manifest.get("pad_token_id")
        if pad is None and eos:
            pad = min(eos)
        forced = self.manifest.get("forced_eos_token_id")
        sequences = ids
        self.encoded = {}
        seq2seq = "encoder" in self.sessions
        if seq2seq:  # the encoder once; the decoder starts from its start token, the mask stays the encoder's
            encoder = self.sessions["encoder"]
            feeds = {i.name: {TOKENS: ids, MASK: mask, "input_features": ids}[i.name] for i in encoder.get_inputs()}
            self.encoded = {f"encoder_outputs.{o.name}": v for o, v in zip(encoder.get_outputs(), encoder.run(None, feeds))}
            sequences = np.full((ids.shape[0], 1), self.manifest["decoder_start_token_id"], dtype=np.int64)
        done = np.zeros(ids.shape[0], dtype=bool)
        past: dict[str, np.ndarray] = {}
        step_ids = sequences
        vlm = LANGUAGE_MODEL in self.sessions
        for step in range(max_new_tokens):
            stage = "decode" if step else LANGUAGE_MODEL if vlm else "prefill"
            spec = self.stages[stage]
            session = self.sessions[stage]
            t0 = time.perf_counter()
            if vlm and not step:
                head, out = self._vlm_prefill(step_ids, mask)
                out.update(head)
            else:
                out = dict(zip([o.name for o in session.get_outputs()],
                               session.run(None, self._feeds(stage, step_ids, mask, past))))
            if timings is not None:
                timings.append(time.perf_counter() - t0)
            last = out["logits"][:, -1, :].astype(np.float32)
            if logits is not None:
                logits.append(last)
            token = last.argmax(-1).astype(np.int64)
            if forced is not None and step == max_new_tokens - 1:  # generate's ForcedEOSTokenLogitsProcessor
                token = np.full_like(token, forced)
            if eos:
                token = np.where(done, pad, token)
                done |= np.isin(token, list(eos))
            sequences = np.concatenate([sequences, token[:, None]], axis=1)
            # Cache inputs a stage does not return (a cross-attention cache) are carried to the next step as they were.
            past.update({spec["feeds_back"][o]: out[o] for o in spec["cache_outputs"]})
            step_ids = token[:, None]
            if not seq2seq:
                mask = np.concatenate([mask, np.ones((mask.shape[0], 1), dtype=np.int64)], axis=1)
            if eos and done.all():
                break
        return sequences


def load_generation(folder: str | PathLike) -> GenerationResult:
    """The stages a previous ``export_for_generation`` wrote in ``folder`` (no PyTorch model: ``generate``
    works, ``validate`` needs the model)."""
    runner = GenerationRunner(folder)
    components = {n: load(Path(folder) / s["file"]) for n, s in runner.stages.items()}
    result = GenerationResult(components, runner.manifest, Path(folder))
    result._runner = runner
    return result
