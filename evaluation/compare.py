"""`nabra evaluate compare`: the gain of one group of runs over another on the same split, with a
paired bootstrap.

Both groups, reference and candidate (e.g. three seeds of a recipe trained on the old gold, three on
the new), predict the same statements of one split. Each bootstrap resample draws those statements
with replacement once and scores every run on that draw, so the interval of the gain (the candidate
runs' mean macro-F1 minus the reference runs') holds the test-set sampling that both groups share; the
seed spread is reported beside it (std over runs). An interval that excludes 0 says the split can
tell the two apart.

Writes OUT/compare.json (every number, the runs, the split's ids hash, seed and resamples) and
OUT/compare.md (per split and task: both groups' mean ± std, the gain [95% CI], the share of
resamples where the candidate is not better, and the per-class F1 of each group).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from nabra.data.dataset import dataset_manifest, ids_hash, load_split
from nabra.errors import UserError
from nabra.evaluation.metrics import R, labelled, resample_indices, resampled_f1, task_metrics
from nabra.evaluation.report import earlier_output, model_predictions
from nabra.io import atomic_dir, write_atomic, write_json
from nabra.train.model_dir import validate


def paired_gain(y: np.ndarray, preds_a: list[np.ndarray], preds_b: list[np.ndarray], k: int,
                n_boot: int = 1000, seed: int = 0) -> dict:
    """Gain of group B (candidate) over group A (reference) in macro-F1 (mean over each group's runs), with a 95% percentile
    interval from resampling the statements (the same resamples for every run)."""
    idx = resample_indices(len(y), n_boot, seed)
    t = y[idx]

    def group_mean(preds):
        return np.mean([resampled_f1(t, p[idx], k)[1] for p in preds], axis=0)

    diff = group_mean(preds_b) - group_mean(preds_a)
    return {"ci95": [round(float(np.percentile(diff, 2.5)), R), round(float(np.percentile(diff, 97.5)), R)],
            "share_not_better": round(float((diff <= 0).mean()), R)}


def compare(runs_a: list, runs_b: list, dataset_dir: str | Path, splits: list[str], out: str | Path,
            names: tuple[str, str] = ("reference", "candidate"), n_boot: int = 1000, seed: int = 0, log=print) -> dict:
    """Scores both groups on each split and writes compare.json / compare.md (see the module docstring)."""
    if not runs_a or not runs_b:
        raise UserError("give at least one run in each group (--reference RUN ... --candidate RUN ...)")
    out = Path(out)
    man = dataset_manifest(dataset_dir)
    result = {"dataset": str(Path(dataset_dir).resolve()), "dataset_content_hash": man.get("content_hash"),
              "groups": {names[0]: [str(r) for r in runs_a], names[1]: [str(r) for r in runs_b]},
              "bootstrap_resamples": n_boot, "seed": seed, "splits": {}}
    frames = {s: load_split(dataset_dir, s, use="score") for s in splits}  # an absent or empty split fails before any prediction
    # --out a file (a FileExistsError traceback after every prediction) or a folder of something else: refused now
    also = earlier_output(out, re.compile(r"compare\.(json|md)"), "nabra evaluate compare")
    for r in list(runs_a) + list(runs_b):
        d = validate(r, "torch")  # a run or model folder that cannot predict fails before any prediction
        heads = json.loads((d / "config.json").read_text(encoding="utf-8"))["tasks"]
        missing = [t for t in man["tasks"] if t not in heads]
        if missing:  # a KeyError in the scoring loop before
            raise UserError(f"{r}: no head for {', '.join(missing)} of the dataset; compare runs of the same tasks")
        off = [f"{t}: model {sorted(heads[t])}, dataset {sorted(man['tasks'][t])}" for t in man["tasks"]
               if set(heads[t]) - set(man["tasks"][t])]
        if off:  # e.g. a Mawqif run on the gold set: a ValueError traceback in the scoring before
            raise UserError(f"{r}: its labels do not match the dataset's: " + "; ".join(off))
    preds = {}
    for r in list(runs_a) + list(runs_b):
        log(f"predicting with {r}")
        preds[str(r)] = {s: model_predictions(r, df)[0] for s, df in frames.items()}
    for s, df in frames.items():
        rows = {}
        for t, labels in man["tasks"].items():
            if t not in df:
                continue
            labels = list(labels)
            ix = {l: i for i, l in enumerate(labels)}
            # a statement without a gold label for this task is left out of its scores, as in `nabra evaluate`
            # (a KeyError: nan here before)
            g = df[t].notna().to_numpy()
            gold = df[t][g].tolist()
            pred = {str(r): labelled(preds[str(r)][s][t], g) for r in list(runs_a) + list(runs_b)}
            y = np.array([ix[v] for v in gold])
            group = {}
            for name, runs in zip(names, (runs_a, runs_b)):
                ms = [task_metrics(gold, pred[str(r)], labels, n_boot=0) for r in runs]
                f1s = [m["macro_f1"] for m in ms]
                group[name] = {"macro_f1": [round(float(v), R) for v in f1s],
                               "mean": round(float(np.mean(f1s)), R),
                               "std": round(float(np.std(f1s, ddof=1)), R) if len(f1s) > 1 else 0.0,
                               "per_class_f1": {l: round(float(np.mean([m["per_class"][l]["f1"] for m in ms])), R)
                                                for l in labels}}
            codes = {name: [np.array([ix[v] for v in pred[str(r)]]) for r in runs]
                     for name, runs in zip(names, (runs_a, runs_b))}
            gain = paired_gain(y, codes[names[0]], codes[names[1]], len(labels), n_boot, seed)
            rows[t] = {**group, "gain": round(group[names[1]]["mean"] - group[names[0]]["mean"], R), **gain,
                       "n": len(gold), "support": {l: int((df[t] == l).sum()) for l in labels}}
        result["splits"][s] = {"ids_hash": ids_hash(df.statement_id.tolist()), "tasks": rows}
    with atomic_dir(out, also=also) as tmp:
        write_json(tmp / "compare.json", result)
        write_atomic(tmp / "compare.md", markdown(result, names))
    return result


def markdown(result: dict, names: tuple[str, str]) -> str:
    a, b = names
    L = [f"# {b} against {a}: paired bootstrap ({result['bootstrap_resamples']} resamples, seed {result['seed']})", "",
         f"- {a}: " + ", ".join(f"`{r}`" for r in result["groups"][a]),
         f"- {b}: " + ", ".join(f"`{r}`" for r in result["groups"][b]), "",
         f"| split | task | n | {a} macro-F1 (mean ± std) | {b} macro-F1 (mean ± std) | gain [95% CI] | resamples where {b} is not better |",
         "|---|---|---|---|---|---|---|"]
    for s, sp in result["splits"].items():
        for t, r in sp["tasks"].items():
            L.append(f"| {s} | {t} | {r['n']} | {r[a]['mean']:.3f} ± {r[a]['std']:.3f} | {r[b]['mean']:.3f} ± "
                     f"{r[b]['std']:.3f} | {r['gain']:+.3f} [{r['ci95'][0]:+.3f}, {r['ci95'][1]:+.3f}] | "
                     f"{r['share_not_better']:.3f} |")
    for s, sp in result["splits"].items():
        for t, r in sp["tasks"].items():
            L += ["", f"## {s}, {t}: per-class F1 (mean over runs)", "",
                  f"| label | support | {a} | {b} | gain |", "|---|---|---|---|---|"]
            L += [f"| {l} | {r['support'][l]} | {r[a]['per_class_f1'][l]:.3f} | {r[b]['per_class_f1'][l]:.3f} | "
                  f"{r[b]['per_class_f1'][l] - r[a]['per_class_f1'][l]:+.3f} |" for l in r["support"]]
    return "\n".join(L) + "\n"
