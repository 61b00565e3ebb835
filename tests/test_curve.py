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
    for f in (0.25, 0.5):  # stratified: every stance of train is in each subset (the rare ones were lost unstratified)
        assert set(subs[f].stance) == set(train.stance), (f, train.stance.value_counts().to_dict())


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
    # each point's run records the data it trained on: its own hash, not the full dataset's
    info = {f: json.loads((out / "points" / f"{f}-s1/run/run_info.json").read_text()) for f in ("f0.5", "f1")}
    full_hash = json.loads((sample_dataset / "manifest.json").read_text())["content_hash"]
    assert len({info["f0.5"]["dataset_content_hash"], info["f1"]["dataset_content_hash"], full_hash}) == 3
    assert info["f0.5"]["train_ids_hash"] != info["f1"]["train_ids_hash"]
    assert info["f0.5"]["dev_ids_hash"] == info["f1"]["dev_ids_hash"]
    assert {(r["fraction"], r["split"], r["task"]) for r in c["summary"]} == \
        {(f, s, t) for f in (0.5, 1.0) for s in ("dev", "test") for t in ("stance", "sentiment")}
    assert all(0 <= r["ci95"][0] <= r["ci95"][1] <= 1 for r in c["summary"])
    md = (out / "curve.md").read_text()
    assert "| 0.5 | " in md and "| 1 | " in md and (out / "curve.png").stat().st_size > 1000
    # asking again for one point (scored already: nothing trains) keeps every point of OUT in the summary
    assert cli(*[a if a != "0.5" else "1" for a in args]) == 0
    again = json.loads((out / "curve.json").read_text())
    assert again["fractions"] == [0.5, 1.0] and again["summary"] == c["summary"]
    capsys.readouterr()
    assert cli(*args) == 0  # resumed: nothing trained again
    log = capsys.readouterr().out
    assert log.count("scored already, skipped") == 2 and "training on" not in log
    # the two points, compared on the same statements: the paired bootstrap's numbers agree with the curve's
    cmp = tmp_path / "cmp"
    assert cli("evaluate", "compare", "--reference", out / "points/f0.5-s1/run", "--candidate", out / "points/f1-s1/run",
               "--names", "half", "full", "--data", sample_dataset, "--split", "test", "--bootstrap", "50",
               "--out", cmp) == 0
    r = json.loads((cmp / "compare.json").read_text())["splits"]["test"]["tasks"]
    for t in ("stance", "sentiment"):
        for name, f in (("half", 0.5), ("full", 1.0)):
            point = next(p for p in c["points"] if p["fraction"] == f)
            assert r[t][name]["macro_f1"] == [point["splits"]["test"][t]["macro_f1"]]
        assert r[t]["gain"] == round(r[t]["full"]["mean"] - r[t]["half"]["mean"], 6)
        assert r[t]["ci95"][0] <= r[t]["ci95"][1]
    assert "| test | stance |" in (cmp / "compare.md").read_text()


def test_paired_gain_separates_a_better_group_and_not_a_copy():
    import numpy as np

    from nabra.evaluation.compare import paired_gain

    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 300)
    noisy = [np.where(rng.random(300) < 0.4, rng.integers(0, 4, 300), y) for _ in range(3)]
    better = paired_gain(y, noisy, [y.copy(), y.copy()], k=4, n_boot=200)
    assert better["ci95"][0] > 0.2 and better["share_not_better"] == 0.0
    same = paired_gain(y, noisy, noisy, k=4, n_boot=200)
    assert same["ci95"] == [0.0, 0.0] and same["share_not_better"] == 1.0


def test_compare_names_a_folder_that_is_not_a_run(sample_dataset, tmp_path, capsys):
    assert cli("evaluate", "compare", "--reference", tmp_path, "--candidate", tmp_path, "--data", sample_dataset,
               "--split", "test", "--out", tmp_path / "c") == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "model folder lacks" in err and "Traceback" not in err


def test_out_a_file_or_a_folder_of_something_else_is_refused_before_the_work(sample_run, sample_dataset, tmp_path,
                                                                               capsys):
    """`--out` a file was a FileExistsError traceback (compare and baseline: after all the predictions or the
    fit); a run folder got compare.json, baselines or a curve's points written into it; a baseline rerun
    without --encoder left the earlier run's embeddings_lr files beside the new baselines.json."""
    (tmp_path / "file").write_text("x")
    before = sorted(p.name for p in sample_run.iterdir())
    cmp = ["evaluate", "compare", "--reference", sample_run, "--candidate", sample_run, "--data", sample_dataset,
           "--split", "test", "--bootstrap", "20", "--out"]
    curve = ["evaluate", "curve", "--config", REPO_ROOT / "configs/train/tiny.yaml", "--data", sample_dataset, "--out"]
    for args, where in (([*cmp, tmp_path / "file"], "exists and is a file"), ([*cmp, sample_run], "does not write"),
                        (["baseline", "--data", sample_dataset, "--out", tmp_path / "file"], "exists and is a file"),
                        (["baseline", "--data", sample_dataset, "--out", sample_run], "does not write"),
                        ([*curve, tmp_path / "file"], "is a file"), ([*curve, sample_run], "holds no curve")):
        assert cli(*args) == 2, args
        err = capsys.readouterr().err
        assert where in err and "Traceback" not in err, (args, err)
    assert sorted(p.name for p in sample_run.iterdir()) == before
    assert cli(*cmp, tmp_path / "c") == 0 and cli(*cmp, tmp_path / "c") == 0  # its own earlier output: replaced
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["compare.json", "compare.md"]
    (tmp_path / "bl").mkdir()
    (tmp_path / "bl/stance.embeddings_lr.json").write_text("{}")  # as a run with --encoder leaves it
    assert cli("baseline", "--data", sample_dataset, "--out", tmp_path / "bl") == 0
    assert not (tmp_path / "bl/stance.embeddings_lr.json").exists() and (tmp_path / "bl/baselines.json").exists()


def test_compare_leaves_out_unlabelled_statements_and_names_a_run_of_other_labels(sample_run, sample_dataset, tmp_path,
                                                                                 capsys):
    """compare scored every row: a statement without gold for a task (left out by evaluate and training) was a
    KeyError: nan traceback; a run of other labels (a Mawqif run on the gold set) a ValueError traceback."""
    import shutil

    ds = tmp_path / "ds"
    shutil.copytree(sample_dataset, ds)
    df = pd.read_parquet(ds / "test.parquet")
    df.loc[0, "sentiment"] = None
    df.to_parquet(ds / "test.parquet", index=False)
    assert cli("evaluate", "compare", "--reference", sample_run, "--candidate", sample_run, "--data", ds,
               "--split", "test", "--bootstrap", "20", "--out", tmp_path / "c") == 0
    assert cli("evaluate", "--model", sample_run, "--data", ds, "--split", "test", "--no-baselines",
               "--bootstrap", "20", "--out", tmp_path / "r") == 0
    got = json.loads((tmp_path / "c/compare.json").read_text())["splits"]["test"]["tasks"]["sentiment"]
    rep = json.loads((tmp_path / "r/report.json").read_text())["tasks"]["sentiment"]["model"]
    assert got["n"] == len(df) - 1 == rep["n"] and got["reference"]["mean"] == rep["macro_f1"]
    other = tmp_path / "other"  # the same heads, other label names (as a benchmark's run has)
    shutil.copytree(sample_run / "model", other)
    for name in ("config.json", "label_maps.json"):
        text = (other / name).read_text(encoding="utf-8")
        (other / name).write_text(text.replace('"negative"', '"Negative"'), encoding="utf-8")
    capsys.readouterr()
    assert cli("evaluate", "compare", "--reference", other, "--candidate", sample_run, "--data", ds,
               "--split", "test", "--out", tmp_path / "c2") == 2
    err = capsys.readouterr().err
    assert "its labels do not match the dataset's: sentiment: model ['Negative'," in err and "Traceback" not in err


def test_curve_leaves_out_unlabelled_statements_like_evaluate(sample_dataset, tmp_path):
    """A test statement without a sentiment label (left out by evaluate, compare and training) ended the curve
    in a ValueError traceback after the training ("labels ['nan'] are not in the task's label list")."""
    import shutil

    ds = tmp_path / "ds"
    shutil.copytree(sample_dataset, ds)
    df = pd.read_parquet(ds / "test.parquet")
    df.loc[0, "sentiment"] = None
    df.to_parquet(ds / "test.parquet", index=False)
    args = ["evaluate", "curve", "--config", REPO_ROOT / "configs/train/tiny.yaml", "--data", ds, "--fractions", "1",
            "--seeds", "1", "--split", "test", "--bootstrap", "20", "--out", tmp_path / "curve"]
    for s in TINY_FAST:
        args += ["--set", s]
    assert cli(*args) == 0
    point = json.loads((tmp_path / "curve/points/f1-s1/scores.json").read_text())["splits"]["test"]
    assert point["sentiment"]["n"] == len(df) - 1 == point["stance"]["n"] - 1
    assert cli("evaluate", "--model", tmp_path / "curve/points/f1-s1/run", "--data", ds, "--split", "test",
               "--no-baselines", "--bootstrap", "20", "--seed", "1", "--out", tmp_path / "r") == 0
    rep = json.loads((tmp_path / "r/report.json").read_text())["tasks"]["sentiment"]["model"]
    assert point["sentiment"]["macro_f1"] == rep["macro_f1"]
    assert point["sentiment"]["ci95"]["macro_f1"] == rep["ci95"]["macro_f1"]
