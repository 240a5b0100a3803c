"""HuggingFace practicalities: recognising HF models, example inputs from a config, local loading.

transformers is imported only inside these functions, so the engine works without it installed.
Nothing here touches the network: models come from local ``save_pretrained`` folders or configs.
"""
from __future__ import annotations

import json
import sys
from os import PathLike
from pathlib import Path

import torch

from .errors import InputError, first_line
from .inputs import forward_params

_SEED = 0
_DEFAULT_IMAGE_SIZE = 224  # configs of convolutional models (ResNet, ConvNeXt) carry no image size


def is_hf_model(model) -> bool:
    """True when ``model.config`` is a ``transformers.PretrainedConfig``."""
    # No PretrainedConfig can exist unless transformers was imported: skip the (slow) import.
    transformers = sys.modules.get("transformers")
    if transformers is None:
        return False
    return isinstance(getattr(model, "config", None), transformers.PretrainedConfig)


def example_inputs(model: torch.nn.Module, batch: int = 1, seq: int = 16, *, dynamic: bool = False) -> tuple[tuple, dict]:
    """``(args, kwargs)`` for ``model`` made from its config: token ids or pixel values, seeded.

    Text models get ``input_ids`` in ``[0, vocab_size)`` (plus an all-ones ``attention_mask`` and,
    for encoder-decoders, ``decoder_input_ids`` when ``forward`` takes them), ``seq`` capped at
    the model's maximum length; vision models get ``pixel_values`` of shape
    ``(batch, num_channels, H, W)``. ``InputError`` when the model's input kind is unknown.
    ``dynamic``: examples for an export with dynamic dimensions, so a batch of at least 2
    (torch.export fixes a dimension whose example size is 1).
    """
    batch = max(batch, 2) if dynamic else batch
    if not is_hf_model(model):
        raise InputError(f"{type(model).__name__} is not a HuggingFace model (no transformers config): "
                         "give its inputs explicitly (args/kwargs, or --inputs SPEC on the command line)")
    config = model.config
    params = forward_params(model)
    main = getattr(model, "main_input_name", None) or "input_ids"
    gen = torch.Generator().manual_seed(_SEED)
    if main == "pixel_values":
        return (), {"pixel_values": _pixel_values(config, batch, gen)}
    if main != "input_ids":
        raise InputError(f"cannot generate inputs for {type(model).__name__}: its main input is {main!r} "
                         "(only input_ids and pixel_values models are supported); give them explicitly (args/kwargs, or --inputs SPEC on the command line)")
    text = config.get_text_config()
    vocab = getattr(text, "vocab_size", None)
    if not isinstance(vocab, int) or vocab <= 0:
        raise InputError(f"cannot generate input_ids for {type(model).__name__}: its config has no vocab_size; "
                         "give the inputs explicitly (args/kwargs, or --inputs SPEC on the command line)")
    # Position embeddings are a fixed-size table: longer sequences would index past it.
    limit = getattr(text, "max_position_embeddings", None) or getattr(text, "n_positions", None)
    length = min(seq, limit) if isinstance(limit, int) and limit > 0 else seq
    kwargs = {"input_ids": torch.randint(0, vocab, (batch, length), generator=gen, dtype=torch.long)}
    if "attention_mask" in params:
        kwargs["attention_mask"] = torch.ones(batch, length, dtype=torch.long)
    if getattr(config, "is_encoder_decoder", False) and "decoder_input_ids" in params:
        kwargs["decoder_input_ids"] = torch.randint(0, vocab, (batch, length), generator=gen, dtype=torch.long)
    return (), kwargs


def _pixel_values(config, batch: int, gen: torch.Generator) -> torch.Tensor:
    vision = getattr(config, "vision_config", None) or config
    channels = getattr(vision, "num_channels", 3)
    size = getattr(vision, "image_size", None) or _DEFAULT_IMAGE_SIZE
    height, width = (size, size) if isinstance(size, int) else tuple(size)[:2]
    return torch.randn(batch, channels, height, width, generator=gen)


def load_pretrained_dir(path: str | PathLike) -> torch.nn.Module:
    """The model saved in a local ``save_pretrained`` folder, in eval mode; never downloads.

    The class is the one recorded in ``config.json`` (``architectures``), so task heads keep their
    weights; ``AutoModel`` when none is recorded. ``InputError`` if the folder cannot be loaded.
    """
    folder = _config_folder(path)
    transformers = require_transformers()
    try:
        config = transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
    except Exception as e:
        raise InputError(f"cannot read {str(folder / 'config.json')!r}: {_reason(e)}") from None
    cls = _architecture_class(config) or transformers.AutoModel
    try:
        model = cls.from_pretrained(folder, config=config, local_files_only=True)
    except Exception as e:
        raise InputError(f"cannot load the model in {str(folder)!r} with {cls.__name__}: {_reason(e)}") from None
    return model.eval()


def meta_model(config_or_path, model_class=None) -> torch.nn.Module:
    """An HF model built on the ``meta`` device (no weights allocated), in eval mode.

    ``config_or_path``: a ``PretrainedConfig``, a config dict (with ``model_type``), a
    ``config.json`` path or a folder holding one. ``model_class``: the class to build (default:
    the config's recorded architecture, else ``AutoModel``). For structure-only export: any size
    builds in seconds with almost no memory.
    """
    transformers = require_transformers()
    config = _as_config(config_or_path, transformers)
    cls = model_class or _architecture_class(config)
    try:
        with torch.device("meta"):
            model = cls(config) if cls is not None else transformers.AutoModel.from_config(config)
    except Exception as e:
        name = cls.__name__ if cls is not None else "AutoModel"
        raise InputError(f"cannot build a {name} from the {type(config).__name__}: {_reason(e)}") from None
    return model.eval()


def _as_config(config_or_path, transformers):
    if isinstance(config_or_path, transformers.PretrainedConfig):
        return config_or_path
    if isinstance(config_or_path, dict):
        data, where = dict(config_or_path), "the config dict"
    elif isinstance(config_or_path, (str, PathLike)):
        path = Path(config_or_path)
        file = _config_folder(path) / "config.json" if path.is_dir() else path
        if not file.is_file():
            raise InputError(f"no such config file: {str(file)!r}")
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise InputError(f"{str(file)!r} is not a readable JSON config: {_reason(e)}") from None
        if not isinstance(data, dict):
            raise InputError(f"{str(file)!r} is not a config: it holds a JSON {type(data).__name__}, not an object")
        where = repr(str(file))
    else:
        raise InputError(f"expected a PretrainedConfig, a dict or a path, got {type(config_or_path).__name__}")
    model_type = data.pop("model_type", None)
    if not model_type:
        raise InputError(f"{where} has no model_type: it must be a transformers config (as written by save_pretrained)")
    if model_type not in transformers.CONFIG_MAPPING:
        raise InputError(f"{where} has model_type {model_type!r}, which transformers {transformers.__version__} "
                         "does not know: upgrade transformers or check the config")
    try:
        return transformers.AutoConfig.for_model(model_type, **data)
    except Exception as e:
        raise InputError(f"{where} is not a usable transformers config: {_reason(e)}") from None


def _architecture_class(config):
    """The transformers class named first in ``config.architectures``, if transformers has it."""
    transformers = require_transformers()
    for name in getattr(config, "architectures", None) or ():
        cls = getattr(transformers, name, None)
        if isinstance(cls, type) and issubclass(cls, transformers.PreTrainedModel):
            return cls
    return None


def _config_folder(path: str | PathLike) -> Path:
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise InputError(f"{str(path)!r} is not a folder: give a folder written by save_pretrained")
    if not (folder / "config.json").is_file():
        raise InputError(f"{str(path)!r} has no config.json: give a folder written by save_pretrained")
    return folder


def require_transformers():
    try:
        import transformers
    except ImportError:
        raise InputError("HuggingFace models need transformers: pip install 'hierx_nb[hf]'") from None
    return transformers


def _reason(e: Exception) -> str:
    return first_line(f"{type(e).__name__}: {e}")
