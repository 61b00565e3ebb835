"""Several processes on one run (`torchrun` or `accelerate launch`, one per GPU): the Trainer shares the
batches out, nabra's own files and lines are written once, by the main process, and the run records how many
processes trained it. Checked on CPU with two gloo processes: the code path of several GPUs."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO_ROOT, cli


def _torchrun(*args, cwd) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "nabra.cli.main", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=cwd)


def test_two_processes_train_one_run_that_scores_as_it_says(sample_dataset, tmp_path):
    out = tmp_path / "run"
    sets = ["training.max_steps=6", "training.eval_strategy=steps", "training.eval_steps=3", "training.batch_size=4",
            "model.tiny.vocab_size=600", "training.threads=1", "training.early_stopping_patience=1"]
    res = _torchrun("train", "--config", REPO_ROOT / "configs/train/tiny.yaml", "--data", sample_dataset,
                    "--out", out, *[a for s in sets for a in ("--set", s)], cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    # each process printed every line, and the replica (log level "warning") the Trainer's warnings
    assert res.stdout.count("model written to") == 1 and res.stdout.count("training ") == 1, res.stdout
    assert "early stopping required" not in res.stderr
    info = json.loads((out / "run_info.json").read_text())
    assert info["device"]["processes"] == 2
    m = json.loads((out / "dev_metrics.json").read_text())
    n_train = json.loads((sample_dataset / "manifest.json").read_text())["counts"]["train"]["statements"]
    steps_per_epoch = -(-(-(-n_train // 2)) // 4)  # each process: half the statements, batches of 4
    assert abs(m["epoch"] - 6 / steps_per_epoch) < 1e-3, (m["epoch"], n_train)
    # the dev scores it recorded (predictions gathered from both processes) are the saved model's, scored alone
    assert cli("evaluate", "--model", out, "--data", sample_dataset, "--split", "dev", "--no-baselines",
               "--bootstrap", "10", "--out", tmp_path / "rep") == 0
    rep = json.loads((tmp_path / "rep/report.json").read_text())
    for task in ("stance", "sentiment"):
        assert abs(rep["tasks"][task]["model"]["macro_f1"] - m[f"dev_{task}_macro_f1"]) < 1e-5, task


def test_two_processes_pretrain_into_one_folder(sample_corpus, tmp_path):
    """Each process wrote --out through its own temp folder and renamed it over the other's, racing."""
    sets = ["max_statements=30", "training.max_steps=2", "model.tiny.vocab_size=300", "training.threads=1"]
    res = _torchrun("pretrain", "--config", REPO_ROOT / "configs/pretrain/tiny.yaml", "--corpus", sample_corpus,
                    "--out", tmp_path / "mlm", *[a for s in sets for a in ("--set", s)], cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("checkpoint written to") == 1, res.stdout
    info = json.loads((tmp_path / "mlm/pretrain_info.json").read_text())
    assert info["steps"] == 2
    # the recorded loss is both processes' (it was the main one's own below the Trainer's logging steps)
    per = info["train_loss_per_process"]
    assert len(per) == 2 and per[0] != per[1] and info["train_loss"] == pytest.approx(sum(per) / 2, abs=1e-4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlm"]  # no temp folder of either process left
