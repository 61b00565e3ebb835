"""`nabra evaluate`: the model beside its baselines on one split, with intervals, plots and errors.

Writes into OUT:
  report.json   every number, plus what reproduces it: the run's config, dataset and split hashes,
                seed, git commit, package versions (no timestamps: two runs give identical bytes)
  report.md     the tables
  report.html   one self-contained page, plots embedded as PNG data URIs
  *.png         confusion matrices, per-class F1 with 95% intervals, reliability diagram
"""
from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from nabra.data.dataset import dataset_manifest, ids_hash, load_split, rows_hash
from nabra.evaluation.metrics import aggregate, labelled, task_metrics
from nabra.errors import UserError
from nabra.io import atomic_dir, git_commit, read_json, refuse_file, refuse_foreign, versions, write_atomic
from nabra.train.model_dir import load_pipeline, resolve as resolve_model_dir


def model_predictions(model_dir: str | Path, df: pd.DataFrame, backend: str = "torch") -> tuple[dict, dict]:
    """({task: predicted labels}, {task: probability matrix}) of a trained model on a split."""
    from nabra.train.predict import StanceClassifier

    clf = StanceClassifier.from_pretrained(model_dir, backend=backend)
    pairs = df.text_pair.fillna("").tolist() if "text_pair" in df and clf.text_pair else None
    probs = clf.predict_proba(df.text.tolist(), pairs)
    preds = {t: [clf.tasks[t][i] for i in p.argmax(1)] for t, p in probs.items()}
    return preds, probs, clf.tasks


def error_analysis(df: pd.DataFrame, task: str, labels: list[str], pred: list[str], probs: np.ndarray,
                   k: int = 10, pairs: int = 5, per_pair: int = 3) -> dict:
    gold = df[task].tolist()
    conf = probs.max(1)
    wrong = [i for i in range(len(df)) if pred[i] != gold[i]]
    wrong.sort(key=lambda i: (-conf[i], df.statement_id.iloc[i]))
    row = lambda i: {"statement_id": df.statement_id.iloc[i], "text": df.text.iloc[i], "gold": gold[i],
                     "pred": pred[i], "confidence": round(float(conf[i]), 6)}
    counts: dict[tuple, list[int]] = {}
    for i in wrong:
        counts.setdefault((gold[i], pred[i]), []).append(i)
    top = sorted(counts.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:pairs]
    return {"confident_errors": [row(i) for i in wrong[:k]],
            "confusion_pairs": [{"gold": g, "pred": p, "count": len(ix), "examples": [row(i) for i in ix[:per_pair]]}
                                for (g, p), ix in top]}


def baseline_encoder(run_config: dict) -> dict | None:
    """The pretrained encoder a run was fine-tuned from, with its input prefix, for the embeddings + LR
    baseline; None for a model built from a config (nothing pretrained to freeze)."""
    m = run_config.get("model", {})
    if not m.get("name_or_path"):
        return None
    return {"encoder": m["name_or_path"], "prefix": m.get("input_prefix", ""), "pooling": "mean",
            "max_length": m.get("max_length", 128)}


def evaluate(model_dir: str | Path | None, dataset_dir: str | Path, split: str, out: str | Path,
             baselines_dir: str | Path | None = None, seed: int = 0, n_boot: int = 1000,
             headline: dict[str, list[str]] | None = None, runs: list[str] | None = None,
             with_baselines: bool = True, title: str = "nabra evaluation", encoder: dict | None = None,
             cache: dict | None = None) -> dict:
    """Scores the model(s) and the baselines on `split`. `encoder` ({"encoder", "prefix", "pooling"}) adds the
    frozen embeddings + LR baseline; by default it is the pretrained encoder the (first) model was trained from.
    `cache`: a dict shared by calls on several splits, so that the baselines are fitted once."""
    from nabra.evaluation.baselines import load_baselines, predict_baselines, train_baselines

    out = Path(out)
    man = dataset_manifest(dataset_dir)
    df = load_split(dataset_dir, split, use="score")
    label_lists = {t: list(v) for t, v in man["tasks"].items() if t in df.columns}
    headline = headline or man.get("headline_labels") or {}
    report: dict = {"title": title, "split": split, "n_statements": len(df), "seed": seed, "bootstrap_resamples": n_boot,
                    "provenance": {"dataset_content_hash": man.get("content_hash"),
                                   "dataset_label_source": man.get("label_source"),
                                   "split_ids_hash": ids_hash(df.statement_id), "split_rows_hash": rows_hash(df), "git_commit": git_commit(),
                                   "versions": versions()},
                    "tasks": {}, "baselines": {}, "errors": {}}
    # a statement without a gold label for a task (training skips it too) is left out of that task's scores
    gold = {t: df[t].notna().to_numpy() for t in label_lists}
    unlabelled = {t: int((~g).sum()) for t, g in gold.items() if not g.all()}
    if unlabelled:
        report["unlabelled"] = unlabelled
    if with_baselines and baselines_dir:  # before any prediction: a folder fitted on other data fails in seconds
        report["provenance"]["baselines"] = saved_baselines(baselines_dir, dataset_dir, man, label_lists)
    model_dirs = list(runs or ([] if model_dir is None else [model_dir]))
    per_run: dict[str, list[dict]] = {t: [] for t in label_lists}
    for i, md in enumerate(model_dirs):
        preds, probs, tasks = model_predictions(md, df)
        off = {t: (sorted(tasks[t]), label_lists[t]) for t in tasks if t in label_lists and set(tasks[t]) - set(label_lists[t])}
        if off:  # e.g. a model trained on another benchmark's labels (their case differs): no score to give
            raise UserError(f"{md}: its labels do not match the dataset's: " + "; ".join(
                f"{t}: model {m}, dataset {d}" for t, (m, d) in off.items()))
        run_dir = Path(md)
        prov = {"model": str(md)}
        if (run_dir / "config.yaml").exists():
            import yaml

            prov["run_config"] = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
            info = read_json(run_dir / "run_info.json")
            prov["run_seed"] = info.get("seed")
            prov["run_dataset_content_hash"] = info.get("dataset_content_hash")
            prov["run_git_commit"] = info.get("git_commit")
        else:  # a model folder on its own (exported, copied): the run's record it carries
            facts = load_pipeline(resolve_model_dir(md)).get("training_data") or {}
            if facts.get("run_config"):
                prov.update(run_config=facts["run_config"], run_seed=facts.get("seed"),
                            run_dataset_content_hash=facts.get("dataset_content_hash"),
                            run_git_commit=facts.get("git_commit"))
        if encoder is None and i == 0 and prov.get("run_config"):
            encoder = baseline_encoder(prov["run_config"])
        report["provenance"].setdefault("models", []).append(prov)
        for t in label_lists:
            if t not in preds:
                continue
            g = gold[t]
            pred, prob = labelled(preds[t], g), probs[t][g]
            m = task_metrics(df[t][g].tolist(), pred, label_lists[t], prob, headline.get(t), n_boot, seed)
            per_run[t].append(m)
            if i == 0:
                report["tasks"][t] = {"model": m}
                report["errors"][t] = error_analysis(df[g].reset_index(drop=True), t, label_lists[t], pred, prob)
    if len(model_dirs) > 1:
        report["aggregate"] = {t: aggregate(v) for t, v in per_run.items() if v}
    if with_baselines:
        bl = (cache or {}).get("baselines")
        if bl is None and baselines_dir:
            bl = load_baselines(baselines_dir)
        elif bl is None:
            data = {s: load_split(dataset_dir, s, use="fit the baselines on (give --no-baselines or --baselines DIR)")
                    for s in ("train", "dev")}
            bl = train_baselines(data, label_lists, headline, seed=seed, encoder=encoder)
        if cache is not None:
            cache["baselines"] = bl
        report["baselines_info"] = bl["info"]
        for t, by_name in predict_baselines(bl, df).items():
            g = gold[t]
            report["baselines"][t] = {name: task_metrics(df[t][g].tolist(), labelled(p, g), label_lists[t],
                                                         None, headline.get(t), n_boot, seed)
                                      for name, p in sorted(by_name.items())}
    with atomic_dir(out, also=earlier_report(out)) as tmp:
        write_atomic(tmp / "report.json", json.dumps(report, ensure_ascii=False, indent=2, sort_keys=True) + "\n")
        pngs = plots(report, tmp)
        write_atomic(tmp / "report.md", markdown(report))
        write_atomic(tmp / "report.html", to_html(report, pngs))
    return report


REPORT_FILE = re.compile(r"report\.(json|md|html)|(confusion|f1|reliability)_[^/]+\.png")
SPLITS = ("dev", "test", "test-v2")


def earlier_report(out: str | Path) -> tuple[str, ...]:
    """The names in `out` that an earlier `nabra evaluate` wrote there (a report of one split, or of several in
    <split>/ folders): atomic_dir replaces them with the new report whole, so no report.json or plot of an
    earlier run sits beside the new report.md."""
    return earlier_output(out, REPORT_FILE, "nabra evaluate", SPLITS)


def earlier_output(out: str | Path, ours: re.Pattern, command: str, folders: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The names in an existing `out` that `command` writes (files matching `ours`; `folders` of such files),
    for atomic_dir's `also`. Anything else there (a run, a dataset), or `out` a file, is refused now, before
    the work: `--out` names the command's own folder."""
    out = Path(out)
    refuse_file(f"--out {out}", out)
    if not out.exists():
        return ()
    mine = lambda p: p.is_file() and ours.fullmatch(p.name)
    names = tuple(p.name for p in out.iterdir()
                  if mine(p) or (p.is_dir() and p.name in folders and all(map(mine, p.iterdir()))))
    refuse_foreign(f"--out {out}", [p.name + "/" * p.is_dir() for p in out.iterdir() if p.name not in names],
                   f"`{command}`", "not replaced; give a new or empty folder, or remove it first")
    return names


def saved_baselines(directory: str | Path, dataset_dir: str | Path, man: dict, label_lists: dict) -> dict:
    """What report.json records of a `--baselines` folder (its dataset hash, seed, commit: the report named
    none of them). One fitted on another dataset is refused: its scores are not this split's baselines, and
    one of other tasks (a benchmark's) ended in a KeyError traceback."""
    d = Path(directory)
    if not (d / "baselines.json").is_file():
        return {"dir": str(d)}  # load_baselines names what is missing
    meta = read_json(d / "baselines.json")
    fitted, here = meta.get("dataset_content_hash"), man.get("content_hash")
    other = sorted(set(meta.get("models") or {}) - set(label_lists))
    if (fitted and here and fitted != here) or other:
        why = f"tasks {', '.join(other)}, which {dataset_dir} lacks" if other else \
            f"dataset content hash {fitted}, {dataset_dir} has {here}"
        raise UserError(f"--baselines {d}: fitted on another dataset ({why}); fit them on this one with "
                        f"`nabra baseline --data {dataset_dir} --out DIR`, or leave --baselines out to fit them now")
    return {"dir": str(d), "dataset_content_hash": fitted, "seed": meta.get("seed"), "git_commit": meta.get("git_commit"),
            "weak_rules_sha1": meta.get("weak_rules_sha1")}


def evaluate_splits(model_dir, dataset_dir, splits: list[str], out: str | Path, **kw) -> dict[str, dict]:
    """evaluate() on each split: one split writes its report into OUT, several into OUT/<split>/ and
    OUT/report.md holds their summary tables side by side (baselines fitted once)."""
    out = Path(out)
    for s in splits:  # an absent or empty split fails before any prediction or report
        load_split(dataset_dir, s, use="score")
    also = earlier_report(out)  # an --out that is a file or holds something else: said before any scoring
    if len(splits) == 1:
        return {splits[0]: evaluate(model_dir, dataset_dir, splits[0], out, **kw)}
    cache: dict = {}
    with atomic_dir(out, also=also) as tmp:  # the split reports and their summary replace OUT together
        reps = {s: evaluate(model_dir, dataset_dir, s, tmp / s, cache=cache, **kw) for s in splits}
        L = [f"# {kw.get('title', 'nabra evaluation')}: {', '.join(splits)}", "",
             "| split | n | " + " | ".join(HEAD) + " |", "|" + "---|" * (len(HEAD) + 2)]
        L += [f"| {s} | {r['n_statements']} | " + " | ".join(row) + " |" for s, r in reps.items() for row in summary_rows(r)]
        L += ["", "Full reports: " + ", ".join(f"[{s}]({s}/report.md)" for s in splits), ""]
        write_atomic(tmp / "report.md", "\n".join(L))
    return reps


# ----------------------------------------------------------------------------- plots
def plots(report: dict, out: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = {}

    def save(fig, ax, key: str, title: str, legend: bool = True) -> None:
        ax.set_title(title)
        if legend:
            ax.legend(fontsize=8)
        fig.tight_layout()
        files[key] = out / f"{key}.png"
        fig.savefig(files[key], dpi=90, metadata={"Software": None})  # no version stamp: same figure, same bytes
        plt.close(fig)

    for t, d in report["tasks"].items():
        m = d["model"]
        cm = np.array(m["confusion"])
        fig, ax = plt.subplots(figsize=(1.1 * len(m["labels"]) + 2.5, 1.0 * len(m["labels"]) + 2))
        ax.imshow(cm, cmap="Blues")
        ax.set_xticks(range(len(m["labels"])), m["labels"], rotation=40, ha="right")
        ax.set_yticks(range(len(m["labels"])), m["labels"])
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, str(v), ha="center", va="center", color="white" if v > cm.max() / 2 else "black")
        ax.set_xlabel("predicted")
        ax.set_ylabel("gold")
        save(fig, ax, f"confusion_{t}", f"{t}: confusion matrix (model)", legend=False)

        systems = {"model": m, **report["baselines"].get(t, {})}
        fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(m["labels"])), 4))
        width = 0.8 / len(systems)
        for k, (name, sm) in enumerate(systems.items()):
            f1 = [sm["per_class"][l]["f1"] for l in m["labels"]]
            x = np.arange(len(m["labels"])) + k * width
            if "ci95" in sm:
                lo = [f - c[0] for f, c in zip(f1, sm["ci95"]["per_class_f1"])]
                hi = [c[1] - f for f, c in zip(f1, sm["ci95"]["per_class_f1"])]
                ax.bar(x, f1, width, yerr=[lo, hi], capsize=2, label=name)
            else:
                ax.bar(x, f1, width, label=name)
        ax.set_xticks(np.arange(len(m["labels"])) + 0.4 - width / 2, m["labels"], rotation=30, ha="right")
        ax.set_ylim(0, 1)
        ax.set_ylabel("F1 (95% bootstrap interval)")
        save(fig, ax, f"f1_{t}", f"{t}: per-class F1, model and baselines")

        if "calibration" in m:
            bins = [b for b in m["calibration"]["bins"] if b["count"]]
            fig, ax = plt.subplots(figsize=(4.5, 4.5))
            ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect")
            ax.bar([(b["lo"] + b["hi"]) / 2 for b in bins], [b["accuracy"] for b in bins], width=0.09, alpha=0.7,
                   label="accuracy")
            ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o-", color="C3", label="model")
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            ax.set_xlabel("confidence")
            ax.set_ylabel("accuracy")
            save(fig, ax, f"reliability_{t}", f"{t}: reliability (ECE {m['calibration']['ece']:.3f})")
    return files


# ----------------------------------------------------------------------------- text reports
def _fmt(m: dict, key: str) -> str:
    v = m.get(key)
    if v is None:
        return "–"
    ci = m.get("ci95", {}).get(key)
    return f"{v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{v:.3f}"


def summary_rows(report: dict) -> list[list[str]]:
    rows = []
    for t, d in report["tasks"].items():
        agg = report.get("aggregate", {}).get(t)
        # with --runs the model's scores (intervals, plots, errors) are the first run's: say so, and give the
        # mean ± std over the runs beside it (the side-by-side table of several splits had no mean at all)
        systems = {"model (run 1)" if agg else "model": d["model"], **report["baselines"].get(t, {})}
        for name, m in systems.items():
            rows.append([t, name, _fmt(m, "macro_f1"), _fmt(m, "headline_f1") if "headline_f1" in m else "–",
                         _fmt(m, "accuracy"), f"{m['kappa']:.3f}",
                         f"{m['calibration']['ece']:.3f}" if "calibration" in m else "–"])
            if agg and name.startswith("model"):
                ms = lambda k: f"{agg[k]['mean']:.3f} ± {agg[k]['std']:.3f}" if k in agg else "–"
                rows.append([t, f"mean of {agg['macro_f1']['n']} runs", ms("macro_f1"), ms("headline_f1"),
                             ms("accuracy"), "–", "–"])
    if not report["tasks"]:
        for t, by in report["baselines"].items():
            for name, m in by.items():
                rows.append([t, name, _fmt(m, "macro_f1"), _fmt(m, "headline_f1") if "headline_f1" in m else "–",
                             _fmt(m, "accuracy"), f"{m['kappa']:.3f}", "–"])
    return rows


HEAD = ["task", "system", "macro-F1 [95% CI]", "headline F1", "accuracy", "kappa", "ECE"]


def markdown(report: dict) -> str:
    L = [f"# {report['title']}", "", f"Split `{report['split']}`, {report['n_statements']} statements; bootstrap "
         f"{report['bootstrap_resamples']} resamples, seed {report['seed']}.", "",
         "| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
    L += ["| " + " | ".join(r) + " |" for r in summary_rows(report)]
    if "aggregate" in report:
        L += ["", "## Over runs (mean ± std)", "", "| task | metric | mean ± std | n |", "|---|---|---|---|"]
        for t, a in report["aggregate"].items():
            for k, v in a.items():
                L.append(f"| {t} | {k} | {v['mean']:.3f} ± {v['std']:.3f} | {v['n']} |")
    for t, d in report["tasks"].items():
        m = d["model"]
        L += ["", f"## {t}: per class (model)", "", "| label | precision | recall | F1 [95% CI] | support |",
              "|---|---|---|---|---|"]
        for i, l in enumerate(m["labels"]):
            pc = m["per_class"][l]
            ci = m.get("ci95", {}).get("per_class_f1", [[0, 0]] * len(m["labels"]))[i]
            L.append(f"| {l} | {pc['precision']:.3f} | {pc['recall']:.3f} | {pc['f1']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] | {pc['support']} |")
        err = report["errors"].get(t, {})
        if err.get("confusion_pairs"):
            L += ["", f"### {t}: top confusions", ""]
            for p in err["confusion_pairs"]:
                L.append(f"- gold **{p['gold']}** → predicted **{p['pred']}**: {p['count']}")
                for ex in p["examples"]:
                    L.append(f"  - `{ex['statement_id']}` ({ex['confidence']:.2f}) {ex['text']}")
        if err.get("confident_errors"):
            L += ["", f"### {t}: most confident errors", ""]
            for ex in err["confident_errors"]:
                L.append(f"- `{ex['statement_id']}` gold {ex['gold']}, predicted {ex['pred']} ({ex['confidence']:.2f}): {ex['text']}")
    p = report["provenance"]
    L += ["", "## Reproduce", "", f"- dataset content hash `{p['dataset_content_hash']}` ({p.get('dataset_label_source')} labels)",
          f"- split ids hash `{p['split_ids_hash']}`, rows hash (text too) `{p.get('split_rows_hash')}`", f"- git commit `{p['git_commit']}`",
          "- versions: " + ", ".join(f"{k} {v}" for k, v in p["versions"].items() if v)]
    if p.get("baselines"):
        b = p["baselines"]
        L.append(f"- baselines `{b['dir']}`, fitted on dataset hash `{b.get('dataset_content_hash')}`, seed {b.get('seed')}")
    for mdl in p.get("models", []):
        L.append(f"- model `{mdl['model']}`, run seed {mdl.get('run_seed')}, run dataset hash `{mdl.get('run_dataset_content_hash')}`")
    return "\n".join(L) + "\n"


def to_html(report: dict, pngs: dict[str, Path]) -> str:
    e = html.escape
    rows = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in summary_rows(report))
    imgs = "".join(
        f'<figure><img alt="{e(k)}" src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}">'
        f"<figcaption>{e(k)}</figcaption></figure>" for k, p in pngs.items())
    md = e(markdown(report))
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{e(report['title'])}</title>"
            "<style>body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px}figure{display:inline-block;margin:8px}"
            "pre{white-space:pre-wrap;direction:auto;background:#f7f7f7;padding:8px}</style></head><body>"
            f"<h1>{e(report['title'])}</h1><p>Split <b>{e(report['split'])}</b>, {report['n_statements']} statements.</p>"
            f"<table><tr>{''.join(f'<th>{e(h)}</th>' for h in HEAD)}</tr>{rows}</table>"
            f"<h2>Plots</h2>{imgs}<h2>Full report</h2><pre>{md}</pre></body></html>\n")
