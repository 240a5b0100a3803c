"""retag: module tags carried onto the files real transforms make from a tagged export."""
from __future__ import annotations

import numpy as np
import onnx_ir as ir
import pytest
from transforms import TRANSFORMS, feeds_for, fp16, session
from zoo import case

import hierx_nb
from hierx_nb.cli import main
from hierx_nb.errors import InputError, NotMadeFrom, UnloadableModel, UntaggedSource
from hierx_nb.retag import rule_counts
from hierx_nb.tagging import MODULE_KEY, RULE_KEY

MODELS = ["hf_bert", "hf_vit", "mini_resnet"]  # a BERT, a ViT, a CNN with BatchNorm


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """Each model exported once (tagged), by path."""
    folder = tmp_path_factory.mktemp("retag")
    paths = {}
    for name in MODELS:
        c = case(name)
        hierx_nb.export(c.model, c.args, c.kwargs, output=folder / f"{name}.onnx")
        paths[name] = folder / f"{name}.onnx"
    return paths


def _run(path, feeds):
    s = session(path)
    return [s.run(None, f) for f in feeds]


@pytest.mark.parametrize("transform", list(TRANSFORMS))
@pytest.mark.parametrize("model", MODELS)
def test_every_node_of_a_transformed_file_gets_its_module(exported, tmp_path, model, transform):
    src = exported[model]
    made = tmp_path / f"{transform}.onnx"
    TRANSFORMS[transform](src, made)
    kept = [n.metadata_props.get(MODULE_KEY) for n in ir.load(made).graph]  # tags the transform kept
    out = tmp_path / "retagged.onnx"
    result = hierx_nb.retag(made, src, output=out)

    rules = rule_counts(result)
    assert sum(rules.values()) == len(result.nodes) == len(kept)
    placed = len(result.nodes) - rules.get("no neighbour", 0)  # the root fallback is no placement
    assert placed >= 0.99 * len(result.nodes), rules
    # Where the transform kept a node's tags (retag rewrites them all): a surviving node has the same
    # module, a fused one holds it in its subtree.
    tagged = [(n.name, n.metadata_props[RULE_KEY], n.metadata_props[MODULE_KEY]) for n in ir.load(out).graph]
    compared = {name: (k, rule, module) for k, (name, rule, module) in zip(kept, tagged) if k is not None}
    wrong = {name: v for name, v in compared.items()
             if not (v[0] == v[2] or (v[1] == "fused" and (v[2] == "" or v[0].startswith(v[2] + "."))))}
    assert not wrong
    # Only metadata was added: ONNX Runtime gives the very same outputs.
    feeds = feeds_for(made, count=2)
    for before, after in zip(_run(made, feeds), _run(out, feeds)):
        assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(before, after))
    assert hierx_nb.load(out).nodes["module"].tolist() == result.nodes["module"].tolist()


def test_bad_sources_and_files_get_one_line_and_nothing_is_written(exported, tmp_path):
    made = tmp_path / "bert_all.onnx"
    TRANSFORMS["ort_all"](exported["hf_bert"], made)
    out = tmp_path / "out.onnx"
    with pytest.raises(NotMadeFrom, match="not made from the source"):  # another model's file
        hierx_nb.retag(made, exported["hf_vit"], output=out)
    with pytest.raises(UntaggedSource, match="has no hierx tags"):  # the untagged file itself as source
        hierx_nb.retag(made, made, output=out)
    broken = tmp_path / "fp16_rejected.onnx"
    fp16(exported["hf_bert"], broken)
    import onnx
    from onnxconverter_common import float16  # keep_io_types=True as is: a file ONNX Runtime rejects

    onnx.save(float16.convert_float_to_float16(onnx.load(str(exported["hf_bert"])), keep_io_types=True), str(broken))
    with pytest.raises(UnloadableModel, match="ONNX Runtime cannot load"):
        hierx_nb.retag(broken, exported["hf_bert"], output=out)
    assert not out.exists() and not out.with_name("out.hierx.json").exists()
    assert all(issubclass(e, InputError) for e in (NotMadeFrom, UntaggedSource, UnloadableModel))


def test_a_bert_of_another_size_is_not_taken_for_the_source(exported, tmp_path):
    from transformers import BertConfig, BertModel
    from zoo import _text_kwargs

    cfg = BertConfig(hidden_size=48, num_hidden_layers=3, num_attention_heads=3, intermediate_size=40, vocab_size=99,
                     max_position_embeddings=64)
    other = hierx_nb.export(BertModel(cfg), (), _text_kwargs(), output=tmp_path / "other.onnx")
    made = tmp_path / "slim.onnx"
    TRANSFORMS["onnxslim"](exported["hf_bert"], made)
    with pytest.raises(NotMadeFrom):
        hierx_nb.retag(made, other)
    with pytest.raises(NotMadeFrom):
        hierx_nb.retag(made, other.onnx_path)


def test_load_with_source_profiles_by_module(exported, tmp_path):
    made = tmp_path / "q.onnx"
    TRANSFORMS["quantize_dynamic"](exported["hf_bert"], made)
    result = hierx_nb.load(made, source=exported["hf_bert"])
    assert result.nodes["module"].notna().all()
    assert result.nodes["module"].tolist() == hierx_nb.retag(str(made), hierx_nb.load(exported["hf_bert"])).nodes["module"].tolist()
    latency = result.profile(runs=3, warmup=1)
    assert latency.attrs["unattributed_ms"] <= 0.05 * latency.attrs["kernel_ms"]
    assert latency.set_index("module").loc["encoder", "total_ms"] > 0


def test_cli_retag(exported, tmp_path, capsys):
    made = tmp_path / "slim.onnx"
    TRANSFORMS["onnxslim"](exported["mini_resnet"], made)
    out = tmp_path / "tagged.onnx"
    assert main(["retag", str(made), "--from", str(exported["mini_resnet"]), "-o", str(out)]) == 0
    assert "carried" in capsys.readouterr().out and hierx_nb.load(out).nodes["module"].notna().all()
    assert main(["retag", str(made), "--from", str(made), "-o", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "has no hierx tags" in err and not (tmp_path / "x.onnx").exists()


def test_the_readme_table_gives_the_code_s_confidences():
    import re
    from pathlib import Path

    from hierx_nb.retag import CONFIDENCE

    text = (Path(__file__).parent.parent / "README.md").read_text()
    for rule in ("carried", "replaced", "fused", "inserted", "helper"):
        row = re.search(rf"^\| {rule} \| (\d+) \| ([0-9.]+) \| ([0-9.]+) \|$", text, re.M)
        assert row, rule
        assert int(row[1]) > 0 and float(row[2]) == float(row[3]) == CONFIDENCE[rule]
