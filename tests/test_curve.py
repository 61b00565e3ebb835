"""`nabra evaluate curve`: nested group-aware subsamples of train, one run per (fraction, seed), macro-F1 with
intervals per split, resumable."""
from __future__ import annotations

import json

import pandas as pd

from conftest import REPO_ROOT, TINY_FAST, cli


def test_subsets_are_nested_group_aware_and_stratified(sample_dataset):
    from nabra.evaluation.curve import nested_subsets

    train = pd.read_parquet(sample_dataset / "train.parquet")
    subs = nested_subsets(train, [0.25, 0.5, 0.75, 1.0], seed=3, task="stance")
    ids = [set(subs[f].statement_id) for f in (0.25, 0.5, 0.75, 1.0)]
    assert ids[0] < ids[1] < ids[2] <= ids[3] == set(train.statement_id)
    for f, sub in subs.items():  # whole groups only
        assert set(train[train.group.isin(sub.group)].statement_id) == set(sub.statement_id)
    assert nested_subsets(train, [0.5], seed=3, task="stance")[0.5].equals(subs[0.5])  # independent of the others


def test_learning_curve_on_the_sample(sample_dataset, tmp_path, capsys):
    out = tmp_path / "curve"
    args = ["evaluate", "curve", "--config", REPO_ROOT / "configs/train/tiny.yaml", "--data", sample_dataset,
            "--fractions", "0.5", "1", "--seeds", "1", "--split", "dev", "test", "--bootstrap", "50", "--out", out]
    for s in TINY_FAST:
        args += ["--set", s]
    assert cli(*args) == 0
    c = json.loads((out / "curve.json").read_text())
    n = {p["fraction"]: p["n_train"] for p in c["points"]}
    assert n[0.5] < n[1.0] == len(pd.read_parquet(sample_dataset / "train.parquet"))
    half, full = (set(pd.read_parquet(out / "data" / f / "train.parquet").statement_id) for f in ("f0.5", "f1"))
    assert half < full
    assert {(r["fraction"], r["split"], r["task"]) for r in c["summary"]} == \
        {(f, s, t) for f in (0.5, 1.0) for s in ("dev", "test") for t in ("stance", "sentiment")}
    assert all(0 <= r["ci95"][0] <= r["ci95"][1] <= 1 for r in c["summary"])
    md = (out / "curve.md").read_text()
    assert "| 0.5 | " in md and "| 1 | " in md and (out / "curve.png").stat().st_size > 1000
    capsys.readouterr()
    assert cli(*args) == 0  # resumed: nothing trained again
    log = capsys.readouterr().out
    assert log.count("scored already, skipped") == 2 and "training on" not in log
