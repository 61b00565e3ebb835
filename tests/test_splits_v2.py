"""A second frozen test split (test-v2): designated once, frozen, never sharing a group with another split;
a frozen test split takes no new statements; evaluate scores test and test-v2 side by side; tuning
commands refuse both."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO_ROOT, cli

SPLITS = ("train", "dev", "test", "test-v2")


def _parts(ds) -> dict[str, pd.DataFrame]:
    return {s: pd.read_parquet(ds / f"{s}.parquet") for s in SPLITS if (ds / f"{s}.parquet").exists()}


def _ids(path) -> set[str]:
    return set(path.read_text().split())


def _no_shared_groups(parts: dict[str, pd.DataFrame], clusters: pd.Series | None = None) -> None:
    names = list(parts)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not set(parts[a].article_id) & set(parts[b].article_id), (a, b)
            assert not set(parts[a].group) & set(parts[b].group), (a, b)
            if clusters is not None:
                assert not set(clusters.loc[parts[a].statement_id]) & set(clusters.loc[parts[b].statement_id]), (a, b)


@pytest.fixture()
def staged(sample_corpus, sample_gold_records, tmp_path):
    """A first batch built and frozen (train/dev/test), and a second batch of new articles annotated later;
    one statement of a frozen train article is held back to the second batch too."""
    from nabra.data.annotate import write_records

    arts = sorted({r["article_id"] for r in sample_gold_records})
    late = set(arts[-6:])
    first = [r for r in sample_gold_records if r["article_id"] not in late]
    (tmp_path / "ann").mkdir()
    (tmp_path / "splits").mkdir()
    write_records(first, tmp_path / "ann" / "gold.jsonl")
    assert cli("dataset", "build", "--corpus", sample_corpus, "--annotations", tmp_path / "ann", "--splits",
               tmp_path / "splits", "--freeze", "--out", tmp_path / "ds1") == 0
    write_records(sample_gold_records, tmp_path / "ann" / "gold.jsonl")  # the second batch arrives
    return tmp_path, sorted(late), {s: _ids(tmp_path / "splits" / f"{s}_ids.txt") for s in ("train", "dev", "test")}


def test_test_v2_is_designated_frozen_and_kept_apart(staged, sample_corpus, sample_gold_records, capsys):
    tmp, late, frozen = staged
    v2_arts = late[:3]
    first_of = {a: min(r["statement_id"] for r in sample_gold_records if r["article_id"] == a) for a in v2_arts}
    (tmp / "v2.txt").write_text("\n".join(first_of.values()) + "\n")  # one id per article: its group follows
    build = ["dataset", "build", "--corpus", sample_corpus, "--annotations", tmp / "ann", "--splits", tmp / "splits"]
    assert cli(*build, "--test-v2", tmp / "v2.txt", "--out", tmp / "ds2") == 0
    parts = _parts(tmp / "ds2")
    assert set(parts) == set(SPLITS)
    assert set(parts["test-v2"].article_id) == set(v2_arts)
    assert set(parts["test"].statement_id) == frozen["test"]  # the frozen test split took no new statement
    other_new = set(late[3:])
    assert other_new <= set(parts["train"].article_id) | set(parts["dev"].article_id)
    assert _ids(tmp / "splits" / "test-v2_ids.txt") == set(parts["test-v2"].statement_id)  # frozen at once
    _no_shared_groups(parts)
    man = json.loads((tmp / "ds2" / "manifest.json").read_text())
    assert man["counts"]["test-v2"]["statements"] == len(parts["test-v2"]) and "test-v2_ids_hash" in man

    # a rebuild reads test-v2_ids.txt like the other frozen files; --freeze writes it back unchanged
    assert cli(*build, "--freeze", "--out", tmp / "ds3") == 0
    again = _parts(tmp / "ds3")
    assert {s: set(p.statement_id) for s, p in again.items()} == {s: set(p.statement_id) for s, p in parts.items()}
    assert _ids(tmp / "splits" / "test-v2_ids.txt") == set(parts["test-v2"].statement_id)

    # a different designation, or an id frozen elsewhere, is refused with one line
    (tmp / "other.txt").write_text(sorted(frozen["train"])[0] + "\n")
    capsys.readouterr()
    assert cli(*build, "--test-v2", tmp / "other.txt", "--out", tmp / "ds4") == 2
    assert "test-v2 is frozen already" in capsys.readouterr().err
    (tmp / "splits" / "test-v2_ids.txt").unlink()
    assert cli(*build, "--test-v2", tmp / "other.txt", "--out", tmp / "ds4") == 2
    assert "frozen in another split" in capsys.readouterr().err


def test_a_group_cannot_straddle_test_v2(staged, sample_corpus, sample_gold_records, capsys):
    from nabra.data.annotate import write_records

    tmp, _, frozen = staged
    # a statement of an article frozen in train, annotated late and designated test-v2: its group is in train
    sid = sorted(frozen["train"])[0]
    keep = [r for r in sample_gold_records if r["statement_id"] != sid]
    write_records(keep, tmp / "ann" / "gold.jsonl")
    for s in ("train", "dev", "test"):  # refreeze without it
        (tmp / "splits" / f"{s}_ids.txt").write_text("\n".join(sorted(frozen[s] - {sid})) + "\n")
    write_records(sample_gold_records, tmp / "ann" / "gold.jsonl")
    (tmp / "v2.txt").write_text(sid + "\n")
    assert cli("dataset", "build", "--corpus", sample_corpus, "--annotations", tmp / "ann", "--splits", tmp / "splits",
               "--test-v2", tmp / "v2.txt", "--out", tmp / "ds") == 2
    err = capsys.readouterr().err
    assert "frozen splits put group" in err and "train" in err and "test-v2" in err
    assert not (tmp / "splits" / "test-v2_ids.txt").exists()
    (tmp / "splits" / "test-v3_ids.txt").write_text(sid + "\n")
    assert cli("dataset", "build", "--corpus", sample_corpus, "--annotations", tmp / "ann", "--splits", tmp / "splits",
               "--out", tmp / "ds") == 2
    assert "unknown split 'test-v3'" in capsys.readouterr().err


def test_evaluate_scores_test_and_test_v2_and_tuning_refuses_both(staged, sample_corpus, sample_gold_records,
                                                                  sample_run, capsys):
    tmp, late, _ = staged
    (tmp / "v2.txt").write_text("\n".join(r["statement_id"] for r in sample_gold_records if r["article_id"] in late[:3]))
    assert cli("dataset", "build", "--corpus", sample_corpus, "--annotations", tmp / "ann", "--splits", tmp / "splits",
               "--test-v2", tmp / "v2.txt", "--out", tmp / "ds") == 0
    assert cli("evaluate", "--model", sample_run, "--data", tmp / "ds", "--split", "test", "test-v2", "--bootstrap",
               "50", "--out", tmp / "rep") == 0
    for s in ("test", "test-v2"):
        rep = json.loads((tmp / "rep" / s / "report.json").read_text())
        assert rep["split"] == s and rep["n_statements"] == len(pd.read_parquet(tmp / "ds" / f"{s}.parquet"))
        assert "tfidf_svm" in rep["baselines"]["stance"]
    table = (tmp / "rep" / "report.md").read_text()
    assert "| test | " in table and "| test-v2 | " in table
    capsys.readouterr()
    assert cli("label", "report", "--corpus", sample_corpus, "--dataset", tmp / "ds", "--split", "test-v2") == 2
    assert "refuses the test-v2 split" in capsys.readouterr().err
    assert cli("baseline", "--data", tmp / "ds", "--tune-split", "test-v2", "--out", tmp / "bl") == 2
    assert "refuses the test-v2 split" in capsys.readouterr().err


@pytest.mark.shared
def test_real_build_keeps_articles_groups_and_clusters_apart_over_four_splits(gold_dataset, snn_corpus, tmp_path):
    """On the real gold build: the frozen test split as it is, and a test-v2 split opened from some of the
    frozen train groups (their ids moved out of train_ids.txt, as if annotated later)."""
    from nabra.data.corpus import load_corpus

    clusters = load_corpus(snn_corpus)[0].set_index("statement_id").dup_cluster
    _no_shared_groups(_parts(gold_dataset), clusters)
    splits = tmp_path / "splits"
    shutil.copytree(REPO_ROOT / "data" / "splits", splits)
    train = pd.read_parquet(gold_dataset / "train.parquet")
    if not (splits / "test-v2_ids.txt").exists():
        groups = pd.Series(sorted(train.group.unique())).sample(frac=0.1, random_state=0)
        moved = train[train.group.isin(groups)].statement_id
        (splits / "train_ids.txt").write_text("\n".join(sorted(_ids(splits / "train_ids.txt") - set(moved))) + "\n")
        (tmp_path / "v2.txt").write_text("\n".join(moved.iloc[::3]) + "\n")  # a third of them: groups follow
        extra = ["--test-v2", tmp_path / "v2.txt"]
    else:
        extra = []
    assert cli("dataset", "build", "--corpus", snn_corpus, "--annotations", REPO_ROOT / "data/annotations",
               "--splits", splits, *extra, "--out", tmp_path / "ds") == 0
    parts = _parts(tmp_path / "ds")
    assert set(parts) == set(SPLITS) and len(parts["test-v2"]) > 0
    _no_shared_groups(parts, clusters)
    assert set(parts["test"].statement_id) == _ids(REPO_ROOT / "data/splits/test_ids.txt")
    if not extra:  # the committed test-v2 (issue 12): at least 600 frozen ids, every one in the build
        v2 = _ids(REPO_ROOT / "data/splits/test-v2_ids.txt")
        assert len(v2) >= 600 and set(parts["test-v2"].statement_id) == v2


def test_small_gold_set_splits_and_every_mismatch_is_written(sample_corpus, sample_gold_records, tmp_path, capsys):
    """Five statements a stance (every class under StratifiedGroupKFold's 7 folds) gave a scikit-learn
    traceback; gold records that do not match the corpus were only counted (the first 20 printed)."""
    from nabra.data.annotate import write_records

    by_stance: dict[str, list[dict]] = {}
    for r in sample_gold_records:
        by_stance.setdefault(r["stance"], []).append(r)
    small = [dict(r) for rs in by_stance.values() for r in rs[:5]]
    small[0]["text_sha1"] = "0" * 40
    (tmp_path / "ann").mkdir()
    write_records(small, tmp_path / "ann" / "gold.jsonl")
    build = ["dataset", "build", "--corpus", sample_corpus, "--annotations", tmp_path / "ann", "--splits", "none"]
    assert cli(*build, "--out", tmp_path / "ds") == 0
    parts = _parts(tmp_path / "ds")
    assert set(parts) >= {"train", "dev", "test"} and sum(len(p) for p in parts.values()) == len(small) - 1
    line = 1 + sorted(r["statement_id"] for r in small).index(small[0]["statement_id"])  # write_records sorts
    assert (tmp_path / "ds" / "rejects.txt").read_text(encoding="utf-8") == \
        f"{tmp_path / 'ann' / 'gold.jsonl'}:{line}: {small[0]['statement_id']}: text hash mismatch: the rebuilt " \
        "span is not the one that was labelled\n"
    write_records(small[:2], tmp_path / "ann" / "gold.jsonl")
    assert cli(*build, "--out", tmp_path / "ds2") == 2
    assert "too few to split into train, dev and test" in capsys.readouterr().err


def test_a_missing_splits_folder_is_refused_and_none_means_no_frozen_splits(sample_corpus, sample_gold_records,
                                                                            tmp_path, monkeypatch, capsys):
    """A mistyped --splits DIR built a dataset with no frozen splits, without a word."""
    from nabra.data.annotate import write_records
    from nabra.io import shipped_data
    from nabra.paths import data_file

    (tmp_path / "ann").mkdir()
    write_records(sample_gold_records, tmp_path / "ann" / "gold.jsonl")
    build = ["dataset", "build", "--corpus", sample_corpus, "--annotations", tmp_path / "ann", "--out", tmp_path / "ds"]
    assert cli(*build, "--splits", tmp_path / "splts") == 2
    assert f"--splits {tmp_path / 'splts'}: no such folder" in capsys.readouterr().err
    assert not (tmp_path / "ds").exists()
    assert cli(*build, "--splits", "none", "--freeze") == 2
    assert "give a folder, not `none`" in capsys.readouterr().err
    assert cli(*build, "--splits", tmp_path / "new", "--freeze") == 0  # a freeze creates the folder it writes
    assert {p.name for p in (tmp_path / "new").iterdir()} == {"train_ids.txt", "dev_ids.txt", "test_ids.txt"}
    assert cli(*build, "--splits", "none") == 0
    capsys.readouterr()
    # the README's relative data/annotations and data/splits: the shipped copies, from any folder
    monkeypatch.chdir(tmp_path)
    assert shipped_data("data/annotations") == data_file("annotations") and shipped_data("data/splits") == data_file("splits")
    assert str(shipped_data("data/nothing")) == "data/nothing"
    assert cli("label", "agreement", "--annotations", "data/annotations", "--json") == 0
    assert json.loads(capsys.readouterr().out)["double_annotated"] > 0
    # a data/annotations made here (annotate import --out data/annotations/new.jsonl) hides the shipped gold: said
    (tmp_path / "data" / "annotations").mkdir(parents=True)
    (tmp_path / "data" / "annotations" / "gold_new.jsonl").write_text("", encoding="utf-8")
    assert shipped_data("data/annotations") == Path("data/annotations")
    err = capsys.readouterr().err
    assert "reading the folder here, not the copy nabra ships" in err and "gold.jsonl" in err and "cp -n" in err
    shipped_data("data/splits")  # nothing made here: the shipped copy, no warning
    assert capsys.readouterr().err == ""


def test_rejects_file_is_named_only_when_the_build_writes_it(sample_corpus, sample_gold_records, tmp_path, capsys):
    """A build that failed after its warnings (too few to split, --out taken) still said "all of them, with
    reasons: OUT/rejects.txt", a file it never wrote; a list cut at 20 did not say so."""
    from nabra.data.annotate import write_records

    recs = [dict(r) for r in sample_gold_records]
    for r in recs[:21]:
        r["text_sha1"] = "0" * 40
    (tmp_path / "ann").mkdir()
    write_records(recs, tmp_path / "ann" / "gold.jsonl")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("x")
    build = ["dataset", "build", "--corpus", sample_corpus, "--annotations", tmp_path / "ann", "--splits", "none"]
    assert cli(*build, "--out", tmp_path / "taken") == 2
    out = capsys.readouterr().out
    assert "rejects.txt" not in out and "  ... and 1 more" in out
    assert not (tmp_path / "taken" / "rejects.txt").exists()
    assert cli(*build, "--out", tmp_path / "ds") == 0
    assert f"(all 21 left-out gold record(s), with reasons: {tmp_path / 'ds' / 'rejects.txt'})" in capsys.readouterr().out
    assert (tmp_path / "ds" / "rejects.txt").read_text().count("\n") == 21


def test_annotations_without_a_final_record_are_named_as_such(sample_corpus, sample_gold_records, tmp_path, capsys):
    """`annotate import --out data/annotations/gold_new.jsonl` (the README's step) writes pass-1 readings; a
    build of them said "no gold record matches this corpus: was it built from ../shared/data/saudinewsnet",
    though every reading matched it; an empty gold file said the same."""
    from nabra.data.annotate import write_records

    readings = [{**r, "pass": 1} for r in sample_gold_records[:6]]
    write_records(readings, tmp_path / "gold_new.jsonl")
    (tmp_path / "gold_empty.jsonl").write_text("")
    build = ["dataset", "build", "--corpus", sample_corpus, "--splits", "none", "--out", tmp_path / "ds"]
    assert cli(*build, "--annotations", tmp_path / "gold_new.jsonl") == 2
    err = capsys.readouterr().err
    assert "6 reading(s) (pass 1/2) and no final record: `nabra annotate finalize`" in err and "matches" not in err
    assert cli(*build, "--annotations", tmp_path / "gold_empty.jsonl") == 2
    assert f"{tmp_path / 'gold_empty.jsonl'}: no valid annotation record" in capsys.readouterr().err


def test_every_rejects_line_names_the_file_and_line_of_its_record(sample_corpus, sample_gold_records, tmp_path):
    """The README promises rejects.txt as "file:line, reason"; a record that did not match the corpus was
    named by its statement id only, so finding it meant a grep through every gold file."""
    from nabra.data.annotate import write_records

    recs = [dict(r) for r in sample_gold_records]
    recs[3]["start"] += 1
    (tmp_path / "ann").mkdir()
    write_records(recs[:10], tmp_path / "ann" / "gold_a.jsonl")
    write_records(recs[10:], tmp_path / "ann" / "gold_b.jsonl")
    (tmp_path / "ann" / "gold_b.jsonl").write_text((tmp_path / "ann" / "gold_b.jsonl").read_text(encoding="utf-8")
                                                   + "{oops\n", encoding="utf-8")
    assert cli("dataset", "build", "--corpus", sample_corpus, "--annotations", tmp_path / "ann", "--splits", "none",
               "--out", tmp_path / "ds") == 0
    lines = (tmp_path / "ds" / "rejects.txt").read_text(encoding="utf-8").splitlines()
    n_b = len(recs) - 10 + 1
    assert lines == [f"{tmp_path / 'ann' / 'gold_b.jsonl'}:{n_b}: invalid JSON (Expecting property name enclosed in "
                     "double quotes)",
                     f"{tmp_path / 'ann' / 'gold_a.jsonl'}:4: {recs[3]['statement_id']}: offsets/article differ "
                     f"(record {recs[3]['article_id']} {recs[3]['start']}-{recs[3]['end']}, corpus "
                     f"{recs[3]['article_id']} {recs[3]['start'] - 1}-{recs[3]['end']})"]


def test_too_few_new_statements_beside_frozen_splits_say_the_way_out(sample_corpus, sample_gold_records, tmp_path,
                                                                     capsys):
    """A build on a corpus of one SaudiNewsNet zip (the shipped frozen splits, 3 gold statements outside them)
    stopped at "too few to split into train, dev and test", though a closed test split takes none of them,
    and did not say that `--splits none` builds it."""
    from nabra.data.annotate import write_records

    last = max(r["article_id"] for r in sample_gold_records)
    (tmp_path / "ann").mkdir()
    write_records([r for r in sample_gold_records if r["article_id"] != last], tmp_path / "ann" / "gold.jsonl")
    build = ["dataset", "build", "--corpus", sample_corpus, "--annotations", tmp_path / "ann"]
    assert cli(*build, "--splits", tmp_path / "splits", "--freeze", "--out", tmp_path / "ds1") == 0
    write_records(sample_gold_records, tmp_path / "ann" / "gold.jsonl")
    capsys.readouterr()
    assert cli(*build, "--splits", tmp_path / "splits", "--out", tmp_path / "ds2") == 2
    err = capsys.readouterr().err
    assert "too few to split into train and dev" in err and "`--splits none` splits every gold statement afresh" in err
    assert cli(*build, "--splits", "none", "--out", tmp_path / "ds3") == 0
