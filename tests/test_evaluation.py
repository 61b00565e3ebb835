"""Metrics against scikit-learn, seeded bootstrap, calibration, column mapping, refusal to tune on
test, byte-identical reports with every plot embedded, benchmark configs."""
from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pytest
import yaml
from sklearn.metrics import accuracy_score, cohen_kappa_score, confusion_matrix, f1_score

from conftest import REPO_ROOT, TINY_FAST, cli, need_shared
from nabra.config import ConfigError, load_benchmark_config
from nabra.evaluation.metrics import aggregate, bootstrap, calibration, task_metrics

LABELS = ["a", "b", "c"]
GOLD = list("aabbbcccca")
PRED = list("abbbcccaab")


def test_task_metrics_match_sklearn():
    m = task_metrics(GOLD, PRED, LABELS, n_boot=0)
    assert m["macro_f1"] == pytest.approx(f1_score(GOLD, PRED, average="macro"), abs=1e-6)
    assert m["weighted_f1"] == pytest.approx(f1_score(GOLD, PRED, average="weighted"), abs=1e-6)
    assert m["accuracy"] == pytest.approx(accuracy_score(GOLD, PRED), abs=1e-6)
    assert m["kappa"] == pytest.approx(cohen_kappa_score(GOLD, PRED), abs=1e-6)
    assert m["confusion"] == confusion_matrix(GOLD, PRED, labels=LABELS).tolist()
    per = f1_score(GOLD, PRED, average=None, labels=LABELS)
    assert [m["per_class"][l]["f1"] for l in LABELS] == pytest.approx(per, abs=1e-6)
    h = task_metrics(GOLD, PRED, LABELS, headline_labels=["a", "b"], n_boot=0)
    assert h["headline_f1"] == pytest.approx(f1_score(GOLD, PRED, labels=["a", "b"], average="macro"), abs=1e-6)
    with pytest.raises(ValueError, match="not in the task's label list"):
        task_metrics(["a", "z"], ["a", "a"], LABELS, n_boot=0)


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    y = np.array([LABELS.index(v) for v in GOLD * 10])
    p = np.array([LABELS.index(v) for v in PRED * 10])
    a, b = bootstrap(y, p, 3, 500, seed=7), bootstrap(y, p, 3, 500, seed=7)
    assert a == b and a != bootstrap(y, p, 3, 500, seed=8)
    est = f1_score(y, p, average="macro")
    assert a["macro_f1"][0] <= est <= a["macro_f1"][1]


def test_bootstrap_counts_agree_with_sklearn_on_each_resample(monkeypatch):
    """The numpy F1 inside the bootstrap equals sklearn's on the same resample."""
    rng = np.random.default_rng(3)
    y, p = rng.integers(0, 4, 60), rng.integers(0, 4, 60)

    class One:  # a "generator" whose only resample is the identity
        def integers(self, lo, hi, size):
            return np.arange(hi)[None, :].repeat(size[0], 0)
    monkeypatch.setattr(np.random, "default_rng", lambda seed=None: One())
    ci = bootstrap(y, p, 4, 3, seed=0)
    assert ci["macro_f1"][0] == pytest.approx(f1_score(y, p, average="macro"), abs=1e-6)
    assert ci["weighted_f1"][0] == pytest.approx(f1_score(y, p, average="weighted"), abs=1e-6)


def test_calibration_and_aggregate():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    cal = calibration(np.array([0, 1, 1, 0]), probs, n_bins=5)
    # bins of 0.2: {0.9 right} -> 0.1, {0.8 wrong, 0.7 right} -> |0.75-0.5|, {0.6 right} -> 0.4; weights 1/4, 2/4, 1/4
    assert cal["ece"] == pytest.approx(0.1 / 4 + 0.25 / 2 + 0.4 / 4, abs=1e-6)
    agg = aggregate([{"macro_f1": 0.5}, {"macro_f1": 0.7}])
    assert agg["macro_f1"]["mean"] == 0.6 and agg["macro_f1"]["std"] == pytest.approx(np.std([0.5, 0.7], ddof=1), abs=1e-6)


# ----------------------------------------------------------------------------- column mapping
def test_column_mapping_and_value_renames(tmp_path, monkeypatch):
    from nabra.config import BenchmarkConfig
    from nabra.evaluation.benchmarks import load_benchmark

    rows = "ID,tweet,topic,st,mood\n" + "\n".join(
        f"{i},نص رقم {i},هدف,{['Favor', 'Against', ''][i % 3]},{['POS', 'NEG'][i % 2]}" for i in range(30))
    (tmp_path / "tr.csv").write_text(rows, encoding="utf-8")
    (tmp_path / "te.csv").write_text(rows, encoding="utf-8")
    cfg = BenchmarkConfig(name="toy", files={"train": "tr.csv", "test": "te.csv"}, text_column="tweet",
                          text_pair_column="topic", id_column="ID",
                          tasks={"stance": {"column": "st", "rename": {"": "None"}, "headline_labels": ["Favor", "Against"]},
                                 "sentiment": {"column": "mood"}})
    man = load_benchmark(cfg, tmp_path / "ds", shared=tmp_path)
    assert man["tasks"]["stance"] == ["Against", "Favor", "None"]
    assert man["headline_labels"] == {"stance": ["Favor", "Against"]}
    import pandas as pd

    te = pd.read_parquet(tmp_path / "ds/test.parquet")
    assert list(te.columns) == ["statement_id", "text", "article_id", "group", "text_pair", "stance", "sentiment"]
    assert te.statement_id[0] == "toy-0" and te.text_pair[0] == "هدف"
    bad = cfg.model_copy(update={"text_column": "body"})
    with pytest.raises(ConfigError, match=r"column\(s\) \['body'\] not found"):
        load_benchmark(bad, tmp_path / "ds2", shared=tmp_path)


def test_benchmark_configs_validate():
    for name in ("mawqif", "arsarcasm-v2"):
        cfg = load_benchmark_config(name)
        assert cfg.published and cfg.tasks


# ----------------------------------------------------------------------------- refusing test
def test_tuning_commands_refuse_the_test_split(sample_dataset, tmp_path, capsys):
    assert cli("baseline", "--data", sample_dataset, "--tune-split", "test", "--out", tmp_path / "b") == 2
    assert "refuses the test split" in capsys.readouterr().err



def test_training_never_reads_the_test_split(sample_dataset, tmp_path):
    """Training reads train and dev only: it works on a copy of the dataset without test.parquet."""
    import shutil

    from nabra.config import load_train_config
    from nabra.train.trainer import load_data

    ds = tmp_path / "ds"
    shutil.copytree(sample_dataset, ds)
    (ds / "test.parquet").unlink()
    data, _ = load_data(load_train_config(REPO_ROOT / "configs/train/tiny.yaml"), ds)
    assert set(data) == {"train", "dev"}
    args = ["train", "--config", REPO_ROOT / "configs/train/tiny.yaml", "--data", ds, "--out", tmp_path / "run"]
    for s in TINY_FAST + ["training.max_steps=2"]:
        args += ["--set", s]
    assert cli(*args) == 0  # the whole run, not only its loader


def test_evaluate_names_an_absent_or_empty_split_and_the_splits_there_are(sample_dataset, tmp_path, capsys):
    """An empty scored split (a small weak-labelled build, or a filtered one) ended in a scikit-learn
    traceback; an absent one named the file but not the splits the dataset has."""
    import shutil

    import pandas as pd

    ds = tmp_path / "ds"
    shutil.copytree(sample_dataset, ds)
    n_train = len(pd.read_parquet(ds / "train.parquet"))
    pd.read_parquet(ds / "test.parquet").iloc[:0].to_parquet(ds / "test.parquet", index=False)
    model = tmp_path / "no-model"  # the split is checked before any model loads
    assert cli("evaluate", "--model", model, "--data", ds, "--split", "test", "--out", tmp_path / "r") == 2
    err = capsys.readouterr().err
    assert f"{ds}: its test split is empty (0 statements): nothing to score" in err and "Traceback" not in err
    assert f"train ({n_train})" in err and "test (0)" in err
    (ds / "test.parquet").unlink()
    assert cli("evaluate", "--model", model, "--data", ds, "--split", "dev", "test", "--out", tmp_path / "r") == 2
    err = capsys.readouterr().err
    assert f"{ds}: the dataset has no test split (test.parquet); it has train ({n_train}), dev (" in err
    assert not (tmp_path / "r").exists()
    # the baselines are tuned on dev: an empty dev is named too, by `evaluate` and by `baseline`
    pd.read_parquet(ds / "dev.parquet").iloc[:0].to_parquet(ds / "dev.parquet", index=False)
    assert cli("baseline", "--data", ds, "--out", tmp_path / "b") == 2
    assert "its dev split is empty (0 statements): nothing to tune the baselines on" in capsys.readouterr().err


# ----------------------------------------------------------------------------- reports
def test_report_is_reproducible_and_embeds_every_plot(sample_run, sample_dataset, tmp_path, monkeypatch):
    from PIL import Image

    # the report records the checkout's commit (and "-dirty"): a commit or an edit made by someone else
    # between the two evaluations made them differ, though nothing this test is about changed
    monkeypatch.setattr("nabra.evaluation.report.git_commit", lambda: "c0ffee")
    for name in ("r1", "r2"):
        assert cli("evaluate", "--model", sample_run, "--data", sample_dataset, "--split", "test",
                   "--bootstrap", "200", "--out", tmp_path / name) == 0
    a, b = (tmp_path / "r1/report.json").read_bytes(), (tmp_path / "r2/report.json").read_bytes()
    assert a == b
    rep = json.loads(a)
    assert set(rep["baselines"]["stance"]) == {"majority", "tfidf_svm", "weak_labeller"}
    assert rep["provenance"]["dataset_content_hash"] and rep["provenance"]["split_ids_hash"]
    assert rep["provenance"]["git_commit"] == "c0ffee"  # recorded (the real one in every other test)
    assert len(rep["provenance"]["split_rows_hash"]) == 40  # the content hash covers no statement text
    assert rep["provenance"]["models"][0]["run_config"]["training"]["seed"] == 42
    html = (tmp_path / "r1/report.html").read_text(encoding="utf-8")
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    pngs = sorted(p.name for p in (tmp_path / "r1").glob("*.png"))
    assert len(images) == len(pngs) == 6  # confusion, per-class F1, reliability for 2 tasks
    for b64 in images:
        Image.open(io.BytesIO(base64.b64decode(b64))).verify()
    assert "macro-F1" in (tmp_path / "r1/report.md").read_text(encoding="utf-8")


def test_multi_run_aggregation(sample_run, sample_dataset, tmp_path):
    assert cli("evaluate", "--runs", sample_run, sample_run, "--data", sample_dataset, "--no-baselines",
               "--bootstrap", "50", "--out", tmp_path / "agg") == 0
    rep = json.loads((tmp_path / "agg/report.json").read_text())
    assert rep["aggregate"]["stance"]["macro_f1"]["n"] == 2 and rep["aggregate"]["stance"]["macro_f1"]["std"] == 0.0


@pytest.mark.shared
def test_tfidf_baseline_on_mawqif_reaches_the_target(tmp_path, capsys):
    need_shared("benchmarks", "mawqif")
    assert cli("benchmark", "mawqif", "--bootstrap", "100", "--out", tmp_path / "m") == 0
    rep = json.loads((tmp_path / "m/report/report.json").read_text())
    assert rep["baselines"]["stance"]["tfidf_svm"]["headline_f1"] >= 0.73
    assert "published 0.7889" in capsys.readouterr().out


@pytest.mark.shared
def test_tfidf_baseline_on_arsarcasm_reaches_the_target(tmp_path):
    need_shared("benchmarks", "arsarcasm-v2")
    assert cli("benchmark", "arsarcasm-v2", "--bootstrap", "100", "--out", tmp_path / "a") == 0
    rep = json.loads((tmp_path / "a/report/report.json").read_text())
    assert rep["baselines"]["sentiment"]["tfidf_svm"]["headline_f1"] >= 0.64


@pytest.mark.shared
def test_a_benchmark_training_stopped_mid_way_is_continued_with_resume(tmp_path, capsys):
    """A rerun over a benchmark whose training was killed said "continue it with --resume OUT/run", a flag
    `nabra benchmark` did not have; a finished one was told to "use --resume" as well."""
    import shutil

    need_shared("benchmarks", "mawqif")
    # Mawqif with its stance task alone: one head and one task's baselines keep the five runs short
    cfg = yaml.safe_load((REPO_ROOT / "configs/benchmarks/mawqif.yaml").read_text(encoding="utf-8"))
    cfg["tasks"] = {"stance": cfg["tasks"]["stance"]}
    (tmp_path / "mawqif.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    bench = str(tmp_path / "mawqif.yaml")
    out = tmp_path / "m"
    first = ["benchmark", bench, "--out", out, "--bootstrap", "20", "--train-config", "tiny"] + [
        a for s in ("data.max_train_samples=200", "training.max_steps=10", "training.eval_strategy=steps",
                    "training.eval_steps=5") for a in ("--set", s)]
    assert cli(*first) == 0
    # as a kill after the first checkpoint leaves it
    shutil.rmtree(out / "run/model")
    shutil.rmtree(out / "run/checkpoints/checkpoint-10")
    (out / "run/dev_metrics.json").unlink()
    capsys.readouterr()
    assert cli(*first) == 2
    assert f"holds an unfinished training; continue or evaluate it with `nabra benchmark {bench} --out {out} --resume`" \
        in capsys.readouterr().err
    assert cli("benchmark", bench, "--out", out, "--resume", "--set", "training.max_steps=40") == 2
    assert "--set cannot change it" in capsys.readouterr().err
    assert cli("benchmark", bench, "--out", out, "--resume", "--bootstrap", "20") == 0
    assert json.loads((out / "run/dev_metrics.json").read_text())["global_step"] == 10
    assert json.loads((out / "report/report.json").read_text())["provenance"]["models"]
    assert cli("benchmark", bench, "--out", tmp_path / "new", "--resume") == 2
    assert "holds no training to continue" in capsys.readouterr().err


def test_saved_baselines_score_like_fresh_ones(sample_run, sample_dataset, tmp_path):
    assert cli("baseline", "--data", sample_dataset, "--out", tmp_path / "bl") == 0
    assert (tmp_path / "bl/stance.tfidf_svm.skops").exists()  # no pickle (issue 11)
    for name, extra in (("saved", ["--baselines", tmp_path / "bl"]), ("fresh", [])):
        assert cli("evaluate", "--model", sample_run, "--data", sample_dataset, "--bootstrap", "50",
                   "--out", tmp_path / name, *extra) == 0
    a = json.loads((tmp_path / "saved/report.json").read_text())["baselines"]
    b = json.loads((tmp_path / "fresh/report.json").read_text())["baselines"]
    assert a == b
    # and the saved folder is what was scored (a refit would give the same numbers): a majority label
    # edited in it moves that baseline alone
    meta = json.loads((tmp_path / "bl/baselines.json").read_text())
    other = next(l for l in a["stance"]["majority"]["labels"] if l != meta["info"]["stance"]["majority_label"])
    meta["info"]["stance"]["majority_label"] = other
    (tmp_path / "bl/baselines.json").write_text(json.dumps(meta))
    assert cli("evaluate", "--model", sample_run, "--data", sample_dataset, "--bootstrap", "50",
               "--out", tmp_path / "edited", "--baselines", tmp_path / "bl") == 0
    c = json.loads((tmp_path / "edited/report.json").read_text())["baselines"]
    labels = c["stance"]["majority"]["labels"]
    assert [row[labels.index(other)] for row in c["stance"]["majority"]["confusion"]] == \
        [sum(row) for row in c["stance"]["majority"]["confusion"]]  # every statement predicted `other`
    assert c["stance"]["tfidf_svm"] == a["stance"]["tfidf_svm"]
    # the weak labeller keeps the lexicon it was saved with (it took whatever lexicon was installed later)
    from nabra.evaluation.baselines import load_baselines

    weak = load_baselines(tmp_path / "bl")["models"]["stance"]["weak_labeller"].labeler
    assert weak.rules_path == tmp_path / "bl" / "weak_rules.yaml"
    assert weak.rules_hash == json.loads((tmp_path / "bl/baselines.json").read_text())["weak_rules_sha1"]


def test_statements_without_a_gold_label_are_left_out_of_that_task(sample_run, sample_dataset, tmp_path):
    """Training skips a statement with no gold label for a task; evaluation and the baselines raised."""
    import shutil

    import pandas as pd

    ds = tmp_path / "ds"
    shutil.copytree(sample_dataset, ds)
    for split in ("train", "dev", "test"):
        df = pd.read_parquet(ds / f"{split}.parquet")
        df.loc[0, "sentiment"] = None
        df.to_parquet(ds / f"{split}.parquet", index=False)
    assert cli("evaluate", "--model", sample_run, "--data", ds, "--split", "test", "--bootstrap", "20",
               "--out", tmp_path / "r") == 0
    rep = json.loads((tmp_path / "r/report.json").read_text())
    assert rep["unlabelled"] == {"sentiment": 1}
    assert rep["tasks"]["sentiment"]["model"]["n"] == rep["n_statements"] - 1 == rep["tasks"]["stance"]["model"]["n"] - 1
    assert rep["baselines"]["sentiment"]["tfidf_svm"]["n"] == rep["n_statements"] - 1


@pytest.mark.parametrize("setting, message", [
    ("training.metric_weights.stanse=1", "training.metric_weights: stanse is not a task of data.tasks (stance, sentiment)"),
    ("data.label_columns.sentimnt=x", "data.label_columns: sentimnt is not a task of data.tasks"),
    ("training.loss_weights.stance=-1", "training.loss_weights: weights must be >= 0"),
    ("training.metric_weights={stance: 0, sentiment: 0}", "every task weighs 0"),
])
def test_per_task_settings_name_real_tasks(sample_dataset, tmp_path, capsys, setting, message):
    """A misspelt task in a per-task setting was ignored; all-zero metric weights divided by zero."""
    assert cli("train", "--config", REPO_ROOT / "configs/train/tiny.yaml", "--data", sample_dataset,
               "--out", tmp_path / "run", "--set", setting) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_training_dev_macro_f1_is_the_reports():
    """The trainer averaged F1 over every label, evaluate over the labels in gold or predictions: on a dev
    split without a class the number that picked the checkpoint was not the report's."""
    from types import SimpleNamespace

    from nabra.evaluation.metrics import task_metrics
    from nabra.train.trainer import metric_fn

    labels = ["a", "b", "c", "d"]  # "d" neither in gold nor predicted
    y = np.array([0, 0, 1, 2, 2, 1])
    logits = np.eye(4)[[0, 1, 1, 2, 0, 1]]
    got = metric_fn({"stance": labels}, {})(SimpleNamespace(predictions=(logits,), label_ids=(y,)))
    want = task_metrics([labels[i] for i in y], [labels[i] for i in logits.argmax(1)], labels, n_boot=0)["macro_f1"]
    assert got["stance_macro_f1"] == pytest.approx(want, abs=1e-4) and want > 0.6


def test_a_rerun_replaces_the_whole_earlier_report_and_refuses_other_folders(sample_run, sample_dataset, tmp_path, capsys):
    """evaluate wrote into --out in place: a two-split report over a one-split one left that run's
    report.json, report.html and plots beside the new report.md (two reports that disagree); `--out` a file
    ended in a FileExistsError traceback after the scoring, and `--out` a run folder got report files in it."""
    out = tmp_path / "rep"
    ev = ["evaluate", "--model", sample_run, "--data", sample_dataset, "--no-baselines", "--bootstrap", "20"]
    assert cli(*ev, "--split", "test", "--out", out) == 0
    assert (out / "report.json").exists() and (out / "f1_stance.png").exists()
    assert cli(*ev, "--split", "test", "dev", "--out", out) == 0
    assert sorted(p.name for p in out.iterdir()) == ["dev", "report.md", "test"]
    assert cli(*ev, "--split", "dev", "--out", out) == 0  # and back: no split folder of the earlier run
    assert not (out / "test").exists() and json.loads((out / "report.json").read_text())["split"] == "dev"
    capsys.readouterr()
    (tmp_path / "file").write_text("x")
    assert cli(*ev, "--split", "test", "--out", tmp_path / "file") == 2
    assert "exists and is a file, not a folder" in capsys.readouterr().err
    before = sorted(p.name for p in sample_run.iterdir())
    assert cli(*ev, "--split", "test", "dev", "--out", sample_run) == 2
    assert "which `nabra evaluate` does not write: not replaced" in capsys.readouterr().err
    assert sorted(p.name for p in sample_run.iterdir()) == before


def test_baselines_of_another_dataset_are_refused_and_the_report_names_the_ones_it_scored(sample_run, sample_dataset,
                                                                                          tmp_path, capsys):
    """`--baselines` fitted on other data were scored as this split's baselines and report.json did not say which
    folder, dataset or seed they came from; a benchmark's (other tasks) ended in a KeyError traceback."""
    import shutil

    assert cli("baseline", "--data", sample_dataset, "--out", tmp_path / "bl") == 0
    ev = ["evaluate", "--model", sample_run, "--split", "test", "--bootstrap", "20", "--baselines"]
    assert cli(*ev, tmp_path / "bl", "--data", sample_dataset, "--out", tmp_path / "r") == 0
    rep = json.loads((tmp_path / "r/report.json").read_text())
    man = json.loads((sample_dataset / "manifest.json").read_text())
    assert rep["provenance"]["baselines"]["dataset_content_hash"] == man["content_hash"]
    assert rep["provenance"]["baselines"]["seed"] == 0
    assert f"fitted on dataset hash `{man['content_hash']}`" in (tmp_path / "r/report.md").read_text(encoding="utf-8")
    other = tmp_path / "other"  # the same labels, other statements: another content hash
    shutil.copytree(sample_dataset, other)
    (other / "manifest.json").write_text(json.dumps({**man, "content_hash": "0" * 40}))
    capsys.readouterr()
    assert cli(*ev, tmp_path / "bl", "--data", other, "--out", tmp_path / "r2") == 2
    assert f"fitted on another dataset (dataset content hash {man['content_hash']}" in capsys.readouterr().err
    meta = json.loads((tmp_path / "bl/baselines.json").read_text())  # an older folder, no hash, a benchmark's task
    meta.pop("dataset_content_hash")
    meta["models"]["sarcasm"], meta["info"]["sarcasm"] = ["majority"], {"majority_label": "Yes"}
    (tmp_path / "bl/baselines.json").write_text(json.dumps(meta))
    assert cli(*ev, tmp_path / "bl", "--data", sample_dataset, "--out", tmp_path / "r3") == 2
    assert "fitted on another dataset (tasks sarcasm, which" in capsys.readouterr().err
    assert not (tmp_path / "r2").exists() and not (tmp_path / "r3").exists()


def test_benchmark_refuses_an_out_that_is_a_file_or_another_folder(sample_run, tmp_path, capsys):
    """`nabra benchmark mawqif --out FILE` was a FileExistsError traceback; `--out RUN` put dataset/, run/ and
    report/ inside the run folder. Both are said before the benchmark is read (no shared data needed)."""
    (tmp_path / "file").write_text("x")
    before = sorted(p.name for p in sample_run.iterdir())
    for out, msg in ((tmp_path / "file", "exists and is a file"), (sample_run, "which `nabra benchmark` does not write")):
        assert cli("benchmark", "mawqif", "--out", out) == 2
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err
    assert sorted(p.name for p in sample_run.iterdir()) == before


def test_several_runs_the_tables_give_the_mean_and_name_the_first_run(sample_run, sample_dataset, tmp_path):
    """With --runs the "model" row was the first run alone, unlabelled, and the side-by-side table of several
    splits (the README's `--runs ... --split test test-v2`) had no mean ± std at all."""
    assert cli("evaluate", "--runs", sample_run, sample_run, "--data", sample_dataset, "--split", "test", "dev",
               "--no-baselines", "--bootstrap", "20", "--out", tmp_path / "agg") == 0
    top = (tmp_path / "agg/report.md").read_text(encoding="utf-8")
    for split in ("test", "dev"):
        rep = json.loads((tmp_path / f"agg/{split}/report.json").read_text())
        a = rep["aggregate"]["stance"]["macro_f1"]
        assert f"| {split} | {rep['n_statements']} | stance | mean of 2 runs | {a['mean']:.3f} ± {a['std']:.3f} |" in top
        assert f"| {split} | {rep['n_statements']} | stance | model (run 1) |" in top
    assert "| stance | mean of 2 runs |" in (tmp_path / "agg/test/report.md").read_text(encoding="utf-8")


def test_model_and_runs_together_are_refused(sample_run, sample_dataset, tmp_path, capsys):
    """`--model A --runs B` scored B alone and said nothing of A (report.json named B only)."""
    assert cli("evaluate", "--model", tmp_path / "a", "--runs", sample_run, "--data", sample_dataset,
               "--no-baselines", "--out", tmp_path / "r") == 2
    assert "not both (several runs: --runs" in capsys.readouterr().err and not (tmp_path / "r").exists()
