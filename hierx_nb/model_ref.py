"""The CLI's MODEL argument and ``--inputs`` SPEC: from a string to a model and its inputs.

MODEL is one of:

* ``package.module:factory`` or ``path/to/file.py:factory`` (``factory`` may be dotted,
  ``module:Zoo.build``). The attribute may be a model instance, an ``nn.Module`` class
  (instantiated without arguments) or a function called without arguments that returns a model,
  ``(model, args)`` or ``(model, args, kwargs)``. The current folder is importable, as with
  ``python -m``; a ``.py`` file's own folder is importable too, as when running it as a script.
* a folder written by ``save_pretrained`` (holding ``config.json``): the model with its weights,
  or built on the ``meta`` device without weights for a structure-only export.
* a ``config.json`` file: structure-only export only (a config has no weights).
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
from pathlib import Path

import torch

from . import hf
from .errors import BadSpec, InputError, NoSuchFile, NotAModule, NotPretrainedFolder, NoWeights, describe

# What save_pretrained writes (sharded checkpoints add an index beside the shards).
_WEIGHT_FILES = ("*.safetensors", "*.bin", "*.pt", "*.pth")
_FACTORY_HINT = "give MODEL as package.module:factory, path/to/file.py:factory or a save_pretrained folder"


def resolve_model(ref: str, structure_only: bool = False):
    """``(model, args, kwargs, description)`` for the MODEL reference ``ref``.

    ``args`` and ``kwargs`` are None when the reference carries no inputs (a bare model, an HF
    folder): the caller supplies them. Every failure is an ``InputError`` saying what to do.
    """
    path = Path(ref).expanduser()
    if path.is_dir():
        return _from_hf_folder(path, structure_only)
    if path.is_file():
        if path.suffix == ".json":
            return _from_config_file(path, structure_only)
        if path.suffix == ".py":
            raise InputError(f"name the factory to call in {ref!r}: {ref}:FUNCTION")
        raise InputError(f"{ref!r} is a file but not a model reference: {_FACTORY_HINT}")
    module_part, sep, attr = ref.rpartition(":")
    if not sep or not module_part or not attr:
        raise InputError(f"{ref!r} is neither an existing folder or file nor a module:factory reference: {_FACTORY_HINT}")
    module = _import(module_part)
    target = _attribute(module, module_part, attr)
    model, args, kwargs = _call_factory(target, ref)
    return model, args, kwargs, f"{ref} ({type(model).__name__})"


def portable_ref(ref: str) -> str:
    """``ref`` as it resolves from any folder: paths (a folder, a file, ``file.py:factory``) made
    absolute; ``package.module:factory`` unchanged."""
    path = Path(ref).expanduser()
    if path.exists():
        return str(path.resolve())
    module_part, sep, attr = ref.rpartition(":")
    if sep and module_part.endswith(".py") and Path(module_part).expanduser().is_file():
        return f"{Path(module_part).expanduser().resolve()}:{attr}"
    return ref


def _from_hf_folder(path: Path, structure_only: bool):
    if not (path / "config.json").is_file():
        raise NotPretrainedFolder(f"folder {str(path)!r} has no config.json",
                                  shell_hint="give a folder written by save_pretrained, or a module:factory reference")
    if not structure_only and not any(any(path.glob(pattern)) for pattern in _WEIGHT_FILES):
        raise NoWeights(f"folder {str(path)!r} has a config.json but no weights ({', '.join(_WEIGHT_FILES)})",
                        shell_hint="add --structure-only to export its structure, or save the model with save_pretrained")
    model = hf.meta_model(path) if structure_only else hf.load_pretrained_dir(path)
    kind = "structure only, from its config" if structure_only else "with its weights"
    return model, None, None, f"{path} ({type(model).__name__}, {kind})"


def _from_config_file(path: Path, structure_only: bool):
    if not structure_only:
        raise NoWeights(f"{str(path)!r} is a config file, which has no weights",
                        shell_hint="add --structure-only to export its structure, or give the save_pretrained folder")
    model = hf.meta_model(path)
    return model, None, None, f"{path} ({type(model).__name__}, structure only, from its config)"


def _import(module_part: str):
    """The module named by ``module_part``: a dotted module name or a path to a ``.py`` file."""
    if module_part.endswith(".py") or os.sep in module_part or "/" in module_part:
        return _import_file(Path(module_part).expanduser())
    if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", module_part):
        raise InputError(f"{module_part!r} is not a Python module name: {_FACTORY_HINT}")
    # Console scripts do not put the current folder on sys.path; `python -m` does. Behave the same.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(module_part)
    except ModuleNotFoundError as e:
        if e.name and (module_part == e.name or module_part.startswith(e.name + ".")):
            raise InputError(f"no module named {module_part!r}: run from the folder that contains it, add that "
                             "folder to PYTHONPATH, or give path/to/file.py:factory") from None
        raise InputError(f"importing {module_part!r} failed: {describe(e)}") from None
    except Exception as e:  # the user's module raised while importing: its own error says why
        raise InputError(f"importing {module_part!r} failed: {describe(e)}") from None


def _import_file(file: Path):
    if not file.is_file():
        raise NoSuchFile(f"no such Python file: {str(file)!r}")
    if file.suffix != ".py":
        raise InputError(f"{str(file)!r} is not a .py file: {_FACTORY_HINT}")
    folder = str(file.resolve().parent)
    if folder not in sys.path:  # sibling imports work as when running the file as a script
        sys.path.insert(0, folder)
    # A private name, so a file called e.g. torch.py cannot shadow a real package in sys.modules.
    name = f"hierx_model_ref_{abs(hash(str(file.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up while it executes
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[name]
        raise InputError(f"running {str(file)!r} failed: {describe(e)}") from None
    return module


def _attribute(module, module_part: str, attr: str):
    target = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            names = sorted(n for n, v in vars(module).items()
                           if not n.startswith("_") and callable(v) and getattr(v, "__module__", None) == module.__name__)
            hint = f" (it defines: {', '.join(names[:12])}{', ...' if len(names) > 12 else ''})" if names else ""
            raise InputError(f"{module_part!r} has no attribute {attr!r}{hint}") from None
    return target


def _call_factory(target, ref: str):
    if isinstance(target, torch.nn.Module):
        return target, None, None
    if not callable(target):
        raise InputError(f"{ref!r} is a {type(target).__name__}, not a model, model class or factory function")
    try:
        value = target()
    except Exception as e:
        raise InputError(f"calling {ref!r} failed: {describe(e)}") from None
    if isinstance(value, torch.nn.Module):
        return value, None, None
    if isinstance(value, tuple) and len(value) in (2, 3) and isinstance(value[0], torch.nn.Module):
        kwargs = value[2] if len(value) == 3 else None
        return value[0], value[1], kwargs
    raise NotAModule(f"{ref!r} returned a {type(value).__name__}",
                     hint="a factory must return a torch.nn.Module, (model, args) or (model, args, kwargs)")


# -- --inputs SPEC -------------------------------------------------------------------------------

INPUTS_GRAMMAR = (
    "SPEC is a comma-separated list of [NAME=]SHAPE[:DTYPE[[LOW,HIGH)]]: SHAPE like 1x3x224x224, DTYPE one of "
    "{dtypes} (default float32), [LOW,HIGH) the range of integer values (default [0,100)); NAME= makes a "
    "keyword input, e.g. \"input_ids=1x16:int64[0,30522),attention_mask=1x16:int64[1,2)\"")

_DTYPES = {
    "float32": torch.float32, "float": torch.float32, "float16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "float64": torch.float64, "double": torch.float64,
    "int64": torch.int64, "long": torch.int64, "int32": torch.int32, "int": torch.int32,
    "int16": torch.int16, "int8": torch.int8, "uint8": torch.uint8, "bool": torch.bool,
}
_DEFAULT_INT_RANGE = (0, 100)
_ITEM = re.compile(r"(?:(?P<name>[A-Za-z_]\w*)=)?(?P<shape>\d+(?:x\d+)*)"
                   r"(?::(?P<dtype>[a-z0-9]+)(?:\[(?P<low>-?\d+),(?P<high>-?\d+)\))?)?")
_SEED = 0


def parse_inputs(spec: str) -> tuple[tuple, dict]:
    """``(args, kwargs)`` of seeded random tensors described by an ``--inputs`` SPEC.

    Grammar: see ``INPUTS_GRAMMAR``. Floats are standard normal, integers uniform in
    ``[LOW, HIGH)``, bools uniform; the same SPEC always gives the same tensors. Positional items
    come before keyword ones. ``InputError`` explaining the grammar on a bad SPEC.
    """
    grammar = INPUTS_GRAMMAR.format(dtypes=", ".join(_DTYPES))
    # Split on the commas between items, not the one inside an integer range "[0,100)".
    compact = "".join(spec.split())
    items = re.split(r",(?![^\[]*\))", compact) if compact else []
    if not items:
        raise BadSpec(f"empty --inputs: {grammar}")
    gen = torch.Generator().manual_seed(_SEED)
    args, kwargs = [], {}
    for item in items:
        m = _ITEM.fullmatch(item)
        if m is None:
            raise BadSpec(f"bad --inputs item {item!r}: {grammar}")
        shape = tuple(int(d) for d in m["shape"].split("x"))
        if 0 in shape:
            raise BadSpec(f"bad --inputs item {item!r}: dimensions must be at least 1")
        dtype_name = m["dtype"] or "float32"
        dtype = _DTYPES.get(dtype_name)
        if dtype is None:
            raise BadSpec(f"bad --inputs item {item!r}: unknown dtype {dtype_name!r}; use one of {', '.join(_DTYPES)}")
        tensor = _random(item, shape, dtype, m["low"], m["high"], gen)
        name = m["name"]
        if name is None:
            if kwargs:
                raise BadSpec(f"bad --inputs item {item!r}: positional inputs must come before NAME= inputs")
            args.append(tensor)
        elif name in kwargs:
            raise BadSpec(f"bad --inputs: {name!r} is given twice")
        else:
            kwargs[name] = tensor
    return tuple(args), kwargs


def _random(item: str, shape, dtype, low, high, gen) -> torch.Tensor:
    if dtype.is_floating_point:
        if low is not None:
            raise BadSpec(f"bad --inputs item {item!r}: a [LOW,HIGH) range is for integer dtypes only")
        return torch.randn(shape, generator=gen).to(dtype)
    if dtype == torch.bool:
        if low is not None:
            raise BadSpec(f"bad --inputs item {item!r}: a [LOW,HIGH) range is for integer dtypes only")
        return torch.randint(0, 2, shape, generator=gen).bool()
    lo, hi = (int(low), int(high)) if low is not None else _DEFAULT_INT_RANGE
    if hi <= lo:
        raise BadSpec(f"bad --inputs item {item!r}: the range [{lo},{hi}) is empty")
    info = torch.iinfo(dtype)
    if lo < info.min or hi - 1 > info.max:
        raise BadSpec(f"bad --inputs item {item!r}: [{lo},{hi}) does not fit {str(dtype).removeprefix('torch.')}")
    return torch.randint(lo, hi, shape, generator=gen, dtype=torch.int64).to(dtype)

