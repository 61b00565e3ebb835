"""`nabra evaluate curve`: a learning curve, macro-F1 against the number of training statements.

For each fraction, a group-aware stratified subsample of the train split: groups (articles and their
duplicate clusters) are shuffled once with the seed within strata of their majority label, and a
fraction takes groups in that order until it holds its share of each stratum, so that the 25% subset
lies inside the 50% one. Each (fraction, seed) point trains the recipe with trainer.run (the same dev
split selects the checkpoint) and scores the model on each asked split with bootstrap 95% intervals
(evaluation.metrics.task_metrics).

Writes into OUT: points/f<fraction>-s<seed>/ (run/ and scores.json), data/f<fraction>/ (the subset as a
dataset folder), curve.json (every point and the summary), curve.md (fraction, n train statements, per
split and task the mean macro-F1 ± std over seeds and the 95% interval, averaged over seeds) and
curve.png. A rerun skips scored points and resumes an interrupted training; new fractions or seeds can be
added to the same OUT, and the summary holds every point scored there (so a fraction may have its own seeds).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from nabra.config import ConfigError, TrainConfig
from nabra.data.dataset import dataset_manifest, ids_hash, load_split
from nabra.errors import UserError
from nabra.io import read_json, refuse_file, refuse_foreign, write_atomic, write_json


def nested_subsets(train: pd.DataFrame, fractions: list[float], seed: int, task: str) -> dict[float, pd.DataFrame]:
    """fraction -> rows of `train`; nested (a smaller fraction's groups are a prefix of a larger one's)."""
    group = train["group"] if "group" in train else train["article_id"]
    g = pd.DataFrame({"group": group, "y": train[task]}).groupby("group").y.agg(
        size="size", stratum=lambda s: s.value_counts().sort_index().idxmax())
    g["key"] = np.random.default_rng(seed).random(len(g))
    g = g.sort_values(["stratum", "key"])
    before = g.groupby("stratum")["size"].cumsum() - g["size"]  # statements taken before this group
    total = g.groupby("stratum")["size"].transform("sum")
    return {f: train[group.isin(g.index[before < f * total])].reset_index(drop=True) for f in fractions}


def _key(f: float) -> str:
    return f"{f:g}"


def _point(cfg: TrainConfig, dataset_dir: Path, out: Path, f: float, sub: pd.DataFrame, seed: int,
           splits: list[str], n_boot: int, log) -> dict:
    from nabra.evaluation.metrics import labelled, task_metrics
    from nabra.evaluation.report import model_predictions
    from nabra.train.trainer import run as train_run

    pdir = out / "points" / f"f{_key(f)}-s{seed}"
    scores_file = pdir / "scores.json"
    scores = read_json(scores_file) if scores_file.exists() else {"splits": {}}
    todo = [s for s in splits if s not in scores["splits"]]
    if not todo:
        log(f"fraction {_key(f)}, seed {seed}: scored already, skipped")
        return scores
    run_dir = pdir / "run"
    if not (run_dir / "model").exists():
        data = out / "data" / f"f{_key(f)}"
        if not (data / "manifest.json").exists():
            data.mkdir(parents=True, exist_ok=True)
            sub.to_parquet(data / "train.parquet", index=False)
            load_split(dataset_dir, "dev").to_parquet(data / "dev.parquet", index=False)
            parent = dataset_manifest(dataset_dir)
            # the subset's own content hash (the run records it): the parent's would claim the full train split
            write_json(data / "manifest.json", {**parent, "curve_fraction": f, "parent_content_hash": parent.get("content_hash"),
                                                "content_hash": ids_hash([f"{parent.get('content_hash')}|fraction={f}",
                                                                          *sub.statement_id])})
            if (dataset_dir / "weak_train.parquet").exists():  # data.use_weak: the same weak set at every size
                shutil.copy(dataset_dir / "weak_train.parquet", data / "weak_train.parquet")
        log(f"fraction {_key(f)}, seed {seed}: training on {len(sub)} statements")
        c = cfg.model_copy(update={"training": cfg.training.model_copy(update={"seed": seed})})
        train_run(c, data, run_dir, resume=any((run_dir / "checkpoints").glob("checkpoint-*")), log=log)
    man = dataset_manifest(dataset_dir)
    for split in todo:
        df = load_split(dataset_dir, split, use="score")
        preds, probs, tasks = model_predictions(run_dir / "model", df)
        # a statement without a gold label for a task is left out of its scores, as in `nabra evaluate` (a
        # ValueError traceback here, after the training, before)
        gold = {t: df[t].notna().to_numpy() for t in tasks if t in df}
        scores["splits"][split] = {
            t: {k: v for k, v in task_metrics(df[t][g].tolist(), labelled(preds[t], g), list(man["tasks"][t]), None,
                                              None, n_boot, seed).items() if k in ("macro_f1", "accuracy", "ci95", "n")}
            for t, g in gold.items()}
    scores.update(fraction=f, seed=seed, n_train=len(sub))
    write_json(scores_file, scores)
    return scores


def run_curve(cfg: TrainConfig, dataset_dir: str | Path, out: str | Path, fractions: list[float], seeds: list[int],
              splits: list[str] = ("dev",), n_boot: int = 1000, subsample_seed: int = 13, log=print) -> dict:
    """Trains and scores every (fraction, seed) point not done yet; writes curve.json, curve.md, curve.png."""
    dataset_dir, out = Path(dataset_dir), Path(out)
    fractions = sorted(set(fractions))
    if not fractions or not all(0 < f <= 1 for f in fractions):
        raise UserError(f"--fractions {fractions}: each must be in (0, 1]")
    splits = list(dict.fromkeys(splits))
    for s in splits:
        load_split(dataset_dir, s, use="score")  # an absent or empty split fails before any training
    man = dataset_manifest(dataset_dir)
    plan = {"dataset": str(dataset_dir.resolve()), "dataset_content_hash": man.get("content_hash"),
            "subsample_seed": subsample_seed, "bootstrap_resamples": n_boot, "config": cfg.model_dump()}
    plan_file = out / "curve_plan.json"
    # a file was a FileExistsError traceback; a run or report folder got points/ and data/ written into it
    fix = "give a new or empty folder, or the --out of an earlier curve to resume it"
    refuse_file(f"--out {out}", out, fix)
    if out.is_dir() and not plan_file.exists():
        refuse_foreign(f"--out {out}", [p.name for p in out.iterdir()], "`nabra evaluate curve`",
                       "it holds no curve (no curve_plan.json); " + fix)
    if plan_file.exists() and read_json(plan_file) != json.loads(json.dumps(plan)):
        raise ConfigError(f"{out} holds a curve of other data, config, subsample seed or bootstrap: choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    write_json(plan_file, plan)
    train = load_split(dataset_dir, "train")
    task = next(t for t in cfg.data.tasks if t in train)
    subsets = nested_subsets(train, fractions, subsample_seed, task)
    for f in fractions:
        for s in seeds:
            _point(cfg, dataset_dir, out, f, subsets[f], s, splits, n_boot, log)
    points = scored_points(out, splits)
    summary = summarize(points, splits)
    curve = {**plan, "fractions": sorted({p["fraction"] for p in points}),
             "seeds": sorted({p["seed"] for p in points}), "splits": splits, "points": points, "summary": summary}
    write_json(out / "curve.json", curve)
    write_atomic(out / "curve.md", markdown(curve))
    plot(summary, out / "curve.png")
    return curve


def scored_points(out: Path, splits: list[str]) -> list[dict]:
    """Every point of OUT scored on all of `splits`, this invocation's and earlier ones' (the plan file
    guarantees they share data and config), so that fractions or seeds added later join the summary."""
    pts = [read_json(f) for f in (out / "points").glob("*/scores.json")]
    return sorted((p for p in pts if all(s in p["splits"] for s in splits)), key=lambda p: (p["fraction"], p["seed"]))


def summarize(points: list[dict], splits: list[str]) -> list[dict]:
    """Per fraction, split and task: mean ± std of macro-F1 over seeds, and the 95% interval averaged over seeds."""
    from nabra.evaluation.metrics import aggregate

    rows = []
    for f in sorted({p["fraction"] for p in points}):
        ps = [p for p in points if p["fraction"] == f]
        for split in splits:
            for t in ps[0]["splits"][split]:
                ms = [p["splits"][split][t] for p in ps]
                a = aggregate(ms, keys=("macro_f1",))["macro_f1"]
                ci = [round(float(np.mean([m["ci95"]["macro_f1"][i] for m in ms])), 6) for i in (0, 1)] \
                    if all("ci95" in m for m in ms) else None
                rows.append({"fraction": f, "n_train": ps[0]["n_train"], "split": split, "task": t,
                             "macro_f1_mean": a["mean"], "macro_f1_std": a["std"], "seeds": a["n"], "ci95": ci})
    return rows


def markdown(curve: dict) -> str:
    L = ["# Learning curve", "", f"Macro-F1 by training-set size: mean ± std over the seeds of each point (seeds "
         f"{curve['seeds']}); 95% bootstrap "
         f"interval ({curve['bootstrap_resamples']} resamples) averaged over seeds. Subsamples of the train split are "
         f"nested and group-aware (seed {curve['subsample_seed']}); the dev split selects every checkpoint.", "",
         "| fraction | n train | seeds | split | task | macro-F1 mean ± std | 95% CI |", "|---|---|---|---|---|---|---|"]
    for r in curve["summary"]:
        ci = f"[{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]" if r["ci95"] else "–"
        L.append(f"| {r['fraction']:g} | {r['n_train']} | {r['seeds']} | {r['split']} | {r['task']} | "
                 f"{r['macro_f1_mean']:.3f} ± {r['macro_f1_std']:.3f} | {ci} |")
    return "\n".join(L) + "\n\n![learning curve](curve.png)\n"


def plot(summary: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(r["task"] for r in summary))
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 3.8), squeeze=False)
    for ax, t in zip(axes[0], tasks):
        for split in dict.fromkeys(r["split"] for r in summary):
            rs = [r for r in summary if r["task"] == t and r["split"] == split]
            x = [r["n_train"] for r in rs]
            line, = ax.plot(x, [r["macro_f1_mean"] for r in rs], "o-", label=split)
            if all(r["ci95"] for r in rs):
                ax.fill_between(x, [r["ci95"][0] for r in rs], [r["ci95"][1] for r in rs], alpha=0.2,
                                color=line.get_color())
        ax.set_title(f"{t}: macro-F1 (95% interval)")
        ax.set_xlabel("training statements")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90, metadata={"Software": None})
    plt.close(fig)
