"""`nabra label audit`: out-of-fold probabilities (finetune through trainer.run, or embeddings + LR), cleanlab's
suspects, resume, the blind re-read sheet and its import into records that win over the earlier final label."""
from __future__ import annotations

import csv
import json

import pandas as pd
import pytest

from conftest import REPO_ROOT, TINY_FAST, cli

FLIPPED = 8  # neutral statements planted as "support"


@pytest.fixture(scope="module")
def audit_data(sample_corpus, sample_gold_records, tmp_path_factory):
    """A gold dataset on the sample with FLIPPED neutral stances flipped to support, train/dev/test."""
    from nabra.data.annotate import write_records

    d = tmp_path_factory.mktemp("audit")
    recs = [dict(r) for r in sample_gold_records]
    neutral = [r for r in recs if r["stance"] == "neutral"]
    flipped = {r["statement_id"] for r in neutral[::max(1, len(neutral) // FLIPPED)][:FLIPPED]}
    for r in recs:
        if r["statement_id"] in flipped:
            r["stance"] = "support"
    (d / "ann").mkdir()
    (d / "splits").mkdir()
    write_records(recs, d / "ann" / "gold.jsonl")
    assert cli("dataset", "build", "--corpus", sample_corpus, "--annotations", d / "ann", "--splits", d / "splits",
               "--out", d / "ds") == 0
    return d, flipped


def _audit(d, out, *extra):
    args = ["label", "audit", "--config", REPO_ROOT / "configs/train/tiny.yaml", "--data", d / "ds", "--folds", "2",
            "--out", out, *extra]
    for s in TINY_FAST:
        args += ["--set", s]
    return cli(*args)


def test_audit_scores_out_of_fold_resumes_and_its_sheet_changes_the_dataset(audit_data, sample_corpus, capsys):
    """Each statement is scored by the model of the fold that held it out, and the suspects carry those
    probabilities. (Whether the planted flips rank high is not asserted: a tiny BERT trained on 35 weak-
    labelled statements gives every label ~1/6, and e5 + LR on them ranks the flips mid-list too.)"""
    import numpy as np

    from nabra.evaluation.audit import all_gold
    from nabra.train.predict import StanceClassifier

    d, flipped = audit_data
    out = d / "audit"
    assert _audit(d, out) == 0
    sus = pd.read_csv(out / "suspects.csv")
    assert list(sus.columns) == ["statement_id", "task", "given", "suggested", "self_confidence", "rank"]
    info = json.loads((out / "audit.json").read_text())
    assert info["statements"] == 70 and info["folds"] == 2 and info["cleanlab_version"] and info["dataset_content_hash"]
    assert sum(info["statements_by_split"].values()) == 70 and set(info["statements_by_split"]) == {"train", "dev", "test"}
    gold = all_gold(d / "ds").set_index("statement_id")
    held = {}
    for f in (0, 1):
        saved = np.load(out / "folds" / f"fold{f}" / "probs.npz", allow_pickle=False)
        clf = StanceClassifier.from_pretrained(out / "folds" / f"fold{f}" / "run")
        again = clf.predict_proba(gold.text[saved["statement_id"]].tolist())
        assert np.allclose(again["stance"], saved["stance"], atol=1e-5)  # the fold's own model, on its held-out part
        held.update({sid: dict(zip(clf.tasks["stance"], row)) for sid, row in zip(saved["statement_id"], saved["stance"])})
    assert len(held) == 70
    stance = sus[sus.task == "stance"]
    assert len(stance) and all(abs(held[r.statement_id][r.given] - r.self_confidence) < 1e-5 for r in stance.itertuples())
    assert list(stance.sort_values("rank").self_confidence) == sorted(stance.self_confidence)  # least confident first

    # resume: a finished fold is skipped; a lost fold is trained again
    f0 = out / "folds" / "fold0" / "probs.npz"
    mtime = f0.stat().st_mtime_ns
    (out / "folds" / "fold1" / "probs.npz").unlink()
    import shutil

    shutil.rmtree(out / "folds" / "fold1" / "run")
    capsys.readouterr()
    assert _audit(d, out) == 0
    log = capsys.readouterr().out
    assert "fold 1/2: done already, skipped" in log and "fold 2/2: training on" in log
    assert f0.stat().st_mtime_ns == mtime
    assert _audit(d, out, "--seed", "5") == 2  # other folds in the same folder: refused
    assert "choose another --out" in capsys.readouterr().err

    # the sheet: text and two candidates, nothing saying which is given
    sheet = d / "sheet.csv"
    assert cli("label", "audit-sheet", "--suspects", out / "suspects.csv", "--corpus", sample_corpus, "--top", "5",
               "--out", sheet) == 0
    rows = list(csv.DictReader(sheet.open(encoding="utf-8")))
    assert list(rows[0]) == ["item", "statement_id", "task", "text", "label_a", "label_b", "chosen", "reason"]
    given = {(r.statement_id, r.task): r.given for r in sus.itertuples()}
    assert all(r["text"] and not r["chosen"] and not r["reason"] for r in rows)
    assert all({r["label_a"], r["label_b"]} >= {given[(r["statement_id"], r["task"])]} for r in rows)
    a_given = [r["label_a"] == given[(r["statement_id"], r["task"])] for r in rows]
    if len(rows) >= 6:
        assert 0 < sum(a_given) < len(rows)  # the given label is not always in the same column

    # the adjudicator picks the other label on a stance row; import; the rebuilt dataset carries it
    row = next(r for r in rows if r["task"] == "stance")
    new = "b" if row["label_a"] == given[(row["statement_id"], "stance")] else "a"
    row["chosen"], row["reason"] = new, "the statement reports, it takes no side"
    with sheet.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    before = (d / "ann" / "gold.jsonl").read_text()
    assert cli("label", "audit-import", sheet, "--annotations", d / "ann", "--out", d / "ann" / "gold_audit.jsonl") == 0
    rec = [json.loads(l) for l in (d / "ann" / "gold_audit.jsonl").read_text().splitlines()]
    want = row["label_" + new]
    assert len(rec) == 1 and rec[0]["pass"] == "final" and rec[0]["annotator"] == "llm-audit"
    assert rec[0]["stance"] == want and rec[0]["reason"].startswith("stance: ")
    assert (d / "ann" / "gold.jsonl").read_text() == before  # the earlier records stay
    assert cli("dataset", "build", "--corpus", sample_corpus, "--annotations", d / "ann", "--splits", d / "splits",
               "--out", d / "ds2") == 0
    ds2 = pd.concat(pd.read_parquet(d / "ds2" / f"{s}.parquet") for s in ("train", "dev", "test")).set_index("statement_id")
    assert ds2.loc[row["statement_id"], "stance"] == want != given[(row["statement_id"], "stance")]
    assert len(ds2) == 70


def test_finals_take_the_audit_record_and_finalize_keeps_it():
    from nabra.data.annotate import finalize, finals

    base = {"statement_id": "s1", "article_id": "a", "start": 0, "end": 5, "text_sha1": "x", "sentiment": "neutral"}
    recs = [{**base, "stance": "support", "annotator": "A", "pass": 1},
            {**base, "stance": "support", "annotator": "A", "pass": "final"},
            {**base, "stance": "neutral", "annotator": "llm-audit", "pass": "final", "reason": "no side taken",
             "audit": True},
            {**base, "statement_id": "s2", "stance": "warning", "annotator": "llm-adjudicator", "pass": "final",
             "reason": "rule 3"}]  # an adjudication with a reason is no audit: it stays the final record
    assert [r["stance"] for r in finals(recs)] == ["neutral", "warning"]
    out, _ = finalize(recs)
    assert [r["stance"] for r in finals(out) if r["statement_id"] == "s1"] == ["neutral"]


def test_embeddings_lr_audit_on_a_tiny_encoder(audit_data, sample_run, tmp_path):
    """The CPU recipe: frozen embeddings of a (random, tiny) BERT + logistic regression per fold."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    enc = tmp_path / "enc"
    tok = AutoTokenizer.from_pretrained(sample_run / "tokenizer")
    BertModel(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(enc)
    tok.save_pretrained(enc)
    d, _ = audit_data
    out = tmp_path / "audit"
    assert cli("label", "audit", "--recipe", "embeddings-lr", "--encoder", enc, "--encoder-prefix", "",
               "--data", d / "ds", "--folds", "3", "--out", out) == 0
    sus = pd.read_csv(out / "suspects.csv")
    assert set(sus.task) <= {"stance", "sentiment"} and len(sus) > 0
    assert sorted(p.name for p in (out / "folds").iterdir()) == ["fold0", "fold1", "fold2"]
    assert json.loads((out / "audit.json").read_text())["recipe"] == "embeddings-lr"
