"""`nabra label weak|report|agreement`: weak labels, the labelling-function report, annotator agreement."""
from __future__ import annotations

import json


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
                   help="gold split to score against (the test split is refused: rules are never tuned on it)")
    r.set_defaults(func=run_report)
    a = s.add_parser("agreement", help="Cohen's kappa per task between the two independent readings")
    a.add_argument("--annotations", default="data/annotations", help="folder or file of standoff records")
    a.add_argument("--json", action="store_true", help="print JSON")
    a.set_defaults(func=run_agreement)


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

    rep = weak_report(args.corpus, args.dataset, load_labels(), split=args.split)
    print(report_table(rep))
    return 0


def run_agreement(args) -> int:
    from nabra.data.annotate import agreement, read_records

    ag = agreement(read_records(args.annotations))
    if args.json:
        print(json.dumps(ag, indent=2))
        return 0
    print(f"statements read twice: {ag['double_annotated']}")
    for task in ("stance", "sentiment"):
        t = ag[task]
        print(f"  {task:10s} Cohen's kappa {t['kappa']:.3f}   observed agreement {t['observed_agreement']:.3f}"
              f"   disagreements {t['disagreements']}")
    return 0
