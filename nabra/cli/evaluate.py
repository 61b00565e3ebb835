"""`nabra evaluate`: thin wrapper over nabra.evaluation.report.evaluate; `nabra evaluate curve`: over
nabra.evaluation.curve.run_curve (the learning curve); `nabra evaluate compare`: over
nabra.evaluation.compare.compare (the gain of one group of runs over another, paired bootstrap)."""
from __future__ import annotations

from nabra.cli.main import positive_int
from nabra.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="score a model beside baselines: intervals, plots, errors, reproducible report")
    p.add_argument("--model", help="run directory (or model/export folder) to evaluate")
    p.add_argument("--runs", nargs="+", help="several run directories (e.g. seeds): adds mean ± std")
    p.add_argument("--data", help="dataset folder from `nabra dataset build` (required)")
    p.add_argument("--split", nargs="+", default=["dev"], choices=["dev", "test", "test-v2"],
                   help="dev (default), test and/or test-v2; a test split is scored only when asked for "
                        "explicitly. Several: one report each in OUT/<split>/, their tables side by side in OUT/report.md")
    p.add_argument("--baselines", help="folder from `nabra baseline` (default: fit them now, tuned on dev)")
    p.add_argument("--no-baselines", action="store_true", help="score the model alone")
    p.add_argument("--encoder", help="pretrained encoder folder or name for the embeddings + LR baseline "
                                     "(default: the one the model was fine-tuned from)")
    p.add_argument("--encoder-prefix", default="passage: ", help="input prefix with --encoder (e5: 'passage: ')")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--bootstrap", type=positive_int, default=1000, help="bootstrap resamples")
    p.add_argument("--out", help="report folder (required)")
    p.set_defaults(func=run)
    s = p.add_subparsers(dest="action", metavar="{curve,compare}", required=False)
    c = s.add_parser("curve", help="learning curve: train on nested fractions of train, macro-F1 with intervals")
    c.add_argument("--config", required=True, help="train config (e.g. configs/train/tiny.yaml)")
    c.add_argument("--data", required=True, help="dataset folder")
    c.add_argument("--fractions", nargs="+", type=float, default=[0.25, 0.5, 1.0], help="shares of train (default 0.25 0.5 1)")
    c.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3], help="training seeds per fraction (default 1 2 3)")
    c.add_argument("--split", nargs="+", default=["dev"], choices=["dev", "test", "test-v2"], help="splits to score")
    c.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a train config key, e.g. --set training.epochs=10")
    c.add_argument("--subsample-seed", type=int, default=13, help="seed of the nested subsamples")
    c.add_argument("--bootstrap", type=positive_int, default=1000, help="bootstrap resamples")
    c.add_argument("--out", required=True, help="curve folder (rerun with the same --out to resume or add points)")
    c.set_defaults(func=run_curve)
    m = s.add_parser("compare", help="gain of one group of runs over another on the same split: paired bootstrap CI")
    # not --a/--b: argparse would read them as abbreviations of evaluate's own --baselines/--bootstrap
    m.add_argument("--reference", nargs="+", required=True, metavar="RUN", help="the reference runs (e.g. seeds on the old gold)")
    m.add_argument("--candidate", nargs="+", required=True, metavar="RUN", help="the runs whose gain over --reference is measured")
    m.add_argument("--names", nargs=2, default=["reference", "candidate"], metavar=("NAME_REF", "NAME_CAND"),
                   help="labels of the two groups in the tables")
    m.add_argument("--data", required=True, help="dataset folder whose split(s) both groups predict")
    m.add_argument("--split", nargs="+", default=["dev"], choices=["dev", "test", "test-v2"], help="splits to score")
    m.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    m.add_argument("--bootstrap", type=positive_int, default=1000, help="bootstrap resamples")
    m.add_argument("--out", required=True, help="folder for compare.json and compare.md")
    m.set_defaults(func=run_compare)


def run(args) -> int:
    from nabra.evaluation.report import evaluate_splits, summary_rows

    if not (args.model or args.runs):
        raise UserError("give --model RUN_DIR or --runs RUN1 RUN2 ...")
    if args.model and args.runs:  # --model was dropped without a word: the report scored --runs alone
        raise UserError(f"give --model {args.model} or --runs {' '.join(args.runs)}, not both "
                        f"(several runs: --runs {args.model} {' '.join(args.runs)})")
    if not (args.data and args.out):
        raise UserError("give --data DATASET and --out REPORT_DIR")
    splits = list(dict.fromkeys(args.split))
    reps = evaluate_splits(args.model, args.data, splits, args.out, baselines_dir=args.baselines, seed=args.seed,
                           n_boot=args.bootstrap, runs=args.runs, with_baselines=not args.no_baselines,
                           encoder={"encoder": args.encoder, "prefix": args.encoder_prefix} if args.encoder else None)
    for split, rep in reps.items():
        print(f"{split} split, {rep['n_statements']} statements")
        print(f"{'task':10s} {'system':14s} {'macro-F1 [95% CI]':26s} {'accuracy':24s} kappa")
        for r in summary_rows(rep):
            print(f"{r[0]:10s} {r[1]:14s} {r[2]:26s} {r[4]:24s} {r[5]}")
        for t, a in rep.get("aggregate", {}).items():
            print(f"{t}: macro-F1 over {a['macro_f1']['n']} runs {a['macro_f1']['mean']:.4f} ± {a['macro_f1']['std']:.4f}")
    where = f"{args.out}/<split>/ and {args.out}/report.md" if len(splits) > 1 else f"{args.out}/report.json, report.md, report.html"
    print(f"report written to {where}")
    return 0


def run_curve(args) -> int:
    from nabra.config import load_train_config
    from nabra.evaluation.curve import run_curve as curve

    cfg = load_train_config(args.config, args.overrides)
    c = curve(cfg, args.data, args.out, args.fractions, args.seeds, args.split, n_boot=args.bootstrap,
              subsample_seed=args.subsample_seed)
    for r in c["summary"]:
        print(f"fraction {r['fraction']:<5g} n train {r['n_train']:>6}  {r['split']:8s} {r['task']:10s} macro-F1 "
              f"{r['macro_f1_mean']:.4f} ± {r['macro_f1_std']:.4f}")
    print(f"curve written to {args.out}/curve.json, curve.md, curve.png")
    return 0


def run_compare(args) -> int:
    from nabra.evaluation.compare import compare

    names = tuple(args.names)
    res = compare(args.reference, args.candidate, args.data, list(dict.fromkeys(args.split)), args.out, names=names,
                  n_boot=args.bootstrap, seed=args.seed)
    a, b = names
    for s, sp in res["splits"].items():
        for t, r in sp["tasks"].items():
            print(f"{s:8s} {t:10s} {a} {r[a]['mean']:.4f} ± {r[a]['std']:.4f}  {b} {r[b]['mean']:.4f} ± {r[b]['std']:.4f}  "
                  f"gain {r['gain']:+.4f} [{r['ci95'][0]:+.4f}, {r['ci95'][1]:+.4f}]")
    print(f"comparison written to {args.out}/compare.json and compare.md")
    return 0
