"""`nabra label report`: per labelling function its coverage, overlaps, conflicts and accuracy on
gold dev (never test), and the label model's macro-F1 beside the majority class."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score

from nabra.config import LabelSchema


def weak_report(corpus_dir, dataset_dir, schema: LabelSchema, split: str = "dev", sample: int = 50_000) -> dict:
    from nabra.data.corpus import load_corpus
    from nabra.data.dataset import dataset_manifest, load_split
    from nabra.data.weak import WeakLabeler, label_statements
    from nabra.errors import UserError
    from nabra.evaluation.baselines import refuse_test

    refuse_test(split, "nabra label report")
    if sample < 0:
        raise UserError(f"--sample {sample}: give a number of statements (0: the whole corpus)")
    source = dataset_manifest(dataset_dir).get("label_source")
    if source != "gold":  # scoring the labeller against its own labels gave macro-F1 1.0
        raise UserError(f"{dataset_dir}: its labels are {source}, not gold; `nabra label report` scores the weak "
                        "labeller against gold (build the dataset with --annotations)")
    st, _, cman = load_corpus(corpus_dir)
    built_from = dataset_manifest(dataset_dir).get("corpus_content_hash")
    if built_from and built_from != cman.get("content_hash"):  # coverage of one corpus beside gold of another
        raise UserError(f"--corpus {corpus_dir} is not the corpus {dataset_dir} was built from (content hash "
                        f"{cman.get('content_hash')}, the dataset's corpus {built_from}): give that corpus")
    gold = load_split(dataset_dir, split, use="score")
    labeler = WeakLabeler(schema)
    # coverage/overlap/conflict over a seeded sample of the corpus (on SaudiNewsNet 5,000 statements give rates within
    # a few thousandths of 50,000's); accuracy over gold
    texts = st.text.sample(n=min(sample or len(st), len(st)), random_state=0).tolist()
    out = {"split": split, "corpus_statements_scored": len(texts), "gold_statements": len(gold), "tasks": {}}
    posts, _ = label_statements(gold.text.tolist(), schema, labeler)
    for task, tdef in schema.tasks.items():
        names = tdef.names
        v_all = labeler.votes(texts, task)
        v_gold = labeler.votes(gold.text.tolist(), task)
        y = np.array([names.index(x) for x in gold[task]])
        fired_any = (v_all >= 0).sum(1)
        rows = []
        for j, f in enumerate(labeler.task_functions(task)):
            fired = v_all[:, j] >= 0
            others = np.delete(v_all, j, axis=1)
            overlap = fired & ((others >= 0).any(1))
            conflict = fired & ((others >= 0) & (others != v_all[:, [j]])).any(1)
            g = v_gold[:, j] >= 0
            rows.append({"function": f.name, "label": f.label, "coverage": round(float(fired.mean()), 4),
                         "overlaps": round(float(overlap.mean()), 4), "conflicts": round(float(conflict.mean()), 4),
                         "gold_fired": int(g.sum()),
                         "gold_accuracy": round(float((v_gold[g, j] == y[g]).mean()), 4) if g.any() else None})
        pred = posts[task].argmax(1)
        maj = np.bincount(y, minlength=len(names)).argmax()
        out["tasks"][task] = {
            "functions": rows,
            "any_vote_coverage": round(float((fired_any > 0).mean()), 4),
            "label_model_macro_f1": round(float(f1_score(y, pred, average="macro", zero_division=0)), 4),
            "label_model_accuracy": round(float((pred == y).mean()), 4),
            "majority_class": names[maj],
            "majority_macro_f1": round(float(f1_score(y, np.full_like(y, maj), average="macro", zero_division=0)), 4),
        }
    return out


def report_table(rep: dict) -> str:
    L = []
    for task, t in rep["tasks"].items():
        L.append(f"\n{task}: labelling functions (coverage etc. over {rep['corpus_statements_scored']:,} corpus "
                 f"statements; accuracy on gold {rep['split']}, {rep['gold_statements']} statements)")
        L.append(f"  {'function':28s} {'label':13s} {'coverage':>8s} {'overlaps':>8s} {'conflicts':>9s} {'gold n':>6s} {'gold acc':>8s}")
        for r in t["functions"]:
            acc = f"{r['gold_accuracy']:.3f}" if r["gold_accuracy"] is not None else "–"
            L.append(f"  {r['function']:28s} {r['label']:13s} {r['coverage']:8.3f} {r['overlaps']:8.3f} "
                     f"{r['conflicts']:9.3f} {r['gold_fired']:6d} {acc:>8s}")
        L.append(f"  label model on gold {rep['split']}: macro-F1 {t['label_model_macro_f1']:.4f} (accuracy "
                 f"{t['label_model_accuracy']:.4f})   majority class ({t['majority_class']}): macro-F1 {t['majority_macro_f1']:.4f}")
    return "\n".join(L)
