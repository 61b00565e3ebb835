"""`nabra dataset build`: gold or weak labels + corpus -> grouped, stratified train/dev/test."""
from __future__ import annotations

from nabra.cli.main import share
from nabra.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("dataset", help="build train/dev/test splits from gold (or weak) labels")
    s = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = s.add_parser("build", help="join labels to the corpus and split by article and duplicate cluster")
    b.add_argument("--corpus", required=True)
    b.add_argument("--annotations", default=None, help="gold standoff records (folder or file)")
    b.add_argument("--weak", default=None, help="weak labels folder: extra weak_train set, or the labels when no gold")
    b.add_argument("--weak-threshold", type=share, default=0.75, help="min label-model confidence for weak_train")
    b.add_argument("--seed", type=int, default=13)
    b.add_argument("--freeze", action="store_true", help="write the split ids to data/splits/ (freezes the test set; gold --annotations only)")
    b.add_argument("--splits", default=None,
                   help="folder of frozen <split>_ids.txt files (default: the package's data/splits); "
                        "`--splits none`: no frozen splits")
    b.add_argument("--test-v2", default=None, metavar="FILE",
                   help="open a second frozen test split: statement ids (one a line) or standoff JSONL; their "
                        "groups go to test-v2 and test-v2_ids.txt is written")
    b.add_argument("--grow-test", action="store_true",
                   help="let new statements into a frozen test split (default: once test_ids.txt exists, "
                        "new statements go to train/dev only)")
    b.add_argument("--card", action="store_true", help="regenerate data/DATASET_CARD.md from this build")
    b.add_argument("--out", required=True)
    b.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from nabra.cli.annotate import read_id_records
    from nabra.config import in_checkout, load_labels
    from nabra.data.dataset import SPLITS_DIR, build
    from nabra.io import shipped_data

    if args.freeze and not args.annotations:  # it wrote nothing without a word
        raise UserError("--freeze writes the split ids of gold annotations (--annotations); "
                        "a dataset of weak labels alone is never frozen")
    # installed, the defaults are files inside the package: never rewritten (one venv's splits, a stray
    # top-level `data` package)
    if not in_checkout() and ((args.freeze or args.test_v2) and not args.splits):
        raise UserError("nabra is installed, not run from its checkout: give --splits DIR to freeze splits "
                        "(the default is the package's own data/splits)")
    if not in_checkout() and args.card:
        raise UserError("--card rewrites the checkout's data/DATASET_CARD.md: run it from a git checkout of nabra")
    writes = args.freeze or args.test_v2  # into --splits, created if absent
    if args.splits == "none":
        if writes:
            raise UserError("--freeze and --test-v2 write split ids into --splits: give a folder, not `none`")
        splits = None
    elif args.splits:
        # a mistyped folder built with no frozen splits, without a word; data/splits is the shipped copy
        # when there is none here (read only: a freeze writes where it is told)
        splits = Path(args.splits) if writes else shipped_data(args.splits)
        if not splits.is_dir() and (splits.exists() or not writes):
            raise UserError(f"--splits {args.splits}: {'not a folder' if splits.exists() else 'no such folder'} "
                            "(of frozen <split>_ids.txt files); `--splits none` builds without frozen splits")
    else:
        splits = SPLITS_DIR
    annotations = shipped_data(args.annotations) if args.annotations else None
    schema = load_labels()
    test_v2 = [r["statement_id"] for r in read_id_records(Path(args.test_v2))] if args.test_v2 else None
    info = build(args.corpus, args.out, schema, annotations=annotations, weak_dir=args.weak,
                 weak_threshold=args.weak_threshold, seed=args.seed, freeze=args.freeze,
                 splits_dir=splits, test_v2=test_v2, grow_test=args.grow_test or None)
    print(f"labels: {info['label_source']}   gold records not matching the corpus: {info['mismatches']}"
          + (f"   invalid records: {info['invalid_records']}" if info.get("invalid_records") else ""))
    for split, c in info["counts"].items():
        print(f"  {split:10s} {c['statements']:>6,} statements   stance " +
              ", ".join(f"{k} {v}" for k, v in c["stance"].items()))
    if args.card:
        from nabra.data.card import write_card

        print(f"dataset card -> {write_card(args.out, annotations)}")
    print(f"dataset written to {args.out}")
    return 0
