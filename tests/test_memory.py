"""auto's pre-check and failure memory: predictions, memory across processes, broken caches, switching it off."""
from __future__ import annotations

import json
import linecache
import os
from types import SimpleNamespace

import pytest
import torch
from test_cli import run_inline
from zoo import case

import hierx_nb
from hierx_nb import files
from hierx_nb import memory as failure_memory


@pytest.fixture
def cache(fresh_cache):
    """A fresh cache folder for one test; ``fresh_process()`` drops what this process remembers."""
    return fresh_cache


def fresh_process():
    """What a new process knows: only the file (the process's memory is read anew from disk)."""
    failure_memory._MEMORY = None


def define(source: str, cell: str) -> type:
    """A class ``Net`` defined as a notebook cell defines it (its source kept by linecache)."""
    filename = f"<cell {cell}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    ns = {"torch": torch, "__name__": "__main__"}
    exec(compile(source, filename, "exec"), ns)
    return ns["Net"]


# torch.export fails on the value test; the shape test before it stops the FX trace, so the
# pre-check cannot predict it: only memory can spare the failed attempt.
SHAPE_THEN_VALUE = """
class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 4)

    def forward(self, x):
        if x.shape[0] > 0 and x.sum() > 0:
            return self.fc(x)
        return -self.fc(x)
"""
X = torch.ones(2, 4)


def attempts(result) -> list[tuple[str, str]]:
    return [(a.name, "ok" if a.ok else "skipped" if a.skipped else "failed") for a in result.attempts]


def test_the_precheck_predicts_branching_on_values(cache):
    c = case("data_dependent_if")
    result = hierx_nb.export(c.model, c.args, output=None)
    assert attempts(result) == [("dynamo", "skipped"), ("htp", "ok")]
    reason = result.attempts[0].reason
    assert reason.startswith("predicted by the pre-check: the model branches on tensor values (zoo.py:")
    line = int(reason.split("zoo.py:")[1].split(")")[0])
    assert "if x.sum() > 0" in linecache.getline(case.__code__.co_filename, line)
    # What the prediction cost, against a tiny warm export (benchmarks/auto_overhead.py measures the 5% target).
    assert result.attempts[0].seconds < 0.5 * result.seconds
    assert not (cache / failure_memory.FILE_NAME).exists()  # a prediction is not a failure seen


def test_branching_on_shapes_is_not_a_prediction(cache):
    class ShapeBranch(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 4)

        def forward(self, x):
            return self.fc(x) if x.shape[0] > 1 else self.fc(-x)

    result = hierx_nb.export(ShapeBranch().eval(), (X,), output=None)
    assert attempts(result) == [("dynamo", "ok")]


def test_failures_are_remembered_across_processes(cache):
    first = hierx_nb.export(define(SHAPE_THEN_VALUE, "1")().eval(), (X,), output=None)
    assert attempts(first) == [("dynamo", "failed"), ("htp", "ok")]
    stored = json.loads((cache / failure_memory.FILE_NAME).read_text())
    (kind,) = stored["kinds"].values()
    assert kind["model"] == "__main__.Net" and set(kind["failed"]) == {"dynamo"}
    assert kind["torch"] == torch.__version__

    fresh_process()
    again = hierx_nb.export(define(SHAPE_THEN_VALUE, "2")().eval(), (X,), output=None)  # the cell run again
    assert attempts(again) == [("dynamo", "skipped"), ("htp", "ok")]
    assert again.attempts[0].reason.startswith("it failed for this kind of model (__main__.Net) before: ")
    assert again.warnings == []

    fixed = define(SHAPE_THEN_VALUE.replace("x.shape[0] > 0 and x.sum() > 0", "x.shape[0] > 0"), "3")
    assert attempts(hierx_nb.export(fixed().eval(), (X,), output=None)) == [("dynamo", "ok")]  # new source: afresh
    explicit = hierx_nb.export(define(SHAPE_THEN_VALUE, "4")().eval(), (X,), output=None, strategy="htp")
    assert attempts(explicit) == [("htp", "ok")]  # a chosen strategy is never skipped


class _RefusesTracing(torch.nn.Module):  # only dynamo exports it
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 4)

    def forward(self, x):
        if torch.jit.is_tracing():
            raise RuntimeError("this model refuses TorchScript tracing")
        return self.fc(x)


def test_a_stale_memory_never_fails_an_export(cache):
    c = SimpleNamespace(model=_RefusesTracing().eval(), args=(X,))
    key, label = failure_memory.kind_of(c.model, c.args)
    failure_memory.memory().remember(key, label, {"dynamo": "a failure of an older version"}, [])
    fresh_process()
    result = hierx_nb.export(c.model, c.args, output=None)
    assert attempts(result) == [("dynamo", "skipped"), ("htp", "failed"), ("dynamo", "ok")]
    assert result.strategy == "dynamo"
    fresh_process()
    assert failure_memory.memory().failed(key, []) == {"htp": result.attempts[1].reason[:200]}  # dynamo forgiven
    assert attempts(hierx_nb.export(c.model, c.args, output=None)) == [("dynamo", "ok")]


def test_a_corrupt_cache_file_warns_and_the_export_goes_on(cache):
    cache.mkdir()
    (cache / failure_memory.FILE_NAME).write_text("{not json")
    result = hierx_nb.export(define(SHAPE_THEN_VALUE, "5")().eval(), (X,), output=None)
    assert result.strategy == "htp"
    assert len(result.warnings) == 1 and "is unreadable (JSONDecodeError" in result.warnings[0]
    stored = json.loads((cache / failure_memory.FILE_NAME).read_text())  # replaced by a good one
    assert [set(k["failed"]) for k in stored["kinds"].values()] == [{"dynamo"}]


def test_a_read_only_cache_folder_warns_and_the_export_goes_on(cache, monkeypatch):
    cache.mkdir()
    cache.chmod(0o555)
    if os.geteuid() == 0:  # root ignores permission bits: the folder refuses writes as it would for a user
        real = files.tempfile.mkdtemp

        def refuse(suffix=None, prefix=None, dir=None):
            if dir is not None and os.path.samefile(dir, cache):
                raise PermissionError(13, "Permission denied", str(cache))
            return real(suffix, prefix, dir)

        monkeypatch.setattr(files.tempfile, "mkdtemp", refuse)
    try:
        result = hierx_nb.export(define(SHAPE_THEN_VALUE, "6")().eval(), (X,), output=None)
        assert result.strategy == "htp" and len(result.warnings) == 1
        assert result.warnings[0].startswith(f"cannot write the failure cache in {str(cache)!r} (PermissionError")
        again = hierx_nb.export(define(SHAPE_THEN_VALUE, "7")().eval(), (X,), output=None)
        assert attempts(again)[0] == ("dynamo", "skipped")  # remembered in the process all the same
        assert list(cache.iterdir()) == []
    finally:
        cache.chmod(0o755)


def test_the_cache_can_be_switched_off(cache, monkeypatch):
    monkeypatch.setenv("HIERX_NO_CACHE", "1")
    first = hierx_nb.export(define(SHAPE_THEN_VALUE, "8")().eval(), (X,), output=None)
    assert attempts(first) == [("dynamo", "failed"), ("htp", "ok")] and first.warnings == []
    assert not cache.exists()
    fresh_process()
    again = hierx_nb.export(define(SHAPE_THEN_VALUE, "9")().eval(), (X,), output=None)
    assert attempts(again) == [("dynamo", "failed"), ("htp", "ok")]


def test_a_failure_that_was_the_inputs_fault_is_not_remembered(cache):
    with pytest.raises(hierx_nb.InputError, match="does not run on the given inputs"):
        hierx_nb.export(define(SHAPE_THEN_VALUE, "10")().eval(), (torch.ones(2, 5),), output=None)
    assert not (cache / failure_memory.FILE_NAME).exists()


def test_hierx_cache_clear(cache, capfd):
    hierx_nb.export(define(SHAPE_THEN_VALUE, "11")().eval(), (X,), output=None)
    assert (cache / failure_memory.FILE_NAME).exists()
    code, out, _ = run_inline(capfd, "cache", "clear")
    assert code == 0 and out.startswith("forgot the failures of 1 kind of model (")
    assert not (cache / failure_memory.FILE_NAME).exists()
    fresh_process()
    assert attempts(hierx_nb.export(define(SHAPE_THEN_VALUE, "12")().eval(), (X,), output=None))[0] == ("dynamo", "failed")
