"""`nabra benchmark NAME`: load a public benchmark by config, train (if asked) and evaluate with its metric."""
from __future__ import annotations

from pathlib import Path

from nabra.cli.main import positive_int
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
    man = load_benchmark(cfg, out / "dataset")
    print(f"{cfg.name}: " + ", ".join(f"{s} {c['statements']}" for s, c in man["counts"].items()))
    model = args.model
    if args.train_config:
        from nabra.train.trainer import run as train_run

        tasks = list(cfg.tasks)
        over = [f"data.tasks={tasks}"] + (["data.text_pair_column=text_pair"] if cfg.text_pair_column else [])
        tcfg = load_train_config(args.train_config, over + args.overrides)
        train_run(tcfg, out / "dataset", out / "run")
        model = str(out / "run")
    rep = evaluate(model, out / "dataset", "test", out / "report", n_boot=args.bootstrap,
                   title=f"nabra benchmark: {cfg.name}")
    for r in summary_rows(rep):
        print(f"{r[0]:10s} {r[1]:14s} macro-F1 {r[2]:26s} headline {r[3]}")
    for line in published_lines(rep, cfg):
        print(line)
    print(f"report written to {out / 'report'}")
    return 0
