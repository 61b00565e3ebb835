"""Label schema, weak labels, gold records, agreement, Label Studio/CSV round trip, splits."""
from __future__ import annotations

import json
import re
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from conftest import REPO_ROOT, SAMPLE, cli, need_shared
from nabra.config import load_labels
from nabra.data.annotate import agreement, finalize, finals, read_records
from nabra.data.corpus import load_corpus
from nabra.data.weak import WeakLabeler, combine_votes, label_statements

SCHEMA = load_labels()


def test_labels_yaml_matches_the_spec():
    spec = need_shared("spec", "labels.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \| ([^|]+) \|$", spec, re.M)
    stance = {name: (ar.strip(), d.strip()) for name, ar, d in rows}
    assert set(SCHEMA.tasks["stance"].labels) == set(stance)
    for name, (ar, definition) in stance.items():
        assert SCHEMA.tasks["stance"].labels[name].arabic == ar
        assert SCHEMA.tasks["stance"].labels[name].definition == definition
    assert SCHEMA.tasks["stance"].tie_break == ["condolence", "warning", "condemnation", "conciliatory", "support", "neutral"]
    assert set(SCHEMA.tasks["sentiment"].labels) == {"positive", "negative", "neutral"}


def test_no_label_name_hardcoded_outside_configs():
    """Stages read label names from configs/labels.yaml: none is spelled out in the code."""
    # "neutral" is also a word of the code's own; "support" is also the per-class count of a metric
    names = [l for t in SCHEMA.tasks.values() for l in t.labels if l not in ("neutral", "support")]
    scanned = []
    for folder in ("data", "train", "evaluation", "nabra"):
        for f in (REPO_ROOT / folder).rglob("*.py"):  # rglob: nabra/cli/ too
            scanned.append(f.relative_to(REPO_ROOT).as_posix())
            text = f.read_text(encoding="utf-8")
            for n in names:
                assert f'"{n}"' not in text and f"'{n}'" not in text, f"{f.name} names label {n}"
    assert "nabra/cli/predict.py" in scanned and "nabra/cli/label.py" in scanned


@pytest.mark.parametrize("text,stance", [
    ("بعث الأمير برقية عزاء لأسرة الفقيد", "condolence"),
    ("حذرت الوزارة من عواقب وخيمة للمخالفين", "warning"),
    ("أدانت الجامعة العربية الهجوم على المدنيين", "condemnation"),
    ("بحث الجانبان سبل تعزيز التعاون بين البلدين", "conciliatory"),
    ("أشاد المجلس بنجاح موسم الحج", "support"),
    ("بلغ حجم التداول 5 مليار ريال", "neutral"),
])
def test_weak_labeller_on_our_examples(text, stance):
    posts, _ = label_statements([text], SCHEMA)
    assert SCHEMA.tasks["stance"].names[posts["stance"][0].argmax()] == stance


def test_negated_cue_abstains():
    lab = WeakLabeler(SCHEMA)
    assert (lab.votes(["رفض التحذيرات الأمريكية"], "stance") == -1).all() or \
        SCHEMA.tasks["stance"].names.index("warning") not in lab.votes(["رفض التحذيرات الأمريكية"], "stance")


def test_label_model_tie_break_and_default():
    names = SCHEMA.tasks["stance"].names
    order = [names.index(x) for x in SCHEMA.tasks["stance"].tie_break]
    votes = np.array([[names.index("support"), names.index("condolence")], [-1, -1]])
    post = combine_votes(votes, len(names), order, default=names.index("neutral"))
    assert names[post[0].argmax()] == "condolence"  # a tie goes to condolence (spec rule 5)
    assert names[post[1].argmax()] == "neutral"
    assert post[0].max() < 0.6  # two votes: confidence shrunk


def test_gold_annotations_meet_the_targets():
    recs = read_records(REPO_ROOT / "data" / "annotations")
    final = finals(recs)  # an audit record replaces the earlier final record of its statement
    assert len(final) >= 5000 and len({r["statement_id"] for r in final}) == len(final)  # issue 12
    counts = Counter(r["stance"] for r in final)
    assert set(counts) == set(SCHEMA.tasks["stance"].labels) and min(counts.values()) >= 400
    ag = agreement(recs)
    assert ag["double_annotated"] >= 1300
    assert ag["stance"]["kappa"] >= 0.80 and ag["sentiment"]["kappa"] >= 0.80
    # every disagreement was adjudicated into the final record
    p1 = {r["statement_id"]: r for r in recs if r["pass"] == 1}
    p2 = {r["statement_id"]: r for r in recs if r["pass"] == 2}
    fin = {r["statement_id"]: r for r in final}
    for sid in p2:
        if (p1[sid]["stance"], p1[sid]["sentiment"]) != (p2[sid]["stance"], p2[sid]["sentiment"]):
            assert fin[sid]["annotator"] in ("llm-adjudicator", "llm-audit")  # the audit may re-read it later
    for f in (REPO_ROOT / "data/annotations").glob("gold*.jsonl"):  # standoff only: no third-party text
        assert not any(len(l) > 0 and "text" in json.loads(l) for l in f.read_text().splitlines()), f


def test_agreement_and_finalize():
    base = {"article_id": "a", "start": 0, "end": 5, "text_sha1": "x"}
    recs = [{**base, "statement_id": "s1", "stance": "support", "sentiment": "positive", "annotator": "A", "pass": 1},
            {**base, "statement_id": "s1", "stance": "support", "sentiment": "positive", "annotator": "B", "pass": 2},
            {**base, "statement_id": "s2", "stance": "warning", "sentiment": "negative", "annotator": "A", "pass": 1},
            {**base, "statement_id": "s2", "stance": "condemnation", "sentiment": "negative", "annotator": "B", "pass": 2},
            {**base, "statement_id": "s3", "stance": "neutral", "sentiment": "neutral", "annotator": "A", "pass": 1}]
    out, pending = finalize(recs)
    assert pending == ["s2"]
    out, pending = finalize(recs, [{"statement_id": "s2", "stance": "warning", "sentiment": "negative"}])
    fin = {r["statement_id"]: r for r in out if r["pass"] == "final"}
    assert not pending and fin["s1"]["annotator"] == "agreed" and fin["s2"]["stance"] == "warning"
    assert agreement(recs)["stance"]["disagreements"] == 1


def test_annotate_finalize_cli_keeps_reasons_and_refuses_unsettled(sample_corpus, tmp_path, capsys):
    from nabra.data.annotate import write_records

    p1 = _records_for(sample_corpus, 4)
    p2 = [{**r, "annotator": "other", "pass": 2} for r in p1]
    p2[1]["stance"] = "neutral" if p1[1]["stance"] != "neutral" else "support"   # one disagreement
    write_records(p1, tmp_path / "p1.jsonl")
    write_records(p2, tmp_path / "p2.jsonl")
    out = tmp_path / "gold_new.jsonl"
    args = ["annotate", "finalize", tmp_path / "p1.jsonl", tmp_path / "p2.jsonl", "--corpus", sample_corpus, "--out", out]
    assert cli(*args) == 2 and not out.exists()
    assert p1[1]["statement_id"] in capsys.readouterr().err
    sid = p1[1]["statement_id"]
    (tmp_path / "adj.csv").write_text(f"statement_id,stance,sentiment,reason\n{sid},warning,negative,rule 3 threat\n")
    assert cli(*args, "--adjudications", tmp_path / "adj.csv") == 2  # who adjudicated is said, not assumed
    assert "--adjudications needs --adjudicator NAME" in capsys.readouterr().err and not out.exists()
    assert cli(*args, "--adjudications", tmp_path / "adj.csv", "--adjudicator", "reader-3") == 0, capsys.readouterr().err
    fin = {r["statement_id"]: r for r in read_records(out) if r["pass"] == "final"}
    assert len(fin) == 4 and fin[sid]["stance"] == "warning" and fin[sid]["reason"] == "rule 3 threat"
    assert fin[sid]["annotator"] == "reader-3" and fin[p1[0]["statement_id"]]["annotator"] == "agreed"
    # an adjudication where the readers agree is said, not dropped in silence; an audit record among the
    # inputs stays (it was filtered out with the other final records); a Windows-1256 reason is read
    agreed = p1[0]["statement_id"]
    (tmp_path / "adj2.csv").write_bytes(f"statement_id,stance,sentiment,reason\n{sid},warning,negative,تهديد صريح بعقوبة على المخالفين في البيان الرسمي\n"
                                        f"{agreed},neutral,neutral,نظرة ثانية على الجملة دون تغيير في الحكم\n".encode("cp1256"))
    audit = {**p1[2], "stance": "neutral", "annotator": "llm-audit", "pass": "final", "audit": True, "reason": "re-read"}
    write_records([audit], tmp_path / "gold_audit.jsonl")
    capsys.readouterr()
    assert cli("annotate", "finalize", tmp_path / "p1.jsonl", tmp_path / "p2.jsonl", tmp_path / "gold_audit.jsonl",
               "--corpus", sample_corpus, "--out", out, "--adjudications", tmp_path / "adj2.csv",
               "--adjudicator", "reader-3") == 0
    assert f"1 adjudication(s) not applied (their readings agree, or there is none): {agreed}" in capsys.readouterr().err
    recs = read_records(out)
    assert [r["reason"] for r in recs if r.get("audit")] == ["re-read"]
    assert next(r for r in recs if r["statement_id"] == sid and r["pass"] == "final")["reason"] == "تهديد صريح بعقوبة على المخالفين في البيان الرسمي"


# ----------------------------------------------------------------------------- interop round trip
def _records_for(corpus, n=6):
    st = load_corpus(corpus)[0].iloc[:n]
    labels = ["support", "warning", "neutral", "condolence", "condemnation", "conciliatory"]
    return [{"statement_id": r.statement_id, "article_id": r.article_id, "start": int(r.start), "end": int(r.end),
             "text_sha1": r.text_sha1, "stance": labels[i % 6], "sentiment": ["positive", "negative", "neutral"][i % 3],
             "annotator": "tester", "pass": 1} for i, r in enumerate(st.itertuples())]


def test_export_edit_import_round_trip(sample_corpus, tmp_path):
    from nabra.data.annotate import write_records

    recs = _records_for(sample_corpus)
    write_records(recs, tmp_path / "gold_in.jsonl")
    assert cli("annotate", "export", "--corpus", sample_corpus, "--ids", tmp_path / "gold_in.jsonl", "--pass", "1",
               "--out", tmp_path / "batch.json") == 0
    tasks = json.loads((tmp_path / "batch.json").read_text(encoding="utf-8"))
    assert len(tasks) == 6 and tasks[0]["data"]["text"]
    # an annotator edits one label in Label Studio
    tasks[0]["annotations"][0]["result"][0]["value"]["choices"] = ["condemnation"]
    (tmp_path / "edited.json").write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")
    assert cli("annotate", "import", tmp_path / "edited.json", "--corpus", sample_corpus,
               "--out", tmp_path / "back.jsonl") == 0
    back = {r["statement_id"]: r for r in read_records(tmp_path / "back.jsonl")}
    orig = {r["statement_id"]: r for r in recs}
    edited = tasks[0]["data"]["statement_id"]
    assert back[edited]["stance"] == "condemnation"
    for sid, r in orig.items():
        if sid != edited:
            assert back[sid] == r
    # the CSV written beside it reads back to the same records
    assert cli("annotate", "import", tmp_path / "batch.csv", "--corpus", sample_corpus, "--out", tmp_path / "csv.jsonl") == 0
    assert {r["statement_id"]: r for r in read_records(tmp_path / "csv.jsonl")} == orig


def test_bad_import_fails_with_a_message_per_record(sample_corpus, tmp_path, capsys):
    st = load_corpus(sample_corpus)[0]
    rows = [{"statement_id": st.statement_id[0], "stance": "angry", "sentiment": "negative"},
            {"statement_id": "a000-999", "stance": "support", "sentiment": "positive"},
            {"statement_id": st.statement_id[1], "text_sha1": "0" * 40, "stance": "support", "sentiment": "positive"},
            {"statement_id": st.statement_id[2], "stance": "support", "sentiment": "positive"}]
    pd.DataFrame(rows).to_csv(tmp_path / "bad.csv", index=False)
    assert cli("annotate", "import", tmp_path / "bad.csv", "--corpus", sample_corpus, "--out", tmp_path / "o.jsonl") == 1
    err = capsys.readouterr().err
    assert "bad.csv:2: unknown stance label 'angry'" in err
    assert "bad.csv:3: unknown statement id 'a000-999'" in err
    assert "bad.csv:4: text_sha1" in err
    assert len(read_records(tmp_path / "o.jsonl")) == 1
    assert (tmp_path / "o.rejects.txt").read_text().count("\n") == 3


def test_label_studio_results_of_odd_shapes_are_rejected_by_task(sample_corpus, tmp_path, capsys):
    """A `result` whose value is no object or whose choices are no list gave a traceback; an unknown
    from_name was dropped silently. Each such task is now rejected naming it, and the good one kept."""
    st = load_corpus(sample_corpus)[0]

    def task(i, result):
        return {"id": 100 + i, "data": {"statement_id": st.statement_id[i], "text_sha1": st.text_sha1[i]},
                "annotations": [{"completed_by": "r1", "result": result}]}

    good = [{"from_name": "stance", "value": {"choices": ["neutral"]}},
            {"from_name": "sentiment", "value": {"choices": ["neutral"]}}]
    odd = {"its annotation's 'result' is not a list of objects (got {\"a\": 1})": {"a": 1},
           "its annotation's 'result' is not a list of objects (got null)": None,
           "result item 0 (stance): no value.choices": [{"from_name": "stance"}],
           "result item 1 (sentiment): no value.choices": [good[0], {"from_name": "sentiment", "value": "neutral"}],
           "result item 0 (stance): value.choices must be a list of one label, got {'a': 1}":
               [{"from_name": "stance", "value": {"choices": {"a": 1}}}],
           "result item 0 (stance): value.choices must be a list of one label, got 5":
               [{"from_name": "stance", "value": {"choices": 5}}],
           "result item 0: unknown from_name 'stanse' (known: stance, sentiment)":
               [{"from_name": "stanse", "value": {"choices": ["neutral"]}}, good[1]]}
    tasks = [task(i, r) for i, r in enumerate(odd.values())] + [task(len(odd), good)]
    (tmp_path / "ls.json").write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")
    out = tmp_path / "gold_new.jsonl"
    assert cli("annotate", "import", tmp_path / "ls.json", "--corpus", sample_corpus, "--out", out) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    rejects = (tmp_path / "gold_new.rejects.txt").read_text(encoding="utf-8").splitlines()
    assert rejects == [f"ls.json task #{i} (id {100 + i}, {st.statement_id[i]}): {why}" for i, why in enumerate(odd)]
    (rec,) = read_records(out)
    assert rec["statement_id"] == st.statement_id[len(odd)] and rec["stance"] == rec["sentiment"] == "neutral"


@pytest.mark.parametrize("change, reason", [
    ({"stance": 3}, "unknown stance label 3"), ({"stance": None}, "unknown stance label None"),
    ({"stance": ["neutral"]}, "unknown stance label ['neutral']"), ({"sentiment": {"a": 1}}, "unknown sentiment label {'a': 1}"),
    ({"statement_id": 5}, "statement_id must be a string, got 5"), ({"pass": "3"}, "pass must be 1, 2 or \"final\", got '3'"),
])
def test_gold_records_with_bad_label_types_are_rejected_by_line_and_the_rest_built(
        sample_corpus, sample_gold_records, tmp_path, capsys, change, reason):
    """A stance that is a number, null or a list, a sentiment that is an object: a scikit-learn or pyarrow
    traceback from `dataset build`; a statement_id that is no string stopped the whole build."""
    recs = [dict(r) for r in sample_gold_records]
    recs[3].update(change)
    ann = tmp_path / "gold.jsonl"
    ann.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs), encoding="utf-8")
    (tmp_path / "splits").mkdir()  # none frozen
    assert cli("dataset", "build", "--corpus", sample_corpus, "--annotations", ann, "--splits", tmp_path / "splits",
               "--out", tmp_path / "ds") == 0
    out = capsys.readouterr()
    assert f"{ann}:4: {reason}" in out.out and "invalid records: 1" in out.out and "Traceback" not in out.err
    assert (tmp_path / "ds" / "rejects.txt").read_text(encoding="utf-8").startswith(f"{ann}:4: {reason}")
    built = pd.concat(pd.read_parquet(tmp_path / "ds" / f"{s}.parquet") for s in ("train", "dev", "test"))
    assert len(built) == len(recs) - 1 and sample_gold_records[3]["statement_id"] not in set(built.statement_id)
    assert json.loads((tmp_path / "ds" / "manifest.json").read_text())["invalid_records"] == 1


# ----------------------------------------------------------------------------- splits
def test_sample_splits_keep_articles_together(sample_dataset):
    parts = {s: pd.read_parquet(sample_dataset / f"{s}.parquet") for s in ("train", "dev", "test")}
    arts = [set(p.article_id) for p in parts.values()]
    assert not (arts[0] & arts[1] or arts[0] & arts[2] or arts[1] & arts[2])


@pytest.mark.shared
def test_gold_dataset_rebuilds_every_statement_and_splits_cleanly(gold_dataset, snn_corpus):
    man = json.loads((gold_dataset / "manifest.json").read_text())
    assert man["mismatches"] == 0 and man["label_source"] == "gold"
    parts = {s: pd.read_parquet(gold_dataset / f"{s}.parquet") for s in ("train", "dev", "test")}
    assert sum(len(p) for p in parts.values()) >= 1500
    st = load_corpus(snn_corpus)[0].set_index("statement_id")
    for a, b in [("train", "dev"), ("train", "test"), ("dev", "test")]:
        assert not set(parts[a].article_id) & set(parts[b].article_id)
        assert not set(parts[a].group) & set(parts[b].group)
        ca = set(st.loc[parts[a].statement_id, "dup_cluster"])
        cb = set(st.loc[parts[b].statement_id, "dup_cluster"])
        assert not ca & cb
    frozen = set((REPO_ROOT / "data/splits/test_ids.txt").read_text().split())
    assert frozen == set(parts["test"].statement_id)


@pytest.mark.shared
def test_label_report_refuses_test_and_prints_table(snn_corpus, gold_dataset, capsys):
    # the refusal itself (refuse_test), not argparse's choices
    assert cli("label", "report", "--corpus", snn_corpus, "--dataset", gold_dataset, "--split", "test") == 2
    assert "nabra label report tunes on its data: it refuses the test split" in capsys.readouterr().err
    assert cli("label", "report", "--corpus", snn_corpus, "--dataset", gold_dataset, "--sample", "5000") == 0
    out = capsys.readouterr().out
    assert "label model on gold dev: macro-F1" in out and "majority class" in out
    assert "over 5,000 corpus statements" in out


def test_label_report_refuses_a_corpus_other_than_the_datasets(sample_corpus, sample_gold_records, tmp_path, capsys):
    """--corpus corpus/seed --dataset datasets/gold printed coverage 0.000 for every function, exit 0."""
    ds, ann = tmp_path / "ds", tmp_path / "gold.jsonl"
    ann.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in sample_gold_records), encoding="utf-8")
    assert cli("dataset", "build", "--corpus", sample_corpus, "--annotations", ann, "--splits", "none", "--out", ds) == 0
    assert cli("corpus", "build", "--input", SAMPLE / "article.txt", "--out", tmp_path / "seed", "--no-progress") == 0
    capsys.readouterr()
    assert cli("label", "report", "--corpus", tmp_path / "seed", "--dataset", ds) == 2
    assert f"--corpus {tmp_path / 'seed'} is not the corpus {ds} was built from" in capsys.readouterr().err
    assert cli("label", "report", "--corpus", sample_corpus, "--dataset", ds) == 0


def test_card_counts_one_final_a_statement_and_survives_an_undefined_kappa(tmp_path):
    """The card counted audited statements twice (6,001 finals for 5,814 statements) and crashed when a
    file's double readings all carried one label (kappa None)."""
    from nabra.data import card
    from nabra.data.annotate import finals, read_records

    recs = read_records(REPO_ROOT / "data/annotations")
    line = next(l for l in (REPO_ROOT / "data/DATASET_CARD.md").read_text(encoding="utf-8").splitlines()
                if l.startswith("- final labels"))
    assert sum(int(x.rsplit(" ", 1)[1]) for x in line.split(": ", 1)[1].split(", ")) == len(finals(recs)) == \
        len({r["statement_id"] for r in recs})
    r = {"statement_id": "s1", "article_id": "a", "start": 0, "end": 5, "text_sha1": "x", "stance": "neutral",
         "sentiment": "neutral", "annotator": "a", "pass": 1}
    (tmp_path / "ann").mkdir()
    from nabra.data.annotate import write_records

    write_records([r, {**r, "annotator": "b", "pass": 2}, {**r, "annotator": "agreed", "pass": "final"}],
                  tmp_path / "ann" / "gold_x.jsonl")
    rows = card._batches(tmp_path / "ann")
    assert any("undefined (one label in every reading)" in l for l in rows)


def test_weak_labels_datasets_and_baselines_record_code_and_versions(sample_corpus, sample_dataset, tmp_path):
    """The weak-label and dataset manifests and baselines.json recorded hashes but no commit or versions."""
    assert cli("baseline", "--data", sample_dataset, "--out", tmp_path / "bl") == 0
    weak = sample_dataset.parent / "weak" / "weak_manifest.json"
    for f in (weak, sample_dataset / "manifest.json", tmp_path / "bl" / "baselines.json"):
        rec = json.loads(f.read_text(encoding="utf-8"))
        assert "git_commit" in rec and rec["versions"]["scikit-learn"] and rec["versions"]["nabra"], f


def test_annotate_export_reads_the_readme_ids_path_from_any_folder(sample_corpus, tmp_path, monkeypatch, capsys):
    """`nabra annotate export --ids data/annotations/sample.jsonl` (the README's command) said "no such file"
    outside the checkout; --annotations data/annotations read the shipped copy, --ids did not."""
    monkeypatch.chdir(tmp_path)
    assert cli("annotate", "export", "--corpus", sample_corpus, "--ids", "data/annotations/sample.jsonl",
               "--out", "batch.json") == 0
    shipped = (REPO_ROOT / "data/annotations/sample.jsonl").read_text(encoding="utf-8").splitlines()
    # the sample corpus holds none of these SaudiNewsNet ids: each is listed, none lost in silence
    assert (tmp_path / "batch.rejects.txt").read_text().count("\n") == len(shipped)
    assert "exported 0 tasks" in capsys.readouterr().out


def test_annotate_sample_says_when_the_pool_cannot_fill_a_stratum(sample_corpus, tmp_path, capsys):
    """--random 1200 on one SaudiNewsNet zip wrote 139 statements and said nothing of the other 1,061."""
    assert cli("annotate", "sample", "--corpus", sample_corpus, "--random", "5000", "--per-class", "0",
               "--out", tmp_path / "s.jsonl") == 0
    n = len((tmp_path / "s.jsonl").read_text(encoding="utf-8").splitlines())
    assert 0 < n < 5000
    assert "drew fewer than asked" in (err := capsys.readouterr().err) and f"random {n} of 5000" in err
    assert cli("annotate", "sample", "--corpus", sample_corpus, "--random", "1", "--per-class", "0",
               "--out", tmp_path / "one.jsonl") == 0
    assert "fewer than asked" not in capsys.readouterr().err


def test_annotate_import_of_an_unreadable_file_is_an_error_not_a_rejected_record(sample_corpus, tmp_path, capsys):
    """A mistyped file name was "rejected: nope.csv: cannot read", exit 1, and a rejects file written beside
    --out as if one record had been refused; so for a file with no statement_id column or no JSON."""
    (tmp_path / "cols.csv").write_text("id,stance\nx,neutral\n", encoding="utf-8")
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    for f, why in ((tmp_path / "nope.csv", "cannot read (No such file or directory)"),
                   (tmp_path / "cols.csv", "no statement_id column (columns: id, stance)"),
                   (tmp_path / "bad.json", "invalid JSON (")):
        assert cli("annotate", "import", f, "--corpus", sample_corpus, "--out", tmp_path / "o.jsonl") == 2
        assert f"nabra annotate: error: {f}: {why}" in capsys.readouterr().err
    assert not list(tmp_path.glob("o.*"))


def test_a_clean_rerun_of_export_or_import_leaves_no_earlier_rejects_file(sample_corpus, tmp_path, capsys):
    """OUT.rejects.txt of an earlier export (ids not in the corpus) or import (refused records) stayed beside
    a later clean run's output, listing problems that run did not have."""
    from nabra.data.annotate import write_records

    recs = _records_for(sample_corpus)
    write_records(recs, tmp_path / "gold_in.jsonl")
    (tmp_path / "ids.txt").write_text("\n".join([r["statement_id"] for r in recs] + ["a000-999"]) + "\n")
    export = ["annotate", "export", "--corpus", sample_corpus, "--out", tmp_path / "batch.json"]
    assert cli(*export, "--ids", tmp_path / "ids.txt") == 0 and (tmp_path / "batch.rejects.txt").exists()
    assert cli(*export, "--ids", tmp_path / "gold_in.jsonl", "--pass", "1") == 0
    assert not (tmp_path / "batch.rejects.txt").exists()
    rows = pd.read_csv(tmp_path / "batch.csv", dtype=str)
    rows.loc[0, "stance"] = "angry"
    rows.to_csv(tmp_path / "bad.csv", index=False)
    imp = ["annotate", "import", "--corpus", sample_corpus, "--out", tmp_path / "back.jsonl"]
    assert cli(*imp[:2], tmp_path / "bad.csv", *imp[2:]) == 1 and (tmp_path / "back.rejects.txt").exists()
    assert cli(*imp[:2], tmp_path / "batch.csv", *imp[2:]) == 0
    assert not (tmp_path / "back.rejects.txt").exists()


def test_an_import_killed_while_writing_leaves_no_earlier_rejects_file(sample_corpus, tmp_path, monkeypatch):
    """The earlier import's rejects file was removed only after the new records were written: an import
    killed between the two left new records beside reasons that were not theirs."""
    import nabra.data.annotate as annotate

    recs = _records_for(sample_corpus)
    annotate.write_records(recs, tmp_path / "gold_in.jsonl")
    assert cli("annotate", "export", "--corpus", sample_corpus, "--out", tmp_path / "batch.json",
               "--ids", tmp_path / "gold_in.jsonl", "--pass", "1") == 0
    (tmp_path / "back.rejects.txt").write_text("an earlier import's reason\n", encoding="utf-8")

    def killed(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(annotate, "write_records", killed)
    assert cli("annotate", "import", tmp_path / "batch.csv", "--corpus", sample_corpus,
               "--out", tmp_path / "back.jsonl") == 130
    assert not (tmp_path / "back.rejects.txt").exists()


def test_annotate_export_refuses_to_write_over_its_ids_file(sample_corpus, tmp_path, capsys):
    """`--ids batch.jsonl --out batch.jsonl` replaced the drawn batch with the Label Studio JSON (import
    refuses the same mistake); so for --out X.csv over an --ids X.json."""
    from nabra.data.annotate import write_records

    write_records(_records_for(sample_corpus), tmp_path / "batch.jsonl")
    kept = (tmp_path / "batch.jsonl").read_bytes()
    for out in ("batch.jsonl", "batch.JSONL.csv"):
        ids = tmp_path / ("batch.jsonl" if out == "batch.jsonl" else "batch.JSONL.json")
        if not ids.exists():
            ids.write_bytes(kept)
        assert cli("annotate", "export", "--corpus", sample_corpus, "--ids", ids, "--pass", "1",
                   "--out", tmp_path / out) == 2
        assert "the --ids file itself; give another name" in capsys.readouterr().err
        assert ids.read_bytes() == kept
    assert cli("annotate", "export", "--corpus", sample_corpus, "--ids", tmp_path / "batch.jsonl", "--pass", "1",
               "--out", tmp_path / "batch.json") == 0


def test_finalize_refuses_two_readings_of_one_pass(sample_corpus, tmp_path, capsys):
    """`annotate finalize p1.jsonl p1.jsonl` (or two readers both imported with the default --pass 1) counted
    one reading twice: an "agreed" final label for every statement and each reading written twice, while
    `label agreement` (pass 1 against pass 2) saw no statement read twice."""
    from nabra.data.annotate import write_records

    recs = _records_for(sample_corpus)
    write_records(recs, tmp_path / "p1.jsonl")
    write_records([{**r, "annotator": "other"} for r in recs], tmp_path / "other.jsonl")
    for second in ("p1.jsonl", "other.jsonl"):
        assert cli("annotate", "finalize", tmp_path / "p1.jsonl", tmp_path / second, "--corpus", sample_corpus,
                   "--out", tmp_path / "gold.jsonl") == 2
        assert f"{len(recs)} statement(s) with more than one reading of one pass" in capsys.readouterr().err
    assert not (tmp_path / "gold.jsonl").exists()
    write_records([{**r, "annotator": "other", "pass": 2} for r in recs], tmp_path / "p2.jsonl")
    assert cli("annotate", "finalize", tmp_path / "p1.jsonl", tmp_path / "p2.jsonl", "--corpus", sample_corpus,
               "--out", tmp_path / "gold.jsonl") == 0


def test_import_rejects_a_statement_read_twice_in_one_file(sample_corpus, tmp_path, capsys):
    """A CSV row pasted twice was imported as two pass-1 readings of one statement."""
    rows = pd.DataFrame(_records_for(sample_corpus, 3))
    pd.concat([rows, rows.iloc[[1]]]).to_csv(tmp_path / "dup.csv", index=False)
    assert cli("annotate", "import", tmp_path / "dup.csv", "--corpus", sample_corpus, "--out", tmp_path / "o.jsonl") == 1
    assert f"dup.csv:5: {rows.statement_id[1]} read again in pass 1 (first at dup.csv:3)" in capsys.readouterr().err
    assert len(read_records(tmp_path / "o.jsonl")) == 3


def test_import_names_an_unlabelled_task_as_such(sample_corpus, tmp_path, capsys):
    """A task exported for reading and not labelled yet (Label Studio: "annotations": []) was rejected as
    "unknown stance label None (known: ...)", as if a label had been mistyped."""
    (tmp_path / "ids.txt").write_text("\n".join(load_corpus(sample_corpus)[0].statement_id[:2]) + "\n")
    assert cli("annotate", "export", "--corpus", sample_corpus, "--ids", tmp_path / "ids.txt",
               "--out", tmp_path / "batch.json") == 0
    assert cli("annotate", "import", tmp_path / "batch.json", "--corpus", sample_corpus, "--out", tmp_path / "o.jsonl") == 1
    err = capsys.readouterr().err
    assert err.count("not labelled yet (no stance and no sentiment)") == 2 and "label None" not in err


def test_export_of_a_pass_the_file_does_not_hold_is_refused(sample_corpus, tmp_path, capsys):
    """`--ids gold_al2.jsonl --pass 2` (a batch read once) wrote an empty batch: "exported 0 tasks", exit 0."""
    from nabra.data.annotate import write_records

    write_records(_records_for(sample_corpus), tmp_path / "gold_once.jsonl")
    assert cli("annotate", "export", "--corpus", sample_corpus, "--ids", tmp_path / "gold_once.jsonl", "--pass", "2",
               "--out", tmp_path / "b.json") == 2
    assert "no record of pass 2 (it holds pass 1); choose one with --pass" in capsys.readouterr().err
    assert not (tmp_path / "b.json").exists()


def test_import_pass_flag_wins_over_the_files_pass_column(sample_corpus, tmp_path):
    """A batch exported with its pass-1 labels (CSV pass column 1) for a second reader came back as pass 1
    under `annotate import --pass 2`, while --annotator was taken from the flag: one reader's labels twice
    in pass 1. Without --pass the file's column (else 1) is kept."""
    from nabra.data.annotate import write_records

    write_records(_records_for(sample_corpus), tmp_path / "gold_in.jsonl")
    assert cli("annotate", "export", "--corpus", sample_corpus, "--ids", tmp_path / "gold_in.jsonl", "--pass", "1",
               "--out", tmp_path / "rev.json") == 0
    for flag, want in ((["--pass", "2"], {2}), ([], {1})):
        assert cli("annotate", "import", tmp_path / "rev.csv", "--corpus", sample_corpus, "--annotator", "r2",
                   "--out", tmp_path / "back.jsonl", *flag) == 0
        back = read_records(tmp_path / "back.jsonl")
        assert {r["pass"] for r in back} == want and {r["annotator"] for r in back} == {"r2"}
