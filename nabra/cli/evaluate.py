"""`nabra evaluate`: thin wrapper over nabra.evaluation.report.evaluate."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="score a model beside baselines: intervals, plots, errors, reproducible report")
    p.add_argument("--model", help="run directory (or model/export folder) to evaluate")
    p.add_argument("--runs", nargs="+", help="several run directories (e.g. seeds): adds mean ± std")
    p.add_argument("--data", required=True, help="dataset folder from `nabra dataset build`")
    p.add_argument("--split", nargs="+", default=["dev"], choices=["dev", "test", "test-v2"],
                   help="dev (default), test and/or test-v2; a test split is scored only when asked for "
                        "explicitly. Several: one report each in OUT/<split>/, their tables side by side in OUT/report.md")
    p.add_argument("--baselines", help="folder from `nabra baseline` (default: fit them now, tuned on dev)")
    p.add_argument("--no-baselines", action="store_true", help="score the model alone")
    p.add_argument("--encoder", help="pretrained encoder folder or name for the embeddings + LR baseline "
                                     "(default: the one the model was fine-tuned from)")
    p.add_argument("--encoder-prefix", default="passage: ", help="input prefix with --encoder (e5: 'passage: ')")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    p.add_argument("--out", required=True, help="report folder")
    p.set_defaults(func=run)


def run(args) -> int:
    from nabra.cli.main import UserError
    from nabra.evaluation.report import evaluate_splits, summary_rows

    if not (args.model or args.runs):
        raise UserError("give --model RUN_DIR or --runs RUN1 RUN2 ...")
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
