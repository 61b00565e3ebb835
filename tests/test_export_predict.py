"""Export (HF + card, ONNX, int8) with parity, and prediction through the CLI and the Python API."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from conftest import SAMPLE, cli, need_shared
from nabra import StanceClassifier


@pytest.fixture(scope="module")
def exported(sample_run, sample_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "model"
    assert cli("export", "--model", sample_run, "--out", out, "--data", sample_dataset, "--split", "test") == 0
    return out


def test_export_writes_every_format_with_parity(exported):
    for f in ("model.safetensors", "config.json", "tokenizer.json", "nabra_preprocess.json", "label_maps.json",
              "README.md", "model.onnx", "model.int8.onnx", "export_info.json"):
        assert (exported / f).exists(), f
    assert not list(exported.glob("*.bin"))  # safetensors only
    info = json.loads((exported / "export_info.json").read_text())
    assert max(info["onnx_max_abs_logit_diff"].values()) < 1e-3
    assert set(info["int8_f1"]) == {"stance", "sentiment"}
    card = (exported / "README.md").read_text(encoding="utf-8")
    assert "## Intended use" in card and "## Limits" in card and "conciliatory" in card


def test_onnx_attention_mask_is_bounded_and_padding_changes_nothing(exported):
    """The float32-minimum mask constant (slow exp underflow in onnxruntime's Softmax) is replaced by
    MASK_FLOOR, and a statement's logits are the same alone and padded beside a long one."""
    import onnx
    from onnx import numpy_helper

    from nabra.train.export import MASK_FLOOR

    info = json.loads((exported / "export_info.json").read_text())
    assert info["attention_mask_floor"] == {"value": MASK_FLOOR, "constants": 1}
    g = onnx.load(str(exported / "model.onnx")).graph
    consts = [numpy_helper.to_array(n.attribute[0].t) for n in g.node if n.op_type == "Constant"]
    assert not any(c.dtype == np.float32 and c.size == 1 and c.item() == np.finfo(np.float32).min for c in consts)
    short = "بعث الرئيس برقية عزاء"
    long = "أعرب وزير الخارجية عن قلق المملكة البالغ من تطورات الأوضاع وحذر من عواقب التصعيد على أمن المنطقة " * 3
    # fp32 only: int8 activations are quantised per batch, so a batch-mate moves them by design
    clf = StanceClassifier.from_pretrained(exported, backend="onnx", onnx_file="model.onnx")
    alone, padded = clf.logits([short]), clf.logits([long, short])
    for t in alone:
        np.testing.assert_allclose(alone[t][0], padded[t][1], atol=1e-5)


def test_onnx_graph_has_dynamic_axes_and_one_output_per_task(exported):
    import onnx

    g = onnx.load(str(exported / "model.onnx")).graph
    assert [o.name for o in g.output] == ["logits_stance", "logits_sentiment"]
    dims = g.input[0].type.tensor_type.shape.dim
    assert all(d.dim_param for d in dims)  # batch and sequence are symbolic


def test_exported_models_give_the_run_models_labels(sample_run, exported, sample_dataset):
    texts = pd.read_parquet(sample_dataset / "test.parquet").text.tolist() + \
        pd.read_parquet(sample_dataset / "dev.parquet").text.tolist()
    ref = StanceClassifier.from_pretrained(sample_run).predict(texts)
    for backend, kw in (("torch", {}), ("onnx", {})):
        got = StanceClassifier.from_pretrained(exported, backend=backend, **kw).predict(texts)
        for task in ("stance", "sentiment"):
            assert [r[task] for r in got] == [r[task] for r in ref], (backend, task)
    logits_t = StanceClassifier.from_pretrained(sample_run).logits(texts)
    logits_o = StanceClassifier.from_pretrained(exported, backend="onnx").logits(texts)
    for t in logits_t:
        assert np.abs(logits_t[t] - logits_o[t]).max() < 1e-3


def test_predict_cli_matches_the_python_api(sample_run, tmp_path):
    art = SAMPLE / "article.txt"
    assert cli("predict", sample_run, art, "--format", "jsonl", "--out", tmp_path / "p.jsonl") == 0
    rows = [json.loads(l) for l in (tmp_path / "p.jsonl").read_text(encoding="utf-8").splitlines()]
    api = StanceClassifier.from_pretrained(sample_run).predict_article(art.read_text(encoding="utf-8"))
    assert [(r["start"], r["stance"], r["sentiment"]) for r in rows] == \
        [(r["start"], r["stance"], r["sentiment"]) for r in api]
    text = art.read_text(encoding="utf-8")
    assert len(rows) == 6 and not any("المصدر" in r["text"] or "مقالات" in r["text"] for r in rows)
    assert all(text[r["start"]:r["end"]] == r["text"] for r in rows)  # offsets into the file's text (were the cleaned body's)
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes(text.replace("\n", "\r\n").encode("utf-8"))
    assert cli("predict", sample_run, crlf, "--format", "jsonl", "--out", tmp_path / "c.jsonl") == 0
    raw = crlf.read_bytes().decode("utf-8")
    assert all(raw[r["start"]:r["end"]] == r["text"] for r in map(json.loads, (tmp_path / "c.jsonl").read_text("utf-8").splitlines()))
    assert cli("predict", sample_run, art, "--format", "csv", "--out", tmp_path / "p.csv") == 0
    assert len(pd.read_csv(tmp_path / "p.csv")) == 6


def test_predict_reads_stdin(sample_run, monkeypatch, capsys):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO((SAMPLE / "article.txt").read_text(encoding="utf-8")))
    assert cli("predict", sample_run, "-") == 0
    assert "<stdin>" in capsys.readouterr().out


def test_predict_bad_inputs_are_reported_and_the_rest_processed(sample_run, tmp_path, capsys):
    (tmp_path / "empty.txt").write_text("", "utf-8")
    (tmp_path / "blank.txt").write_text(" \n\n", "utf-8")
    (tmp_path / "english.txt").write_text("This page is in English only. Nothing Arabic here at all.", "utf-8")
    code = cli("predict", sample_run, tmp_path / "empty.txt", tmp_path / "blank.txt", tmp_path / "english.txt",
               tmp_path / "missing.txt", SAMPLE / "article.txt", "--format", "jsonl")
    cap = capsys.readouterr()
    assert code == 0
    assert "empty.txt: empty file" in cap.err and "blank.txt: no text (only whitespace, 3 bytes)" in cap.err
    assert "english.txt" in cap.err and "no Arabic statement" in cap.err
    assert "missing.txt: no such file" in cap.err
    assert len(cap.out.strip().splitlines()) == 6


def test_model_folder_missing_a_file(sample_run, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(sample_run / "model", broken)
    (broken / "tokenizer.json").unlink()
    assert cli("predict", broken, SAMPLE / "article.txt") == 2
    assert "lacks tokenizer.json" in capsys.readouterr().err


@pytest.mark.shared
def test_predict_seed_article_rows_are_body_statements(sample_run, capsys):
    seed = need_shared("data", "seed", "article.txt")
    assert cli("predict", sample_run, seed, "--format", "jsonl") == 0
    rows = [json.loads(l) for l in capsys.readouterr().out.strip().splitlines()]
    assert len(rows) == 16
    assert not any(s in r["text"] for r in rows for s in ("المصدر", "طباعة", "مقالات مشابهة", "إقرأ أيضاً"))


@pytest.mark.shared
def test_export_round_trip_on_the_gold_test_split(gold_run, gold_dataset, tmp_path):
    """Export -> from_pretrained and ONNX Runtime -> the run model's labels on every gold test statement."""
    out = tmp_path / "gold_export"
    assert cli("export", "--model", gold_run, "--out", out, "--data", gold_dataset, "--split", "test") == 0
    texts = pd.read_parquet(gold_dataset / "test.parquet").text.tolist()
    ref = StanceClassifier.from_pretrained(gold_run).predict(texts)
    for backend in ("torch", "onnx"):
        got = StanceClassifier.from_pretrained(out, backend=backend).predict(texts)
        for task in ("stance", "sentiment"):
            assert [r[task] for r in got] == [r[task] for r in ref], (backend, task)
    info = json.loads((out / "export_info.json").read_text())
    for task, r in info["int8_f1"].items():
        assert r["change_points"] >= -1.0, (task, r)  # int8 loses at most 1 point of macro-F1


def test_fused_onnx_graph_fuses_attention_with_the_bounded_mask(sample_run, tmp_path):
    """`--onnx-graph fused`: every layer's attention is one Attention node masking at MASK_FLOOR, the fp32
    graph passes the export's parity check and labels statements of mixed lengths like PyTorch."""
    import onnx

    from nabra.train.export import MASK_FLOOR

    out = tmp_path / "fused"
    assert cli("export", "--model", sample_run, "--out", out, "--onnx-graph", "fused") == 0
    info = json.loads((out / "export_info.json").read_text())
    assert info["onnx_graph"] == "fused" and max(info["onnx_max_abs_logit_diff"].values()) < 1e-3
    layers = json.loads((out / "config.json").read_text())["encoder"]["num_hidden_layers"]
    attention = [n for n in onnx.load(str(out / "model.onnx")).graph.node if n.op_type == "Attention"]
    assert len(attention) == layers
    for n in attention:
        assert [onnx.helper.get_attribute_value(a) for a in n.attribute if a.name == "mask_filter_value"] == [MASK_FLOOR]
    texts = ["أدانت الوزارة الهجوم الإرهابي بشدة", "بعث الرئيس برقية عزاء", "حذر الوزير من عواقب التصعيد",
             "أعرب وزير الخارجية عن قلق المملكة البالغ من تطورات الأوضاع وحذر من عواقب التصعيد على أمن المنطقة"]
    ref = StanceClassifier.from_pretrained(out, backend="torch").predict(texts)
    got = StanceClassifier.from_pretrained(out, backend="onnx", onnx_file="model.onnx").predict(texts)
    assert [r["stance"] for r in got] == [r["stance"] for r in ref]


def test_cli_choices_are_the_exporters(tmp_path):
    """The CLI keeps its own copy of the choices (to start without the exporter's imports): the same ones;
    the Python API refuses a value outside them before loading anything."""
    from nabra.cli.export import INT8_FFN_OUT, ONNX_GRAPHS, REDUCE_RANGE
    from nabra.train import export
    from nabra.train.export import FFN_OUT_CHOICES, GRAPH_CHOICES, REDUCE_RANGE_CHOICES, ExportError

    assert INT8_FFN_OUT == FFN_OUT_CHOICES
    assert ONNX_GRAPHS == GRAPH_CHOICES
    assert REDUCE_RANGE == REDUCE_RANGE_CHOICES
    with pytest.raises(ExportError, match="int8_reduce_range must be one of auto, on, off, got 'yes'"):
        export.run(tmp_path / "no-model", tmp_path / "out", ["onnx-int8"], int8_reduce_range="yes")
    with pytest.raises(ExportError, match="graph must be one of plain, fused, got 'fuse'"):
        export.run(tmp_path / "no-model", tmp_path / "out", ["onnx"], graph="fuse")
    with pytest.raises(ExportError, match="int8_ffn_out must be one of split, none, all, got 'some'"):
        export.run(tmp_path / "no-model", tmp_path / "out", ["onnx-int8"], int8_ffn_out="some")


def test_reexport_drops_the_old_graphs_and_weights_are_world_readable(sample_run, tmp_path):
    """An hf export into a folder holding an earlier export's model.onnx left it there: `predict
    --backend onnx` then labelled with the old model. And transformers 5 saved model.safetensors 0600,
    so a shared model folder could not be loaded by another user."""
    import stat

    out = tmp_path / "exp"
    out.mkdir()
    (out / "model.onnx").write_bytes(b"an older model")
    (out / "model.int8.onnx").write_bytes(b"an older model")
    assert cli("export", "--model", sample_run, "--out", out, "--format", "hf") == 0
    assert not list(out.glob("*.onnx"))
    for f in (sample_run / "model" / "model.safetensors", out / "model.safetensors"):
        assert stat.S_IMODE(f.stat().st_mode) & 0o044 == 0o044, f


def test_an_interrupted_export_leaves_the_earlier_one_whole(sample_run, exported, tmp_path, monkeypatch, capsys):
    """The export was written in place: killed while quantising, its folder held new weights beside the
    earlier export's graphs (or weights without graphs) and still loaded for prediction. Now it is built
    in a temp folder that replaces --out at the end; a folder holding other files is not replaced."""
    from nabra.train import export

    out = tmp_path / "exp"
    shutil.copytree(exported, out)
    before = {f.name: f.read_bytes() for f in out.iterdir()}

    def killed(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "quantize", killed)
    with pytest.raises(KeyboardInterrupt):
        export.run(sample_run, out, ["hf", "onnx", "onnx-int8"])
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]  # no temp folder left behind
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("not an export")
    assert cli("export", "--model", sample_run, "--out", tmp_path / "mine", "--format", "hf") == 2
    assert "notes.txt" in capsys.readouterr().err and (tmp_path / "mine" / "notes.txt").exists()


def test_export_refuses_another_models_report(sample_run, sample_dataset, exported, tmp_path, capsys):
    """Any report.json was taken: another run's figures went into this model's card."""
    assert cli("evaluate", "--model", sample_run, "--data", sample_dataset, "--split", "test", "--no-baselines",
               "--bootstrap", "20", "--out", tmp_path / "rep") == 0
    rep = json.loads((tmp_path / "rep" / "report.json").read_text(encoding="utf-8"))
    for model in (sample_run, exported):  # the run, and a model folder carrying its run's record
        assert cli("export", "--model", model, "--out", tmp_path / "ok", "--format", "hf",
                   "--report", tmp_path / "rep" / "report.json") == 0
    rep["provenance"]["models"][0]["run_seed"] = 7
    (tmp_path / "other.json").write_text(json.dumps(rep), encoding="utf-8")
    capsys.readouterr()
    assert cli("export", "--model", sample_run, "--out", tmp_path / "x", "--format", "hf",
               "--report", tmp_path / "other.json") == 2
    assert "not " + str(sample_run) in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_int8_weights_in_7_bits_on_request_and_by_cpu(sample_run, exported, tmp_path, capsys):
    """On an x86 CPU without VNNI, onnxruntime's int8 kernel saturates 8-bit weights: the demo's e5 model
    exported on an AVX2 machine agreed with PyTorch on 92.6% / 96.5% of test statements (stance /
    sentiment), with 7-bit weights 96.5% / 97.4%. auto follows this CPU; the choice is recorded."""
    from nabra.train.export import cpu_int8_dot

    info = json.loads((exported / "export_info.json").read_text())
    assert info["int8_reduce_range"] is (not cpu_int8_dot())  # the default: auto
    assert cli("export", "--model", sample_run, "--out", tmp_path / "on", "--format", "onnx-int8",
               "--int8-reduce-range", "on") == 0
    on = json.loads((tmp_path / "on" / "export_info.json").read_text())
    assert on["int8_reduce_range"] is True and max(on["int8_max_abs_logit_diff"].values()) < 1.0
    # a folder whose fp32 graph was left behind (copied without it to save space): --backend onnx takes
    # model.int8.onnx, and says so (it was silent)
    (tmp_path / "on" / "model.onnx").unlink()
    capsys.readouterr()
    assert cli("predict", tmp_path / "on", SAMPLE / "article.txt", "--backend", "onnx") == 0
    assert f"note: {tmp_path / 'on'} holds no model.onnx; labelling with model.int8.onnx" in capsys.readouterr().err


def test_python_api_loads_without_transformers_warnings(sample_run, exported):
    """A fresh process (nabra's model class not yet registered with transformers) loading a model folder
    through the Python API: transformers warned that a "nabra-multitask" config "can yield errors"."""
    import os
    import subprocess
    import sys

    code = ("import sys; from nabra.train.predict import StanceClassifier as C; "
            "[C.from_pretrained(d, backend=b).predict(['أدان الوزير الهجوم']) for d, b in "
            "((sys.argv[1], 'onnx'), (sys.argv[2], 'torch'))]")
    env = {k: v for k, v in os.environ.items() if k != "TRANSFORMERS_VERBOSITY"}  # as a user has it (conftest quiets it)
    r = subprocess.run([sys.executable, "-c", code, str(exported), str(sample_run)], capture_output=True, text=True,
                       env=env)
    assert r.returncode == 0, r.stderr
    assert "model of type" not in r.stderr and "can yield errors" not in r.stderr, r.stderr
