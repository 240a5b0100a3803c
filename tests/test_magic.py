"""``%hierexport`` driven through a real IPython shell: results, options, one-line errors, interrupts."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from IPython.testing.globalipapp import start_ipython
from IPython.utils.capture import capture_output

import hierx_nb
from hierx_nb import ExportResult
from hierx_nb.notebook import magic
from hierx_nb.notebook.progress import Progress

SETUP = """
import torch
from torch import nn
from transformers import BertConfig, BertModel

torch.manual_seed(0)
bert = BertModel(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=37, vocab_size=99)).eval()
ids = torch.randint(0, 99, (1, 8))
mask = torch.ones(1, 8, dtype=torch.long)
mlp = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 2))
x = torch.randn(4, 16)


class Svd(nn.Module):  # torch.linalg.svd has no ONNX lowering: no strategy can export this
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        return torch.linalg.svd(self.lin(x)).S


svd = Svd()
"""


@pytest.fixture(scope="module")
def shell():
    ip = start_ipython()
    assert run(ip, "%load_ext hierx_nb")[0].success
    res, out = run(ip, SETUP)
    assert res.success, out
    yield ip
    run(ip, "%unload_ext hierx_nb")


def run(shell, cell: str):
    """``(ExecutionResult, everything printed)`` for ``cell``, tracebacks and displays included."""
    with capture_output() as cap:
        res = shell.run_cell(cell)
    shown = "".join(o.data.get("text/plain", "") for o in cap.outputs)
    return res, cap.stdout + cap.stderr + shown


def assert_usable(shell):
    res = shell.run_cell("1 + 1")
    assert res.success and res.result == 2


def files(folder):
    return sorted(p.name for p in folder.iterdir())


# -- success --------------------------------------------------------------------------------------

def test_no_check_skips_the_check(shell):
    res, out = run(shell, "%hierexport mlp x --no-check -r unchecked")
    assert res.success, out
    assert shell.user_ns["unchecked"].checked is False
    res, out = run(shell, "%hierexport mlp x -r checked")
    assert shell.user_ns["checked"].checked is True


def test_exports_to_file_with_spaces_and_commas_in_args(shell, tmp_path):
    shell.user_ns["OUT"] = tmp_path
    res, out = run(shell, "%hierexport bert (ids, mask) -o {OUT}/bert.onnx")
    assert res.success, out
    result = res.result
    assert isinstance(result, ExportResult) and result.model_class == "BertModel"
    assert result.onnx_path == tmp_path / "bert.onnx"
    assert files(tmp_path) == ["bert.hierx.json", "bert.onnx"]
    assert "hierexport:" in out and "dynamo" in out  # progress: strategy and step


def test_submodule_and_call_expressions_bind_with_r(shell):
    res, out = run(shell, "%hierexport bert.encoder torch.randn(1, 8, 32) -r enc")
    assert res.success, out
    assert shell.user_ns["enc"] is res.result
    assert res.result.model_class == "BertEncoder" and res.result.onnx_path is None  # no -o: in memory


@pytest.mark.parametrize("option", ["-k {'input_ids': ids, 'attention_mask': mask}",
                                    '-k "dict(input_ids=ids)"', "--kwargs=dict(input_ids=ids)"])
def test_kwargs(shell, option):
    res, out = run(shell, f"%hierexport bert {option}")
    assert res.success, out
    assert res.result.model_class == "BertModel"


def test_hf_model_needs_no_args(shell):
    res, out = run(shell, "%hierexport bert -s htp")
    assert res.success, out
    assert res.result.strategy == "htp"
    assert "generating example inputs" in out


def test_dynamic_short_form_names_the_dimensions(shell):
    res, out = run(shell, "%hierexport bert --dynamic batch,seq -r dyn")
    assert res.success, out
    graph = res.result.onnx_model.graph
    assert {v.name: [str(d) for d in v.shape] for v in graph.inputs} == {
        "input_ids": ["batch", "seq"], "attention_mask": ["batch", "seq"]}
    res, out = run(shell, "dyn.validate(kwargs=dict(input_ids=torch.randint(0, 99, (3, 13)), "
                          "attention_mask=torch.ones(3, 13, dtype=torch.long)))['ok'].all()")
    assert res.success and res.result, out


def test_no_widget_returns_the_result_with_a_static_display(shell):
    res, out = run(shell, "%hierexport mlp x --no-widget -r plain")
    assert res.success, out
    result = res.result
    assert isinstance(result, ExportResult) and shell.user_ns["plain"] is result
    bundle = result._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html"}
    assert "hierx-summary" in bundle["text/html"]


def test_trailing_semicolon_silences_the_output(shell):
    res, out = run(shell, "%hierexport mlp x -r quiet_result;")
    assert res.success, out
    assert res.result is None and isinstance(shell.user_ns["quiet_result"], ExportResult)


def test_validate_shows_the_report(shell):
    res, out = run(shell, "%hierexport mlp x --validate --no-widget")
    assert res.success, out
    assert "max_abs_diff" in out and "True" in out


def test_validation_mismatch_fails_the_cell_but_keeps_the_result(shell, monkeypatch):
    report = pd.DataFrame([("y", (4, 2), 0.5, 0.9, False)],
                          columns=["output", "shape", "max_abs_diff", "max_rel_diff", "ok"])
    monkeypatch.setattr(ExportResult, "validate", lambda self, **kw: report)
    res, out = run(shell, "%hierexport mlp x --validate -r checked")
    assert type(res.error_in_exec) is hierx_nb.Mismatch and "Traceback" not in out
    assert "max_abs_diff" in out  # the report is shown before the error line
    assert ("hierexport: error: validation failed: ONNX Runtime output 'y' differs from PyTorch's "
            "(max abs diff 0.5); the result is in checked") in out
    assert isinstance(shell.user_ns["checked"], ExportResult)


def test_structure_only_with_torch_nn_filter(shell, tmp_path):
    shell.user_ns["OUT"] = tmp_path
    res, out = run(shell, "%hierexport bert --structure-only --torch-nn-filter -o {OUT}/s.onnx --no-widget")
    assert res.success, out
    assert res.result.structure_only and files(tmp_path) == ["s.hierx.json", "s.onnx"]
    assert next(shell.user_ns["bert"].parameters()).device.type == "cpu"  # the user's model is untouched


def test_inside_a_function_sees_its_locals(shell):
    res, out = run(shell, "def export_it():\n    m, inp = mlp, x\n    out = %hierexport m inp --no-widget\n"
                          "    return out\nexport_it()")
    assert res.success, out
    assert res.result.model_class == "Sequential"


def test_usage_has_examples(shell):
    doc = shell.find_line_magic("hierexport").__doc__
    assert "%hierexport MODEL [ARGS] [-o OUTPUT]" in doc
    assert "%hierexport model (ids, mask) -o bert.onnx -r result" in doc
    assert "--no-widget" in doc and "--structure-only" in doc
    res, out = run(shell, "%hierexport?")
    assert res.success and "Examples" in out


# -- failures: one line, the kernel usable, nothing written ------------------------------------------

# The magic's own usage errors are HierexportError; the library's mistakes keep their class (README, "Errors").
MAGIC_USAGE = magic.HierexportError


@pytest.mark.parametrize("line, message, error", [
    ("mlpp x", "MODEL 'mlpp' failed: NameError: name 'mlpp' is not defined", MAGIC_USAGE),
    ("mlp (x,", "ARGS '(x,' is not a Python expression: '(' was never closed", MAGIC_USAGE),
    ("mlp x -k {'input': ", "-k \"{'input':\" is not a Python expression", MAGIC_USAGE),
    ("mlp x -o {OUT}/missing/out.onnx", "does not exist", hierx_nb.OutputFolderMissing),
    ("svd torch.randn(4, 4)", "no strategy could export Svd | dynamo: ", hierx_nb.ExportError),
    ("mlp torch.randn(4, 5)", "Sequential does not run on the given inputs: RuntimeError: mat1 and mat2",
     hierx_nb.InputsRejected),
    ("mlp", "Sequential needs inputs; give ARGS", hierx_nb.MissingInputs),
    ("mlp x -s magic", "argument -s/--strategy: invalid choice: 'magic'", MAGIC_USAGE),
    ("mlp x --validate --structure-only", "--validate needs weights", hierx_nb.StructureOnly),
    ("mlp x -r 2fast", "-r '2fast' is not a Python variable name", MAGIC_USAGE),
    ("mlp x --out o.onnx", "unknown option --out", MAGIC_USAGE),
    ("mlp -x", "unknown option -x (see %hierexport?); put an expression that starts with '-' in parentheses", MAGIC_USAGE),
    ("", "give the model to export", MAGIC_USAGE),
    ("mlp x --dynamic input=0", "--dynamic 'input=0': '0' is not AXIS:DIM", hierx_nb.BadSpec),
    ("mlp x --dynamic input=0:batch,2:seq", "dynamic axis 2 (seq) of 'input' is out of range", hierx_nb.InputError),
    ("mlp x --dynamic x=0:batch", "dynamic_shapes names 'x', which the model is not given; its inputs are input",
     hierx_nb.InputError),
])
def test_bad_input_is_one_line_and_leaves_files_alone(shell, tmp_path, line, message, error):
    shell.user_ns["OUT"] = tmp_path
    existing = tmp_path / "out.onnx"
    existing.write_bytes(b"previous export")
    if "-o" not in line:
        line = "-o {OUT}/out.onnx " + line
    res, out = run(shell, f"%hierexport {line}")
    assert not res.success
    assert type(res.error_in_exec) is error
    lines = [ln for ln in out.splitlines() if ln.startswith("hierexport: error:")]
    assert len(lines) == 1 and message in lines[0], out
    assert "Traceback" not in out
    assert files(tmp_path) == ["out.onnx"] and existing.read_bytes() == b"previous export"
    assert_usable(shell)


def test_interrupt_while_tracing_stops_cleanly(shell, tmp_path):
    shell.user_ns["OUT"] = tmp_path
    # The first call is export's own eager run (which modules execute); the second is dynamo's trace.
    run(shell, "_calls = []\ndef _stop(*a):\n    _calls.append(1)\n    if len(_calls) > 1:\n        raise KeyboardInterrupt\n"
               "_hook = mlp[2].register_forward_hook(_stop)")
    try:
        res, out = run(shell, "%hierexport mlp x -o {OUT}/out.onnx")
    finally:
        run(shell, "_hook.remove()")
    assert isinstance(res.error_in_exec, KeyboardInterrupt)
    assert "hierexport: interrupted during 'dynamo: " in out and "Traceback" not in out
    assert files(tmp_path) == []
    assert_usable(shell)


def test_interrupt_while_writing_leaves_no_partial_files(shell, tmp_path, monkeypatch):
    from hierx_nb import sidecar

    existing = tmp_path / "out.onnx"
    existing.write_bytes(b"previous export")
    staged = []

    def interrupted(doc, path):
        staged.extend(p.name for p in path.parent.iterdir())  # the new .onnx is staged by now
        raise KeyboardInterrupt

    monkeypatch.setattr(sidecar, "write", interrupted)
    shell.user_ns["OUT"] = tmp_path
    res, out = run(shell, "%hierexport mlp x -o {OUT}/out.onnx")
    assert staged == ["out.onnx"]
    assert isinstance(res.error_in_exec, KeyboardInterrupt)
    assert "hierexport: interrupted during 'writing out.onnx and its sidecar'" in out
    assert files(tmp_path) == ["out.onnx"] and existing.read_bytes() == b"previous export"
    assert_usable(shell)


def test_unload_removes_the_magic(shell):
    run(shell, "%unload_ext hierx_nb")
    try:
        res, out = run(shell, "%hierexport mlp x")
        assert not res.success and "Line magic function `%hierexport` not found" in out
        assert shell.find_line_magic("hierexport") is None
    finally:
        assert run(shell, "%load_ext hierx_nb")[0].success
    assert shell.find_line_magic("hierexport") is not None


# -- line parsing and progress, without exporting -------------------------------------------------

@pytest.mark.parametrize("line, model, args, extra", [
    ("model (ids, mask) -o out.onnx", "model", "(ids, mask)", {"output": "out.onnx"}),
    ("model.encoder torch.randn(1, 8, 32)", "model.encoder", "torch.randn(1, 8, 32)", {}),
    ("-o 'my dir/out.onnx' model ids, mask --validate", "model", "ids, mask", {"output": "my dir/out.onnx",
                                                                               "validate": True}),
    ("m -k {'input_ids': ids} -s htp", "m", None, {"kwargs": "{'input_ids': ids}", "strategy": "htp"}),
    ('m -k "dict(input_ids=ids)"  # the HF way', "m", None, {"kwargs": "dict(input_ids=ids)"}),
    ("a if c else b x * 2 --output=o#1.onnx", "a if c else b", "x * 2", {"output": "o#1.onnx"}),
    ("models['bert'] x;", "models['bert']", "x", {}),
    ("m (-x) -oout.onnx", "m", "(-x)", {"output": "out.onnx"}),
    # Python's own tokenizer: triple-quoted strings with quotes and spaces inside stay one word.
    ('m """a "b c" d""" -o o.onnx', "m", '"""a "b c" d"""', {"output": "o.onnx"}),
    ("m x -k '''dict(t = \"it's\")'''", "m", "x", {"kwargs": "dict(t = \"it's\")"}),
    ("m -o $OUT/b.onnx x", "m", "x", {"output": "$OUT/b.onnx"}),
])
def test_parse(line, model, args, extra):
    opts = magic._parse(line, magic.HierxMagics.hierexport.parser)
    assert (opts.model, opts.args) == (model, args)
    for key, value in extra.items():
        assert getattr(opts, key) == value


def test_progress_updates_one_display_in_a_kernel():
    with capture_output() as cap:
        progress = Progress(SimpleNamespace(kernel=object()))
        progress("dynamo: capturing")
        progress("tagging ONNX nodes")
        progress.close()
    texts = [o.data["text/plain"] for o in cap.outputs]
    assert "dynamo: capturing" in texts[0] and "tagging ONNX nodes" in texts[1] and texts[2] == ""
    assert [o.update for o in cap.outputs] == [False, True, True]
    assert cap.stderr == "" and progress.step == "tagging ONNX nodes"


def test_progress_prints_to_stderr_in_a_terminal(capsys):
    progress = Progress(SimpleNamespace())
    progress("htp: tracing")
    assert "hierexport:" in capsys.readouterr().err and progress.step == "htp: tracing"


def test_profile_and_validate_fill_the_explorer_metrics(shell):
    res, out = run(shell, "%hierexport bert (ids, mask) --validate --profile -r answered --no-widget")
    assert res.success, out
    result = shell.user_ns["answered"]
    assert result.latency is not None and result.latency.attrs["kernel_ms"] > 0
    assert result.divergence is not None and result.divergence.attrs["first_divergent"] is None
    assert result.divergence["ok"].dropna().all() and result.divergence["outputs"].gt(0).any()
    metrics = result.widget.metrics  # the explorer's payload contract is checked when it is set
    assert metrics["latency"]["kernel_ms"] > 0 and metrics["latency"]["by_op_type"]
    assert metrics["divergence"]["first_divergent"] is None
    res, out = run(shell, "%hierexport bert --profile --structure-only")
    assert type(res.error_in_exec) is hierx_nb.StructureOnly and "--profile needs weights" in out


def test_warnings_are_printed(shell, monkeypatch):
    from hierx_nb import exporter

    monkeypatch.setattr(exporter, "CHECK_LIMIT_BYTES", 10)
    res, out = run(shell, "%hierexport mlp x --no-widget")
    assert res.success, out
    assert "hierexport: warning: not checked against PyTorch" in out


def test_usage_comes_from_the_options_and_the_readme_shows_it():
    usage = magic.USAGE % {"prog": "%hierexport"}
    for flags, kw in magic._OPTIONS:
        assert flags[0] in usage and (kw.get("metavar") or flags[0]) in usage
    assert f"`{usage}`" in (Path(__file__).parent.parent / "README.md").read_text()


def test_compare_fills_the_explorer_compare_metric(shell, tmp_path):
    """``--compare B.onnx``: after the export, ``result.compare(B)`` against an int8 copy of it
    (ORT quantize_dynamic, untagged nodes retagged from a), and the explorer gets the compare metric."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    a, b = tmp_path / "a.onnx", tmp_path / "a_int8.onnx"
    res, out = run(shell, f"%hierexport mlp x -o {a} --no-widget")
    assert res.success, out
    quantize_dynamic(str(a), str(b), weight_type=QuantType.QInt8)
    shell.user_ns["int8_path"] = str(b)
    res, out = run(shell, f"%hierexport mlp x -o {a} --compare $int8_path -r compared")
    assert res.success, out
    result = shell.user_ns["compared"]
    table = result.comparison.set_index("module")
    assert {"0", "2"} <= set(table.index)
    assert "MatMulInteger" in table.loc["0", "op_changes"]
    assert table.loc["", "ms_a"] > 0 and table.loc["", "ms_b"] > 0
    assert table.loc["0", "own_sqnr_db"] < 100  # int8 weights: not bit-equal
    metrics = result.widget.metrics
    assert metrics["compare"]["sqnr_threshold_db"] == result.comparison.attrs["sqnr_threshold_db"]
    res, out = run(shell, f"%hierexport mlp x --compare {tmp_path / 'missing.onnx'}")
    assert not res.success and isinstance(res.error_in_exec, hierx_nb.ExportError)
    assert "missing.onnx" in out and "Traceback" not in out
    res, out = run(shell, f"%hierexport mlp x --structure-only --compare {b}")
    assert type(res.error_in_exec) is hierx_nb.StructureOnly and "--compare needs weights" in out
    assert_usable(shell)


PICK_HEADS = """
class PickHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x, heads):
        return self.fc(x)[:, : int(heads.item())]  # the tracer bakes heads in

pick = PickHeads().eval()
pick_args = (torch.randn(2, 8), torch.tensor(3))
"""


def test_allow_dropped_input(shell):
    assert run(shell, PICK_HEADS)[0].success
    res, out = run(shell, "%hierexport pick pick_args -s htp --no-widget")
    assert not res.success and "--allow-dropped-input heads" in out
    res, out = run(shell, "%hierexport pick pick_args -s htp --allow-dropped-input heads --no-widget -r picked")
    assert res.success, out
    assert "hierexport: warning: htp: the file has no input for heads" in out
    assert [v.name for v in shell.user_ns["picked"].onnx_model.graph.inputs] == ["x"]
