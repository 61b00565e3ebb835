"""Speed benchmarks, outside the default suite (`python3 -m pytest -m slow`). They print figures and
check only that the figures were produced, never a timing."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import cli, need_shared

pytestmark = pytest.mark.slow


def test_bench_corpus_on_saudinewsnet(tmp_path, capsys):
    src = need_shared("data", "saudinewsnet")
    assert cli("bench", "corpus", "--input", src, "--out", tmp_path / "c") == 0
    assert "statements_per_s" in capsys.readouterr().out


def test_bench_train_tiny(sample_corpus, tmp_path):
    assert cli("bench", "train", "--corpus", sample_corpus, "--geometry", "tiny", "--steps", "4",
               "--json", tmp_path / "t.json") == 0
    res = json.loads((tmp_path / "t.json").read_text())[0]
    assert res["dynamic"]["statements_per_s"] > 0 and res["matmul_peak_gflops"] > 0
    assert res["nabra_precision"] == "fp32"  # tiny.yaml pins fp32
    assert res["speedup"] == res["speedup_padding_only"]


def test_bench_predict_tiny(sample_run, sample_corpus, tmp_path):
    assert cli("bench", "predict", "--model", sample_run, "--corpus", sample_corpus, "--n", "50",
               "--json", tmp_path / "p.json") == 0
    res = json.loads((tmp_path / "p.json").read_text())[0]
    assert res["onnx_fp32_max_abs_diff"] < 1e-3
    assert res["model"] == Path(sample_run).name  # named after the folder measured
    assert cli("bench", "predict", "--model", sample_run, "--corpus", sample_corpus, "--n", "50", "--repeat", "1",
               "--onnx-graph", "fused", "--json", tmp_path / "f.json") == 0
    res = json.loads((tmp_path / "f.json").read_text())[0]
    assert res["onnx_graph"] == "fused" and res["onnx_fp32_max_abs_diff"] < 1e-3


def test_bench_corpus_sizes_synthetic_and_workers(tmp_path, capsys):
    from test_pipeline import _tiny_zip

    (tmp_path / "in").mkdir()
    _tiny_zip(tmp_path / "in" / "a.zip")
    _tiny_zip(tmp_path / "in" / "b.zip")
    assert cli("bench", "corpus", "--input", tmp_path / "in", "--sizes", "1", "2", "--synthetic", tmp_path / "syn",
               "--workers", "1", "2", "--json", tmp_path / "b.json") == 0
    res = json.loads((tmp_path / "b.json").read_text())
    assert [r["run"] for r in res] == ["1 files"] * 2 + ["2 files"] * 2 + ["synthetic syn"] * 2
    assert res[-1]["articles"] == 8 * res[2]["articles"] and all(r["peak_rss_mb_largest_process"] > 0 for r in res)
