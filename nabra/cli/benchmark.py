"""`nabra benchmark NAME`: load a public benchmark by config, train (if asked) and evaluate with its metric."""
from __future__ import annotations

from pathlib import Path

from nabra.cli.main import positive_int
from nabra.errors import UserError
from nabra.io import refuse_file, refuse_foreign


def register(sub) -> None:
    p = sub.add_parser("benchmark", help="score baselines (and a model) on Mawqif / ArSarcasm-v2 with the official metric")
    p.add_argument("name", help="a config in configs/benchmarks/ (mawqif, arsarcasm-v2) or a YAML path")
    p.add_argument("--model", help="an already trained run directory to evaluate")
    p.add_argument("--train-config", help="train this config (e.g. configs/train/tiny.yaml) on the benchmark first")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="overrides for --train-config")
    p.add_argument("--bootstrap", type=positive_int, default=1000)
    p.add_argument("--out", required=True)
    p.add_argument("--resume", action="store_true",
                   help="continue OUT/run, a training stopped by a kill, with its own config (as `nabra train "
                        "--resume`), then evaluate; a finished run is evaluated again")
    p.set_defaults(func=run)


def run(args) -> int:
    from nabra.config import load_benchmark_config, load_train_config
    from nabra.evaluation.benchmarks import load_benchmark, published_lines
    from nabra.evaluation.report import evaluate, summary_rows

    cfg = load_benchmark_config(args.name)
    out = Path(args.out)
    # a file was a FileExistsError traceback; a run or dataset folder got dataset/, run/ and report/ put inside it
    fix = "give a new or empty folder (or one of an earlier benchmark run)"
    refuse_file(f"--out {out}", out, fix)
    if out.is_dir():
        refuse_foreign(f"--out {out}", [p.name for p in out.iterdir() if p.name not in ("dataset", "run", "report")],
                       "`nabra benchmark`", fix)
    run_dir = check_run(args, out)
    man = load_benchmark(cfg, out / "dataset")
    print(f"{cfg.name}: " + ", ".join(f"{s} {c['statements']}" for s, c in man["counts"].items()))
    model = args.model
    if args.resume or args.train_config:  # here: a baselines-only benchmark never loads torch and transformers
        from nabra.train.trainer import load_run_config, run as train_run
    if args.resume:
        tcfg, _ = load_run_config(run_dir)
        train_run(tcfg, out / "dataset", run_dir, resume=True)
        model = str(run_dir)
    elif args.train_config:
        tasks = list(cfg.tasks)
        over = [f"data.tasks={tasks}"] + (["data.text_pair_column=text_pair"] if cfg.text_pair_column else [])
        tcfg = load_train_config(args.train_config, over + args.overrides)
        train_run(tcfg, out / "dataset", run_dir)
        model = str(run_dir)
    rep = evaluate(model, out / "dataset", "test", out / "report", n_boot=args.bootstrap,
                   title=f"nabra benchmark: {cfg.name}")
    for r in summary_rows(rep):
        print(f"{r[0]:10s} {r[1]:14s} macro-F1 {r[2]:26s} headline {r[3]}")
    for line in published_lines(rep, cfg):
        print(line)
    print(f"report written to {out / 'report'}")
    return 0


def check_run(args, out: Path) -> Path:
    """OUT/run: continued only with --resume, which takes nothing that would change it. An earlier run there
    was told to `nabra train --resume`, or "use --resume", a flag this command did not have."""
    run_dir = out / "run"
    again = f"`nabra benchmark {args.name} --out {out} --resume`"
    if args.resume:
        given = [f for f, v in (("--train-config", args.train_config), ("--set", args.overrides),
                                ("--model", args.model)) if v]
        if given:
            raise UserError(f"--resume continues {run_dir} with its own config.yaml; {', '.join(given)} cannot "
                            "change it (start a new benchmark with another --out instead)")
        if not (run_dir / "config.yaml").is_file():
            raise UserError(f"--resume: {run_dir} holds no training to continue; train one with --train-config")
    elif args.train_config and run_dir.is_dir() and any(run_dir.iterdir()):
        state = "a finished training" if (run_dir / "model").is_dir() else "an unfinished training"
        raise UserError(f"--out {out}: {run_dir} holds {state}; continue or evaluate it with {again}, "
                        "or give another --out")
    return run_dir
