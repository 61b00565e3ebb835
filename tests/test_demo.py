"""`nabra demo`, the quick start: runs on the shipped sample, and its log reads as one line per step."""
from __future__ import annotations

from conftest import cli


def test_demo_log_is_one_summary_per_stage(tmp_path, capfd):
    assert cli("demo", "--tiny", "--out", tmp_path / "demo", "--epochs", "2") == 0
    out, err = capfd.readouterr()
    text = out + err
    # the Trainer's raw log dicts, per-evaluation bars and per-file bars go to run/train.log
    for noise in ("Writing model shards", "Loading weights", "'eval_loss'", "{'loss'", "it/s]"):
        assert noise not in text, noise
    assert len(text.splitlines()) < 60
    assert "== 6/6 predict" in out and "full training log:" in out
    assert "eval_loss" in (tmp_path / "demo/run/train.log").read_text(encoding="utf-8")
