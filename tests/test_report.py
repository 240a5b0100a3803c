"""The standalone HTML report (``hierx report``, ``result.to_html``) and ``result.figure`` (plotly).

What the report shows in a browser is checked in test_widget_render.py; here: its file (one
self-contained page, no external reference, names escaped, size budget) and the command line.
"""
from __future__ import annotations

import json
import re

import plotly.graph_objects as go
import pytest
import torch
from test_widget_payload import EVIL_MODULE, llama_like_result, small_result, with_metrics

import hierx_nb
from hierx_nb import cli


def _data_block(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="hierx-data">(.*?)</script>', page, re.S)
    return json.loads(m.group(1))


def test_report_is_self_contained(tmp_path):
    r = small_result()
    out = r.to_html(tmp_path / "toy.html")
    page = out.read_text(encoding="utf-8")
    # one file: no src=, href= or url() that a browser would fetch; a CSP forbids fetching anyway
    assert not re.search(r"""\b(src|href)\s*=\s*["']?(https?:|//|[\w./-]+\.(js|css))""", page)
    assert not re.search(r"url\(\s*['\"]?(https?:|//)", page)
    assert "default-src 'none'" in page
    # markup in names never reaches the HTML as markup: only inside the JSON block, with "</" escaped
    assert EVIL_MODULE not in page.replace(json.dumps(EVIL_MODULE)[1:-1], "")
    assert page.count("</script>") == 2
    data = _data_block(page)
    assert EVIL_MODULE in data["tree"]["names"] and data["header"]["model_class"] == "Toy"


def test_report_budget_15k_nodes(tmp_path):
    r = llama_like_result()
    out = r.to_html(tmp_path / "llama.html")
    size = out.stat().st_size
    print(f"\nreport of {len(r.nodes):,} nodes / {len(r.modules):,} modules: {size / 1e6:.2f} MB")
    assert size <= 2_000_000


def test_report_keeps_metrics_and_warnings(tmp_path):
    data = _data_block(with_metrics(small_result()).to_html(tmp_path / "m.html").read_text(encoding="utf-8"))
    assert set(data["metrics"]) == {"latency", "divergence"}
    assert data["metrics"]["latency"]["by_op_type"]["MatMul"] == 2.5
    assert data["metrics"]["divergence"]["first_divergent"] == "encoder.layer.1.<b>x</b>"
    assert data["header"]["warnings"][0].startswith("output 0 differs")


def test_cli_report(tmp_path, capfd):
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)).eval()
    onnx_path = tmp_path / "mlp.onnx"
    hierx_nb.export(model, (torch.randn(1, 4),), output=onnx_path)
    assert cli.main(["report", str(onnx_path)]) == 0
    out, err = capfd.readouterr()
    html_path = tmp_path / "mlp.html"
    assert f"wrote {html_path}" in out and html_path.is_file()
    data = _data_block(html_path.read_text(encoding="utf-8"))
    assert data["header"]["model_class"] == "Sequential" and {"0", "1", "2"} <= set(data["tree"]["names"])
    # -o elsewhere; bad input is one line, and an existing target is left alone on failure
    assert cli.main(["report", str(onnx_path), "-o", str(tmp_path / "r.html")]) == 0
    capfd.readouterr()
    code = cli.main(["report", str(tmp_path / "missing.onnx"), "-o", str(tmp_path / "x.html")])
    out, err = capfd.readouterr()
    assert code == 2 and err.count("\n") == 1 and "no such file" in err and not (tmp_path / "x.html").exists()
    code = cli.main(["report", str(onnx_path), "-o", str(tmp_path / "nope" / "r.html")])
    out, err = capfd.readouterr()
    assert code == 2 and err.count("\n") == 1 and "does not exist" in err


def test_figures():
    r = small_result()
    cov = r.figure("coverage")
    assert isinstance(cov, go.Figure)
    by_source = {t.name: dict(zip(t.x, t.y)) for t in cov.data}
    assert by_source["exact"] == {"MatMul": 1, "Add": 0, "Relu": 0, "Gemm": 1, "x::<b>C</b>&": 0}
    assert sum(by_source["inferred"].values()) == 2 and sum(by_source["untagged"].values()) == 1
    assert sum(r.figure("confidence").data[0].y) == 5  # the untagged node has no confidence
    with pytest.raises(hierx_nb.NotComputed, match=r"no latency yet; call result.profile\(\) first"):
        r.figure("latency")
    with pytest.raises(hierx_nb.UnknownChoice, match="choose one of coverage, confidence, latency, divergence"):
        r.figure("speed")
    r = with_metrics(r)
    lat = r.figure("latency")
    assert list(lat.data[0].y)[-1] == "encoder.layer.0" and list(lat.data[0].x)[-1] == 2.0  # largest self time on top
    div = r.figure("divergence")
    assert list(div.data[0].x) == ["encoder.layer.0", "encoder.layer.1", "encoder.layer.1.<b>x</b>", "head"]
    assert "first divergent: encoder.layer.1.<b>x</b>" in div.layout.title.text


def test_figures_of_a_real_profile_and_validation(tmp_path):
    """figure("latency") and figure("divergence") show the tables profile() and validate(per_module=True) return."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8)).eval()
    r = hierx_nb.export(model, (torch.randn(4, 16),), output=tmp_path / "m.onnx")
    lat = r.profile(runs=3, warmup=1)
    bars = r.figure("latency").data[0]
    top = lat.dropna(subset=["self_ms"]).sort_values("self_ms", ascending=False).head(30)
    assert list(bars.x)[::-1] == pytest.approx(list(top["self_ms"]))
    assert list(bars.y)[::-1] == [m or "Sequential" for m in top["module"].astype(str)]
    div = r.validate(per_module=True)
    bars = r.figure("divergence").data[0]
    compared = div.dropna(subset=["max_abs_diff"])
    assert len(compared) >= 3 and list(bars.y) == pytest.approx(list(compared["max_abs_diff"]))


def test_cli_report_profile_validate_and_the_sidecar_keeps_them(tmp_path, capfd):
    """``hierx report --profile --runs N --validate MODEL``: latency and divergence in the page, and kept
    in the sidecar so ``load()`` and a later plain ``hierx report`` carry them."""
    from cli_models import mlp

    from hierx_nb import sidecar

    onnx_path = tmp_path / "mlp.onnx"
    hierx_nb.export(*mlp(), output=onnx_path)
    assert hierx_nb.load(onnx_path).latency is None
    code = cli.main(["report", str(onnx_path), "--profile", "--runs", "3", "--validate", "cli_models:mlp",
                     "-o", str(tmp_path / "r.html")])
    out, err = capfd.readouterr()
    assert code == 0, err
    assert "divergence: 8 modules compared with PyTorch, all within tolerance" in out
    assert "ms of kernel time per run (median of 3 runs)" in out
    metrics = _data_block((tmp_path / "r.html").read_text(encoding="utf-8"))["metrics"]
    assert set(metrics) == {"latency", "divergence"} and metrics["latency"]["kernel_ms"] > 0

    loaded = hierx_nb.load(onnx_path)  # from the sidecar, which the report's runs updated
    assert loaded.latency["self_ms"].sum() == pytest.approx(loaded.latency.attrs["kernel_ms"]
                                                            - loaded.latency.attrs["unattributed_ms"], rel=1e-6)
    assert loaded.latency.attrs["runs"] == 3
    assert len(loaded.divergence) == 8 and loaded.divergence["ok"].all()
    assert loaded.divergence.attrs["first_divergent"] is None
    assert cli.main(["report", str(onnx_path), "-o", str(tmp_path / "again.html")]) == 0
    capfd.readouterr()
    again = _data_block((tmp_path / "again.html").read_text(encoding="utf-8"))["metrics"]
    assert again["latency"] == metrics["latency"] and again["divergence"] == metrics["divergence"]

    # --validate without the model: one line saying what to give
    code = cli.main(["report", str(onnx_path), "--validate"])
    _, err = capfd.readouterr()
    assert code == 2 and err.count("\n") == 1 and "--validate needs the PyTorch model" in err

    # a version-2 sidecar (before latency and divergence were kept) still loads; an older one says what to do
    side = sidecar.sidecar_path_for(onnx_path)
    doc = json.loads(side.read_text(encoding="utf-8"))
    for key in sidecar.METRICS:
        doc.pop(key)
    side.write_text(json.dumps({**doc, "version": 2}), encoding="utf-8")
    assert hierx_nb.load(onnx_path).latency is None
    side.write_text(json.dumps({**doc, "version": 1}), encoding="utf-8")
    code = cli.main(["analyze", str(onnx_path)])
    _, err = capfd.readouterr()
    assert code == 2 and "schema version 1" in err and "export the model again" in err


def test_cli_report_cannot_run_a_structure_only_file(tmp_path, capfd):
    from cli_models import mlp

    onnx_path = tmp_path / "mlp.onnx"
    model, args = mlp()
    hierx_nb.export(model, args, output=onnx_path, structure_only=True)
    code = cli.main(["report", str(onnx_path), "--profile"])
    _, err = capfd.readouterr()
    assert code == 2 and err.count("\n") == 1 and "structure-only" in err and "without --structure-only" in err
    assert not onnx_path.with_suffix(".html").exists()


def test_figures_follow_the_theme_and_count_in_whole_numbers():
    import plotly.io as pio

    r = small_result()
    default = pio.templates.default
    try:
        pio.templates.default = "plotly_dark"  # a notebook set up for a dark theme
        dark = r.figure("coverage")
        assert dark.layout.template.layout.paper_bgcolor == pio.templates["plotly_dark"].layout.paper_bgcolor
    finally:
        pio.templates.default = default
    assert r.figure("confidence", theme="dark").layout.template.layout.paper_bgcolor == \
        pio.templates["plotly_dark"].layout.paper_bgcolor
    light = r.figure("coverage", theme="light").layout.template.layout.paper_bgcolor
    assert light == pio.templates["plotly_white"].layout.paper_bgcolor != pio.templates["plotly_dark"].layout.paper_bgcolor
    with pytest.raises(hierx_nb.UnknownChoice, match="figure theme"):
        r.figure("coverage", theme="midnight")
    # a handful of nodes: ticks every whole node, never at 0.5
    for kind in ("coverage", "confidence"):
        axis = r.figure(kind).layout.yaxis
        assert axis.tickformat == ",d" and axis.dtick == 1 and axis.tick0 == 0


def test_one_name_for_the_whole_model(tmp_path, capfd):
    """The whole model goes by its class name in the CLI tree, extract's line and the figures."""
    from cli_models import mlp

    from hierx_nb.hierarchy import module_label, root_label

    assert root_label("BertModel") == "BertModel" and root_label("") == root_label(None) == "model"
    assert module_label("", "MLP") == "MLP" and module_label("head.0", "MLP") == "head.0"
    onnx_path = tmp_path / "mlp.onnx"
    r = hierx_nb.export(*mlp(), output=onnx_path)
    r.profile(runs=2, warmup=1)
    r.latency.loc[r.latency["module"] == "", "self_ms"] = 99.0  # make the root's own bar visible
    assert list(r.figure("latency").data[0].y)[-1] == "MLP"
    assert cli.main(["extract", str(onnx_path), "", "-o", str(tmp_path / "all.onnx")]) == 0
    out, _ = capfd.readouterr()
    assert out.startswith("MLP: 7 ONNX nodes -> ")


class _GeluNet(torch.nn.Module):
    """GELU in the model's own forward: a wrong translation of it is the root's fault."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(8, 8)

    def forward(self, x):
        return torch.nn.functional.gelu(self.fc(x))


def test_the_root_is_named_in_the_export_warning_and_its_divergence_is_kept(tmp_path, monkeypatch):
    from onnxscript import opset18 as op

    from hierx_nb import translations

    monkeypatch.setitem(translations.TABLE, torch.ops.aten.gelu.default, lambda x, approximate="none": op.Relu(x))
    torch.manual_seed(0)
    result = hierx_nb.export(_GeluNet().eval(), (torch.randn(4, 8),), output=tmp_path / "g.onnx", strategy="dynamo")
    assert result.divergence.attrs["first_divergent"] == ""
    assert len(result.warnings) == 1 and result.warnings[0].endswith("first divergent: _GeluNet (its own forward)")
    loaded = hierx_nb.load(tmp_path / "g.onnx")  # the export's own per-module comparison went into the sidecar
    assert loaded.divergence.attrs["first_divergent"] == "" and not loaded.divergence.set_index("module")["ok"][""]


def test_cli_report_validate_reuses_the_model_hierx_export_was_given(tmp_path, capfd, monkeypatch):
    """After ``hierx export MODEL``, ``hierx report FILE --validate`` needs no MODEL: the sidecar names
    it (paths made absolute, so it works from another folder)."""
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "factory.py").write_text("import torch\n\ndef make():\n    torch.manual_seed(0)\n"
                                       "    m = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Tanh()).eval()\n"
                                       "    return m, (torch.randn(2, 4),)\n")
    monkeypatch.chdir(folder)
    onnx_path = tmp_path / "m.onnx"
    assert cli.main(["export", "factory.py:make", "-o", str(onnx_path), "-q"]) == 0
    capfd.readouterr()
    monkeypatch.chdir(tmp_path)
    code = cli.main(["report", str(onnx_path), "--validate"])
    out, err = capfd.readouterr()
    assert code == 0, err
    assert "divergence: 3 modules compared with PyTorch, all within tolerance" in out
    assert len(hierx_nb.load(onnx_path).divergence) == 3


def test_confidence_figure_of_an_all_exact_export_says_so(tmp_path):
    from cli_models import mlp

    r = hierx_nb.export(*mlp(), output=None, strategy="dynamo")
    assert (r.nodes["source"] == "exact").all()
    fig = r.figure("confidence")
    assert not fig.data and fig.layout.annotations[0].text == "all 7 nodes exact (confidence 1.0)"
    assert len(small_result().figure("confidence").data) == 1  # mixed sources: the histogram
