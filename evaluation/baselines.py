"""Baselines scored beside the model on the same split: majority class, the weak labeller, a
TF-IDF word + character n-gram linear SVM (scikit-learn) whose C is tuned on dev only, and, when a
pretrained encoder is given, its frozen embeddings + logistic regression (C tuned on dev).

`nabra baseline --data DATASET_DIR --out DIR` trains and saves them with a baselines.json of their
settings and dev scores, like a model run. No pickle: the majority label is JSON, the TF-IDF + SVM
pipeline is a skops file, loaded only when every type in it is a scikit-learn/numpy/scipy type, so
`nabra evaluate --baselines DIR` never runs code from the folder it is given.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from nabra.errors import UserError
from nabra.evaluation.metrics import labelled
from nabra.io import atomic_dir, provenance, write_json

C_GRID = (0.03, 0.1, 0.3, 1.0)


def refuse_test(split: str, command: str) -> None:
    """Tuning and rule-writing commands never see a test split (test, test-v2)."""
    from nabra.data.dataset import TEST_SPLITS

    if split in TEST_SPLITS:
        raise UserError(f"{command} tunes on its data: it refuses the {split} split (use dev); "
                         f"the {split} split is scored only by `nabra evaluate --split {split}`")


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


def tfidf_features(train_x: list[str], seed: int = 0):
    """(the pipeline's FeatureUnion fitted on train_x, train matrix). The TF-IDF features are
    unsupervised, so one fit serves every C of the grid and every task on the same texts: fitting the
    whole pipeline per C and task redid it 8 times on ArSarcasm-v2 (82% of the benchmark's time)."""
    feats = tfidf_pipeline(C_GRID[0], seed).steps[0][1]
    return feats, feats.fit_transform(train_x)


def fit_tfidf(train_x, train_y, dev_x, dev_y, labels: list[str], headline: list[str] | None = None, seed: int = 0,
              features=None):
    """Chooses C on dev (macro F1, or the headline F1 when a benchmark defines one); refits nothing
    on dev. `features`: tfidf_features(train_x) when the caller already has them. Returns (pipeline,
    {C: dev score}); the pipeline is the one tfidf_pipeline(C).fit(train_x, train_y) would give."""
    from sklearn.metrics import f1_score

    feats, X = features or tfidf_features(train_x, seed)
    X_dev = feats.transform(dev_x)
    scores, best = {}, None
    for C in C_GRID:
        pipe = tfidf_pipeline(C, seed)
        pipe.steps[0] = (pipe.steps[0][0], feats)
        svm = pipe.steps[-1][1].fit(X, train_y)
        s = f1_score(dev_y, svm.predict(X_dev), labels=headline or labels, average="macro", zero_division=0)
        scores[C] = round(float(s), 6)
        if best is None or s > best[0]:
            best = (s, C, pipe)
    return best[2], scores


class Embedder:
    """Frozen encoder embeddings: the mask-weighted mean of the last hidden states (e5's pooling) or the
    first token, L2-normalised, computed once per distinct text."""

    def __init__(self, encoder: str | Path, prefix: str = "", pooling: str = "mean", max_length: int = 128,
                 batch_size: int = 32):
        from transformers import AutoModel, AutoTokenizer

        from nabra.train.text import check_model_available

        check_model_available(str(encoder), ("--encoder {}", "or leave --encoder out (no embeddings + LR baseline)"))
        self.encoder, self.prefix, self.pooling, self.max_length = str(encoder), prefix, pooling, max_length
        self.batch_size = batch_size
        self.tok = AutoTokenizer.from_pretrained(str(encoder))  # as pretrained: no tokens added, no resize
        self.model = AutoModel.from_pretrained(str(encoder), add_pooling_layer=False).eval()
        self.cache: dict[str, np.ndarray] = {}

    def __call__(self, texts: list[str]) -> np.ndarray:
        import torch

        todo = sorted({t for t in texts if t not in self.cache}, key=lambda t: (len(t), t))  # length-sorted: little padding; ties by text, not by set order (PYTHONHASHSEED changed the batches and so the fp sums)
        for i in range(0, len(todo), self.batch_size):
            chunk = todo[i:i + self.batch_size]
            enc = self.tok([self.prefix + t for t in chunk], padding=True, truncation=True,
                           max_length=self.max_length, return_tensors="pt")
            with torch.inference_mode():
                h = self.model(**enc).last_hidden_state
            if self.pooling == "mean":
                m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
                v = (h * m).sum(1) / m.sum(1)
            else:
                v = h[:, 0]
            v = torch.nn.functional.normalize(v, dim=-1).numpy()
            self.cache.update(zip(chunk, v))
        return np.stack([self.cache[t] for t in texts]) if texts else np.zeros((0, 1), dtype=np.float32)


class EmbeddingsLR:
    """Frozen encoder embeddings + logistic regression (balanced class weights, C tuned on dev). Saved
    as JSON (coefficients, classes, encoder settings): nothing is unpickled."""
    name = "embeddings_lr"

    def __init__(self, embedder: Embedder, coef=None, intercept=None, classes=None, C: float | None = None):
        self.embedder, self.C = embedder, C
        self.coef = None if coef is None else np.asarray(coef, dtype=np.float64)
        self.intercept = None if intercept is None else np.asarray(intercept, dtype=np.float64)
        self.classes = list(classes) if classes is not None else None

    def fit(self, train_x, train_y, dev_x, dev_y, labels, headline=None, seed: int = 0) -> dict:
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import f1_score

        xt, xd = self.embedder(list(train_x)), self.embedder(list(dev_x))
        scores, best = {}, None
        for C in LR_C_GRID:
            lr = LogisticRegression(C=C, class_weight="balanced", max_iter=2000, random_state=seed).fit(xt, train_y)
            s = f1_score(dev_y, lr.predict(xd), labels=headline or labels, average="macro", zero_division=0)
            scores[C] = round(float(s), 6)
            if best is None or s > best[0]:
                best = (s, C, lr)
        _, self.C, lr = best
        self.coef, self.intercept, self.classes = lr.coef_, lr.intercept_, list(lr.classes_)
        return scores

    def predict(self, texts) -> list[str]:
        z = self.embedder(list(texts)) @ self.coef.T + self.intercept
        idx = (z[:, 0] > 0).astype(int) if len(self.classes) == 2 and z.shape[1] == 1 else z.argmax(1)
        return [self.classes[i] for i in idx]

    def predict_proba(self, texts) -> np.ndarray:
        """Class probabilities in self.classes order: the softmax of the multinomial model (the logistic
        with two classes), as LogisticRegression.predict_proba computes them."""
        z = self.embedder(list(texts)) @ self.coef.T + self.intercept
        if z.shape[1] == 1:
            p = 1 / (1 + np.exp(-z[:, 0]))
            return np.stack([1 - p, p], 1)
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    def to_json(self) -> dict:
        e = self.embedder
        return {"encoder": e.encoder, "prefix": e.prefix, "pooling": e.pooling, "max_length": e.max_length,
                "C": self.C, "classes": self.classes, "coef": self.coef.tolist(), "intercept": self.intercept.tolist()}

    @classmethod
    def from_json(cls, d: dict, embedder: Embedder | None = None) -> "EmbeddingsLR":
        embedder = embedder or Embedder(d["encoder"], d["prefix"], d["pooling"], d["max_length"])
        return cls(embedder, d["coef"], d["intercept"], d["classes"], d["C"])


LR_C_GRID = (0.3, 1.0, 3.0, 10.0)


class WeakBaseline:
    name = "weak_labeller"

    def __init__(self, task: str, rules_path: str | Path | None = None):
        from nabra.config import load_labels
        from nabra.data.weak import RULES_PATH, WeakLabeler

        self.task = task
        self.schema = load_labels()
        self.labeler = WeakLabeler(self.schema, rules_path or RULES_PATH)

    def predict(self, texts) -> list[str]:
        from nabra.data.weak import label_statements

        posts, _ = label_statements(list(texts), self.schema, self.labeler)
        names = self.schema.tasks[self.task].names
        return [names[i] for i in posts[self.task].argmax(1)]


def train_baselines(data: dict[str, pd.DataFrame], label_lists: dict[str, list[str]],
                    headline: dict[str, list[str]] | None = None, weak: bool = True, seed: int = 0,
                    encoder: dict | None = None) -> dict:
    """{task: {name: fitted baseline}} plus tuning info; fit on train, tuned on dev. `encoder`
    ({"encoder": folder or hub name, "prefix": ..., "pooling": ...}) adds embeddings + LR."""
    from nabra.config import load_labels

    tr, dv = data["train"], data["dev"]
    schema_tasks = load_labels().tasks if weak else {}
    out, info = {}, {}
    embedder = Embedder(encoder["encoder"], encoder.get("prefix", ""), encoder.get("pooling", "mean"),
                        encoder.get("max_length", 128)) if encoder else None
    x_tr, x_dv = _texts(tr), _texts(dv)
    features = tfidf_features(x_tr, seed) if label_lists else None  # one fit for every task and C
    for task, labels in label_lists.items():
        # statements without a gold label for this task (training skips them too) are left out
        mt, md = tr[task].notna().to_numpy(), dv[task].notna().to_numpy()
        xt, xd = labelled(x_tr, mt), labelled(x_dv, md)
        yt, yd = tr[task][mt].tolist(), dv[task][md].tolist()
        maj = Majority().fit(yt)
        pipe, grid = fit_tfidf(xt, yt, xd, yd, labels, (headline or {}).get(task), seed,
                               features if mt.all() else (features[0], features[1][mt]))
        out[task] = {"majority": maj, "tfidf_svm": pipe}
        info[task] = {"majority_label": maj.label, "tfidf_dev_by_C": {str(k): v for k, v in grid.items()},
                      "tfidf_C": max(grid, key=lambda c: (grid[c], -c))}
        if weak and task in schema_tasks and schema_tasks[task].names == sorted(labels):
            out[task]["weak_labeller"] = WeakBaseline(task)
        if embedder is not None:
            elr = EmbeddingsLR(embedder)
            grid = elr.fit(xt, yt, xd, yd, labels, (headline or {}).get(task), seed)
            out[task]["embeddings_lr"] = elr
            info[task].update({"embeddings_lr_dev_by_C": {str(k): v for k, v in grid.items()},
                               "embeddings_lr_C": elr.C, "embeddings_lr_encoder": embedder.encoder})
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
WEAK_RULES = "weak_rules.yaml"


# what `nabra baseline` writes (and wrote: .joblib pickles of older versions)
BASELINE_FILE = re.compile(r"baselines\.json|weak_rules\.yaml|[^/]+\.(tfidf_svm\.(skops|joblib)|embeddings_lr\.json)")


def earlier_baselines(out: str | Path) -> tuple[str, ...]:
    """An earlier `nabra baseline` output in `out` (replaced whole: no embeddings_lr file of a run with --encoder
    stays beside a run without); `out` a file or a folder of anything else is refused, before the fit."""
    from nabra.evaluation.report import earlier_output

    return earlier_output(out, BASELINE_FILE, "nabra baseline")


def save_baselines(baselines: dict, out: str | Path, meta: dict) -> None:
    with atomic_dir(out, also=earlier_baselines(out)) as tmp:
        for task, models in baselines["models"].items():
            for name, m in models.items():
                if name == "embeddings_lr":
                    write_json(tmp / f"{task}.{name}.json", m.to_json())
                elif name == "tfidf_svm":  # majority: its label is in info
                    _dump_tfidf(m, tmp / f"{task}.{name}.skops")
                elif name == "weak_labeller":  # its cue lexicon, as fitted: not whatever lexicon is installed later
                    shutil.copy(m.labeler.rules_path, tmp / WEAK_RULES)
                    meta = {**meta, "weak_rules_sha1": m.labeler.rules_hash}
        write_json(tmp / "baselines.json", {"info": baselines["info"], **meta, **provenance(),
                                            "models": {t: sorted(m) for t, m in baselines["models"].items()}})


def _vectorizers(pipe) -> list:
    from sklearn.feature_extraction.text import TfidfVectorizer

    return [est for _, est in pipe.steps[0][1].transformer_list if isinstance(est, TfidfVectorizer)]


def _dump_tfidf(pipe, path: Path) -> None:
    """skops.io.dump of the fitted TF-IDF pipeline with each vocabulary_ stored as one JSON string of
    its terms in index order. skops writes a dict entry by entry into a schema it then encodes with
    indent (pure-Python json): ~35 s for 1,500 training statements and growing past the gold train
    split's ~500k n-grams; one string encodes in C. stop_words_ (unused by transform; scikit-learn's
    docs say it is safe to drop before saving) is dropped. The pipeline is left as it was."""
    import skops.io as sio

    vecs = _vectorizers(pipe)
    kept = [(v.vocabulary_, v.__dict__.pop("stop_words_", None)) for v in vecs]
    try:
        for v, (vocab, _) in zip(vecs, kept):
            v.vocabulary_ = json.dumps(sorted(vocab, key=vocab.__getitem__), ensure_ascii=False)
        sio.dump(pipe, path)
    finally:
        for v, (vocab, stop) in zip(vecs, kept):
            v.vocabulary_ = vocab
            if stop is not None:
                v.stop_words_ = stop


def _restore_vocabularies(pipe):
    """The inverse of _dump_tfidf's vocabulary string (files from older nabra hold the dict itself)."""
    for v in _vectorizers(pipe):
        if isinstance(v.vocabulary_, str):
            v.vocabulary_ = {t: i for i, t in enumerate(json.loads(v.vocabulary_))}
    return pipe


def load_baselines(directory: str | Path) -> dict:
    d = Path(directory)
    if not (d / "baselines.json").exists():
        raise UserError(f"{d}: no baselines.json (write the folder with `nabra baseline --out {d}`)")
    try:
        meta = json.loads((d / "baselines.json").read_text(encoding="utf-8"))
        names_by_task, info = meta["models"], meta["info"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise UserError(f"{d / 'baselines.json'}: not a baselines file ({e})") from None
    models, embedder = {}, None
    for task, names in names_by_task.items():
        models[task] = {}
        for name in names:
            if name == "embeddings_lr":  # JSON: coefficients and the encoder's folder, nothing unpickled
                spec = json.loads((d / f"{task}.{name}.json").read_text(encoding="utf-8"))
                models[task][name] = m = EmbeddingsLR.from_json(spec, embedder)
                embedder = m.embedder  # one encoder in memory for all tasks
            elif name == "weak_labeller":  # folders from before nabra kept the lexicon: the installed one
                models[task][name] = WeakBaseline(task, d / WEAK_RULES if (d / WEAK_RULES).exists() else None)
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
        return _restore_vocabularies(sio.load(path, trusted=types))
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - a damaged or foreign file: name it instead of a traceback
        raise UserError(f"{path}: not a readable skops baseline ({type(e).__name__}: {e})") from None
