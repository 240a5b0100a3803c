"""The strategy registry and the engine's single ways of doing things: choices, inputs, errors, progress."""
from __future__ import annotations

import re

import pytest
import torch
from zoo import case

import hierx_nb
from hierx_nb import strategies
from hierx_nb.cli import _parser
from hierx_nb.errors import describe
from hierx_nb.notebook.magic import HierxMagics
from hierx_nb.progress import StderrProgress, progress_line
from hierx_nb.strategies.base import Strategy, StrategyFailed


def _choices(parser, dest: str) -> tuple:
    (action,) = [a for a in parser._actions if a.dest == dest]
    return tuple(action.choices)


def test_cli_and_magic_choices_come_from_the_registry():
    names = tuple(s.name for s in strategies.STRATEGIES)
    assert strategies.CHOICES == ("auto", *names)
    export_parser = _parser()._subparsers._group_actions[0].choices["export"]
    assert _choices(export_parser, "strategy") == strategies.CHOICES
    assert _choices(HierxMagics.hierexport.parser, "strategy") == strategies.CHOICES
    assert strategies.describe_auto() in export_parser.format_help().replace("\n", " ").replace("  ", " ")


def test_unknown_strategy_is_an_input_error_listing_the_registry():
    c = case("mlp")
    with pytest.raises(hierx_nb.InputError, match="choose one of auto, " + ", ".join(strategies.NAMES)):
        hierx_nb.export(c.model, c.args, output=None, strategy="onnxscript")


class _Broken(Strategy):
    name = "broken"

    def _capture(self, ctx):
        raise ZeroDivisionError("a strategy bug")


class _Declines(Strategy):
    name = "declines"

    def _capture(self, ctx):
        raise StrategyFailed("not for this model")


def test_results_carry_their_exception(monkeypatch):
    broken, declines = _Broken(), _Declines()
    monkeypatch.setattr(strategies, "STRATEGIES", (broken, declines, *strategies.STRATEGIES))
    c = case("mlp")
    result = hierx_nb.export(c.model, c.args, output=None)
    first, second = result.attempts[:2]
    assert (first.name, first.ok, second.name, second.ok) == ("broken", False, "declines", False)
    assert isinstance(first.exception, ZeroDivisionError) and first.reason == "unexpected ZeroDivisionError: a strategy bug"
    assert isinstance(second.exception, StrategyFailed) and second.reason == "not for this model"
    assert result.strategy == "dynamo" and result.attempts[2].exception is None


def test_a_model_without_inputs_gets_them_from_its_config_or_a_clear_error():
    with pytest.raises(hierx_nb.MissingInputs, match="no inputs given for Sequential"):
        hierx_nb.export(torch.nn.Sequential(torch.nn.Linear(2, 2)), output=None)
    steps = []
    bert = case("hf_bert").model
    result = hierx_nb.export(bert, output=None, progress=lambda step, fraction=None: steps.append(step))
    assert steps[0] == "generating example inputs from the model's config"
    assert result.validate()["ok"].all()


def test_one_progress_line_format(capsys):
    assert progress_line("hierx", 3.21, "tagging ONNX nodes", 0.9) == "hierx:   3.2s [ 90%] tagging ONNX nodes"
    assert progress_line("hierx", 3.21, "loading") == "hierx:   3.2s        loading"
    say = StderrProgress("hierexport")
    say("htp: tracing", 0.05)
    assert re.fullmatch(r"hierexport: +\d+\.\ds \[  5%\] htp: tracing\n", capsys.readouterr().err)


def test_describe_names_the_error_in_one_line():
    assert describe(ValueError("bad shape\nat line 3")) == "ValueError: bad shape"


class _Svd(torch.nn.Module):  # torch.linalg.svd has no ONNX lowering: dynamo and htp both fail
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)

    def forward(self, x):
        return torch.linalg.svd(self.lin(x)).S


def test_fx_is_explicit_only_it_cannot_succeed_where_dynamo_and_htp_failed():
    assert [s.name for s in strategies.auto_order()] == ["dynamo", "htp"] and "fx" in strategies.NAMES
    x = torch.randn(3, 4)
    with pytest.raises(hierx_nb.ExportError) as auto:
        hierx_nb.export(_Svd(), (x,), output=None)
    assert [a.name for a in auto.value.attempts] == ["dynamo", "htp"]
    with pytest.raises(hierx_nb.ExportError) as fx:  # fx traces it, but needs their graph to tag
        hierx_nb.export(_Svd(), (x,), output=None, strategy="fx")
    assert fx.value.attempts[0].reason.startswith("symbolic tracing worked, but no exporter gave an ONNX graph")
    c = case("mlp")
    assert hierx_nb.export(c.model, c.args, output=None, strategy="fx").strategy == "fx"
