"""`nabra label audit`: out-of-fold probabilities for every gold statement, cleanlab's label issues, and
the re-read sheet for an adjudicator.

audit: all gold statements of a dataset (train, dev, test, test-v2 together) are cut into K folds by
StratifiedGroupKFold on the dataset's group column (articles and their duplicate clusters never
straddle folds), stratified by the first task. Each fold's model is trained on the other folds: a
stratified group slice of that training part is its dev set (model selection never sees the held-out
fold). Recipes: `finetune` trains through `nabra train`'s own function (trainer.run); `embeddings-lr`
fits frozen encoder embeddings + logistic regression (baselines.EmbeddingsLR, C chosen on the dev
slice), the cheap CPU variant. Each fold's probabilities are saved as it finishes
(DIR/folds/foldN/probs.npz): a rerun skips finished folds and resumes an interrupted training.

Then per task `cleanlab.filter.find_label_issues(labels, pred_probs, return_indices_ranked_by=
"self_confidence")`. Checked for this stack: cleanlab 2.9 needs only integer labels and an N x K
probability matrix (no model object, so the out-of-fold probabilities come from our own trainer),
accepts a class that is absent from the labels, and runs single-process with n_jobs=1.
Writes DIR/suspects.csv (statement_id, task, given, suggested = argmax, self_confidence = the
probability of the given label, rank within the task) and DIR/audit.json.

audit-sheet: the top suspects as a CSV for a re-read: statement text and the two candidate labels
(given and suggested) as label_a / label_b in a seeded random order, rows shuffled, nothing saying which
label is the given one or the model's; `chosen` and `reason` are left empty.
audit-import: the filled sheet -> new final standoff records (annotator "llm-audit", with the reason),
appended to data/annotations/gold_audit.jsonl. A final record marked audit overrides the earlier final
record of its statement (data.annotate.finals); the earlier records stay.
"""
from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from nabra.config import ConfigError, TrainConfig
from nabra.data.dataset import SPLITS, dataset_manifest, load_split
from nabra.errors import UserError
from nabra.io import read_json, write_atomic, write_json

RECIPES = ("finetune", "embeddings-lr")
AUDITOR = "llm-audit"
SUSPECT_COLUMNS = ["statement_id", "task", "given", "suggested", "self_confidence", "rank"]
SHEET_COLUMNS = ["item", "statement_id", "task", "text", "label_a", "label_b", "chosen", "reason"]


# ----------------------------------------------------------------------------- folds
def all_gold(dataset_dir: str | Path) -> pd.DataFrame:
    """Every labelled statement of the dataset, with its split and a group column."""
    parts = [load_split(dataset_dir, s).assign(split=s) for s in SPLITS if (Path(dataset_dir) / f"{s}.parquet").exists()]
    df = pd.concat(parts, ignore_index=True).sort_values("statement_id", ignore_index=True)
    if "group" not in df:
        df["group"] = df["article_id"] if "article_id" in df else df["statement_id"]
    return df


def group_folds(df: pd.DataFrame, k: int, seed: int, task: str) -> np.ndarray:
    """Fold number per row: StratifiedGroupKFold (by `task`, grouped by df.group)."""
    from sklearn.model_selection import StratifiedGroupKFold

    n_groups = df.group.nunique()
    if not 2 <= k <= n_groups:
        raise UserError(f"--folds {k}: need between 2 and the number of groups ({n_groups})")
    folds = np.zeros(len(df), dtype=int)
    sgkf = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    for f, (_, te) in enumerate(sgkf.split(np.zeros(len(df)), df[task].to_numpy(), df.group.to_numpy())):
        folds[te] = f
    return folds


def fold_parts(df: pd.DataFrame, folds: np.ndarray, f: int, seed: int, task: str, dev_folds: int = 5):
    """(train, dev, held-out) of fold f; dev is a group slice of the training part, never the held-out fold."""
    rest = df[folds != f].reset_index(drop=True)
    dev = group_folds(rest, min(dev_folds, rest.group.nunique()), seed + 1 + f, task) == 0
    return rest[~dev].reset_index(drop=True), rest[dev].reset_index(drop=True), df[folds == f].reset_index(drop=True)


# ----------------------------------------------------------------------------- recipes
def _finetune_probs(cfg: TrainConfig, dataset_dir: Path, fold_dir: Path, tr, dv, held, log) -> dict[str, np.ndarray]:
    """Writes a dataset folder for the fold and trains it with trainer.run (resuming a killed fold)."""
    from nabra.evaluation.report import model_predictions
    from nabra.train.trainer import run as train_run

    data, run_dir = fold_dir / "data", fold_dir / "run"
    if not (run_dir / "model").exists():
        data.mkdir(parents=True, exist_ok=True)
        tr.drop(columns="split").to_parquet(data / "train.parquet", index=False)
        dv.drop(columns="split").to_parquet(data / "dev.parquet", index=False)
        write_json(data / "manifest.json", {**dataset_manifest(dataset_dir), "audit_fold": fold_dir.name})
        if (dataset_dir / "weak_train.parquet").exists():  # weak statements exclude every gold group
            shutil.copy(dataset_dir / "weak_train.parquet", data / "weak_train.parquet")
        resume = any((run_dir / "checkpoints").glob("checkpoint-*"))
        train_run(cfg, data, run_dir, resume=resume, log=log)
    _, probs, tasks = model_predictions(run_dir / "model", held)
    return {t: probs[t] for t in tasks}


def _lr_probs(embedder, tr, dv, held, label_lists: dict, seed: int) -> dict[str, np.ndarray]:
    from nabra.evaluation.baselines import EmbeddingsLR, _texts

    out = {}
    for t, labels in label_lists.items():
        m = EmbeddingsLR(embedder)
        m.fit(_texts(tr), tr[t].tolist(), _texts(dv), dv[t].tolist(), labels, seed=seed)
        p = m.predict_proba(_texts(held))
        full = np.zeros((len(held), len(labels)))
        full[:, [labels.index(c) for c in m.classes]] = p
        out[t] = full
    return out


# ----------------------------------------------------------------------------- audit
def run_audit(dataset_dir: str | Path, out: str | Path, k: int, recipe: str = "finetune", cfg: TrainConfig | None = None,
              encoder: dict | None = None, seed: int = 13, log=print) -> dict:
    """Out-of-fold probabilities (resumable), then cleanlab per task; writes suspects.csv and audit.json."""
    import cleanlab
    from cleanlab.filter import find_label_issues

    dataset_dir, out = Path(dataset_dir), Path(out)
    if recipe == "finetune" and cfg is None:
        raise UserError("--recipe finetune needs --config TRAIN_CONFIG")
    if recipe == "embeddings-lr" and not encoder:
        raise UserError("--recipe embeddings-lr needs --encoder DIR (a pretrained encoder folder or name)")
    man = dataset_manifest(dataset_dir)
    df = all_gold(dataset_dir)
    label_lists = {t: list(v) for t, v in man["tasks"].items() if t in df.columns}
    if cfg is not None and recipe == "finetune":
        label_lists = {t: v for t, v in label_lists.items() if t in cfg.data.tasks}
    first = next(iter(label_lists))
    folds = group_folds(df, k, seed, first)
    plan = {"dataset": str(dataset_dir.resolve()), "dataset_content_hash": man.get("content_hash"), "folds": k,
            "seed": seed, "recipe": recipe, "statements": len(df),
            "config": cfg.model_dump() if (cfg is not None and recipe == "finetune") else None, "encoder": encoder}
    plan_file = out / "audit_plan.json"
    if plan_file.exists() and read_json(plan_file) != json.loads(json.dumps(plan)):
        raise ConfigError(f"{out} holds an audit with other data, folds, seed, recipe or config: choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    write_json(plan_file, plan)
    embedder = None
    probs = {t: np.zeros((len(df), len(v))) for t, v in label_lists.items()}
    for f in range(k):
        fold_dir = out / "folds" / f"fold{f}"
        done = fold_dir / "probs.npz"
        held_ids = df.statement_id[folds == f].to_numpy(dtype=str)
        if done.exists():
            log(f"fold {f + 1}/{k}: done already, skipped")
        else:
            tr, dv, held = fold_parts(df, folds, f, seed, first)
            log(f"fold {f + 1}/{k}: training on {len(tr)}, dev {len(dv)}, scoring {len(held)} held-out statements")
            if recipe == "finetune":
                p = _finetune_probs(cfg, dataset_dir, fold_dir, tr, dv, held, log)
            else:
                if embedder is None:
                    from nabra.evaluation.baselines import Embedder

                    embedder = Embedder(encoder["encoder"], encoder.get("prefix", ""), encoder.get("pooling", "mean"))
                p = _lr_probs(embedder, tr, dv, held, label_lists, seed)
            buf = io.BytesIO()
            np.savez(buf, statement_id=held_ids, **{t: p[t] for t in label_lists})
            write_atomic(done, buf.getvalue())
        saved = np.load(done, allow_pickle=False)
        if not np.array_equal(saved["statement_id"], held_ids):
            raise ConfigError(f"{done}: its statements are not this fold's; the dataset changed: choose another --out")
        for t in label_lists:
            probs[t][folds == f] = saved[t]
    rows, counts = [], {}
    for t, labels in label_lists.items():
        y = np.array([labels.index(v) for v in df[t]])
        issues = find_label_issues(y, probs[t], return_indices_ranked_by="self_confidence", n_jobs=1)
        for rank, i in enumerate(issues, 1):
            rows.append({"statement_id": df.statement_id[i], "task": t, "given": labels[y[i]],
                         "suggested": labels[int(probs[t][i].argmax())],
                         "self_confidence": round(float(probs[t][i, y[i]]), 6), "rank": rank})
        flagged = pd.Series([labels[y[i]] for i in issues], dtype=object).value_counts()
        counts[t] = {l: {"statements": int((y == j).sum()), "suspects": int(flagged.get(l, 0))} for j, l in enumerate(labels)}
    sus = pd.DataFrame(rows, columns=SUSPECT_COLUMNS)
    write_atomic(out / "suspects.csv", sus.to_csv(index=False))
    info = {**plan, "cleanlab_version": cleanlab.__version__, "method": "find_label_issues, ranked by self_confidence",
            "statements_by_split": df.split.value_counts().sort_index().to_dict(),
            "suspects": {t: int((sus.task == t).sum()) for t in label_lists}, "counts": counts}
    write_json(out / "audit.json", info)
    return info


# ----------------------------------------------------------------------------- re-read sheet
def make_sheet(suspects: str | Path, corpus_dir: str | Path, top: int, out: str | Path, seed: int = 13) -> int:
    """The top `top` suspects of each task as a blind re-read sheet (see module docstring); returns rows."""
    from nabra.data.corpus import load_corpus

    sus = pd.read_csv(suspects, dtype={"statement_id": str})
    missing = [c for c in SUSPECT_COLUMNS if c not in sus.columns]
    if missing:
        raise UserError(f"{suspects}: not a suspects file from `nabra label audit` (lacks {missing})")
    sus = sus[(sus["rank"] <= top) & (sus.given != sus.suggested)]
    text = load_corpus(corpus_dir)[0].set_index("statement_id").text
    unknown = sorted(set(sus.statement_id) - set(text.index))
    if unknown:
        raise UserError(f"{len(unknown)} suspect(s) are not in {corpus_dir}, e.g. {unknown[0]}: the audit's corpus?")
    rng = np.random.default_rng(seed)
    sus = sus.iloc[rng.permutation(len(sus))]  # rank order would hint at the model's confidence
    flip = rng.random(len(sus)) < 0.5
    sheet = pd.DataFrame({"item": range(1, len(sus) + 1), "statement_id": sus.statement_id.to_numpy(),
                          "task": sus.task.to_numpy(), "text": text.loc[sus.statement_id].to_numpy(),
                          "label_a": np.where(flip, sus.suggested, sus.given),
                          "label_b": np.where(flip, sus.given, sus.suggested), "chosen": "", "reason": ""})
    write_atomic(out, sheet[SHEET_COLUMNS].to_csv(index=False))
    return len(sheet)


def import_sheet(sheet: str | Path, annotations: str | Path, out: str | Path, annotator: str = AUDITOR) -> tuple[int, int]:
    """Filled sheet -> final records appended to `out`; returns (records written, rows not yet decided)."""
    from nabra.config import load_labels
    from nabra.data.annotate import finals, read_records, write_records

    schema = load_labels()
    try:
        rows = list(csv.DictReader(io.StringIO(Path(sheet).read_text(encoding="utf-8-sig"))))
    except (OSError, csv.Error, UnicodeDecodeError) as e:
        raise UserError(f"{sheet}: not a readable sheet ({e})") from None
    if rows and not set(SHEET_COLUMNS) <= set(rows[0]):
        raise UserError(f"{sheet}: not an audit sheet (needs columns {', '.join(SHEET_COLUMNS)})")
    current = {r["statement_id"]: r for r in finals(read_records(annotations))}
    decided: dict[str, dict] = {}
    errors, open_rows = [], 0
    for n, row in enumerate(rows, 2):
        choice, task, sid = (row["chosen"] or "").strip(), row["task"], row["statement_id"]
        if not choice:
            open_rows += 1
            continue
        label = {"a": row["label_a"], "b": row["label_b"]}.get(choice.lower(), choice)
        if task not in schema.tasks or label not in schema.tasks[task].names:
            errors.append(f"{sheet}:{n}: chosen {choice!r} is not a {task} label")
        elif sid not in current:
            errors.append(f"{sheet}:{n}: {sid} has no final record in {annotations}")
        elif not (row["reason"] or "").strip():
            errors.append(f"{sheet}:{n}: give a reason for the choice")
        else:
            rec = decided.setdefault(sid, {**current[sid], "annotator": annotator, "pass": "final", "reasons": []})
            rec[task] = label
            rec["reasons"].append(f"{task}: {row['reason'].strip()}")
    if errors:
        raise UserError("\n".join(errors))
    new = [{**{k: v for k, v in r.items() if k != "reasons"}, "reason": "; ".join(r["reasons"]),
            "audit": True} for r in decided.values()]
    old = read_records(out) if Path(out).exists() else []
    if new:
        write_records(old + new, out)
    return len(new), open_rows
