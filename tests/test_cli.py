"""The ``hierx`` command line: exports, analysis, the demo, and one-line errors that never lose files.

Most tests call ``hierx_nb.cli.main`` in-process (fast); a few run ``python -m hierx_nb`` in a
subprocess to cover the real entry point and output at the file-descriptor level.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import onnx
import onnxruntime as ort
import pytest
import torch

from hierx_nb import cli
from hierx_nb.errors import InputError
from hierx_nb.model_ref import parse_inputs, resolve_model

TESTS = Path(__file__).parent
PREVIOUS = b"a previous export that a failed run must leave alone\n"


def run_subprocess(*argv, timeout=300):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    env.pop("HIERX_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "hierx_nb", *map(str, argv)], capture_output=True, text=True,
                          env=env, timeout=timeout)


def run_inline(capfd, *argv):
    """``(exit code, stdout, stderr)`` of ``hierx ARGV`` run in this process (fd-level capture)."""
    code = cli.main([str(a) for a in argv])
    out, err = capfd.readouterr()
    return code, out, err


def assert_one_error_line(err: str, *fragments: str):
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert lines[0].startswith("hierx"), lines[0]
    assert "error" in lines[0] or "interrupted" in lines[0]
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"


def previous_export(folder: Path) -> Path:
    """An existing file at the output path, as left by an earlier successful export."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "out.onnx"
    target.write_bytes(PREVIOUS)
    return target


def assert_untouched(target: Path):
    assert target.read_bytes() == PREVIOUS
    assert not list(target.parent.glob(".hierx-*")), "a staging folder was left behind"
    assert not (target.parent / "out.hierx.json").exists()


# -- success ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mlp_export(tmp_path_factory):
    """``python -m hierx_nb export cli_models:mlp --validate``: the process and the file it wrote."""
    out = tmp_path_factory.mktemp("export") / "mlp.onnx"
    proc = run_subprocess("export", "cli_models:mlp", "-o", out, "--validate")
    return proc, out


def test_export_succeeds_with_summary(mlp_export):
    proc, out = mlp_export
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "MLP exported with dynamo" in proc.stdout
    assert "7 ONNX nodes, module known for 100.0% (7 exact, 0 pattern); 0 inferred" in proc.stdout
    assert str(out) in proc.stdout and str(out.with_name("mlp.hierx.json")) in proc.stdout
    assert "modules by depth" in proc.stdout
    assert "ONNX Runtime vs PyTorch" in proc.stdout and "MISMATCH" not in proc.stdout
    # Progress goes to stderr, every line prefixed, and stdout holds only the report.
    assert "dynamo: " in proc.stderr and "writing mlp.onnx" in proc.stderr
    assert all(line.startswith("hierx:") for line in proc.stderr.splitlines())


def test_exported_file_is_valid_onnx(mlp_export):
    proc, out = mlp_export
    assert proc.returncode == 0, proc.stderr
    assert out.with_name("mlp.hierx.json").is_file()
    assert not list(out.parent.glob(".hierx-*"))
    onnx.checker.check_model(str(out))
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (x,) = session.get_inputs()
    (y,) = session.run(None, {x.name: torch.randn(2, 16).numpy()})
    assert y.shape == (2, 4)


def test_analyze_text(mlp_export, capfd):
    _, out = mlp_export
    code, stdout, err = run_inline(capfd, "analyze", out)
    assert code == 0, err
    lines = stdout.splitlines()
    assert lines[0].startswith("MLP: 7 ONNX nodes, known 100.0%, 8 modules, exported with dynamo")
    assert lines[1] == "  inputs   x float32 [2, 16]"
    assert lines[2] == "  outputs  linear_3 float32 [2, 4]"
    assert lines[3].split() == ["module", "class", "own", "total"]
    assert lines[4].split() == ["MLP", "MLP", "0", "7"]  # the whole model goes by its class name
    assert any(line.startswith("    0 ") and line.split() == ["0", "Linear", "1", "1"] for line in lines)  # head.0, under head
    code, stdout, _ = run_inline(capfd, "analyze", out, "--depth", "1")
    assert code == 0 and "Linear" in stdout and "3 deeper modules not shown" in stdout


def test_analyze_json(mlp_export, capfd):
    _, out = mlp_export
    code, stdout, err = run_inline(capfd, "analyze", out, "--format", "json")
    assert code == 0, err
    doc = json.loads(stdout)
    assert doc["summary"]["model_class"] == "MLP" and doc["summary"]["coverage_pct"] == 100.0
    assert {row["op_type"] for row in doc["coverage"]} == {"Gemm", "Relu"}
    assert doc["io"] == [{"kind": "input", "name": "x", "dtype": "float32", "shape": [2, 16]},
                         {"kind": "output", "name": "linear_3", "dtype": "float32", "shape": [2, 4]}]
    by_name = {row["module"]: row for row in doc["modules"]}
    assert by_name[""]["total_nodes"] == 7 and by_name["head.0"]["module_class"] == "Linear"


def test_analyze_csv(mlp_export, capfd):
    _, out = mlp_export
    code, stdout, err = run_inline(capfd, "analyze", out, "--format", "csv", "--depth", "1")
    assert code == 0, err
    lines = stdout.splitlines()
    assert lines[0] == "module,module_class,parent,depth,own_nodes,total_nodes,params,executed,folded_into"
    assert len(lines) == 1 + 5  # the root and its four children
    assert lines[1].startswith(",MLP,,0,0,7,")


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    """A folder written by ``save_pretrained`` from a tiny BertModel."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                        vocab_size=99, max_position_embeddings=64)
    folder = tmp_path_factory.mktemp("hf") / "tiny-bert"
    BertModel(config).save_pretrained(folder)
    return folder


def test_export_hf_folder_without_inputs(bert_dir, tmp_path, capfd):
    out = tmp_path / "bert.onnx"
    code, stdout, err = run_inline(capfd, "export", bert_dir, "-o", out, "--validate")
    assert code == 0, err
    assert "BertModel exported with" in stdout and "MISMATCH" not in stdout
    assert "generating example inputs from the model's config" in err
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert {i.name for i in session.get_inputs()} <= {"input_ids", "attention_mask"}


@pytest.mark.parametrize("dynamic", [["batch,seq"], ["input_ids=0:batch,1:seq;attention_mask=0:batch,1:seq"],
                                     ["input_ids=0:batch,1:seq", "attention_mask=0:batch,1:seq"]])
def test_export_dynamic(bert_dir, tmp_path, capfd, dynamic):
    from transformers import BertModel

    out = tmp_path / "bert.onnx"
    flags = [x for spec in dynamic for x in ("--dynamic", spec)]
    code, stdout, err = run_inline(capfd, "export", bert_dir, "-o", out, *flags, "-q")
    assert code == 0, err
    assert "  inputs   input_ids int64 [batch, seq], attention_mask int64 [batch, seq]\n" in stdout
    model = onnx.load(out)
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    assert dims == {"input_ids": ["batch", "seq"], "attention_mask": ["batch", "seq"]}
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    bert = BertModel.from_pretrained(bert_dir).eval()
    for batch, seq in [(1, 3), (3, 9), (5, 20)]:
        ids = torch.randint(0, 99, (batch, seq))
        mask = torch.ones(batch, seq, dtype=torch.long)
        got = session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
        with torch.no_grad():
            want = bert(input_ids=ids, attention_mask=mask).last_hidden_state.numpy()
        assert got.shape == want.shape and abs(got - want).max() < 1e-4


@pytest.mark.parametrize("spec, fragment", [
    ("input_ids=batch", "'batch' is not AXIS:DIM"),
    ("time", "dynamic short form 'time'"),
    ("token_ids=0:batch", "dynamic_shapes names 'token_ids', which the model is not given"),
    ("input_ids=3:x", "dynamic axis 3 (x) of 'input_ids' is out of range"),
])
def test_export_dynamic_bad_spec(bert_dir, tmp_path, capfd, spec, fragment):
    target = previous_export(tmp_path)
    code, _, err = run_inline(capfd, "export", bert_dir, "-o", target, "--dynamic", spec, "-q")
    assert code == 2
    assert_one_error_line(err, fragment)
    assert_untouched(target)


def test_export_structure_only(tmp_path, capfd):
    out = tmp_path / "mlp.onnx"
    code, stdout, err = run_inline(capfd, "export", "cli_models:mlp", "-o", out, "--structure-only", "-q")
    assert code == 0, err
    assert err == ""
    assert "structure only (no weights)" in stdout
    assert not onnx.load(str(out)).graph.initializer


def test_export_structure_only_from_hf_config(bert_dir, tmp_path, capfd):
    out = tmp_path / "bert.onnx"
    code, stdout, err = run_inline(capfd, "export", bert_dir / "config.json", "-o", out, "--structure-only", "-q")
    assert code == 0, err
    assert "BertModel exported with dynamo" in stdout and "structure only" in stdout
    assert not onnx.load(str(out)).graph.initializer


def test_meta_model_builds_a_70b_shape_without_weights():
    from transformers import LlamaConfig

    from hierx_nb.hf import meta_model

    config = LlamaConfig(hidden_size=8192, intermediate_size=28672, num_hidden_layers=80, num_attention_heads=64,
                         num_key_value_heads=8, vocab_size=128256, architectures=["LlamaForCausalLM"])
    started = time.perf_counter()
    model = meta_model(config.to_dict())
    assert time.perf_counter() - started < 30  # about a second; allocating 70e9 floats would take minutes
    assert type(model).__name__ == "LlamaForCausalLM" and not model.training
    assert sum(p.numel() for p in model.parameters()) > 69e9
    assert {p.device.type for p in model.parameters()} == {"meta"}


def test_demo(tmp_path, capfd):
    code, stdout, err = run_inline(capfd, "demo", "-o", tmp_path / "demo", "-q")
    assert code == 0, err
    assert (tmp_path / "demo" / "demo_bert.onnx").is_file()
    assert (tmp_path / "demo" / "demo_bert.hierx.json").is_file()
    assert "BertModel exported with" in stdout and "ONNX Runtime vs PyTorch" in stdout
    assert "\nBertModel " in stdout and "BertEmbeddings" in stdout and "MISMATCH" not in stdout  # the tree's root row


# -- failures: one line, the right exit code, existing files untouched ------------------------------

@pytest.mark.parametrize("model, extra, code, fragments", [
    ("no_such_module_xyz:build", [], 2, ["no module named 'no_such_module_xyz'"]),
    ("cli_models:no_such_factory", [], 2, ["has no attribute 'no_such_factory'", "mlp"]),
    ("cli_models:broken_factory", [], 2, ["calling 'cli_models:broken_factory' failed", "weights file missing"]),
    ("cli_models:mlp_without_inputs", [], 2, ["no inputs given", "--inputs"]),
    ("cli_models:mlp", ["--inputs", "1x3y"], 2, ["bad --inputs item '1x3y'", "[NAME=]SHAPE"]),
    ("cli_models:mlp", ["--inputs", "2x5"], 2, ["MLP does not run on the given inputs", "2x5"]),
    ("cli_models:mlp", ["--structure-only", "--validate"], 2, ["--validate needs weights"]),
    ("cli_models:mlp", ["--strategy", "magic"], 2, ["invalid choice: 'magic'"]),
    ("no/such/file.py:build", [], 2, ["no such Python file"]),
    ("neither_a_path_nor_a_ref", [], 2, ["module:factory"]),
])
def test_export_bad_input(tmp_path, capfd, model, extra, code, fragments):
    target = previous_export(tmp_path)
    got, stdout, err = run_inline(capfd, "export", model, "-o", target, "-q", *extra)
    assert got == code
    assert stdout == ""
    assert_one_error_line(err, *fragments)
    assert_untouched(target)


def test_export_into_missing_folder(tmp_path, capfd):
    code, _, err = run_inline(capfd, "export", "cli_models:mlp", "-o", tmp_path / "missing" / "out.onnx", "-q")
    assert code == 2
    assert_one_error_line(err, "does not exist")
    assert not (tmp_path / "missing").exists()


def test_export_into_unwritable_folder(tmp_path, capfd):
    locked = tmp_path / "locked"
    target = previous_export(locked)
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            # root writes through permission bits: a path under a regular file fails for everyone.
            not_a_folder = tmp_path / "file.txt"
            not_a_folder.write_text("a file, not a folder")
            code, _, err = run_inline(capfd, "export", "cli_models:mlp", "-o", not_a_folder / "out.onnx", "-q")
            assert not_a_folder.read_text() == "a file, not a folder"
            expected = "is a file, not a folder"
        else:
            code, _, err = run_inline(capfd, "export", "cli_models:mlp", "-o", target, "-q")
            expected = "is not writable"
        assert code == 2
        assert_one_error_line(err, expected)
        assert_untouched(target)
    finally:
        locked.chmod(0o700)


def test_export_unexportable_model(tmp_path):
    target = previous_export(tmp_path)
    proc = run_subprocess("export", "cli_models:unexportable", "-o", target, "-q")
    assert proc.returncode == 1
    assert proc.stdout == ""  # nothing leaks from the exporters, not even their C++ logging
    assert_one_error_line(proc.stderr, "no strategy could export Unexportable", "dynamo: torch.export could not capture",
                          "htp:")
    assert_untouched(target)


def test_export_unexportable_model_with_progress(tmp_path):
    """Without --quiet the progress lines come first, then the single error line; still no traceback."""
    proc = run_subprocess("export", "cli_models:unexportable", "-o", tmp_path / "out.onnx")
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert lines[-1].startswith("hierx: error: no strategy could export Unexportable")
    assert all(line.startswith("hierx:") for line in lines) and "Traceback" not in proc.stderr


def test_analyze_corrupt_file(tmp_path, capfd):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(os.urandom(4096))
    code, stdout, err = run_inline(capfd, "analyze", corrupt)
    assert code == 2 and stdout == ""
    assert_one_error_line(err, "not a readable ONNX file")


def test_analyze_missing_file(tmp_path, capfd):
    code, stdout, err = run_inline(capfd, "analyze", tmp_path / "nope.onnx")
    assert code == 2 and stdout == ""
    assert_one_error_line(err, "no such file")


@pytest.mark.parametrize("argv, fragment", [
    ([], "choose a command"),
    (["export"], "required: MODEL, -o/--output"),
    (["analyze", "x.onnx", "--depth", "-1"], "expected 0 or more"),
    (["export", "cli_models:mlp", "-o", "x.onnx", "--bogus"], "unrecognized arguments: --bogus"),
])
def test_usage_errors(capfd, argv, fragment):
    code, stdout, err = run_inline(capfd, *argv)
    assert code == 2 and stdout == ""
    assert_one_error_line(err, fragment)


def test_hf_folder_without_weights(bert_dir, tmp_path, capfd):
    config_only = tmp_path / "config-only"
    config_only.mkdir()
    (config_only / "config.json").write_bytes((bert_dir / "config.json").read_bytes())
    code, _, err = run_inline(capfd, "export", config_only, "-o", tmp_path / "out.onnx", "-q")
    assert code == 2
    assert_one_error_line(err, "no weights", "--structure-only")
    code, _, err = run_inline(capfd, "export", config_only / "config.json", "-o", tmp_path / "out.onnx", "-q")
    assert code == 2
    assert_one_error_line(err, "is a config file", "--structure-only")


def test_unexpected_error_is_one_line_with_debug_hint(tmp_path, capfd, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("an engine bug")

    monkeypatch.setattr("hierx_nb.exporter.export", broken)
    monkeypatch.delenv("HIERX_DEBUG", raising=False)
    code, _, err = run_inline(capfd, "export", "cli_models:mlp", "-o", tmp_path / "out.onnx", "-q")
    assert code == 1
    assert_one_error_line(err, "unexpected ValueError: an engine bug", "HIERX_DEBUG=1")
    monkeypatch.setenv("HIERX_DEBUG", "1")
    code, _, err = run_inline(capfd, "export", "cli_models:mlp", "-o", tmp_path / "out.onnx", "-q")
    assert code == 1
    assert "Traceback" in err and err.splitlines()[-1].startswith("hierx: error: unexpected ValueError")


def test_interrupt(tmp_path, capfd, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("hierx_nb.exporter.export", interrupted)
    code, _, err = run_inline(capfd, "export", "cli_models:mlp", "-o", tmp_path / "out.onnx", "-q")
    assert code == 130
    assert err == "hierx: interrupted\n"


# -- MODEL references and --inputs SPEC -------------------------------------------------------------

def test_resolve_file_path_factory():
    model, args, kwargs, description = resolve_model(f"{TESTS / 'cli_models.py'}:mlp")
    assert type(model).__name__ == "MLP" and args[0].shape == (2, 16) and kwargs is None
    assert "MLP" in description


def test_resolve_class_and_bare_model():
    model, args, kwargs, _ = resolve_model("cli_models:Unexportable")
    assert type(model).__name__ == "Unexportable" and args is None and kwargs is None
    with pytest.raises(InputError, match="name the factory"):
        resolve_model(str(TESTS / "cli_models.py"))
    with pytest.raises(InputError, match="returned a str"):
        resolve_model("os:getcwd")


def test_parse_inputs():
    args, kwargs = parse_inputs("1x3x8x8, 2x5:int64[3,7), 4:bool")
    assert [a.shape for a in args] == [(1, 3, 8, 8), (2, 5), (4,)]
    assert [a.dtype for a in args] == [torch.float32, torch.int64, torch.bool]
    assert int(args[1].min()) >= 3 and int(args[1].max()) < 7
    assert kwargs == {}
    args, kwargs = parse_inputs("input_ids=1x16:int64,attention_mask=1x16:int64[1,2)")
    assert args == () and list(kwargs) == ["input_ids", "attention_mask"]
    assert int(kwargs["input_ids"].max()) < 100 and bool((kwargs["attention_mask"] == 1).all())
    assert torch.equal(parse_inputs("2x3")[0][0], parse_inputs("2x3")[0][0])  # seeded: reproducible


@pytest.mark.parametrize("spec, fragment", [
    ("", "empty --inputs"),
    ("1x0", "at least 1"),
    ("1x3:complex", "unknown dtype 'complex'"),
    ("1x3:float32[0,5)", "integer dtypes only"),
    ("1x3:int64[5,5)", "is empty"),
    ("1x3:uint8[0,300)", "does not fit uint8"),
    ("a=1x3,2x3", "positional inputs must come before"),
    ("a=1x3,a=1x3", "'a' is given twice"),
    ("1x3,", "bad --inputs item ''"),
])
def test_parse_inputs_errors(spec, fragment):
    with pytest.raises(InputError) as info:
        parse_inputs(spec)
    assert fragment in str(info.value)


def test_profile_prints_the_tree_with_times(bert_dir, tmp_path, capfd):
    out = tmp_path / "bert.onnx"
    assert run_inline(capfd, "export", bert_dir, "-o", out, "-q")[0] == 0
    code, stdout, err = run_inline(capfd, "profile", out, "--runs", "3", "--warmup", "1", "--depth", "3")
    assert code == 0, err
    assert "ms of kernel time per run (median of 3 runs, optimization all)" in stdout
    assert "self ms" in stdout and "total ms" in stdout and "BertLayer" in stdout
    code, stdout, err = run_inline(capfd, "profile", out, "--runs", "2", "--format", "json", "--optimization", "basic")
    doc = json.loads(stdout)
    assert doc["kernel_ms"] > 0 and doc["optimization"] == "basic" and doc["by_op_type"]
    root = next(m for m in doc["modules"] if m["module"] == "")
    assert root["total_ms"] == pytest.approx(doc["kernel_ms"] - doc["unattributed_ms"], rel=1e-6)
    code, _, err = run_inline(capfd, "profile", out, "--inputs", "1x3")
    assert code == 2
    assert_one_error_line(err, "input 'input_ids' is (1, 3) float32, but the graph expects (1, 16) int64")
    code, _, err = run_inline(capfd, "profile", out, "--inputs", "input_idz=1x16:int64")
    assert code == 2
    assert_one_error_line(err, "the graph has no input 'input_idz'", "input_ids (1, 16) int64")
    code, _, err = run_inline(capfd, "profile", tmp_path / "missing.onnx")
    assert code == 2
    assert_one_error_line(err, "no such file")


def test_export_prints_warnings(tmp_path, capfd, monkeypatch):
    from hierx_nb import exporter

    monkeypatch.setattr(exporter, "CHECK_LIMIT_BYTES", 10)
    out = tmp_path / "mlp.onnx"
    code, stdout, err = run_inline(capfd, "export", "cli_models:mlp", "-o", out, "-q")
    assert code == 0, err
    assert "  warning  not checked against PyTorch" in stdout
    code, stdout, _ = run_inline(capfd, "analyze", out)
    assert "  warning  not checked against PyTorch" in stdout  # kept in the sidecar


def test_extract_writes_a_runnable_piece(bert_dir, tmp_path, capfd):
    out = tmp_path / "bert.onnx"
    assert run_inline(capfd, "export", bert_dir, "-o", out, "-q")[0] == 0
    piece = tmp_path / "layer1.onnx"
    code, stdout, err = run_inline(capfd, "extract", out, "encoder.layer.1", "-o", piece)
    assert code == 0, err
    assert "encoder.layer.1: " in stdout and str(piece) in stdout and "  inputs   " in stdout
    session = ort.InferenceSession(str(piece), providers=["CPUExecutionProvider"])
    assert len(session.get_inputs()) >= 1
    code, _, err = run_inline(capfd, "extract", out, "encoder.layer.9", "-o", tmp_path / "x.onnx")
    assert code == 2
    assert_one_error_line(err, "no module named 'encoder.layer.9'")
    assert not (tmp_path / "x.onnx").exists()
