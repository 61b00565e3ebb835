"""`nabra demo`: the whole pipeline offline on the embedded sample, in a few minutes on 2 cores.

corpus build (data/sample) -> weak labels -> dataset -> train the tiny model -> evaluate ->
export (HF, ONNX, int8) -> predict the sample article (data/sample/article.txt), printing its table.
The sample has no gold labels, so the model learns the weak labels: this shows the path, not quality.
"""
from __future__ import annotations

import contextlib
import shutil
import sys
import time
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline offline on the embedded sample (the quick start)")
    p.add_argument("--out", default="runs/demo", help="working folder (replaced)")
    p.add_argument("--epochs", type=float, default=60, help="training epochs of the tiny model")
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
    from nabra.config import load_corpus_config, load_labels, load_train_config
    from nabra.data import corpus, dataset, weak
    from nabra.evaluation.report import evaluate, summary_rows
    from nabra.train import export, trainer
    from nabra.train.predict import StanceClassifier
    from nabra.paths import config_file, sample_dir

    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    t0 = time.perf_counter()
    sample = sample_dir()
    step = lambda msg: print(f"\n== {msg}  [{time.perf_counter() - t0:.0f} s]")

    step("1/7 corpus build: data/sample/articles.jsonl")
    res = corpus.build([str(sample / "articles.jsonl")], out / "corpus", load_corpus_config(), progress=False)
    print(corpus.summary(res.manifest))
    step("2/7 weak labels")
    schema = load_labels()
    info = weak.run(out / "corpus", out / "weak", schema)
    for task, counts in info["label_counts"].items():
        print(f"  {task:10s} " + "  ".join(f"{k} {v}" for k, v in counts.items()))
    step("3/7 dataset (weak labels as labels: the sample has no gold)")
    dinfo = dataset.build(out / "corpus", out / "dataset", schema, weak_dir=out / "weak", splits_dir=None)
    print("  " + ", ".join(f"{s} {c['statements']}" for s, c in dinfo["counts"].items()))
    step("4/7 train the tiny model (configs/train/tiny.yaml)")
    cfg = load_train_config(config_file("train/tiny.yaml"),
                            [f"training.epochs={args.epochs}", "training.early_stopping_patience=0",
                             "training.select_best=false",  # a 10-statement dev set cannot pick a checkpoint
                             "model.tiny.vocab_size=2000", "logging.logging_steps=50"])
    (out / "run").mkdir(parents=True, exist_ok=True)
    # the Trainer's own output (a bar per evaluation, raw log dicts, "Writing model shards") goes to a
    # log file; the terminal gets one bar for the stage and the summary below
    with open(out / "run" / "train.log", "w", encoding="utf-8") as logf, \
            contextlib.redirect_stdout(logf), contextlib.redirect_stderr(logf):
        m = trainer.run(cfg, out / "dataset", out / "run", callbacks=[step_bar(sys.__stderr__)],
                        log=lambda s: print("  " + s, file=sys.__stdout__))
    print(f"  full training log: {out}/run/train.log")
    print(f"  dev macro-F1 stance {m['dev_stance_macro_f1']:.3f}, sentiment {m['dev_sentiment_macro_f1']:.3f}")
    step("5/7 evaluate on the sample's test split")
    rep = evaluate(out / "run", out / "dataset", "test", out / "report", n_boot=200)
    for r in summary_rows(rep):
        print(f"  {r[0]:10s} {r[1]:14s} macro-F1 {r[2]}")
    step("6/7 export: HF + model card, ONNX, int8 ONNX")
    export.run(out / "run", out / "export", list(export.FORMATS), report=rep, log=lambda s: print("  " + s))
    step("7/7 predict data/sample/article.txt with the int8 ONNX model")
    clf = StanceClassifier.from_pretrained(out / "export", backend="onnx", onnx_file="model.int8.onnx")
    rows = clf.predict_article((sample / "article.txt").read_text(encoding="utf-8"))
    print(f"{'start':>6} {'end':>6}  {'stance':<18} {'sentiment':<14} text")
    for r in rows:
        print(f"{r['start']:>6} {r['end']:>6}  {r['stance'] + ' %.2f' % r['stance_prob']:<18} "
              f"{r['sentiment'] + ' %.2f' % r['sentiment_prob']:<14} {r['text'][:70]}")
    print(f"\ndone in {time.perf_counter() - t0:.0f} s; everything is under {out}/ "
          f"(report: {out}/report/report.html, model: {out}/export)")
    return 0
