"""`nabra annotate suggest`: the active-learning batch (pool exclusions, class quotas, clusters, files)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import cli

LABELS = ["conciliatory", "condemnation", "condolence", "neutral", "support", "warning"]


# ----------------------------------------------------------------------------- pure functions
def test_quotas_give_neutral_a_half_share_and_sum_to_n():
    from nabra.data.suggest import class_weights, split_quota

    q = split_quota(24, class_weights(LABELS))
    assert sum(q.values()) == 24
    assert q["neutral"] == 2  # 24 / (2 x 6)
    assert sorted(v for k, v in q.items() if k != "neutral") == [4, 4, 4, 5, 5]
    assert split_quota(7, {"a": 1.0, "b": 1.0}) == {"a": 4, "b": 3}  # ties: label order


def _synthetic(n_per_class: dict[str, int], seed: int = 0):
    rng = np.random.default_rng(seed)
    pred = np.concatenate([np.full(k, LABELS.index(l)) for l, k in n_per_class.items()])
    m = len(pred)
    score = rng.permutation(m)  # rank: 0 = most unsure
    cluster = rng.integers(0, 4, m)
    article = np.array([f"a{i // 3}" for i in rng.permutation(m)])  # 3 candidates per article
    return pred, score, cluster, article


def test_select_quota_flows_from_a_rare_class_and_caps_hold():
    from nabra.data.suggest import select

    counts = {"conciliatory": 40, "condemnation": 40, "condolence": 1, "neutral": 60, "support": 40, "warning": 40}
    pred, score, cluster, article = _synthetic(counts)
    n = 24
    picks, facts = select(pred, score, cluster, article, LABELS, n, cluster_cap=8)
    assert len(picks) == n and len(set(picks)) == n
    got = pd.Series([LABELS[pred[i]] for i in picks]).value_counts()
    assert got["condolence"] == 1  # its only candidate; the rest of its quota went elsewhere
    assert facts["quota"]["condolence"] == 4 and facts["picked"]["condolence"] == 1
    assert got["neutral"] < got[["conciliatory", "condemnation", "support", "warning"]].min()
    assert pd.Series(article[picks]).value_counts().max() <= 2
    assert pd.Series(cluster[picks]).value_counts().max() <= 8
    assert facts["cluster_cap_relaxed_for"] == 0
    # within a class, nothing more unsure was passed over unless a cap blocked it
    for c in range(len(LABELS)):
        mine = [i for i in picks if pred[i] == c]
        worst = max((score[i] for i in mine), default=-1)
        skipped = [i for i in np.where(pred == c)[0] if score[i] < worst and i not in picks]
        for i in skipped:
            same_art = sum(article[j] == article[i] for j in picks)
            same_cl = sum(cluster[j] == cluster[i] for j in picks)
            assert same_art >= 2 or same_cl >= 8, f"candidate {i} skipped without a reason"


def test_select_lifts_the_cluster_cap_only_to_fill_the_batch():
    from nabra.data.suggest import select

    pred, score, _, article = _synthetic({"support": 30, "warning": 30})
    cluster = np.zeros(len(pred), dtype=int)  # one cluster: the cap (3) alone would stop at 3
    picks, facts = select(pred, score, cluster, article, LABELS, 10, cluster_cap=3)
    assert len(picks) == 10
    assert facts["cluster_cap_relaxed_for"] == 7


def _frame():
    # a1..a6; a2 holds a test statement; a3 shares a duplicate cluster with a2 (same article group);
    # a4 holds an annotated statement; a5-001 has the same text as an annotated one; a6-001 is a duplicate
    rows = []
    for a in range(1, 7):
        for k in range(3):
            rows.append({"statement_id": f"a{a}-00{k}", "article_id": f"a{a}", "text": f"t{a}{k}",
                         "text_sha1": f"h{a}{k}", "dup_cluster": f"c{a}{k}", "is_duplicate": False, "cluster_size": 1})
    st = pd.DataFrame(rows)
    st.loc[st.statement_id == "a3-000", ["dup_cluster", "cluster_size"]] = ["c20", 2]
    st.loc[st.statement_id == "a2-000", "cluster_size"] = 2
    st.loc[st.statement_id == "a5-001", "text_sha1"] = "h40"
    st.loc[st.statement_id == "a6-001", "is_duplicate"] = True
    ar = pd.DataFrame({"article_id": [f"a{a}" for a in range(1, 7)], "title": ["x"] * 6, "body": ["y"] * 6})
    return st, ar


def test_pool_leaves_out_heldout_groups_annotated_and_duplicates():
    from nabra.data.suggest import eligible_pool

    st, ar = _frame()
    pool, excl = eligible_pool(st, ar, {"dev/test split": {"a2-001"}, "annotated": {"a4-000"}}, min_hits=0)
    ids = set(pool.statement_id)
    assert not any(i.startswith(("a2-", "a3-", "a4-")) for i in ids)  # a3: linked to a2 by a duplicate cluster
    assert "a5-001" not in ids and "a6-001" not in ids  # same text as annotated; a duplicate
    assert ids == {"a1-000", "a1-001", "a1-002", "a5-000", "a5-002", "a6-000", "a6-002"}
    assert excl == {"duplicate": 1, "not a political article": 0, "dev/test split": 6, "annotated": 4}
    # the political filter is the sampler's: with its threshold, these titles/bodies are no news
    pool, excl = eligible_pool(st, ar, {}, min_hits=4)
    assert pool.empty and excl["not a political article"] == 17


def test_sampler_excludes_article_groups_like_suggest():
    """`annotate sample --exclude` left out only the excluded statements' articles and clusters: a pick
    of an article linked to them by a duplicate cluster could not go to a new test split (320 of r29's
    1,200). Now the whole group, as `suggest` does; scope "article" keeps the old rule (reproduces r29)."""
    from nabra.config import load_labels
    from nabra.data.sample import draw

    st, ar = _frame()
    ar["title"] = "وزير الخارجية الرئيس الحكومة مجلس الأمن"  # the sampler's political-article filter
    st["start"], st["end"] = 0, 3
    kw = dict(seed=1, random_slice=100, per_class=0, neutral_flagged=0, max_per_article=3)
    group = set(draw(st, ar, load_labels(), exclude={"a2-001", "a4-000"}, **kw).statement_id)
    assert group == {"a1-000", "a1-001", "a1-002", "a5-000", "a5-002", "a6-000", "a6-002"}  # = suggest's pool
    old = set(draw(st, ar, load_labels(), exclude={"a2-001", "a4-000"}, exclude_scope="article", **kw).statement_id)
    assert {"a3-001", "a3-002", "a5-001"} <= old and not any(i.startswith(("a2-", "a4-")) for i in old)


def test_heldout_ids_include_every_frozen_test_file(tmp_path):
    from nabra.data.suggest import frozen_heldout_ids

    (tmp_path / "dev_ids.txt").write_text("d1\n")
    (tmp_path / "test_ids.txt").write_text("t1\nt2\n")
    (tmp_path / "test-v2_ids.txt").write_text("v1\n")
    (tmp_path / "train_ids.txt").write_text("r1\n")
    held, train = frozen_heldout_ids(tmp_path)
    assert held == {"d1", "t1", "t2", "v1"} and train == {"r1"}


# ----------------------------------------------------------------------------- the command
@pytest.fixture(scope="module")
def setup(sample_corpus, tmp_path_factory):
    from nabra.data.corpus import load_corpus

    st, _, _ = load_corpus(sample_corpus)
    arts = sorted(st.article_id.unique())
    d = tmp_path_factory.mktemp("suggest")
    splits = d / "splits"
    splits.mkdir()
    first = lambda a: st[st.article_id == a].statement_id.iloc[0]  # noqa: E731
    (splits / "dev_ids.txt").write_text(first(arts[0]) + "\n")
    (splits / "test-v2_ids.txt").write_text(first(arts[1]) + "\n")
    ann = d / "annotations"
    ann.mkdir()
    (ann / "gold.jsonl").write_text(json.dumps({"statement_id": first(arts[2])}) + "\n")
    batch = d / "reading_now.txt"
    batch.write_text(first(arts[3]) + "\n")
    return {"st": st, "splits": splits, "ann": ann, "batch": batch, "banned": set(arts[:4]), "dir": d}


def _suggest(sample_run, sample_corpus, s, out, n, *extra):
    return cli("annotate", "suggest", "--model", sample_run, "--corpus", sample_corpus, "--n", n, "--out", out,
               "--splits", s["splits"], "--annotations", s["ann"], "--exclude", s["batch"], "--min-hits", 0, *extra)


def _ids(out: Path) -> list[dict]:
    return [json.loads(l) for l in out.with_suffix(".ids.jsonl").read_text().splitlines()]


def test_suggest_picks_n_outside_heldout_and_annotated_without_labels(sample_run, sample_corpus, setup, capsys):
    s = setup
    out = s["dir"] / "b1.json"
    assert _suggest(sample_run, sample_corpus, s, out, 8, "--seed", 3) == 0
    text = capsys.readouterr().out
    size = s["st"].groupby("article_id").size()
    arts = sorted(s["banned"])
    assert (f"dev/test split {size[arts[:2]].sum()}, annotated {size[arts[2]]}, --exclude {size[arts[3]]}; "
            f"eligible {len(s['st']) - size[arts].sum()}") in text
    recs = _ids(out)
    assert len(recs) == 8 and len({r["statement_id"] for r in recs}) == 8
    assert not {r["article_id"] for r in recs} & s["banned"]
    assert pd.Series([r["article_id"] for r in recs]).value_counts().max() <= 2
    st = s["st"].set_index("statement_id")
    for r in recs:
        assert r["stratum"].startswith("al:") and r["stratum"][3:] in LABELS
        assert 0.0 <= r["margin"] <= 1.0 and isinstance(r["cluster"], int)
        assert r["text_sha1"] == st.loc[r["statement_id"], "text_sha1"]
    # the readers' files: the same statements, and no prediction or label anywhere
    tasks = json.loads(out.read_text(encoding="utf-8"))
    assert [t["data"]["statement_id"] for t in tasks] == [r["statement_id"] for r in recs]
    for t in tasks:
        assert set(t) == {"data"} and set(t["data"]) == {"statement_id", "article_id", "start", "end", "text_sha1", "text"}
    raw = out.read_text(encoding="utf-8")
    assert "al:" not in raw and "margin" not in raw and not any(f'"{l}"' in raw for l in LABELS)
    rows = list(csv.DictReader(out.with_suffix(".csv").open(encoding="utf-8")))
    assert len(rows) == 8 and all(r["stance"] == "" and r["sentiment"] == "" for r in rows)


def test_suggest_same_seed_same_batch(sample_run, sample_corpus, setup):
    s = setup
    # --out X.csv: the JSON to X.json and the CSV to X.csv (both went into X.csv, the CSV over the JSON)
    a, b = s["dir"] / "s1.json", s["dir"] / "s2.csv"
    for out in (a, b):
        assert _suggest(sample_run, sample_corpus, s, out, 6, "--seed", 5, "--candidates", 40, "--clusters", 3) == 0
    for suf in (".json", ".csv", ".ids.jsonl"):
        assert a.with_suffix(suf).read_bytes() == b.with_suffix(suf).read_bytes()


def test_suggest_fewer_eligible_than_n_takes_all_and_says_so(sample_run, sample_corpus, setup, capsys):
    s = setup
    out = s["dir"] / "all.json"
    assert _suggest(sample_run, sample_corpus, s, out, 500) == 0
    st = s["st"]
    free = st[~st.article_id.isin(s["banned"])].groupby("article_id").size()
    want = int(free.clip(upper=2).sum())  # at most 2 per article
    assert len(_ids(out)) == want
    assert f"only {want} of the 500" in capsys.readouterr().out


def test_suggest_bad_inputs_exit_2(sample_run, sample_corpus, setup, tmp_path, capsys):
    out = tmp_path / "x.json"
    assert cli("annotate", "suggest", "--model", tmp_path / "no_run", "--corpus", sample_corpus, "--n", 5,
               "--out", out) == 2
    err = capsys.readouterr().err
    assert "no_run: no such model folder" in err and "Traceback" not in err
    assert cli("annotate", "suggest", "--model", sample_run, "--corpus", tmp_path / "no_corpus", "--n", 5,
               "--out", out) == 2
    assert "no_corpus: no such corpus folder" in capsys.readouterr().err
    assert cli("annotate", "suggest", "--model", sample_run, "--corpus", sample_corpus, "--n", 0, "--out", out) == 2
    assert "--n must be >= 1" in capsys.readouterr().err
    assert not out.exists()


def test_enriched_candidates_hold_flagged_statements_of_every_rare_stance():
    from nabra.config import load_labels
    from nabra.data.suggest import draw_candidates
    from nabra.data.weak import WeakLabeler

    texts = ["أعرب الملك عن خالص التعازي والمواساة لأسر الضحايا"] * 5 + ["أدانت الوزارة الهجوم الإرهابي بشدة"] * 5 \
        + ["عقد الاجتماع في الرياض يوم الأحد"] * 90
    pool = pd.DataFrame({"text": texts})
    idx = draw_candidates(pool, 60, 0.5, np.random.default_rng(0), log=lambda *a: None)
    assert len(idx) == 60 and len(set(idx.tolist())) == 60
    schema = load_labels()
    names = schema.tasks["stance"].names
    votes = WeakLabeler(schema).votes(texts, "stance")
    for label in ("condolence", "condemnation"):
        flagged = set(np.where((votes == names.index(label)).any(1))[0].tolist())
        assert flagged and flagged <= set(idx.tolist()), label  # 60 x 0.5 / 5 stances = 6 per stance: all 5 flagged fit
    plain = draw_candidates(pool, 20, 0.0, np.random.default_rng(0))
    assert len(plain) == 20
    only = draw_candidates(pool, 60, 0.5, np.random.default_rng(0), log=lambda *a: None, stances=["condolence"])
    assert set(range(5)) <= set(only.tolist())
    with pytest.raises(Exception, match="unknown stance"):
        draw_candidates(pool, 60, 0.5, np.random.default_rng(0), stances=["sadness"])
