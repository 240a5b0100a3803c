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

from .errors import InputError, MissingDependency, NoSuchFile, NotPretrainedFolder, describe
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
    """``(args, kwargs)`` for ``model`` made from its config and forward signature, small and seeded.

    The model's main input, by kind:

    - ``input_ids``: token ids in ``[0, vocab_size)``, ``seq`` long (capped at the maximum length);
    - ``pixel_values``: ``(batch, channels, H, W)`` at the config's image size, or for video models
      (``num_frames`` in the config) ``(batch, frames, channels, H, W)``;
    - ``input_values``: raw audio ``(batch, samples)`` long enough for ``seq`` frames through the
      config's convolutions (wav2vec2, HuBERT, WavLM...), ``(batch, channels, samples)`` for codecs,
      or a spectrogram ``(batch, max_length, num_mel_bins)`` (Audio Spectrogram Transformer);
    - ``input_features``: log-mel features, ``(batch, num_mel_bins, 2 * max_source_positions)`` for
      Whisper, ``(batch, frames, features)`` otherwise (Speech2Text...);
    - ``past_values``: a time series ``(batch, context_length, channels)`` (PatchTST...).

    Then what the forward takes with it: ``attention_mask`` (all ones) for token ids, ``pixel_values``
    for text+image dual encoders (CLIP, SigLIP...), ``input_ids`` for vision models that read text,
    and ``decoder_input_ids`` for encoder-decoders (Whisper, BART, vision encoder-decoders).
    ``dynamic``: examples for an export with dynamic dimensions, so a batch of at least 2
    (torch.export fixes a dimension whose example size is 1). ``InputError`` when the model's
    inputs cannot be made; it lists the forward's required inputs.
    """
    batch = max(batch, 2) if dynamic else batch
    if not is_hf_model(model):
        raise InputError(f"{type(model).__name__} is not a HuggingFace model (no transformers config): "
                         "give its inputs explicitly (args/kwargs, or --inputs SPEC on the command line)")
    config = model.config
    params = forward_params(model)
    main = getattr(model, "main_input_name", None) or "input_ids"
    main = main[0] if isinstance(main, (list, tuple)) else main
    gen = torch.Generator().manual_seed(_SEED)
    make = _MAKERS.get(main)
    if make is None:
        raise _cannot(model, params, f"its main input is {main!r} (generated: {', '.join(_MAKERS)})")
    kwargs = {main: make(model, config, batch, seq, gen)}
    if main != "pixel_values" and "pixel_values" in params and _reads_images(config):
        kwargs["pixel_values"] = _pixel_values(model, config, batch, seq, gen)
    if main != "input_ids" and "input_ids" in params and _required(params, "input_ids"):
        kwargs["input_ids"] = _input_ids(model, config, batch, seq, gen)
    if "input_ids" in kwargs and "attention_mask" in params:
        kwargs["attention_mask"] = torch.ones_like(kwargs["input_ids"])
    if "decoder_input_ids" in params and _is_encoder_decoder(config):
        kwargs["decoder_input_ids"] = _input_ids(model, config, batch, seq, gen, decoder=True)
    missing = [n for n in params if _required(params, n) and n not in kwargs]
    if missing:
        raise _cannot(model, params, f"it also needs {', '.join(missing)}")
    return (), kwargs


def _cannot(model, params, why: str) -> InputError:
    required = [n for n in params if _required(params, n)]
    return InputError(f"cannot generate inputs for {type(model).__name__}: {why}; its forward requires "
                      f"{', '.join(required) or 'no input by name'}: give them explicitly (args/kwargs, or "
                      "--inputs SPEC on the command line)")


def _required(params, name: str) -> bool:
    p = params[name]
    return p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)


def _sub(config, *names):
    """The first of ``config``'s sub-configs ``names`` that exists, else the config itself."""
    for name in names:
        sub = getattr(config, name, None)
        if sub is not None and hasattr(sub, "to_dict"):
            return sub
    return config


def _int(config, *names, default=None):
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return default


def _reads_images(config) -> bool:
    """Text+image models whose forward wants both (dual encoders, ViLT); not chat VLMs, whose images
    need their own tokens in the text."""
    if any(hasattr(config, n) for n in ("image_token_id", "image_token_index", "image_token")):
        return False
    return getattr(config, "vision_config", None) is not None or _int(config, "image_size") is not None


def _is_encoder_decoder(config) -> bool:
    return bool(getattr(config, "is_encoder_decoder", False)) or getattr(config, "decoder", None) is not None


def _input_ids(model, config, batch, seq, gen, decoder: bool = False) -> torch.Tensor:
    if decoder and getattr(config, "decoder", None) is not None:  # a composed encoder-decoder
        text = config.decoder
    elif hasattr(config, "get_text_config"):
        text = config.get_text_config(decoder=True) if decoder else config.get_text_config()
    else:
        text = config
    vocab = _int(text, "vocab_size") or _int(config, "vocab_size")
    if vocab is None:
        raise InputError(f"cannot generate {'decoder_' if decoder else ''}input_ids for {type(model).__name__}: its "
                         "config has no vocab_size; give the inputs explicitly (args/kwargs, or --inputs SPEC on the command line)")
    # Position embeddings are a fixed-size table: longer sequences would index past it.
    limit = _int(text, "max_target_positions" if decoder else "max_position_embeddings", "max_position_embeddings",
                 "n_positions", "max_text_len")
    length = min(seq, limit) if limit else seq
    return torch.randint(0, vocab, (batch, length), generator=gen, dtype=torch.long)


def _pixel_values(model, config, batch, seq, gen) -> torch.Tensor:
    vision = _sub(config, "vision_config", "encoder")
    channels = _int(vision, "num_channels", default=3)
    size = getattr(vision, "image_size", None) or getattr(vision, "crop_size", None) or _DEFAULT_IMAGE_SIZE
    height, width = (size, size) if isinstance(size, int) else tuple(size)[:2]
    frames = _int(vision, "num_frames", "frames_per_clip") or _int(config, "num_frames")
    if frames:  # video: (batch, frames, channels, H, W)
        return torch.randn(batch, frames, channels, height, width, generator=gen)
    return torch.randn(batch, channels, height, width, generator=gen)


def _input_values(model, config, batch, seq, gen) -> torch.Tensor:
    audio = _sub(config, "audio_config", "encoder_config")
    mel_bins, max_length = _int(audio, "num_mel_bins"), _int(audio, "max_length")
    if mel_bins and max_length:  # a spectrogram (Audio Spectrogram Transformer)
        return torch.randn(batch, max_length, mel_bins, generator=gen)
    kernels, strides = getattr(audio, "conv_kernel", None), getattr(audio, "conv_stride", None)
    if kernels and strides:  # raw audio through a convolutional feature encoder (wav2vec2 family)
        receptive = 1
        for k, s in zip(reversed(list(kernels)), reversed(list(strides))):
            receptive = (receptive - 1) * s + k
        hop = 1
        for s in strides:
            hop *= s
        return torch.randn(batch, receptive + (seq - 1) * hop, generator=gen)
    ratios = getattr(audio, "upsampling_ratios", None) or getattr(audio, "downsampling_ratios", None)
    hop = 1
    for r in ratios or (320,):
        hop *= r
    channels = _int(audio, "audio_channels", "channels")
    if channels:  # a codec: (batch, channels, samples)
        return torch.randn(batch, channels, hop * seq, generator=gen)
    return torch.randn(batch, hop * seq, generator=gen)


def _input_features(model, config, batch, seq, gen) -> torch.Tensor:
    audio = _sub(config, "audio_config", "encoder_config")
    mel_bins, positions = _int(audio, "num_mel_bins"), _int(audio, "max_source_positions")
    if mel_bins and positions:
        # Whisper-style: channels first, exactly 2 * max_source_positions frames (a stride-2 convolution
        # halves them to the positions table).
        return torch.randn(batch, mel_bins, 2 * positions, generator=gen)
    features = _int(audio, "input_feat_per_channel", "num_mel_bins", "feature_size", "n_mels")
    if features is None:
        raise _cannot(model, forward_params(model), "its config gives no feature size for input_features")
    channels = _int(audio, "input_channels", default=1)
    frames = seq * 4  # convolutional subsampling (typically 4x) leaves about seq frames
    limit = _int(audio, "max_source_positions")
    frames = min(frames, limit) if limit else frames
    return torch.randn(batch, frames, features * channels, generator=gen)


def _past_values(model, config, batch, seq, gen) -> torch.Tensor:
    length = _int(config, "context_length", default=seq)
    channels = _int(config, "num_input_channels", default=1)
    return torch.randn(batch, length, channels, generator=gen)


_MAKERS = {"input_ids": _input_ids, "pixel_values": _pixel_values, "input_values": _input_values,
           "input_features": _input_features, "past_values": _past_values}


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
        raise InputError(f"cannot read {str(folder / 'config.json')!r}: {describe(e)}") from None
    cls = _architecture_class(config) or transformers.AutoModel
    try:
        model = cls.from_pretrained(folder, config=config, local_files_only=True)
    except Exception as e:
        raise InputError(f"cannot load the model in {str(folder)!r} with {cls.__name__}: {describe(e)}") from None
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
        raise InputError(f"cannot build a {name} from the {type(config).__name__}: {describe(e)}") from None
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
            raise NoSuchFile(f"no such config file: {str(file)!r}")
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise InputError(f"{str(file)!r} is not a readable JSON config: {describe(e)}") from None
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
        raise InputError(f"{where} is not a usable transformers config: {describe(e)}") from None


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
        raise NotPretrainedFolder(f"{str(path)!r} is not a folder", hint="give a folder written by save_pretrained")
    if not (folder / "config.json").is_file():
        raise NotPretrainedFolder(f"{str(path)!r} has no config.json", hint="give a folder written by save_pretrained")
    return folder


def require_transformers():
    try:
        import transformers
    except ImportError:
        raise MissingDependency.of("HuggingFace models", "transformers", "hf") from None
    return transformers

