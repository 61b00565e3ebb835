"""Weak labels: cue-lexicon labelling functions (data/lexicons/rules.yaml) and a Dawid–Skene label model.

`nabra label weak --corpus DIR --out DIR` writes OUT/weak_labels.parquet (statement_id, per task the
label, its confidence and the number of votes) and OUT/votes.npz (the raw vote matrices), plus
OUT/weak_manifest.json (rules hash, corpus hash, label counts).

The label model is a weighted majority vote with the spec's tie-break (see combine_votes). snorkel
offers the same (and a generative model) but is unmaintained since 2024 and pulls tensorboard.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nabra.config import ConfigError, LabelSchema, load_yaml
from nabra.paths import rules_file

RULES_PATH = rules_file()
ABSTAIN = -1
_STRIP = re.compile(r"[\u064B-\u0652\u0670\u0640]")


@dataclass
class LabellingFunction:
    name: str
    task: str
    label: str
    patterns: list[re.Pattern]
    negatable: bool
    unless: list[re.Pattern]

    def vote(self, text: str, negator: re.Pattern) -> bool:
        for p in self.unless:
            if p.search(text):
                return False
        for p in self.patterns:
            for m in p.finditer(text):
                if self.negatable:
                    before = text[max(0, m.start() - 25):m.start()].split()[-2:]
                    if any(negator.fullmatch(w) for w in before):
                        continue
                return True
        return False


class WeakLabeler:
    def __init__(self, schema: LabelSchema, rules_path: str | Path = RULES_PATH):
        self.schema = schema
        self.rules_path = Path(rules_path)
        raw = self.rules_path.read_text(encoding="utf-8")
        self.rules_hash = hashlib.sha1(raw.encode()).hexdigest()
        data = load_yaml(raw, self.rules_path)  # a pattern list given twice dropped the first silently
        self.negator = re.compile("|".join(re.escape(w) for w in data.get("negators", [])) or "(?!)")
        self.functions: list[LabellingFunction] = []
        for i, f in enumerate(data["functions"]):
            where = f"{self.rules_path}: function #{i} ({f.get('name')}): "
            unknown = set(f) - {"name", "task", "label", "patterns", "negatable", "unless"}
            if unknown:
                raise ConfigError(where + f"unknown key(s) {sorted(unknown)}")
            schema.check(f["task"], f["label"], where)
            try:
                pats = [re.compile(p) for p in f["patterns"]]
                unless = [re.compile(p) for p in f.get("unless", [])]
            except re.error as e:
                raise ConfigError(where + f"bad pattern: {e}") from None
            self.functions.append(LabellingFunction(f["name"], f["task"], f["label"], pats,
                                                    bool(f.get("negatable")), unless))

    def task_functions(self, task: str) -> list[LabellingFunction]:
        return [f for f in self.functions if f.task == task]

    def votes(self, texts: list[str], task: str) -> np.ndarray:
        """(n_statements, n_functions) matrix of label indices (sorted label order), -1 = abstain."""
        names = self.schema.tasks[task].names
        fns = self.task_functions(task)
        out = np.full((len(texts), len(fns)), ABSTAIN, dtype=np.int8)
        for i, t in enumerate(texts):
            t = _STRIP.sub("", t)
            for j, f in enumerate(fns):
                if f.vote(t, self.negator):
                    out[i, j] = names.index(f.label)
        return out


def combine_votes(votes: np.ndarray, n_classes: int, tie_order: list[int], default: int | None = None,
                  default_weight: float = 0.3) -> np.ndarray:
    """Label model: weighted majority vote with the spec's tie-break, as a (n, k) score matrix.

    Votes for the default class (neutral) weigh `default_weight`: they fire on plain reporting
    verbs that also introduce evaluative statements, so one evaluative cue outweighs them.
    A statement with no vote gets the default class. Confidence = winning share of the vote,
    shrunk towards 1/k when few functions voted (one vote -> 0.6 at most).
    Dawid-Skene EM was tried first and collapsed onto the default class on small corpora
    (most functions abstain on most statements), so the simpler, stable model is used.
    """
    n, m = votes.shape
    score = np.zeros((n, n_classes))
    for j in range(m):
        v = votes[:, j]
        ok = v >= 0
        w = np.where(v[ok] == default, default_weight, 1.0) if default is not None else 1.0
        np.add.at(score, (np.where(ok)[0], v[ok]), w)
    total = score.sum(1)
    if default is not None:
        score[total == 0, default] = 1.0
    # tie-break: a tiny bonus by the spec's order (earlier label wins a tie)
    bonus = np.zeros(n_classes)
    for rank, c in enumerate(tie_order):
        bonus[c] = (len(tie_order) - rank) * 1e-6
    score = score + bonus
    share = score / score.sum(1, keepdims=True)
    strength = np.minimum(total, 3.0)[:, None] / 3.0  # 0 votes -> prior, 3+ votes -> full share
    post = (1 - 0.4 * (1 - strength)) * share + 0.4 * (1 - strength) / n_classes
    return post / post.sum(1, keepdims=True)


def label_statements(texts: list[str], schema: LabelSchema, labeler: WeakLabeler | None = None):
    """Returns ({task: posterior array}, {task: votes}) for the statements."""
    labeler = labeler or WeakLabeler(schema)
    posts, votes = {}, {}
    for task, tdef in schema.tasks.items():
        v = labeler.votes(texts, task)
        default = tdef.names.index("neutral") if "neutral" in tdef.names else None
        order = [tdef.names.index(x) for x in tdef.tie_break]
        posts[task] = combine_votes(v, len(tdef.names), order, default)
        votes[task] = v
    return posts, votes


def run(corpus_dir: str | Path, out: str | Path, schema: LabelSchema) -> dict:
    """Weak-labels every statement of a corpus; writes weak_labels.parquet, votes.npz, weak_manifest.json."""
    import pandas as pd

    from nabra.data.corpus import load_corpus
    from nabra.io import atomic_dir, provenance, write_json

    st, _, manifest = load_corpus(corpus_dir)
    labeler = WeakLabeler(schema)
    posts, votes = label_statements(st["text"].tolist(), schema, labeler)
    df = pd.DataFrame({"statement_id": st["statement_id"]})
    counts = {}
    for task, post in posts.items():
        names = schema.tasks[task].names
        df[f"{task}"] = [names[i] for i in post.argmax(1)]
        df[f"{task}_conf"] = post.max(1).round(6)
        df[f"{task}_votes"] = (votes[task] >= 0).sum(1)
        counts[task] = df[task].value_counts().sort_index().to_dict()
    info = {"corpus_content_hash": manifest["content_hash"], "rules_hash": labeler.rules_hash,
            "statements": len(df), "label_counts": counts,
            "functions": [{"name": f.name, "task": f.task, "label": f.label} for f in labeler.functions],
            **provenance()}
    with atomic_dir(out) as tmp:
        df.to_parquet(tmp / "weak_labels.parquet", index=False)
        np.savez_compressed(tmp / "votes.npz", **votes)
        write_json(tmp / "weak_manifest.json", info)
    return info
