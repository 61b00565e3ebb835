"""Metrics per task: scikit-learn's scores, seeded bootstrap intervals, calibration, multi-run aggregation.

Point estimates come from scikit-learn. The bootstrap recomputes macro/weighted F1 and accuracy
from confusion counts with numpy (1,000 resamples of a 300-statement test set in milliseconds,
where calling sklearn 1,000 times takes seconds); a test checks both agree on the full sample.
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import (accuracy_score, cohen_kappa_score, confusion_matrix, f1_score,
                             precision_recall_fscore_support)

R = 6  # digits kept in every reported number: reports must reproduce byte for byte


def labelled(values, mask: np.ndarray) -> list:
    """The items of `values` where `mask` (a task's gold-label mask) is true: statements without gold
    for a task are left out of its scores and fits."""
    return [v for v, keep in zip(values, mask) if keep]


def _r(x) -> float:
    return round(float(x), R)


def _f1_from_counts(tp, fp, fn):
    denom = 2 * tp + fp + fn
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)


def resample_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) indices of the seeded bootstrap resamples of n statements."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def resampled_f1(t: np.ndarray, p: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per resample (rows of the (B, n) class-id arrays t, p): per-class F1 (B, k), macro F1 (B,) as
    sklearn averages it (over the labels present in gold or predictions) and gold support (B, k)."""
    onehot_t = np.eye(k, dtype=np.int32)[t]  # (B, n, k)
    onehot_p = np.eye(k, dtype=np.int32)[p]
    tp = (onehot_t & onehot_p).sum(1)
    fp = onehot_p.sum(1) - tp
    fn = onehot_t.sum(1) - tp
    f1 = _f1_from_counts(tp, fp, fn)
    support = onehot_t.sum(1)
    present = (support > 0) | (onehot_p.sum(1) > 0)
    return f1, (f1 * present).sum(1) / np.maximum(present.sum(1), 1), support


def bootstrap(y_true: np.ndarray, y_pred: np.ndarray, k: int, n_boot: int = 1000, seed: int = 0,
              headline: list[int] | None = None) -> dict:
    """95% percentile intervals for macro F1, weighted F1, accuracy, headline F1 and per-class F1."""
    idx = resample_indices(len(y_true), n_boot, seed)
    t, p = y_true[idx], y_pred[idx]
    f1, macro, support = resampled_f1(t, p, k)
    weighted = (f1 * support).sum(1) / np.maximum(support.sum(1), 1)
    acc = (t == p).mean(1)
    out = {"macro_f1": macro, "weighted_f1": weighted, "accuracy": acc}
    if headline:
        out["headline_f1"] = f1[:, headline].mean(1)
    ci = {m: [_r(np.percentile(v, 2.5)), _r(np.percentile(v, 97.5))] for m, v in out.items()}
    ci["per_class_f1"] = [[_r(np.percentile(f1[:, c], 2.5)), _r(np.percentile(f1[:, c], 97.5))] for c in range(k)]
    return ci


def calibration(y_true: np.ndarray, probs: np.ndarray, n_bins: int = 10) -> dict:
    """Expected calibration error (equal-width confidence bins) and the reliability diagram's bins."""
    conf = probs.max(1)
    pred = probs.argmax(1)
    correct = (pred == y_true).astype(float)
    edges = np.linspace(0, 1, n_bins + 1)
    bins, ece = [], 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi) if lo > 0 else (conf >= lo) & (conf <= hi)
        if m.sum() == 0:
            bins.append({"lo": _r(lo), "hi": _r(hi), "count": 0, "confidence": None, "accuracy": None})
            continue
        c, a = conf[m].mean(), correct[m].mean()
        ece += m.mean() * abs(c - a)
        bins.append({"lo": _r(lo), "hi": _r(hi), "count": int(m.sum()), "confidence": _r(c), "accuracy": _r(a)})
    return {"ece": _r(ece), "bins": bins}


def task_metrics(y_true: list[str], y_pred: list[str], labels: list[str], probs: np.ndarray | None = None,
                 headline_labels: list[str] | None = None, n_boot: int = 1000, seed: int = 0) -> dict:
    """All numbers for one task. `labels` fixes the class order; `headline_labels` (e.g. Favor and
    Against for Mawqif) adds the benchmark's official F1 over that subset."""
    idx = {l: i for i, l in enumerate(labels)}
    unknown = sorted({str(v) for v in list(y_true) + list(y_pred) if v not in idx})
    if unknown:
        raise ValueError(f"labels {unknown} are not in the task's label list {labels}")
    yt = np.array([idx[v] for v in y_true])
    yp = np.array([idx[v] for v in y_pred])
    ids = list(range(len(labels)))
    p, r, f, s = precision_recall_fscore_support(yt, yp, labels=ids, zero_division=0)
    out = {
        "n": int(len(yt)),
        "macro_f1": _r(f1_score(yt, yp, average="macro", zero_division=0)),  # labels present in gold or pred
        "weighted_f1": _r(f1_score(yt, yp, labels=ids, average="weighted", zero_division=0)),
        "accuracy": _r(accuracy_score(yt, yp)),
        "kappa": _r(cohen_kappa_score(yt, yp, labels=ids)) if len(set(yt) | set(yp)) > 1 else 0.0,
        "per_class": {l: {"precision": _r(p[i]), "recall": _r(r[i]), "f1": _r(f[i]), "support": int(s[i])}
                      for i, l in enumerate(labels)},
        "confusion": confusion_matrix(yt, yp, labels=ids).tolist(),
        "labels": list(labels),
    }
    head = None
    if headline_labels:
        head = [idx[l] for l in headline_labels]
        out["headline_labels"] = list(headline_labels)
        out["headline_f1"] = _r(f1_score(yt, yp, labels=head, average="macro", zero_division=0))
    if n_boot:
        out["ci95"] = bootstrap(yt, yp, len(labels), n_boot=n_boot, seed=seed, headline=head)
    if probs is not None:
        out["calibration"] = calibration(yt, np.asarray(probs))
    return out


def aggregate(reports: list[dict], keys=("macro_f1", "accuracy", "weighted_f1", "headline_f1")) -> dict:
    """mean ± std (sample std, ddof=1) of each headline figure over several runs' task metrics."""
    out = {}
    for k in keys:
        vals = [r[k] for r in reports if k in r]
        if vals:
            out[k] = {"mean": _r(np.mean(vals)), "std": _r(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0,
                      "n": len(vals), "values": [_r(v) for v in vals]}
    return out
