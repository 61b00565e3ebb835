"""`nabra baseline`: fit majority / weak-labeller / TF-IDF+SVM (and, with --encoder, frozen embeddings + LR)
baselines, tuned on dev, and save them."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("baseline", help="train and save the baselines (majority, weak labeller, TF-IDF + linear SVM)")
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--tune-split", default="dev", help="split used to choose C (dev; test and test-v2 are refused)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--encoder", help="pretrained encoder folder or name: adds frozen embeddings + logistic regression")
    p.add_argument("--encoder-prefix", default="passage: ", help="input prefix with --encoder (e5: 'passage: ')")
    p.add_argument("--out", required=True)
    p.set_defaults(func=run)


def run(args) -> int:
    from nabra.data.dataset import dataset_manifest, load_split
    from nabra.evaluation.baselines import earlier_baselines, refuse_test, save_baselines, train_baselines

    refuse_test(args.tune_split, "nabra baseline")
    earlier_baselines(args.out)  # --out a file or a run folder: said before the fit, not after it
    man = dataset_manifest(args.data)
    data = {"train": load_split(args.data, "train", use="fit the baselines on"),
            "dev": load_split(args.data, args.tune_split, use="tune the baselines on")}
    labels = {t: v for t, v in man["tasks"].items() if t in data["train"]}
    enc = {"encoder": args.encoder, "prefix": args.encoder_prefix} if args.encoder else None
    bl = train_baselines(data, labels, man.get("headline_labels"), seed=args.seed, encoder=enc)
    save_baselines(bl, args.out, {"dataset_content_hash": man.get("content_hash"), "seed": args.seed})
    for t, i in bl["info"].items():
        print(f"{t:10s} majority={i['majority_label']}  tfidf C={i['tfidf_C']}  dev score by C {i['tfidf_dev_by_C']}")
    print(f"baselines written to {args.out}")
    return 0
