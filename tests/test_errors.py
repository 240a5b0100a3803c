"""One exception class per mistake: the README's table lists exactly the classes of ``errors.py``,
and every entry point (Python, the ``hierx`` command, the explorer widget) raises the class the
table names, with the hint for where the user is (Python arguments vs ``hierx`` flags)."""
from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from zoo import case

import hierx_nb
from hierx_nb import cli, errors

README = Path(__file__).parent.parent / "README.md"


def readme_errors() -> dict[str, dict[str, str]]:
    """The rows of the README's error table by class name: {class: {column: cell}}."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Errors\n", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("|")]
    header = [c.strip() for c in _cells(lines[0])]
    rows = {}
    for line in lines[2:]:
        row = dict(zip(header, (c.strip() for c in _cells(line))))
        rows[row["Class"].strip("`")] = row
    return rows


def _cells(line: str) -> list[str]:
    return re.split(r"(?<!\\)\|", line.strip())[1:-1]  # "\|" is a pipe inside a cell


def error_classes() -> dict[str, type]:
    return {name: cls for name, cls in inspect.getmembers(errors, inspect.isclass)
            if cls.__module__ == errors.__name__ and issubclass(cls, errors.ExportError)}


def _mistake(cls: type) -> str:
    """The docstring's first paragraph, in the README's markdown."""
    first = inspect.getdoc(cls).split("\n\n", 1)[0]
    return " ".join(first.split()).replace("``", "`")


def test_readme_table_lists_every_error_class_and_no_other():
    rows, classes = readme_errors(), error_classes()
    assert len(classes) >= 15
    assert sorted(rows) == sorted(classes)
    for name, cls in classes.items():
        assert rows[name]["Mistake"] == _mistake(cls), name
        assert rows[name]["Exit"] == ("2" if issubclass(cls, errors.InputError) else "1"), name
        assert getattr(hierx_nb, name) is cls and name in hierx_nb.__all__, f"{name} not exported from hierx_nb"


@pytest.mark.parametrize("error", [
    errors.UnknownModule.of("hed.0", ["", "fc1", "head", "head.0", "head.1", "head.2"]),
    errors.StructureOnly.for_action("profile"),
    errors.NoReference.for_action("validate"),
    errors.UnknownChoice.of("strategy", "dynamoo", ["auto", "dynamo", "htp", "fx"]),
    errors.NotComputed.of("latency"),
    errors.MissingDependency.of("result.figure", "plotly", "notebook"),
    errors.InputMismatch.of("input 'x' is (1, 3) float32, but the graph expects (batch, 16) float32",
                            [("x", ["batch", 16], "float32")]),
    errors.InputsRejected("MLP does not run on the given inputs: RuntimeError: mat1 and mat2 shapes cannot be "
                          "multiplied (2x5 and 16x32)"),
], ids=lambda e: type(e).__name__)
def test_readme_shows_the_messages_the_classes_build(error):
    row = readme_errors()[type(error).__name__]
    assert row["Message (example)"].strip("`") == error.message
    assert row["Python hint"].strip("`") == error.hint
    if row["Shell hint"].startswith("`") and "..." not in row["Shell hint"]:  # not a note, not abridged
        assert row["Shell hint"].strip("`") == error.shell_hint


def test_class_advice_is_the_default_and_a_given_hint_wins():
    e = errors.NotTagged("'m.onnx' has no hierx tags")
    assert e.hint == "export the model with hierx_nb.export" and "hierx export MODEL" in e.shell_hint
    given = errors.MissingInputs("Net needs inputs", hint="give ARGS")  # the magic's own advice
    assert given.one_line() == given.one_line(shell=True) == "Net needs inputs; give ARGS"
    assert errors.NotOnnxFile("sidecar unreadable", hint="").one_line(shell=True) == "sidecar unreadable"


def test_hint_follows_the_entry_point():
    e = errors.OutputFolderMissing("output folder 'x' does not exist", hint="mkdir it in Python", shell_hint="mkdir -p x")
    assert str(e) == "output folder 'x' does not exist; mkdir it in Python" == e.one_line()
    assert e.one_line(shell=True) == "output folder 'x' does not exist; mkdir -p x"
    assert errors.InputError("plain").one_line(shell=True) == "plain"  # no hint: the message alone
    attempts = [errors.Attempt("dynamo", False, "boom\nmore"), errors.Attempt("htp", False, "bang")]
    failed = errors.ExportError("no strategy could export Net", attempts, hint="h", shell_hint="s")
    assert failed.one_line(shell=True) == "no strategy could export Net; s | dynamo: boom | htp: bang"


def test_missing_dependency_is_an_import_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_plotly(name, *args, **kwargs):
        if name.startswith("plotly"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_plotly)
    from hierx_nb.notebook.figures import figure

    with pytest.raises(ImportError) as info:
        figure(object(), "coverage")
    assert type(info.value) is hierx_nb.MissingDependency and "pip install 'hierx_nb[notebook]'" in str(info.value)


def test_unknown_module_is_a_key_error_that_reads_as_text():
    e = errors.UnknownModule.of("layer.0", ["", "encoder", "encoder.layer.0"])
    assert isinstance(e, KeyError) and isinstance(e, hierx_nb.InputError)
    assert str(e).startswith("no module named 'layer.0' in this model; did you mean 'encoder.layer.0'?")
    assert not str(e).startswith('"')  # KeyError would show a repr
    assert "did you mean" not in errors.UnknownModule.of("zzz", ["", "encoder"]).one_line()


# -- each entry point, the one class ------------------------------------------------------------------

@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tagged MLP (fc1, fc2, act, head.0-2) with weights, and a structure-only one."""
    folder = tmp_path_factory.mktemp("errors")
    c = case("mlp")
    full = hierx_nb.export(c.model, c.args, output=folder / "mlp.onnx", strategy="dynamo")
    bare = hierx_nb.export(c.model, c.args, output=folder / "bare.onnx", strategy="dynamo", structure_only=True)
    return folder, full, bare


def one_line(capfd, *argv) -> tuple[int, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capfd.readouterr()
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("hierx: error: ") and "Traceback" not in err, err
    return code, lines[0]


def named_in_readme(error: BaseException, name: str) -> None:
    """``error`` is exactly the class the README's table names for the mistake (not a subclass)."""
    assert type(error).__name__ == name and name in readme_errors()


def test_unknown_module_from_every_entry_point(files, capfd):
    folder, full, _ = files
    loaded = hierx_nb.load(full.onnx_path)
    for call in (lambda: full.mapping("hed.0"), lambda: loaded.mapping("hed.0"),
                 lambda: full.extract("hed.0", folder / "piece.onnx"), lambda: loaded.extract("hed.0", folder / "p.onnx")):
        with pytest.raises(hierx_nb.UnknownModule) as info:
            call()
        named_in_readme(info.value, "UnknownModule")
        assert "did you mean 'head.0'" in str(info.value) and "result.modules['module']" in str(info.value)
        assert "hierx analyze" not in str(info.value)  # no shell advice in Python
    assert not (folder / "piece.onnx").exists()

    code, line = one_line(capfd, "extract", full.onnx_path, "hed.0", "-o", folder / "piece.onnx")
    assert code == cli.EXIT_BAD_INPUT
    assert "no module named 'hed.0'" in line and "did you mean 'head.0'" in line
    assert f"hierx analyze {full.onnx_path}" in line and "result." not in line  # no Python advice in a shell

    with pytest.raises(hierx_nb.UnknownModule, match="did you mean 'head.0'"):
        full.to_html(folder / "report.html", selected="hed.0")
    assert not (folder / "report.html").exists()

    from hierx_nb.notebook.widget import HierxExplorer

    widget = HierxExplorer.from_result(full)
    with pytest.raises(hierx_nb.UnknownModule) as info:
        widget.selected = "hed.0"
    named_in_readme(info.value, "UnknownModule")
    assert "did you mean 'head.0'" in str(info.value) and widget.selected == ""


def test_structure_only_from_every_entry_point(files, capfd):
    folder, _, bare = files
    loaded = hierx_nb.load(bare.onnx_path)
    for result in (bare, loaded):
        for call in (result.validate, result.profile, lambda r=result: r.extract("head", folder / "piece.onnx")):
            with pytest.raises(hierx_nb.StructureOnly) as info:
                call()
            named_in_readme(info.value, "StructureOnly")
            assert "structure_only=False" in str(info.value) and "--structure-only" not in str(info.value)
    for argv in (["profile", bare.onnx_path, "--runs", "1"], ["extract", bare.onnx_path, "head", "-o", folder / "x.onnx"]):
        code, line = one_line(capfd, *argv)
        assert code == cli.EXIT_BAD_INPUT
        assert "structure-only export" in line and "without --structure-only" in line and "structure_only=" not in line
    assert not (folder / "piece.onnx").exists() and not (folder / "x.onnx").exists()


def test_missing_output_folder_hint_by_entry_point(files, capfd):
    folder, full, _ = files
    target = folder / "nope" / "dir" / "x.html"
    with pytest.raises(hierx_nb.OutputFolderMissing) as info:
        full.to_html(target)
    assert "does not exist" in str(info.value) and "mkdir(parents=True)" in str(info.value)
    assert "-o path" not in str(info.value) and "mkdir -p" not in str(info.value)
    code, line = one_line(capfd, "report", full.onnx_path, "-o", target)
    assert code == cli.EXIT_BAD_INPUT
    assert "does not exist" in line and "mkdir -p" in line and "choose another -o path" in line
    assert not target.parent.exists()


def test_other_mistakes_raise_their_class(files):
    folder, full, _ = files
    loaded = hierx_nb.load(full.onnx_path)
    with pytest.raises(hierx_nb.NoReference):
        loaded.validate()
    with pytest.raises(hierx_nb.NotComputed, match="no latency yet"):
        loaded.model_explorer_overlay("latency", folder / "lat.json")
    with pytest.raises(hierx_nb.UnknownChoice, match="did you mean 'latency'"):
        loaded.model_explorer_overlay("latncy", folder / "lat.json")
    with pytest.raises(hierx_nb.UnknownChoice, match="did you mean 'basic'"):
        loaded.profile(optimization="basik")
    with pytest.raises(hierx_nb.InputMismatch):
        loaded.profile(inputs="2x16,2x3", runs=1, warmup=0)  # two inputs for a one-input graph
    with pytest.raises(hierx_nb.NoSuchFile):
        hierx_nb.load(folder / "missing.onnx")
    (folder / "junk.onnx").write_bytes(b"\x00junk" * 50)
    with pytest.raises(hierx_nb.NotOnnxFile):
        hierx_nb.load(folder / "junk.onnx")
    with pytest.raises(hierx_nb.OutputIsFolder):
        full.to_html(folder)


def test_model_and_spec_mistakes_raise_their_class(files, tmp_path):
    from hierx_nb.model_ref import parse_inputs, resolve_model
    from hierx_nb.shapes import parse_dynamic

    folder, full, _ = files
    with pytest.raises(hierx_nb.NotAModule, match="got str"):
        hierx_nb.export("model.pt", output=None)
    for bad in (lambda: parse_inputs("1x3y"), lambda: parse_dynamic("x=0"), lambda: parse_dynamic("batchh"),
                lambda: hierx_nb.load(full.onnx_path).profile(inputs="1x0")):
        with pytest.raises(hierx_nb.BadSpec):
            bad()
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(hierx_nb.NoWeights) as info:
        resolve_model(str(tmp_path / "config.json"))
    assert "--structure-only" in info.value.one_line(shell=True)
    with pytest.raises(hierx_nb.NoWeights):
        resolve_model(str(tmp_path))  # a config.json but no weight files
    (tmp_path / "empty").mkdir()
    with pytest.raises(hierx_nb.NotPretrainedFolder):
        resolve_model(str(tmp_path / "empty"))
    with pytest.raises(hierx_nb.NotPretrainedFolder):
        hierx_nb.meta_model(tmp_path / "empty")
    with pytest.raises(hierx_nb.NoSuchFile):
        hierx_nb.meta_model(tmp_path / "missing.json")
    with pytest.raises(hierx_nb.NoSuchFile):
        resolve_model(str(tmp_path / "missing.py") + ":build")


def test_refinements_stay_catchable_as_the_general_mistake():
    # A file without tags is one mistake: as retag's source it is UntaggedSource, still a NotTagged.
    assert issubclass(hierx_nb.UntaggedSource, hierx_nb.NotTagged)
    assert issubclass(hierx_nb.UnknownModule, KeyError) and issubclass(hierx_nb.MissingDependency, ImportError)


def test_wrong_inputs_name_what_to_give_by_entry_point(files, capfd):
    import numpy as np

    _, full, _ = files
    loaded = hierx_nb.load(full.onnx_path)
    with pytest.raises(hierx_nb.InputMismatch) as info:
        loaded.profile(inputs={"x": np.zeros((2, 16), np.float64)}, runs=1, warmup=0)
    assert str(info.value) == ("input 'x' is (2, 16) float64, but the graph expects (2, 16) float32; "
                               "pass inputs={'x': float32 array (2, 16)}")
    code, line = one_line(capfd, "profile", full.onnx_path, "--inputs", "y=2x16", "--runs", "1")
    assert code == cli.EXIT_BAD_INPUT
    assert line == ("hierx: error: the graph has no input 'y'; its inputs: x (2, 16) float32; "
                    "pass --inputs x=2x16:float32")
