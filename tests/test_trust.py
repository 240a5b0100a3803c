"""Trust at the edges (issue 19): export leaves the model and its inputs as found, exports what plain
torch.onnx exports, and never passes off a broken file."""
from __future__ import annotations

import copy

import pytest
import torch
from torch._higher_order_ops.map import map as hop_map
from torch._higher_order_ops.scan import scan
from torch._higher_order_ops.while_loop import while_loop

import hierx_nb


def state_of(model: torch.nn.Module) -> dict:
    """Everything export must leave as found: every parameter and buffer (bit for bit), every training flag."""
    return {"tensors": {k: v.detach().clone() for k, v in model.state_dict(keep_vars=True).items()},
            "training": {name: m.training for name, m in model.named_modules()}}


def assert_same_state(before: dict, model: torch.nn.Module) -> None:
    after = state_of(model)
    assert after["training"] == before["training"]
    assert after["tensors"].keys() == before["tensors"].keys()
    for name, t in before["tensors"].items():
        assert torch.equal(after["tensors"][name], t), f"{name} changed"


class InPlaceKVCache(torch.nn.Module):
    """A KV cache kept in registered buffers and written in place by ``forward`` (issue 19, fault 1)."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(4, 4)
        self.register_buffer("cache_k", torch.zeros(1, 8, 4))
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def forward(self, x, pos: int):
        k = self.proj(x)
        self.cache_k[:, pos:pos + x.shape[1]] = k
        self.step.add_(1)
        return self.cache_k.sum(1) + self.step


@pytest.mark.parametrize("strategy", ["auto", "dynamo", "htp", "fx"])
def test_export_leaves_buffers_written_in_place_untouched(strategy):
    model = InPlaceKVCache().eval()
    before = state_of(model)
    try:
        hierx_nb.export(model, (torch.randn(1, 3, 4), 0), output=None, strategy=strategy)
    except hierx_nb.ExportError:
        pass  # however it failed, the model is as it was
    assert_same_state(before, model)
    assert model.step.item() == 0 and not model.cache_k.any()


class WritesEverything(torch.nn.Module):
    """Writes a parameter in place, flips a submodule's training flag, uses train-mode BatchNorm
    statistics if left in training, and changes its HF-style config."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(4))
        self.bn = torch.nn.BatchNorm1d(4)
        self.fc = torch.nn.Linear(4, 4)
        self.config = type("Config", (), {})()
        self.config.calls = 0

    def forward(self, x):
        with torch.no_grad():
            self.scale.mul_(2.0)
        self.config.calls += 1
        self.fc.train()
        return self.fc(self.bn(x) * self.scale)


@pytest.mark.parametrize("strategy", ["dynamo", "htp"])
def test_export_restores_parameters_flags_and_config(strategy):
    model = WritesEverything()
    model.train()  # export evaluates in eval mode and gives the model back in training mode
    model.bn.eval()  # a mix of flags comes back as it was
    before = state_of(model)
    result = hierx_nb.export(model, (torch.randn(3, 4),), output=None, strategy=strategy)
    assert result.strategy == strategy
    assert_same_state(before, model)
    assert model.config.calls == 0


def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      intermediate_size=64, vocab_size=100, max_position_embeddings=64)
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg).eval()


def dynamic_cache(model, length: int = 8):
    from transformers import DynamicCache

    cfg = model.config
    cache = DynamicCache(config=cfg)
    heads, dim = cfg.num_key_value_heads, cfg.hidden_size // cfg.num_attention_heads
    for layer in range(cfg.num_hidden_layers):
        cache.update(torch.randn(1, heads, length, dim), torch.randn(1, heads, length, dim), layer)
    return cache


def cache_tensors(cache) -> list[torch.Tensor]:
    return [t.clone() for layer in cache.layers for t in (layer.keys, layer.values)]


def test_a_dynamic_cache_input_does_not_grow():
    model = tiny_llama()
    cache = dynamic_cache(model)
    before_cache, before_model = cache_tensors(cache), state_of(model)
    kwargs = {"input_ids": torch.randint(0, 100, (1, 3)), "past_key_values": cache, "use_cache": True}
    try:
        hierx_nb.export(model, kwargs=kwargs, output=None)
    except hierx_nb.ExportError:
        pass  # whether a strategy takes a cache object or not, it is left as given
    assert cache.get_seq_length() == 8
    assert all(torch.equal(a, b) for a, b in zip(cache_tensors(cache), before_cache, strict=True))
    assert_same_state(before_model, model)


def test_input_tensors_written_in_place_are_left_as_given():
    class Normalizes(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 4)

        def forward(self, x):
            x.div_(2)  # in place, on the caller's tensor in eager PyTorch
            return self.fc(x)

    x = torch.randn(2, 4)
    given = copy.deepcopy(x)
    for strategy in ("dynamo", "htp"):
        hierx_nb.export(Normalizes(), (x,), output=None, strategy=strategy)
        assert torch.equal(x, given)


# -- hierx exports what plain torch.onnx exports: higher-order ops (fault 2) ---------------------------

class ExitHead(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(8, 8)

    def forward(self, t):
        return torch.relu(self.fc(t))


class Deep(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(8, 8)
        self.b = torch.nn.Linear(8, 8)

    def forward(self, t):
        return self.b(torch.tanh(self.a(t)))


class EarlyExit(torch.nn.Module):
    """The issue's model: ``torch.cond`` picks a module by a value computed from the input."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Linear(8, 8)
        self.exit_head = ExitHead()
        self.deep = Deep()

    def forward(self, x):
        h = self.stem(x)
        return torch.cond(h.mean() > 0, lambda t: self.exit_head(t), lambda t: self.deep(t), (h,))


def branch_inputs(model) -> tuple[torch.Tensor, torch.Tensor]:
    """One input taking each branch of ``EarlyExit``."""
    gen = torch.Generator().manual_seed(0)
    found = {}
    while len(found) < 2:
        x = torch.randn(2, 8, generator=gen)
        with torch.no_grad():
            found.setdefault(bool(model.stem(x).mean() > 0), x)
    return found[True], found[False]


def subgraph_modules(result) -> dict[str, str]:
    from hierx_nb.attribution import walk
    from hierx_nb.tagging import MODULE_KEY, SOURCE_KEY

    inside = {}
    for node, owner in walk(result.onnx_model):
        if owner is not None:
            assert node.metadata_props[SOURCE_KEY] == "exact", node.name
            inside[f"{node.op_type}:{node.name}"] = node.metadata_props[MODULE_KEY]
    return inside


def test_torch_cond_exports_with_both_branches_tagged_exactly_and_matching_pytorch():
    torch.manual_seed(0)
    model = EarlyExit().eval()
    exit_x, deep_x = branch_inputs(model)
    torch.onnx.export(model, (exit_x,), dynamo=True, verbose=False)  # plain torch.onnx exports it
    result = hierx_nb.export(model, (exit_x,), output=None)
    assert result.strategy == "dynamo" and result.warnings == []
    inside = subgraph_modules(result)
    assert sorted(inside.values()) == ["deep", "deep.a", "deep.b", "exit_head", "exit_head.fc"]
    assert {v for k, v in inside.items() if k.startswith("Gemm")} == {"exit_head.fc", "deep.a", "deep.b"}
    for x in (exit_x, deep_x):  # one file, both branches
        assert result.validate(model, (x,))["ok"].all()


class LoopStep(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 4)

    def forward(self, t):
        return torch.tanh(self.fc(t))


class WhileLoop(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.step = LoopStep()

    def forward(self, x):
        start = torch.zeros((), dtype=torch.int64)
        return while_loop(lambda i, h: i < 3, lambda i, h: (i + 1, self.step(h)), (start, x))[1]


class Scan(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.step = LoopStep()

    def forward(self, x):
        def combine(carry, xs):
            h = self.step(carry + xs)
            return h, h * 2

        return scan(combine, torch.zeros(2, 4), x)[1]


class Map(torch.nn.Module):
    """``torch.map``: plain torch.onnx has no translation for it ("No ONNX function found for MapImpl");
    the translation table makes it a Scan without carried state."""

    def __init__(self):
        super().__init__()
        self.step = LoopStep()
        self.shift = torch.nn.Parameter(torch.randn(4))

    def forward(self, x):
        return hop_map(lambda t, shift: self.step(t) + shift, x, self.shift)


@pytest.mark.parametrize("cls, shape", [(WhileLoop, (2, 4)), (Scan, (3, 2, 4)), (Map, (3, 2, 4))])
def test_loops_and_scans_export_with_their_body_modules_exact(cls, shape):
    model = cls().eval()
    x = torch.randn(*shape)
    result = hierx_nb.export(model, (x,), output=None)
    assert result.strategy == "dynamo" and result.warnings == []
    body = subgraph_modules(result)
    assert {v for k, v in body.items() if k.startswith(("Gemm", "Tanh"))} == {"step.fc", "step"}
    assert result.validate()["ok"].all()


def test_torch_map_matches_pytorch_over_any_length():
    model = Map().eval()
    with pytest.raises(Exception, match="No ONNX function found for .*MapImpl"):
        torch.onnx.export(model, (torch.randn(3, 2, 4),), dynamo=True, verbose=False)
    result = hierx_nb.export(model, (torch.randn(3, 2, 4),), output=None, dynamic_shapes={"x": {0: "steps"}})
    assert [n.op_type for n in result.onnx_model.graph] == ["Scan"]
    assert str(result.onnx_model.graph.inputs[0].shape) == "[steps,2,4]"
    for steps in (1, 5):
        assert result.validate(model, (torch.randn(steps, 2, 4),))["ok"].all()


# -- a failure caused by the inputs is never remembered for the model (fault 7) ------------------------

def forget_process_memory():
    """What a new process knows of past failures: only the file (HIERX_CACHE_DIR is a tmp folder here)."""
    from hierx_nb import memory

    memory._MEMORY = None


class Shift:
    """An input object that is no pytree container: torch.export refuses it ("Unsupported input type")."""

    def __init__(self, shift: torch.Tensor):
        self.shift = shift


class OptionalShift(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 4)

    def forward(self, x, extra=None):
        if extra is not None:
            x = x + extra.shift
        return self.fc(x)


def test_an_input_type_failure_does_not_poison_a_plain_export_of_the_model():
    model = OptionalShift().eval()
    x = torch.randn(2, 4)
    try:
        first = hierx_nb.export(model, (x, Shift(torch.ones(4))), output=None).attempts
    except hierx_nb.ExportError as e:
        first = e.attempts
    assert "Unsupported input type" in next(a.reason for a in first if a.name == "dynamo")
    forget_process_memory()
    plain = hierx_nb.export(model, (x,), output=None)  # as in a new process
    assert [(a.name, a.ok, a.skipped) for a in plain.attempts] == [("dynamo", True, False)]


def test_a_dynamic_cache_export_does_not_change_what_a_plain_export_tries():
    model = tiny_llama()
    ids = torch.randint(0, 100, (1, 3))
    try:
        hierx_nb.export(model, kwargs={"input_ids": ids, "past_key_values": dynamic_cache(model), "use_cache": True},
                        output=None)
    except hierx_nb.ExportError:
        pass
    forget_process_memory()
    plain = hierx_nb.export(model, kwargs={"input_ids": ids}, output=None)
    assert [(a.name, a.ok, a.skipped) for a in plain.attempts] == [("dynamo", True, False)]


def test_inputs_of_another_structure_are_another_kind():
    from hierx_nb.memory import input_structure, kind_of

    model = torch.nn.Linear(4, 4)
    x = torch.randn(2, 4)
    assert kind_of(model, (x,)) == kind_of(model, (torch.randn(7, 4),))  # sizes do not matter
    assert kind_of(model, (x,)) != kind_of(model, ((x, x),))
    assert kind_of(model, (x,)) != kind_of(model, (x.long(),))
    assert input_structure((x,), {"cache": {"k": [x]}}) == "tuple(Tensor[float32]) {cache: {k: list(Tensor[float32])}}"


# -- a broken file is never a success (faults 3, 4) -------------------------------------------------------

class SoftmaxHead(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(8, 4)

    def forward(self, x):
        y = self.linear(x)
        return torch.softmax(y, -1), y


def test_outputs_named_like_inner_values_give_a_valid_file():
    import onnx

    result = hierx_nb.export(SoftmaxHead(), (torch.randn(2, 8),), output=None, output_names=["softmax", "linear"])
    onnx.checker.check_model(onnx_proto(result), full_check=True)
    assert [v.name for v in result.onnx_model.graph.outputs] == ["softmax", "linear"]
    assert result.validate()["ok"].all()


class TwoHeads(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(8, 4)

    def forward(self, x):
        y = self.linear(x)
        return torch.relu(y), y.sigmoid()


@pytest.mark.parametrize("names", [{"output_names": ["relu", "linear"]}, {"input_names": ["linear"]},
                                   {"input_names": ["relu"], "output_names": ["linear", "sigmoid"]}])
def test_names_asked_for_that_inner_values_have_give_dynamo_a_valid_file(names):
    """torch.onnx's dynamo path gives the graph's inputs and outputs the names asked for without looking at
    its inner values (``linear`` is the Linear's output): a file that breaks SSA; the inner value is
    renamed aside, so dynamo's own file is valid and auto keeps it."""
    import onnx

    with pytest.raises(Exception, match="single static assignment"):
        plain = torch.onnx.export(TwoHeads().eval(), (torch.randn(2, 8),), dynamo=True, verbose=False, **names)
        onnx.checker.check_model(plain.model_proto, full_check=True)
    result = hierx_nb.export(TwoHeads().eval(), (torch.randn(2, 8),), output=None, **names)
    assert result.strategy == "dynamo" and result.attempts[0].ok
    onnx.checker.check_model(onnx_proto(result), full_check=True)
    graph = result.onnx_model.graph
    assert [v.name for v in graph.inputs] == names.get("input_names", ["x"])
    assert [v.name for v in graph.outputs] == names.get("output_names", ["output_0", "output_1"])
    assert result.validate()["ok"].all()


def onnx_proto(result):
    import onnx_ir as ir

    return ir.serde.serialize_model(result.onnx_model)


def test_an_invalid_file_fails_its_attempt_and_auto_moves_on(monkeypatch):
    from hierx_nb import strategies
    from hierx_nb.strategies.base import Strategy
    from hierx_nb.strategies.dynamo import Dynamo

    class BreaksSSA(Strategy):
        """dynamo's graph with one value produced twice (the kind of file the issue's name clash gave)."""

        name = "breaks_ssa"

        def _capture(self, ctx):
            out = Dynamo()._capture(ctx)
            nodes = list(out.model.graph)
            nodes[-1].outputs[0].name = nodes[0].outputs[0].name
            return out

    monkeypatch.setattr(strategies, "STRATEGIES", (BreaksSSA(), *strategies.STRATEGIES))
    result = hierx_nb.export(SoftmaxHead(), (torch.randn(2, 8),), output=None, output_names=["softmax", "linear"])
    first = result.attempts[0]
    assert (first.name, first.ok) == ("breaks_ssa", False)
    assert "unsound file" in first.reason and "onnx.checker" in first.reason
    assert result.strategy == "dynamo" and result.validate()["ok"].all()


class PickHeads(torch.nn.Module):
    """An index tensor read as a number (``.item()``): a tracer bakes it into the graph."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(8, 8)

    def forward(self, x, heads):
        return self.fc(x)[:, : int(heads.item())]


def test_a_file_that_dropped_an_item_input_fails_naming_it():
    args = (torch.randn(2, 8), torch.tensor(3))
    with pytest.raises(hierx_nb.ExportError) as e:
        hierx_nb.export(PickHeads(), args, output=None, strategy="htp")
    reason = e.value.attempts[0].reason
    assert "dropped 1 of the 2 input tensors given (heads)" in reason
    assert "allow_dropped_inputs=('heads',) or --allow-dropped-input heads" in e.value.one_line()  # the way out
    result = hierx_nb.export(PickHeads(), args, output=None)  # auto: dynamo keeps it as an input
    assert result.strategy == "dynamo" and len(result.onnx_model.graph.inputs) == 2


def test_an_input_the_user_allowed_to_drop_passes_with_a_warning_naming_it():
    args = (torch.randn(2, 8), torch.tensor(3))
    result = hierx_nb.export(PickHeads(), args, output=None, strategy="htp", allow_dropped_inputs=("heads",))
    assert [v.name for v in result.onnx_model.graph.inputs] == ["x"]
    assert [w for w in result.warnings if "heads" in w] == [
        "htp: the file has no input for heads (allowed by allow_dropped_inputs): it computes with the "
        "export-time value; feed the file without it"]
    assert result.validate()["ok"].all()  # the check and validate feed the file what it takes
    # Allowing one input allows only that one: an object's tensor still fails, named.
    with pytest.raises(hierx_nb.ExportError) as e:
        hierx_nb.export(OptionalShift(), (torch.randn(2, 4), Shift(torch.ones(4))), output=None, strategy="htp",
                        allow_dropped_inputs=("x",))
    assert "(extra.shift)" in e.value.attempts[0].reason


def test_allowing_an_object_input_covers_the_tensors_inside_it():
    result = hierx_nb.export(OptionalShift(), (torch.randn(2, 4), Shift(torch.ones(4))), output=None,
                             allow_dropped_inputs=["extra"])  # auto: dynamo refuses the object, htp drops it
    assert result.strategy == "htp"
    assert any(w.startswith("htp: the file has no input for extra.shift (allowed") for w in result.warnings)


def test_an_unknown_name_to_allow_is_refused_before_any_work():
    with pytest.raises(hierx_nb.errors.UnknownChoice, match="'head'; did you mean 'heads'"):
        hierx_nb.export(PickHeads(), (torch.randn(2, 8), torch.tensor(3)), output=None, allow_dropped_inputs=("head",))


class ShapeOnly(torch.nn.Module):
    """``mask`` is read only through its shape: with a static shape the tracer folds it, and htp's file
    has no input for it; a dynamic dimension keeps the Shape op and the input."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 4)

    def forward(self, x, mask):
        return self.fc(x) * mask.shape[-1]


def test_an_input_used_only_through_a_static_shape_is_dropped_like_any_other():
    args = (torch.randn(2, 4), torch.ones(2, 6))
    with pytest.raises(hierx_nb.ExportError) as e:
        hierx_nb.export(ShapeOnly(), args, output=None, strategy="htp")
    assert "dropped 1 of the 2 input tensors given (mask)" in e.value.attempts[0].reason
    allowed = hierx_nb.export(ShapeOnly(), args, output=None, strategy="htp", allow_dropped_inputs=("mask",))
    assert [v.name for v in allowed.onnx_model.graph.inputs] == ["x"] and len(allowed.warnings) == 1
    dynamic = hierx_nb.export(ShapeOnly(), args, output=None, strategy="htp", dynamic_shapes={"mask": {1: "n"}})
    assert [v.name for v in dynamic.onnx_model.graph.inputs] == ["x", "mask"] and dynamic.warnings == []


def test_cli_allow_dropped_input(tmp_path, capfd, monkeypatch):
    from pathlib import Path

    from hierx_nb import cli

    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    out = tmp_path / "m.onnx"
    argv = ["export", "cli_models:pick_heads", "-o", str(out), "--strategy", "htp", "-q"]
    assert cli.main(argv) == 1
    assert "--allow-dropped-input heads" in capfd.readouterr().err
    assert cli.main([*argv, "--allow-dropped-input", "heads"]) == 0
    assert "warning  htp: the file has no input for heads" in capfd.readouterr().out
    assert out.exists()


def test_a_tensor_inside_an_object_input_dropped_by_the_tracer_fails_naming_it():
    args = (torch.randn(2, 4), Shift(torch.ones(4)))
    with pytest.raises(hierx_nb.ExportError) as e:
        hierx_nb.export(OptionalShift(), args, output=None)  # dynamo refuses the object, htp bakes its tensor
    htp = next(a for a in e.value.attempts if a.name == "htp")
    assert "dropped 1 of the 2 input tensors given (extra.shift)" in htp.reason


def test_a_traced_loop_that_fixes_a_requested_dynamic_dimension_fails():
    class CumulativeLoop(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 4)

        def forward(self, x):
            total = torch.zeros_like(x[:, 0])
            for i in range(x.shape[1]):  # unrolled by the tracer at the export's length
                total = total + x[:, i]
            if total.sum() > 1e9:  # a branch on values: dynamo cannot, htp traces it
                return -self.fc(total)
            return self.fc(total)

    with pytest.raises(hierx_nb.ExportError) as e:
        hierx_nb.export(CumulativeLoop(), (torch.randn(2, 3, 4),), output=None, strategy="htp",
                        dynamic_shapes={"x": {1: "seq"}})
    assert "fixed a dynamic dimension inside the graph" in e.value.attempts[0].reason


# -- the check after export: one ORT session, PyTorch's outputs from the export's own run -----------------

class CountsEagerRuns(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 4)
        self.eager_runs = 0

    def forward(self, x):
        if type(x) is torch.Tensor:  # not torch.export's fake tensors
            self.eager_runs += 1
        return self.fc(x)


@pytest.mark.parametrize("output", [None, "file"])
def test_the_check_reuses_pytorchs_outputs_from_the_export(output, tmp_path, monkeypatch):
    from hierx_nb import runtime

    sessions = []
    real = runtime.session

    def counted(*a, **k):
        sessions.append(k.get("optimization", "all"))
        return real(*a, **k)

    monkeypatch.setattr(runtime, "session", counted)
    model = CountsEagerRuns().eval()
    out = tmp_path / "m.onnx" if output else None
    result = hierx_nb.export(model, (torch.randn(2, 4),), output=out)
    assert result.strategy == "dynamo" and result.warnings == []
    assert model.eager_runs == 1  # the export's one eager run; the check does not run the model again
    assert sessions == ["basic"]


def test_check_false_runs_nothing_in_onnx_runtime(tmp_path, monkeypatch):
    from hierx_nb import runtime

    def refuse(*a, **k):
        raise AssertionError("no ONNX Runtime session when check=False")

    monkeypatch.setattr(runtime, "session", refuse)
    for out in (None, tmp_path / "m.onnx"):
        result = hierx_nb.export(torch.nn.Linear(4, 4), (torch.randn(2, 4),), output=out, check=False)
        assert result.warnings == []


# -- smaller ones (fault 9) ---------------------------------------------------------------------------------

def test_the_one_line_reason_keeps_the_line_naming_the_cause():
    from hierx_nb.strategies.dynamo import _reason

    cond = RuntimeError("Cond doesn't work unless it is captured completely with torch.compile. Got graph "
                        "break/error:\n\nUnsupported: side effect in the true branch: list.append\n  at model.py:12")
    assert _reason(cond).endswith("Got graph break/error: Unsupported: side effect in the true branch: list.append")
    skipped = RuntimeError("Attempted to inline function marked as skipped\n  Explanation: Dynamo developers have "
                           "marked `Scope.__init__` as not traceable.\n  Hint: avoid it")
    assert "(Explanation: Dynamo developers have marked `Scope.__init__` as not traceable.)" in _reason(skipped)
    wrapped = RuntimeError("torch.export failed")
    wrapped.__cause__ = cond
    assert "side effect in the true branch" in _reason(wrapped)


class CondWithSideEffect(torch.nn.Module):
    """A ``torch.cond`` branch that appends to a list: dynamo refuses it ("Got graph break/error:" and
    the cause on the lines after), under plain torch.onnx as under hierx."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 4)
        self.calls = []

    def forward(self, x):
        def taken(t):
            self.calls.append(1)
            return self.fc(t)

        return torch.cond(x.sum() > 0, taken, lambda t: -t, (x,))


def test_the_one_line_reason_of_a_real_torch_cond_failure_names_the_cause():
    x = torch.ones(2, 4)
    with pytest.raises(Exception) as plain:
        torch.onnx.export(CondWithSideEffect().eval(), (x,), dynamo=True, verbose=False)
    root = plain.value
    while root.__cause__ is not None:
        root = root.__cause__
    assert "Got graph break/error:\n\nHOP: Unsafe side effect" in str(root)  # the cause is lines below
    with pytest.raises(hierx_nb.ExportError) as e:
        hierx_nb.export(CondWithSideEffect().eval(), (x,), output=None, strategy="dynamo")
    line = e.value.one_line()
    assert "\n" not in line
    # the same cause as plain torch.onnx's, not one the export's own eager run of torch.cond left behind
    assert "Got graph break/error: HOP: Unsafe side effect (Explanation: Mutating a variable from outside " \
           "the scope of this HOP is not supported.)" in line


def test_exporting_a_torch_cond_model_keeps_the_users_compiled_functions_warm():
    compiles = []

    def counting(graph_module, example_inputs):
        compiles.append(1)
        return graph_module.forward

    @torch.compile(backend=counting)
    def users(x):
        return torch.sin(x) + 1

    users(torch.randn(3))
    model = EarlyExit().eval()
    exit_x, deep_x = branch_inputs(model)
    result = hierx_nb.export(model, (exit_x,), output=None)
    assert result.strategy == "dynamo"
    users(torch.randn(3))
    assert len(compiles) == 1  # torch._dynamo.reset() would have thrown it away
    for x in (exit_x, deep_x):  # and the model still runs eagerly after the export
        model(x)


def test_a_sidecar_with_a_malformed_field_gets_one_line_naming_it(tmp_path):
    import json

    out = tmp_path / "m.onnx"
    hierx_nb.export(torch.nn.Linear(4, 4), (torch.randn(2, 4),), output=out, check=False)
    side = tmp_path / "m.hierx.json"
    data = json.loads(side.read_text())
    for field, value, said in [("modules", None, "field 'modules' is null or missing"),
                               ("modules", {**data["modules"], "depth": 3}, "field 'modules.depth' is a int"),
                               ("attempts", {"a": 1}, "field 'attempts' is a dict")]:
        side.write_text(json.dumps({**data, field: value}))
        with pytest.raises(hierx_nb.ExportError) as e:
            hierx_nb.load(out)
        assert said in e.value.one_line() and "\n" not in e.value.one_line()


@pytest.mark.parametrize("bad", ["1.7", "-0.1", "nan", "high"])
def test_confidences_outside_0_1_in_a_file_are_refused(tmp_path, bad):
    import onnx_ir as ir

    from hierx_nb.tagging import CONFIDENCE_KEY

    out = tmp_path / "m.onnx"
    hierx_nb.export(torch.nn.Linear(4, 4), (torch.randn(2, 4),), output=out, check=False)
    (tmp_path / "m.hierx.json").unlink()
    model = ir.load(out)
    node = next(iter(model.graph))
    node.metadata_props[CONFIDENCE_KEY] = bad
    ir.save(model, out)
    with pytest.raises(hierx_nb.ExportError, match=rf"hierx.confidence='{bad}', not a confidence in \[0, 1\]"):
        hierx_nb.load(out)


class DictHead(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 4)

    def forward(self, x):
        h = self.fc(x)
        return {"logits": h, "probs": torch.softmax(h, -1)}


def test_htp_names_outputs_and_dynamic_dims_as_dynamo_and_the_user_do():
    outputs = {}
    for strategy in ("dynamo", "htp"):
        result = hierx_nb.export(DictHead(), (torch.randn(2, 3, 4),), output=None, strategy=strategy, check=False,
                                 dynamic_shapes={"x": {0: "batch", 1: "seq"}})
        outputs[strategy] = [(v.name, str(v.shape)) for v in result.onnx_model.graph.outputs]
    assert outputs["htp"] == outputs["dynamo"] == [("logits", "[batch,seq,4]"), ("probs", "[batch,seq,4]")]


class KeepPositive(torch.nn.Module):
    """A bare tensor output whose first dimension depends on the values (TorchScript: ``12`` of shape
    ``[Add12_dim_0, 4]``)."""

    def __init__(self, as_dict: bool = False):
        super().__init__()
        self.fc = torch.nn.Linear(4, 4)
        self.as_dict = as_dict

    def forward(self, x):
        h = self.fc(x)
        kept = h[h[:, 0] > 0] + 1
        return {"kept": kept} if self.as_dict else kept


@pytest.mark.parametrize("check", [True, False])  # the output's structure from the real run or the meta one
def test_htp_names_no_output_or_dimension_by_a_number(check):
    import re

    x = torch.randn(6, 4)
    files = {s: hierx_nb.export(KeepPositive().eval(), (x,), output=None, strategy=s, check=check,
                                dynamic_axes={"x": [0]}).onnx_model for s in ("dynamo", "htp")}
    htp = files["htp"].graph
    assert [(v.name, str(v.shape)) for v in htp.outputs] == [("output", "[output_dim_0,4]")]
    # dynamic_axes as a list: the input's dimension named as dynamo names it
    assert [str(v.shape) for v in htp.inputs] == [str(v.shape) for v in files["dynamo"].graph.inputs] == ["[x_0,4]"]
    keyed = hierx_nb.export(KeepPositive(as_dict=True).eval(), (x,), output=None, strategy="htp", check=check)
    assert [(v.name, str(v.shape)) for v in keyed.onnx_model.graph.outputs] == [("kept", "[kept_dim_0,4]")]
    for graph in (htp, keyed.onnx_model.graph):
        names = [v.name for v in graph.outputs] + [str(d) for v in graph.outputs for d in v.shape if not isinstance(d, int)]
        assert not any(re.search(r"\d+_dim_|^\d+$", name) for name in names), names


def test_the_input_check_counts_a_caches_tensors():
    """A cache the tracer froze would leave fewer graph inputs than these; htp takes it as inputs."""
    from hierx_nb.soundness import given_tensors

    model = tiny_llama()
    kwargs = {"input_ids": torch.randint(0, 100, (1, 3)), "past_key_values": dynamic_cache(model), "use_cache": True}
    given = given_tensors(model, (), kwargs)
    assert given[0] == "input_ids" and len(given) == 5  # 2 layers x (keys, values)
    assert all(name.startswith("past_key_values.") for name in given[1:])
    result = hierx_nb.export(model, kwargs=kwargs, output=None, strategy="htp", check=False)
    graph = result.onnx_model.graph
    assert len([v for v in graph.inputs if v.name not in graph.initializers]) == len(given)
