"""hierx_nb: hierarchy-preserving PyTorch -> ONNX export.

    import hierx_nb
    result = hierx_nb.export(model, args=(x,), output="model.onnx")
    result.nodes      # one row per ONNX node with the nn.Module it came from

In Jupyter: ``%load_ext hierx_nb`` then ``%hierexport model (x,)``.
"""
# The notebook layer registers its views (widget, HTML report, figures) with the engine's display
# registry (hierx_nb.display); importing it needs no Jupyter.
from . import notebook, strategies  # noqa: F401  (notebook: registers its views)
from .errors import (
    Attempt,
    BadSpec,
    CacheOptions,
    CannotGenerate,
    DifferentModels,
    ExportError,
    FixedLengthPrefill,
    InputError,
    InputMismatch,
    InputsRejected,
    Mismatch,
    MissingDependency,
    MissingInputs,
    NoReference,
    NoSuchFile,
    NotAModule,
    NotComputed,
    NotMadeFrom,
    NotOnnxFile,
    NotPretrainedFolder,
    NotTagged,
    NoWeights,
    OutputFolderMissing,
    OutputIsFolder,
    OutputNotWritable,
    StructureOnly,
    UnknownChoice,
    UnknownModule,
    UnloadableModel,
    UntaggedSource,
)
from .exporter import export
from .generation import GenerationResult, export_for_generation, load_generation
from .hf import meta_model
from .result import ExportResult, compare, load, retag
from .version import __version__

__all__ = ["export", "export_for_generation", "load_generation", "GenerationResult", "load", "retag", "compare", "meta_model",
           "ExportResult", "Attempt", "strategies", "__version__", "load_ipython_extension", "unload_ipython_extension",
           # errors: one class per mistake (README, "Errors")
           "BadSpec", "CacheOptions", "CannotGenerate", "DifferentModels", "ExportError", "FixedLengthPrefill", "InputError", "InputMismatch",
           "InputsRejected", "Mismatch", "MissingDependency", "MissingInputs", "NoReference", "NoSuchFile", "NoWeights", "NotAModule", "NotComputed", "NotMadeFrom",
           "NotOnnxFile", "NotPretrainedFolder", "NotTagged", "OutputFolderMissing", "OutputIsFolder", "OutputNotWritable",
           "StructureOnly", "UnknownChoice", "UnknownModule", "UnloadableModel", "UntaggedSource"]


def load_ipython_extension(ipython):
    from .notebook.magic import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython):
    from .notebook.magic import unload_ipython_extension as _unload

    _unload(ipython)
