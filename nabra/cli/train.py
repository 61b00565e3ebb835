"""`nabra train`: thin wrapper over nabra.train.trainer.run."""
from __future__ import annotations

from nabra.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("train", help="fine-tune an encoder with one head per task (AraBERT by default)")
    p.add_argument("--config", help="a file from configs/train/ (e.g. configs/train/tiny.yaml)")
    p.add_argument("--data", help="dataset folder from `nabra dataset build`")
    p.add_argument("--out", help="run directory to create")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last checkpoint")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set training.seed=2")
    p.set_defaults(func=run)


def run(args) -> int:
    from nabra.config import load_train_config
    from nabra.train.trainer import load_run_config, main_process, run as train_run

    if args.resume:
        given = [f for f, v in (("--config", args.config), ("--data", args.data), ("--out", args.out),
                                ("--set", args.overrides)) if v]
        if given:  # they used to be ignored without a word
            raise UserError(f"--resume continues {args.resume} with its own config.yaml and dataset; "
                            f"{', '.join(given)} cannot change them (start a new run with --out instead)")
        cfg, data = load_run_config(args.resume)
        out = args.resume
    else:
        if not (args.config and args.data and args.out):
            raise UserError("give --config, --data and --out (or --resume RUN_DIR)")
        cfg, data, out = load_train_config(args.config, args.overrides), args.data, args.out
    m = train_run(cfg, data, out, resume=bool(args.resume))
    if not main_process():  # one of several processes (torchrun, accelerate launch): the main one reports
        return 0
    tasks = [k[len("dev_"):-len("_macro_f1")] for k in m if k.endswith("_macro_f1") and k != "dev_combined_macro_f1"]
    print(f"best checkpoint {m['best_checkpoint']}  dev macro-F1: " +
          "  ".join(f"{t} {m[f'dev_{t}_macro_f1']:.4f}" for t in tasks) +
          f"  combined {m['dev_combined_macro_f1']:.4f}")
    print(f"model written to {out}/model")
    return 0
