"""Baselines scored beside the model on the same split: majority class, the weak labeller, and a
TF-IDF word + character n-gram linear SVM (scikit-learn) whose C is tuned on dev only.

`nabra baseline --data DATASET_DIR --out DIR` trains and saves them with a baselines.json of their
settings and dev scores, like a model run. No pickle: the majority label is JSON, the TF-IDF + SVM
pipeline is a skops file, loaded only when every type in it is a scikit-learn/numpy/scipy type, so
`nabra evaluate --baselines DIR` never runs code from the folder it is given.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from nabra.errors import UserError
from nabra.io import write_json

C_GRID = (0.03, 0.1, 0.3, 1.0)


def refuse_test(split: str, command: str) -> None:
    """Tuning and rule-writing commands never see the test split."""
    if split == "test":
        raise UserError(f"{command} tunes on its data: it refuses the test split (use dev); "
                         "the test split is scored only by `nabra evaluate --split test`")


class Majority:
    name = "majority"

    @classmethod
    def with_label(cls, label: str) -> "Majority":
        m = cls()
        m.label = label
        return m

    def fit(self, y: list[str]):
        vals, counts = np.unique(np.asarray(y, dtype=object), return_counts=True)
        self.label = sorted(zip(-counts, vals))[0][1]  # most frequent; ties by name
        return self

    def predict(self, texts) -> list[str]:
        return [self.label] * len(texts)


def tfidf_pipeline(C: float, seed: int = 0):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion, make_pipeline
    from sklearn.svm import LinearSVC

    feats = FeatureUnion([
        ("word", TfidfVectorizer(analyzer="word", ngram_range=(1, 2), min_df=1, sublinear_tf=True, max_features=200_000)),
        ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True, max_features=300_000)),
    ])
    return make_pipeline(feats, LinearSVC(C=C, class_weight="balanced", random_state=seed))


def fit_tfidf(train_x, train_y, dev_x, dev_y, labels: list[str], headline: list[str] | None = None, seed: int = 0):
    """Chooses C on dev (macro F1, or the headline F1 when a benchmark defines one); refits nothing
    on dev. Returns (pipeline, {C: dev score})."""
    from sklearn.metrics import f1_score

    scores, best = {}, None
    for C in C_GRID:
        pipe = tfidf_pipeline(C, seed).fit(train_x, train_y)
        pred = pipe.predict(dev_x)
        s = f1_score(dev_y, pred, labels=headline or labels, average="macro", zero_division=0)
        scores[C] = round(float(s), 6)
        if best is None or s > best[0]:
            best = (s, C, pipe)
    return best[2], scores


class WeakBaseline:
    name = "weak_labeller"

    def __init__(self, task: str):
        from nabra.config import load_labels
        from nabra.data.weak import WeakLabeler

        self.task = task
        self.schema = load_labels()
        self.labeler = WeakLabeler(self.schema)

    def predict(self, texts) -> list[str]:
        from nabra.data.weak import label_statements

        posts, _ = label_statements(list(texts), self.schema, self.labeler)
        names = self.schema.tasks[self.task].names
        return [names[i] for i in posts[self.task].argmax(1)]


def train_baselines(data: dict[str, pd.DataFrame], label_lists: dict[str, list[str]],
                    headline: dict[str, list[str]] | None = None, weak: bool = True, seed: int = 0) -> dict:
    """{task: {name: fitted baseline}} plus tuning info; fit on train, tuned on dev."""
    from nabra.config import load_labels

    tr, dv = data["train"], data["dev"]
    schema_tasks = load_labels().tasks if weak else {}
    out, info = {}, {}
    for task, labels in label_lists.items():
        x_tr = _texts(tr)
        x_dv = _texts(dv)
        maj = Majority().fit(tr[task].tolist())
        pipe, grid = fit_tfidf(x_tr, tr[task].tolist(), x_dv, dv[task].tolist(), labels,
                               (headline or {}).get(task), seed)
        out[task] = {"majority": maj, "tfidf_svm": pipe}
        info[task] = {"majority_label": maj.label, "tfidf_dev_by_C": {str(k): v for k, v in grid.items()},
                      "tfidf_C": max(grid, key=lambda c: (grid[c], -c))}
        if weak and task in schema_tasks and schema_tasks[task].names == sorted(labels):
            out[task]["weak_labeller"] = WeakBaseline(task)
    return {"models": out, "info": info}


def _texts(df: pd.DataFrame) -> list[str]:
    if "text_pair" in df:
        return (df.text_pair.fillna("") + " | " + df.text).tolist()
    return df.text.tolist()


def predict_baselines(baselines: dict, df: pd.DataFrame) -> dict[str, dict[str, list[str]]]:
    x = _texts(df)
    return {task: {name: list(m.predict(x)) for name, m in models.items()}
            for task, models in baselines["models"].items()}


SAFE_MODULES = ("sklearn.", "numpy.", "scipy.", "builtins.")


def save_baselines(baselines: dict, out: str | Path, meta: dict) -> None:
    import skops.io as sio

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for task, models in baselines["models"].items():
        for name, m in models.items():
            if name == "tfidf_svm":  # majority: its label is in info; weak labeller: rules in data/lexicons
                sio.dump(m, out / f"{task}.{name}.skops")
    write_json(out / "baselines.json", {"info": baselines["info"], **meta,
                                        "models": {t: sorted(m) for t, m in baselines["models"].items()}})


def load_baselines(directory: str | Path) -> dict:
    d = Path(directory)
    if not (d / "baselines.json").exists():
        raise UserError(f"{d}: no baselines.json (write the folder with `nabra baseline --out {d}`)")
    try:
        meta = json.loads((d / "baselines.json").read_text(encoding="utf-8"))
        names_by_task, info = meta["models"], meta["info"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise UserError(f"{d / 'baselines.json'}: not a baselines file ({e})") from None
    models = {}
    for task, names in names_by_task.items():
        models[task] = {}
        for name in names:
            if name == "weak_labeller":
                models[task][name] = WeakBaseline(task)
            elif name == "majority":
                models[task][name] = Majority.with_label(info[task]["majority_label"])
            else:
                models[task][name] = _load_skops(d / f"{task}.{name}.skops")
    return {"models": models, "info": info}


def _load_skops(path: Path):
    import skops.io as sio

    if not path.exists():
        old = path.with_suffix(".joblib")
        raise UserError(f"{old if old.exists() else path}: " + (
            "a pickle from an older nabra, which is never loaded (it could run any code): run `nabra baseline` again"
            if old.exists() else "missing"))
    try:
        types = sio.get_untrusted_types(file=path)
        unsafe = [t for t in types if not t.startswith(SAFE_MODULES)]
        if unsafe:
            raise UserError(f"{path}: refuses to load types outside scikit-learn/numpy/scipy: {', '.join(unsafe)}")
        return sio.load(path, trusted=types)
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - a damaged or foreign file: name it instead of a traceback
        raise UserError(f"{path}: not a readable skops baseline ({type(e).__name__}: {e})") from None
