"""Shared fixtures: the embedded sample (always), ../shared data (skipped with a message when absent).

Expensive artefacts (corpora, a trained tiny model) are built once per session.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach for the hub
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from nabra.config import REPO_ROOT, shared_dir  # noqa: E402

SAMPLE = REPO_ROOT / "data" / "sample"
SHARED = shared_dir()


def need_shared(*parts: str) -> Path:
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"needs {p} (the shared data folder; set NABRA_SHARED)")
    return p


def cli(*args: str) -> int:
    """Runs `nabra ARGS` in-process; returns the exit code."""
    from nabra.cli.main import main

    return main([str(a) for a in args])


@pytest.fixture(scope="session")
def sample_corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample") / "corpus"
    assert cli("corpus", "build", "--input", SAMPLE / "articles.jsonl", "--out", out, "--no-progress") == 0
    return out


@pytest.fixture(scope="session")
def sample_dataset(sample_corpus, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("sample_ds")
    assert cli("label", "weak", "--corpus", sample_corpus, "--out", d / "weak") == 0
    assert cli("dataset", "build", "--corpus", sample_corpus, "--weak", d / "weak", "--out", d / "ds") == 0
    return d / "ds"


@pytest.fixture(scope="session")
def sample_gold_records(sample_corpus, sample_dataset) -> list[dict]:
    """Final standoff records for every sample statement, its weak labels standing in for gold."""
    import pandas as pd

    from nabra.data.corpus import load_corpus

    st = load_corpus(sample_corpus)[0].set_index("statement_id")
    ds = pd.concat([pd.read_parquet(sample_dataset / f"{s}.parquet") for s in ("train", "dev", "test")])
    return [{"statement_id": r.statement_id, "article_id": r.article_id, "start": int(st.loc[r.statement_id, "start"]),
             "end": int(st.loc[r.statement_id, "end"]), "text_sha1": st.loc[r.statement_id, "text_sha1"],
             "stance": r.stance, "sentiment": r.sentiment, "annotator": "weak", "pass": "final"}
            for r in ds.sort_values("statement_id").itertuples()]


TINY_FAST = ["training.epochs=3", "model.tiny.vocab_size=600", "training.early_stopping_patience=0",
             "training.batch_size=8", "logging.logging_steps=5"]


@pytest.fixture(scope="session")
def sample_run(sample_dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample_run") / "run"
    args = ["train", "--config", REPO_ROOT / "configs/train/tiny.yaml", "--data", sample_dataset, "--out", out]
    for s in TINY_FAST:
        args += ["--set", s]
    assert cli(*args) == 0
    return out


@pytest.fixture(scope="session")
def snn_corpus(tmp_path_factory) -> Path:
    src = need_shared("data", "saudinewsnet")
    out = tmp_path_factory.mktemp("snn") / "corpus"
    assert cli("corpus", "build", "--input", src, "--out", out, "--no-progress") == 0
    return out


@pytest.fixture(scope="session")
def gold_dataset(snn_corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gold") / "ds"
    assert cli("dataset", "build", "--corpus", snn_corpus, "--annotations", REPO_ROOT / "data/annotations",
               "--out", out) == 0
    return out


@pytest.fixture(scope="session")
def gold_run(gold_dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gold_run") / "run"
    # 6 epochs (1,512 steps; 12 took 300 s of the suite) on the config's 2 threads: 122 s against 174 s on one
    # (the suite's largest cost). Dev stance / sentiment 0.479 / 0.552 (one thread: 0.477 / 0.556), int8 on test
    # +0.41 / 0.00
    assert cli("train", "--config", REPO_ROOT / "configs/train/tiny.yaml", "--data", gold_dataset, "--out", out,
               "--set", "training.epochs=6") == 0
    return out
