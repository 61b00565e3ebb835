"""`nabra pretrain`: thin wrapper over nabra.train.pretrain.run."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("pretrain", help="masked-LM pretraining on unlabelled corpus statements (domain adaptation)")
    p.add_argument("--config", required=True, help="a file from configs/pretrain/")
    p.add_argument("--corpus", required=True, help="corpus folder from `nabra corpus build`")
    p.add_argument("--out", required=True, help="output folder: a checkpoint `nabra train` accepts")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=run)


def run(args) -> int:
    from nabra.config import load_pretrain_config
    from nabra.train.pretrain import run as pretrain_run
    from nabra.train.trainer import main_process

    info = pretrain_run(load_pretrain_config(args.config, args.overrides), args.corpus, args.out)
    if not main_process():  # one of several processes (torchrun, accelerate launch): the main one reports
        return 0
    since = f" (the steps after {info['resumed_from']})" if info["resumed_from"] else ""
    print(f"pretrained on {info['statements']:,} statements, {info['steps']} steps, mean MLM loss {info['train_loss']}{since}")
    print(f"checkpoint written to {args.out} (use: --set model.name_or_path={args.out} --set model.tiny=null)")
    return 0
