"""What the post-export check costs and what ``check=False`` skips (issue 19): without the check, an
export that torch.export captures never runs the model on its real weights (which modules run and
the outputs' names come from a run on a weightless meta copy), and the model is still left as found."""
from __future__ import annotations

import pytest
import torch
from test_trust import CountsEagerRuns, InPlaceKVCache, WritesEverything, assert_same_state, state_of

import hierx_nb


class Named(torch.nn.Module):
    """Dict outputs (named in the file after their keys) and a submodule that never runs."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 4)
        self.unused = torch.nn.Linear(4, 4)
        self.real_runs = 0

    def forward(self, x):
        if x.device.type != "meta" and type(x) is torch.Tensor:  # neither a meta copy's nor torch.export's fakes
            self.real_runs += 1
        h = self.fc(x)
        return {"hidden": h, "pooled": h.mean(1)}


def test_check_false_never_runs_the_model_on_its_weights_under_dynamo():
    model = Named().eval()
    result = hierx_nb.export(model, (torch.randn(2, 4),), output=None, check=False)
    assert result.strategy == "dynamo" and result.warnings == []
    assert model.real_runs == 0
    executed = result.modules.set_index("module")["executed"]
    assert executed["fc"] == True and executed["unused"] != True  # noqa: E712 (True or None)
    assert [o.name for o in result.onnx_model.graph.outputs] == ["hidden", "pooled"]
    assert result.checked is False  # the result says the outputs were not compared with PyTorch's
    checked = hierx_nb.export(model, (torch.randn(2, 4),), output=None)
    assert checked.checked is True
    assert model.real_runs == 1  # the check's PyTorch side: the one real run
    assert [o.name for o in checked.onnx_model.graph.outputs] == ["hidden", "pooled"]
    assert checked.modules["executed"].tolist() == result.modules["executed"].tolist()


def test_a_model_that_cannot_run_on_meta_runs_for_real():
    class Branches(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.up, self.down = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            return self.up(x) if x.sum() > 0 else self.down(x)  # a meta tensor has no value to branch on

    model = Branches().eval()
    result = hierx_nb.export(model, (torch.ones(2, 4),), output=None, check=False)
    assert result.strategy == "htp" and model.calls >= 1
    executed = result.modules.set_index("module")["executed"]
    assert executed["up"] == True and executed["down"] != True  # noqa: E712


@pytest.mark.parametrize("strategy", ["auto", "dynamo", "htp", "fx"])
def test_check_false_leaves_buffers_written_in_place_untouched(strategy):
    model = InPlaceKVCache().eval()
    before = state_of(model)
    try:
        hierx_nb.export(model, (torch.randn(1, 3, 4), 0), output=None, strategy=strategy, check=False)
    except hierx_nb.ExportError:
        pass
    assert_same_state(before, model)
    assert model.step.item() == 0 and not model.cache_k.any()


@pytest.mark.parametrize("strategy", ["dynamo", "htp"])
def test_check_false_restores_parameters_flags_and_config(strategy):
    model = WritesEverything()
    model.train()
    before = state_of(model)
    result = hierx_nb.export(model, (torch.randn(3, 4),), output=None, strategy=strategy, check=False)
    assert result.strategy == strategy
    assert_same_state(before, model)
    assert model.config.calls == 0


def test_check_false_still_runs_the_model_once_when_every_strategy_fails():
    class Broken(torch.nn.Module):
        def forward(self, x):
            return x @ torch.ones(3, 3)  # (2, 4) @ (3, 3): the inputs are at fault

    with pytest.raises(hierx_nb.InputError, match="does not run on the given inputs"):
        hierx_nb.export(Broken(), (torch.randn(2, 4),), output=None, check=False)


def test_counted_eager_runs_without_the_check():
    model = CountsEagerRuns().eval()
    hierx_nb.export(model, (torch.randn(2, 4),), output=None, check=False)
    assert model.eager_runs == 0  # the meta copy counted its own


def test_a_file_holds_the_weights_as_found_when_the_forward_writes_them(tmp_path):
    """PyTorch's run for the check goes on while the file is written, unless the forward writes into
    weights the file holds (seen on the meta copy): then it runs first, and is put back before."""
    import onnx_ir as ir

    model = InPlaceKVCache().eval()
    with torch.no_grad():
        model.cache_k.fill_(0.5)
    before = state_of(model)
    result = hierx_nb.export(model, (torch.randn(1, 3, 4), 0), output=tmp_path / "m.onnx", strategy="dynamo")
    assert result.strategy == "dynamo"
    assert_same_state(before, model)
    written = {v.name: v.const_value.numpy() for v in ir.load(tmp_path / "m.onnx").graph.initializers.values()}
    cache = [a for a in written.values() if a.size == 8 * 4]  # the cache (dynamo keeps it transposed)
    assert cache and all((a == 0.5).all() for a in cache)
    weight = next(a for a in written.values() if a.shape == (4, 4))  # the Linear's, a view of proj.weight
    assert abs(weight).sum() > 0


def test_the_check_runs_pytorch_while_the_file_is_written(tmp_path, monkeypatch):
    import threading

    from hierx_nb import files

    saving = []
    real_stage = files.stage_model

    def staged(*a, **k):
        saving.append(threading.current_thread().name)
        return real_stage(*a, **k)

    monkeypatch.setattr("hierx_nb.exporter.stage_model", staged)
    model = Named().eval()
    result = hierx_nb.export(model, (torch.randn(2, 4),), output=tmp_path / "m.onnx")
    assert result.warnings == [] and model.real_runs == 1
    assert saving and saving[0].startswith("hierx-save")
