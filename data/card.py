"""data/DATASET_CARD.md: generated numbers (counts, agreement, distributions) around written context.

`nabra dataset build ... --card` regenerates it from the build it just made and the gold records.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from nabra.config import REPO_ROOT
from nabra.io import write_atomic

CARD = REPO_ROOT / "data" / "DATASET_CARD.md"


def _table(counts: dict[str, dict], labels: list[str], splits: list[str]) -> list[str]:
    L = ["| label | " + " | ".join(splits) + " | total |", "|---|" + "---|" * (len(splits) + 1)]
    for l in labels:
        vals = [counts[s].get(l, 0) for s in splits]
        L.append(f"| {l} | " + " | ".join(str(v) for v in vals) + f" | {sum(vals)} |")
    return L


# How each gold file's statements were chosen and read (prose by hand; the numbers are computed).
BATCHES = {
    "gold.jsonl": "seed13: `nabra annotate sample --seed 13`: statements of political and diplomatic articles (4+ "
                  "political keywords in title and lead), duplicates out, at most 2 per article; a uniform random "
                  "slice plus, per stance, statements a weak-labelling function flags (the flags chose what to read, "
                  "readers never saw them). Eight readers llm-a0..a7, a random fifth read twice.",
    "gold_r29.jsonl": "r29 (issue 12, random): `nabra annotate sample --seed 29 --random 1200 --per-class 0 --double 1 "
                      "--exclude data/annotations --exclude-scope article` (gold.jsonl and sample.jsonl then in the "
                      "folder): a uniform random draw from the same pool, outside every article and duplicate cluster "
                      "already annotated (320 of its picks share an article group with earlier gold, which the "
                      "default `--exclude-scope group` now leaves out too); never chosen by a model or a rule. All read twice "
                      "(llm-b1..b4, then llm-b5..b8 on the same slices). The source of `test-v2`.",
    "gold_al1.jsonl": "al1 (issue 12, active learning): `nabra annotate suggest --model <e5 fine-tune> --n 2200 "
                      "--candidates 8000 --enrich 0.5 --min-hits 0 --seed 17`: the 2,200 statements of 8,000 scored "
                      "candidates (half drawn where a weak rule flags a rare stance) with the smallest stance margin, "
                      "under per-class quotas, k-means spread and 2 per article. Read once (llm-c1..c5); the 149 "
                      "holding a prayer for the dead read again (llm-d1) after the guide's prayer rule was clarified "
                      "(their kappa is low by design: they are the statements the rule was unclear about; 42 "
                      "adjudicated). Train/dev only.",
    "gold_al2.jsonl": "al2 (issue 12, active learning, condolence top-up): `nabra annotate suggest --model <the "
                      "6-epoch e5 recipe, seed 42> --n 400 --candidates 1200 --enrich 0.8 --enrich-stances "
                      "condolence --min-hits 0 --seed 18`. Read once (llm-e1, llm-e2). Train/dev only.",
    "gold_al3.jsonl": "al3 (issue 12, active learning, conciliatory/condolence top-up): `nabra annotate suggest "
                      "--model <the 6-epoch e5 recipe, seed 42> --n 250 --candidates 1000 --enrich 0.8 "
                      "--enrich-stances conciliatory condolence --min-hits 0 --seed 19`. Read once (llm-f1, llm-f2). "
                      "Train/dev only.",
    "gold_s31.jsonl": "s31 (issue 12, seeded sampler, no model): `nabra annotate sample --seed 31 --random 0 "
                      "--per-class 40 --neutral-flagged 0 --double 0 --exclude data/annotations --exclude-scope article` (the "
                      "batches before it in the folder): 40 statements a weak "
                      "rule flags per non-neutral stance (the political pool holds only 4 more for condolence), drawn "
                      "for conciliatory, the last class short of 400. Read once (llm-g1, llm-g2).",
    "gold_audit.jsonl": "audit (issue 12): re-reads of the label-noise audit's top suspects by an adjudicator who saw "
                        "the statement and two candidate labels in random order (not which one was given or which "
                        "one a model prefers); each re-read is a new final record with its reason (`audit: true`), which "
                        "overrides the earlier final record; the earlier records stay. `nabra label audit --recipe "
                        "embeddings-lr` over the 5,341 gold statements built before al3/s31 (5 article-group folds, "
                        "frozen e5-small embeddings + logistic regression, cleanlab 2.9 `find_label_issues`): 1,398 "
                        "stance and 975 sentiment suspects (a weak model, so most are its own errors); the top 100 "
                        "per task (200 rows, 187 statements) re-read by llm-audit: 26 labels changed, 9 stance "
                        "(neutral->condemnation 2, neutral->support 2, neutral->conciliatory 1, neutral->condolence 1, "
                        "warning->condemnation 1, support->warning 1, support->condemnation 1) and 17 sentiment.",
}


def _batches(annotations) -> list[str]:
    """One row per gold file: statements, double readings, kappa per task, final labels by class."""
    from nabra.data.annotate import agreement, read_records

    if not annotations or not Path(annotations).is_dir():
        return []
    L = ["| batch | how chosen and read | statements | read twice | kappa stance / sentiment |", "|---|---|---|---|---|"]
    for f in sorted(Path(annotations).glob("gold*.jsonl")):
        recs = read_records(f)
        ag = agreement(recs)
        k = (f"{_kappa(ag['stance']['kappa'])} / {_kappa(ag['sentiment']['kappa'])}" if ag["double_annotated"] else "-")
        n = len({r["statement_id"] for r in recs if r["pass"] == "final"})
        L.append(f"| `{f.name}` | {BATCHES.get(f.name, '')} | {n:,} | {ag['double_annotated']:,} | {k} |")
    return L + [""]


def write_card(dataset_dir: str | Path, annotations: str | Path | None, path: Path = CARD) -> Path:
    from nabra.data.annotate import agreement, finals as final_records, read_records

    man = json.loads((Path(dataset_dir) / "manifest.json").read_text())
    recs = read_records(annotations) if annotations else []
    ag = agreement(recs) if recs else None
    from nabra.data.dataset import SPLITS

    c = man["counts"]
    splits = [s for s in SPLITS if s in c]
    annotators = Counter(r["annotator"] for r in recs if r["pass"] in (1, 2))
    finals = Counter(r["annotator"] for r in final_records(recs))  # one a statement: an audit replaces the earlier
    L = ["# nabra gold dataset: stance and sentiment of Arabic news statements", "",
         "_Numbers in this card are generated by `nabra dataset build --card`; the prose is written by hand._", "",
         "## What it is", "",
         f"{sum(c[s]['statements'] for s in splits):,} statements (sentences) from SaudiNewsNet, the 2015 corpus of "
         "Saudi newspaper articles (`../shared/data/saudinewsnet`), each labelled for **stance** (conciliatory, "
         "warning, condolence, condemnation, support, neutral) and **sentiment** (positive, negative, neutral) by "
         "the project's label contract (`shared/spec/labels.md`) and annotator guide "
         "(`data/annotation_guidelines.md`). Only standoff records are stored in the repository "
         "(`data/annotations/gold*.jsonl`: statement id, article id, offsets, text sha1, labels, annotator, pass, and the adjudicator's reason); "
         "the text is rebuilt from SaudiNewsNet by `nabra corpus build` and every span is verified by its hash "
         f"(this build: {man['mismatches']} mismatches).", "",
         "## How statements were chosen", "",
         "Batch by batch (one gold file each in `data/annotations/`, the drawn ids beside it as `sample*.jsonl`). "
         "Readers saw only the statement, its article title, the contract and the guide: never a weak label, a "
         "model prediction or another reader's label.", ""]
    L += _batches(annotations)
    L += ["The first batch was mostly drawn where a cue fired and the active-learning batches where the model was "
          "unsure, so the class distribution is far from the corpus's (where about 90% of statements are neutral): "
          "the weak labeller's scores on the first test split are optimistic. The random batch r29 is the honest "
          "sample: `test-v2` is drawn from it alone.", "",
          "## Annotation", "",
          "Each statement was read and labelled one by one against the spec and guide by independent annotators "
          "working from the statement and its article title only (no weak labels, no model output). The annotators "
          "were LLM agents, each with a disjoint slice; a second reader of the same statements never saw the first "
          "reading; a separate adjudicator agent settled every disagreement with the guide, seeing the two "
          "candidate labels in random order without knowing who gave which. Human review of a sample is the "
          "obvious next step before high-stakes use.", ""]
    if ag:
        L += [f"- statements read twice (all batches): {ag['double_annotated']}",
              f"- Cohen's kappa, stance: {_kappa(ag['stance']['kappa'])} (observed agreement {ag['stance']['observed_agreement']:.3f}, "
              f"{ag['stance']['disagreements']} disagreements)",
              f"- Cohen's kappa, sentiment: {_kappa(ag['sentiment']['kappa'])} (observed agreement "
              f"{ag['sentiment']['observed_agreement']:.3f}, {ag['sentiment']['disagreements']} disagreements)",
              "- final labels (one a statement; an audit decision replaces the earlier final): " + ", ".join(f"{k} {v}" for k, v in sorted(finals.items())),
              "- readings per annotator: " + ", ".join(f"{k} {v}" for k, v in sorted(annotators.items())), "",
              "Agreement between two readers of the same kind is an upper bound on what human annotators would reach; "
              "kappa between such agents probably runs higher than between people.", ""]
    L += ["## Splits", "",
          "Grouped by article, and by near-duplicate cluster: articles that share any exact or near-duplicate "
          "statement (MinHash over character 5-grams, threshold 0.7) form one group and never straddle two splits. "
          f"Stratified by stance, seed {man['seed']}; the ids are frozen in `data/splits/` so every later run "
          "is scored on the same test statements.", ""]
    for task in man["tasks"]:
        L += [f"### {task}", ""] + _table({s: c[s][task] for s in splits}, man["tasks"][task], splits) + [""]
    L += ["Articles per split: " + ", ".join(f"{s} {c[s]['articles']}" for s in splits) + ".", ""]
    if "weak_train" in c:
        L += [f"An optional weak-labelled training set (`weak_train.parquet`, gold groups excluded, label-model "
              f"confidence ≥ {man.get('weak_threshold')}) holds {c['weak_train']['statements']:,} statements.", ""]
    L += ["## Known biases and limits", "",
          "- One country, one year (2015), newspapers only: Saudi official voice dominates (royal cables of "
          "condolence and congratulation, ministry warnings); Yemen, Syria, Iran and terrorism dominate the "
          "political news.",
          "- Statements are labelled alone; stance that needs the previous sentence is read from the statement only.",
          "- The sampling over-represents cue words (see above); `neutral` is under-represented relative to the corpus.",
          "- Annotators were LLM agents; systematic readings shared by all agents (e.g. eulogies with «رحمه الله» as "
          "condolence) are not caught by agreement figures.",
          "- The corpus builder's segmentation defines the unit: a statement cut at a line break may be a fragment.",
          "", "## Reproduce", "", "```",
          "nabra corpus build --input ../shared/data/saudinewsnet --out corpus/snn",
          "nabra label weak --corpus corpus/snn --out corpus/snn-weak",
          "nabra dataset build --corpus corpus/snn --annotations data/annotations --weak corpus/snn-weak --out datasets/gold --card",
          "```", "",
          f"Corpus content hash `{man['corpus_content_hash']}`, annotation hash `{man['annotation_hash']}`, "
          f"dataset content hash `{man['content_hash']}`.", ""]
    write_atomic(path, "\n".join(L))
    return path


def _kappa(k: float | None) -> str:
    return f"{k:.3f}" if k is not None else "undefined (one label in every reading)"
