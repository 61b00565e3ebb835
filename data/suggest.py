"""`nabra annotate suggest`: the next batch to annotate, chosen by a trained model (active learning).

1. Pool: the seeded sampler's pool (data/sample.py: non-duplicate statements of political articles),
   minus every statement whose article group (articles linked by a shared duplicate cluster, the unit
   `dataset build` splits by), duplicate cluster or text hash holds a frozen dev/test statement, an
   annotated statement or an --exclude statement. A pick can then never be pulled into dev/test by
   its group, never repeats gold, and never shares an article with a batch still being read.
2. Candidates: a seeded random subset of M eligible statements (scoring the whole pool would take
   hours on CPU), scored in one forward pass each: stance probabilities and the pooled encoder state
   the heads read (the model's own pooling).
3. Selection: uncertainty (stance margin top1 - top2, small = unsure; or entropy), with quotas over
   predicted stance classes (the rule is in `nabra annotate suggest --help`), spread over k-means clusters of the L2-normalised
   embeddings (at most ceil(n/K)+1 picks per cluster) and at most 2 picks per article.

Library choice: small-text (PyPI, 1.4.1) was checked. Its margin ("BreakingTies") and entropy
strategies are one line each over predict_proba, its EmbeddingKMeans is scikit-learn KMeans that
takes the statement nearest each centroid (no uncertainty, no class quotas, no per-article cap), and
using it means wrapping the model and data in its Classifier/Dataset classes (its transformers
integration also pulls torchtext, which has no build for torch 2.13). It would add a dependency
(and dill) and none of the selection rules this batch needs, so scikit-learn's KMeans is used
directly.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from nabra.errors import UserError
from nabra.io import read_text

# ----------------------------------------------------------------------------- pool
def frozen_heldout_ids(splits_dir: str | Path | None) -> tuple[set[str], set[str]]:
    """(held-out ids, train ids) of a splits folder: held-out = dev_ids.txt and every test*_ids.txt
    (test-v2_ids.txt, ...), and any other *_ids.txt that is not train."""
    held, train = set(), set()
    if not splits_dir:
        return held, train
    d = Path(splits_dir)
    if not d.is_dir():
        raise UserError(f"{d}: no such splits folder")
    for f in sorted(d.glob("*_ids.txt")):
        ids = set(read_text(f).split())
        (train if f.name.startswith("train") else held).update(ids)
    return held, train


def eligible_pool(statements: pd.DataFrame, articles: pd.DataFrame, blocked: dict[str, set[str]],
                  min_hits: int = 4) -> tuple[pd.DataFrame, dict[str, int]]:
    """The eligible statements and the number left out per reason (each statement counted once, under
    its first reason). blocked: reason -> statement ids whose article groups, duplicate clusters and
    texts are left out (e.g. {"dev/test split": ..., "annotated": ...})."""
    from nabra.data.dataset import article_groups, linked_to
    from nabra.data.sample import political_articles

    excluded: dict[str, int] = {}
    left = pd.Series(True, index=statements.index)

    def drop(reason: str, mask: pd.Series) -> None:
        nonlocal left
        hit = left & mask
        excluded[reason] = int(hit.sum())
        left &= ~mask

    drop("duplicate", statements.is_duplicate.astype(bool))
    drop("not a political article", ~statements.article_id.isin(political_articles(articles, min_hits)))
    groups = statements.article_id.map(article_groups(statements))
    for reason, ids in blocked.items():
        drop(reason, linked_to(statements, ids, groups=groups))
    return statements[left].sort_values("statement_id").reset_index(drop=True), excluded


# ----------------------------------------------------------------------------- selection
def uncertainty(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(margin top1 - top2, entropy in nats) per row."""
    top = np.sort(probs, axis=1)
    margin = top[:, -1] - (top[:, -2] if probs.shape[1] > 1 else 0.0)
    entropy = -(probs * np.log(np.clip(probs, 1e-12, 1.0))).sum(1)
    return margin, entropy


def class_weights(labels: list[str]) -> dict[str, float]:
    """Neutral's weight makes its share 1/(2 x classes) of the whole; every other class weighs 1."""
    c = len(labels)
    w_neutral = (c - 1) / (2 * c - 1) if c > 1 else 1.0
    return {l: (w_neutral if l == "neutral" else 1.0) for l in labels}


def split_quota(total: int, weights: dict[str, float]) -> dict[str, int]:
    """total split in proportion to weights, largest remainder (ties: label order)."""
    if total <= 0 or not weights:
        return {k: 0 for k in weights}
    s = sum(weights.values())
    raw = {k: total * w / s for k, w in weights.items()}
    out = {k: int(math.floor(v)) for k, v in raw.items()}
    order = sorted(weights, key=lambda k: -(raw[k] - out[k]))  # stable: label order on ties
    for k in order[:total - sum(out.values())]:
        out[k] += 1
    return out


def select(pred: np.ndarray, score: np.ndarray, cluster: np.ndarray, article: np.ndarray, labels: list[str],
           n: int, cluster_cap: int, max_per_article: int = 2) -> tuple[list[int], dict]:
    """Indices of the picks, in pick order, and facts about the selection.

    pred: predicted class index per candidate; score: uncertainty rank key (smaller = more unsure;
    ties already broken by the caller); cluster, article: per candidate.
    """
    weights = class_weights(labels)
    lists = {l: [int(i) for i in np.argsort(score, kind="stable") if pred[i] == c] for c, l in enumerate(labels)}
    taken: list[int] = []
    is_taken = np.zeros(len(pred), dtype=bool)
    per_cluster: dict[int, int] = {}
    per_article: dict[str, int] = {}
    got = {l: 0 for l in labels}
    quota = {l: 0 for l in labels}
    cap = cluster_cap
    relaxed = 0

    def fill() -> set[str]:
        """Takes picks round-robin (the class furthest from its quota first); returns the exhausted classes."""
        ptr = {l: 0 for l in labels}
        exhausted = set()
        active = [l for l in labels if got[l] < quota[l]]
        while active:
            l = min(active, key=lambda k: (got[k] / quota[k], labels.index(k)))
            cand = lists[l]
            while ptr[l] < len(cand):
                i = cand[ptr[l]]
                ptr[l] += 1
                if is_taken[i] or per_article.get(article[i], 0) >= max_per_article \
                        or per_cluster.get(int(cluster[i]), 0) >= cap:
                    continue
                is_taken[i] = True
                taken.append(i)
                per_article[article[i]] = per_article.get(article[i], 0) + 1
                per_cluster[int(cluster[i])] = per_cluster.get(int(cluster[i]), 0) + 1
                got[l] += 1
                break
            else:
                exhausted.add(l)
                active.remove(l)
                continue
            if got[l] >= quota[l]:
                active.remove(l)
        return exhausted

    def fill_to_n() -> None:
        exhausted: set[str] = set()
        while len(taken) < n:
            exhausted |= fill()
            open_ = {l: weights[l] for l in labels if l not in exhausted}
            if len(taken) >= n or not open_:
                return
            for l, q in split_quota(n - len(taken), open_).items():  # unfilled quota flows on
                quota[l] = got[l] + q

    quota.update(split_quota(n, weights))
    initial = dict(quota)
    fill_to_n()
    if len(taken) < n:  # the cluster cap alone left the batch short: lift it for the rest
        before, cap = len(taken), len(pred) + 1
        quota.update({l: got[l] + q for l, q in split_quota(n - before, weights).items()})
        fill_to_n()
        relaxed = len(taken) - before
    return taken, {"quota": initial, "picked": got, "cluster_cap_relaxed_for": relaxed}


# ----------------------------------------------------------------------------- the batch
def draw_candidates(pool: pd.DataFrame, n: int, enrich: float, rng, log=print,
                    stances: list[str] | None = None) -> np.ndarray:
    """Row indices of the candidates to score: a seeded random draw, of which a share `enrich` comes
    from statements the weak labeller flags for each non-neutral stance (or for `stances`), an equal
    part per stance.
    Why: rare stances are ~1% of the corpus (condolence 0.75%), so a purely random 8,000 holds ~60 of
    them and the class quotas cannot be met without scoring the whole corpus (hours on 2 cores); the
    rules are a cheap retrieval step, the model still decides what is uncertain."""
    if enrich <= 0 or n >= len(pool):
        return rng.permutation(len(pool))[:n]
    from nabra.config import load_labels
    from nabra.data.weak import WeakLabeler

    schema = load_labels()
    names = schema.tasks["stance"].names
    votes = WeakLabeler(schema).votes(pool.text.tolist(), "stance")
    rare = list(stances) if stances else [l for l in names if l != "neutral"]
    unknown = sorted(set(rare) - set(names))
    if unknown:
        raise UserError(f"--enrich-stances: unknown stance(s) {', '.join(unknown)} (labels: {', '.join(names)})")
    per = int(n * enrich) // len(rare)
    taken: list[int] = []
    for label in rare:
        flagged = np.where((votes == names.index(label)).any(1))[0]
        flagged = flagged[~np.isin(flagged, taken)]
        got = rng.permutation(flagged)[:per]
        taken += got.tolist()
        log(f"  candidates flagged {label}: {len(got):,} of {len(flagged):,}")
    rest = np.setdiff1d(np.arange(len(pool)), taken)
    return np.concatenate([np.array(taken, dtype=int), rng.permutation(rest)[:n - len(taken)]])


def score_candidates(clf, texts: list[str], chunk: int = 256, progress: bool = False) -> tuple[np.ndarray, np.ndarray, dict]:
    """Stance probabilities, pooled embeddings and the other tasks' probabilities, length-sorted chunks."""
    from tqdm import tqdm

    from nabra.train.predict import _softmax

    order = np.argsort([len(t) for t in texts], kind="stable")
    probs = {t: np.zeros((len(texts), len(l)), dtype=np.float32) for t, l in clf.tasks.items()}
    emb = None
    for b in tqdm(range(0, len(order), chunk), desc="scoring", unit=" chunk", disable=not progress, mininterval=2.0):
        idx = order[b:b + chunk]
        lg, e = clf.logits_and_embeddings([texts[i] for i in idx])
        for t in probs:
            probs[t][idx] = _softmax(lg[t])
        if emb is None:
            emb = np.zeros((len(texts), e.shape[1]), dtype=np.float32)
        emb[idx] = e
    return probs["stance"], emb, probs


def suggest(model: str | Path, corpus: str | Path, n: int, out: str | Path, annotated: set[str] | None = None,
            exclude: set[str] | None = None, splits_dir: str | Path | None = None, candidates: int = 8000,
            strategy: str = "margin", clusters: int | None = None, seed: int = 17, batch_size: int = 32,
            min_hits: int = 4, enrich: float = 0.0, enrich_stances: list[str] | None = None, progress: bool = False,
            log=print) -> dict:
    """Writes OUT (Label Studio tasks), OUT.csv (same batch, label columns empty) and OUT.ids.jsonl
    (standoff records with the model's predicted stance, margin and cluster, for the record only).
    Returns a summary dict."""
    from sklearn.cluster import KMeans
    from sklearn.preprocessing import normalize

    from nabra.data.annotate import export_tasks, task_files
    from nabra.data.corpus import load_corpus
    from nabra.io import write_atomic
    from nabra.paths import splits_dir as default_splits
    from nabra.train.predict import StanceClassifier, check_model_dir

    if n <= 0:
        raise UserError(f"--n must be >= 1, got {n}")
    if candidates < 1:
        raise UserError(f"--candidates must be >= 1, got {candidates}")
    if strategy not in ("margin", "entropy"):
        raise UserError(f"--strategy must be margin or entropy, got {strategy!r}")
    if clusters is not None and clusters < 1:
        raise UserError(f"--clusters must be >= 1, got {clusters}")
    out = Path(out)
    if not out.resolve().parent.is_dir():
        raise UserError(f"--out {out}: folder {out.resolve().parent} does not exist")
    model_dir = check_model_dir(model, "torch")  # a run folder means its best model; fails fast, naming the file
    if not Path(corpus).is_dir():
        raise UserError(f"{corpus}: no such corpus folder")
    st, ar, _ = load_corpus(corpus)

    held, train = frozen_heldout_ids(default_splits() if splits_dir is None else splits_dir)
    missing = len(held - set(st.statement_id))
    if missing:
        log(f"note: {missing} of {len(held)} frozen dev/test ids are not in this corpus")
    blocked = {"dev/test split": held, "annotated": set(annotated or set()) | train, "--exclude": set(exclude or set())}
    pool, excluded = eligible_pool(st, ar, blocked, min_hits=min_hits)
    rng = np.random.default_rng(seed)
    cand = pool.iloc[np.sort(draw_candidates(pool, candidates, enrich, rng, log, stances=enrich_stances))].reset_index(drop=True)
    log(f"pool: {len(st):,} statements; left out " + ", ".join(f"{k} {v:,}" for k, v in excluded.items())
        + f"; eligible {len(pool):,}")
    if cand.empty:
        raise UserError("no eligible statement left in the pool (everything is annotated, held out or duplicate)")

    clf = StanceClassifier(model_dir, batch_size=batch_size)
    if "stance" not in clf.tasks:
        raise UserError(f"{model_dir}: the model has no stance head")
    labels = clf.tasks["stance"]
    t0 = time.perf_counter()
    probs, emb, _ = score_candidates(clf, cand.text.tolist(), progress=progress)
    secs = time.perf_counter() - t0
    log(f"scored {len(cand):,} candidates in {secs:.1f} s ({len(cand) / max(secs, 1e-9):.1f} statements/s)")

    margin, entropy = uncertainty(probs)
    pred = probs.argmax(1)
    k = max(1, min(clusters or max(1, round(n / 5)), len(cand)))
    km = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(normalize(emb.astype(np.float64)))
    cluster = km.labels_
    # rank key: small = unsure; ties broken by a seeded permutation, never by corpus order
    tie = rng.permutation(len(cand))
    key = margin if strategy == "margin" else -entropy
    rank = np.lexsort((tie, key)).argsort()
    picks, facts = select(pred, rank, cluster, cand.article_id.to_numpy(), labels, n,
                          cluster_cap=math.ceil(n / k) + 1)

    chosen = cand.iloc[picks].copy()
    chosen["stratum"] = ["al:" + labels[pred[i]] for i in picks]
    chosen["margin"] = [round(float(margin[i]), 4) for i in picks]
    chosen["entropy"] = [round(float(entropy[i]), 4) for i in picks]
    chosen["cluster"] = [int(cluster[i]) for i in picks]
    chosen = chosen.sort_values("statement_id").reset_index(drop=True)  # reading order tells nothing
    cols = ["statement_id", "article_id", "start", "end", "text_sha1"]
    # the readers' files: statements only, no prediction (export_tasks writes labels only if given)
    out_json, out_csv = task_files(out)
    export_tasks(chosen[cols + ["text"]], out_json, out_csv)
    ids_file = out.with_suffix(".ids.jsonl")
    recs = chosen[cols + ["stratum", "margin", "entropy", "cluster"]].to_dict("records")
    write_atomic(ids_file, "".join(json.dumps({k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()},
                                              ensure_ascii=False) + "\n" for r in recs))

    summary = {"pool": len(st), "excluded": excluded, "eligible": len(pool), "candidates": len(cand),
               "scored_per_s": round(len(cand) / max(secs, 1e-9), 1), "picked": len(chosen),
               "picked_per_class": {l: v for l, v in facts["picked"].items()}, "quota": facts["quota"],
               "clusters": k, "clusters_used": int(chosen.cluster.nunique()),
               "cluster_cap": math.ceil(n / k) + 1, "cluster_cap_relaxed_for": facts["cluster_cap_relaxed_for"],
               "strategy": strategy, "seed": seed, "files": [str(out_json), str(out_csv), str(ids_file)]}
    if len(chosen) < n:
        log(f"only {len(chosen)} of the {n} statements asked for could be picked "
            f"({len(cand):,} candidates, at most 2 per article)")
    log("picked per predicted stance: " + ", ".join(f"{l} {v}/{facts['quota'][l]}" for l, v in facts["picked"].items())
        + " (picked/initial quota)")
    log(f"clusters: {summary['clusters_used']} of {k} used, at most {summary['cluster_cap']} per cluster"
        + (f" (relaxed for {facts['cluster_cap_relaxed_for']} picks to fill the batch)"
           if facts["cluster_cap_relaxed_for"] else ""))
    return summary
