"""`nabra label weak|report|agreement|audit|audit-sheet|audit-import`: weak labels, the labelling-function
report, annotator agreement, and the cross-validated label audit (nabra.evaluation.audit)."""
from __future__ import annotations

import json

from nabra.cli.main import positive_int
from nabra.paths import data_file  # cheap: the CLI's start-up stays light


def register(sub) -> None:
    p = sub.add_parser("label", help="weak labels, labelling-function report, inter-annotator agreement")
    s = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    w = s.add_parser("weak", help="weak-label every statement of a corpus (cue lexicons + label model)")
    w.add_argument("--corpus", required=True, help="corpus folder from `nabra corpus build`")
    w.add_argument("--out", required=True, help="output folder (weak_labels.parquet, votes.npz)")
    w.set_defaults(func=run_weak)
    r = s.add_parser("report", help="per labelling function: coverage, overlaps, conflicts, accuracy on gold dev")
    r.add_argument("--corpus", required=True)
    r.add_argument("--dataset", required=True, help="dataset folder (its dev split is the gold reference)")
    r.add_argument("--split", default="dev", choices=["train", "dev", "test", "test-v2"],
                   help="gold split to score against (test and test-v2 are refused: rules are never tuned on them)")
    r.add_argument("--sample", type=int, default=50_000, metavar="N",
                   help="corpus statements drawn (seed 0) for coverage, overlaps and conflicts; 0: all of them")
    r.set_defaults(func=run_report)
    a = s.add_parser("agreement", help="Cohen's kappa per task between the two independent readings")
    a.add_argument("--annotations", default=None,
                   help="folder or file of standoff records (default: the gold records shipped with nabra)")
    a.add_argument("--json", action="store_true", help="print JSON")
    a.set_defaults(func=run_agreement)
    au = s.add_parser("audit", help="out-of-fold probabilities over all gold statements + cleanlab's label issues")
    au.add_argument("--data", required=True, help="dataset folder: every split's gold statements are audited")
    au.add_argument("--folds", type=int, default=5, help="K group folds (default 5)")
    au.add_argument("--recipe", default="finetune", choices=["finetune", "embeddings-lr"],
                    help="finetune: `nabra train` per fold (--config); embeddings-lr: frozen --encoder + logistic "
                         "regression (cheap on CPU)")
    au.add_argument("--config", help="train config for --recipe finetune (e.g. configs/train/tiny.yaml)")
    au.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a train config key, e.g. --set training.epochs=10")
    au.add_argument("--encoder", help="pretrained encoder folder or name for --recipe embeddings-lr")
    au.add_argument("--encoder-prefix", default="passage: ", help="input prefix with --encoder (e5: 'passage: ')")
    au.add_argument("--seed", type=int, default=13, help="seed of the folds and dev slices")
    au.add_argument("--out", required=True, help="audit folder (rerun with the same --out to resume)")
    au.set_defaults(func=run_audit)
    sh = s.add_parser("audit-sheet", help="blind re-read sheet of the top suspects (two candidate labels, no hint)")
    sh.add_argument("--suspects", required=True, help="suspects.csv from `nabra label audit`")
    sh.add_argument("--corpus", required=True, help="the corpus the dataset was built from (statement text)")
    sh.add_argument("--top", type=positive_int, default=50, help="suspects per task, by rank (default 50)")
    sh.add_argument("--seed", type=int, default=13, help="seed of the row and label order")
    sh.add_argument("--out", required=True, help="sheet CSV to write")
    sh.set_defaults(func=run_sheet)
    im = s.add_parser("audit-import", help="a filled audit sheet -> final records that override the earlier ones")
    im.add_argument("sheet", help="the sheet, with `chosen` (a, b or a label) and `reason` filled in")
    im.add_argument("--annotations", default=None,
                    help="gold records, the current final labels (default: the gold records shipped with nabra)")
    im.add_argument("--out", default="data/annotations/gold_audit.jsonl", help="audit records file (appended to)")
    im.add_argument("--annotator", default="llm-audit")
    im.set_defaults(func=run_audit_import)


def run_weak(args) -> int:
    from nabra.config import load_labels
    from nabra.data import weak

    info = weak.run(args.corpus, args.out, load_labels())
    print(f"weak-labelled {info['statements']:,} statements -> {args.out}")
    for task, counts in info["label_counts"].items():
        print(f"  {task:10s} " + "  ".join(f"{k} {v:,}" for k, v in counts.items()))
    return 0


def run_report(args) -> int:
    from nabra.config import load_labels
    from nabra.evaluation.weak_report import report_table, weak_report

    rep = weak_report(args.corpus, args.dataset, load_labels(), split=args.split, sample=args.sample)
    print(report_table(rep))
    return 0


def run_agreement(args) -> int:
    from nabra.data.annotate import agreement, read_records
    from nabra.io import shipped_data  # --annotations data/annotations (the README's): found from any folder

    ag = agreement(read_records(shipped_data(args.annotations) if args.annotations else data_file("annotations")))
    if args.json:
        print(json.dumps(ag, indent=2))
        return 0
    print(f"statements read twice: {ag['double_annotated']}")
    if not ag["double_annotated"]:
        print("  no statement was read twice (pass 1 and pass 2): no agreement to measure")
        return 0
    for task in ("stance", "sentiment"):
        t = ag[task]
        kappa = f"{t['kappa']:.3f}" if t["kappa"] is not None else "undefined (one label in every reading)"
        print(f"  {task:10s} Cohen's kappa {kappa}   observed agreement {t['observed_agreement']:.3f}"
              f"   disagreements {t['disagreements']}")
    return 0


def run_audit(args) -> int:
    from nabra.config import load_train_config
    from nabra.evaluation.audit import run_audit as audit

    cfg = load_train_config(args.config, args.overrides) if args.config else None
    enc = {"encoder": args.encoder, "prefix": args.encoder_prefix} if args.encoder else None
    info = audit(args.data, args.out, args.folds, args.recipe, cfg=cfg, encoder=enc, seed=args.seed)
    for t, c in info["counts"].items():
        print(f"  {t:10s} {info['suspects'][t]} suspects: " +
              ", ".join(f"{l} {v['suspects']}/{v['statements']}" for l, v in c.items()))
    print(f"suspects written to {args.out}/suspects.csv (audit.json beside it)")
    return 0


def run_sheet(args) -> int:
    from nabra.evaluation.audit import make_sheet

    n = make_sheet(args.suspects, args.corpus, args.top, args.out, seed=args.seed)
    print(f"{n} statement/task rows to re-read -> {args.out} (fill `chosen` with a, b or a label, and `reason`)")
    return 0


def run_audit_import(args) -> int:
    from nabra.evaluation.audit import import_sheet
    from nabra.io import shipped_data

    ann = shipped_data(args.annotations) if args.annotations else data_file("annotations")
    n, open_rows = import_sheet(args.sheet, ann, args.out, args.annotator)
    print(f"{n} audit record(s) appended to {args.out}; {open_rows} row(s) left undecided")
    return 0
