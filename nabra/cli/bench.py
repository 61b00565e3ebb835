"""`nabra bench corpus|train|predict`: speed and memory figures, printed (never pass/fail)."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from nabra.cli.export import INT8_FFN_OUT, ONNX_GRAPHS
from nabra.cli.main import positive_int
from nabra.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("bench", help="speed/memory benchmarks: corpus build, training throughput, inference")
    s = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    c = s.add_parser("corpus", help="articles/s, statements/s, peak memory, wall time of a corpus build")
    c.add_argument("--input", nargs="+", required=True)
    c.add_argument("--out", default=None, help="corpus folder (default: a temp folder)")
    # every count >= 1 (positive_int): --n 0 was a ZeroDivisionError, --threads 0 torch's RuntimeError, --sizes abc
    # a ValueError and --sizes 0 a RuntimeError, each a traceback; --steps 0 ran the default 50, --repeat 0 one pass
    c.add_argument("--sizes", nargs="+", type=positive_int, default=None, metavar="N",
                   help="build the first N input files for each N (e.g. 1 4 16); default: all of them once")
    c.add_argument("--synthetic", default=None, metavar="DIR",
                   help="also build this synthetic archive (made there, 8 copies of the input zips, if absent: "
                        "python -m nabra.evaluation.synth)")
    c.add_argument("--workers", nargs="+", type=positive_int, default=None, help="worker counts to compare, e.g. 1 2")
    c.add_argument("--json", help="also write the figures here")
    c.set_defaults(func=run_corpus)
    t = s.add_parser("train", help="training statements/s, dynamic padding vs static 128, GFLOP/s vs matmul peak")
    t.add_argument("--corpus", required=True, help="corpus whose statements are used")
    t.add_argument("--geometry", nargs="+", default=["tiny", "base"], choices=["tiny", "base"])
    t.add_argument("--steps", type=positive_int, default=None,
                   help="steps per mode (default 50: one megabatch of the Trainer's length-grouped sampler)")
    t.add_argument("--json", help="also write the figures here")
    t.set_defaults(func=run_train)
    e = s.add_parser("encoder", help="pretrained encoder folders (e.g. before/after `nabra encoder prune`): sizes, "
                                     "training st/s with embeddings trained vs frozen, PyTorch/ONNX/int8 st/s")
    e.add_argument("--encoder", nargs="+", required=True, help="encoder folders")
    e.add_argument("--corpus", required=True, help="corpus whose statements are used")
    e.add_argument("--steps", type=positive_int, default=12, help="training steps per setting")
    e.add_argument("--n", type=positive_int, default=500, help="statements labelled per prediction backend")
    e.add_argument("--json", help="also write the figures here")
    e.set_defaults(func=run_encoder)
    r = s.add_parser("predict", help="statements/s of PyTorch fp32, ONNX fp32 and ONNX int8")
    r.add_argument("--model", required=True, help="a run or export folder (e.g. runs/tiny, runs/demo/export)")
    r.add_argument("--corpus", required=True, help="corpus whose statements are labelled")
    r.add_argument("--n", type=positive_int, default=2000, help="statements")
    r.add_argument("--base", action="store_true", help="also a BERT-base sized model from config")
    r.add_argument("--threads", type=positive_int, default=2)
    r.add_argument("--repeat", type=positive_int, default=2, help="timed passes per backend; the best is reported")
    r.add_argument("--int8-ffn-out", choices=INT8_FFN_OUT, default="split",
                   help="feed-forward output MatMuls in int8, as `nabra export --int8-ffn-out`")
    r.add_argument("--onnx-graph", choices=ONNX_GRAPHS, default="plain",
                   help="the ONNX graph measured, as `nabra export --onnx-graph`")
    r.add_argument("--json", help="also write the figures here")
    r.set_defaults(func=run_predict)


def _check_json(args) -> None:
    """--json is written after minutes of measuring: a folder that is not there failed only then."""
    if args.json:
        parent = Path(args.json).resolve().parent
        if not parent.is_dir():
            raise UserError(f"--json {args.json}: folder {parent} does not exist")
        if Path(args.json).is_dir():
            raise UserError(f"--json {args.json}: is a folder; give a file name")


def _texts(corpus: str, n: int, seed: int = 0) -> list[str]:
    from nabra.io import read_parquet

    if not (Path(corpus) / "statements.parquet").is_file():  # was the bare path 'X/statements.parquet'
        raise UserError(f"--corpus {corpus}: no statements.parquet, not a corpus folder: give a folder from "
                        "`nabra corpus build`")
    st = read_parquet(Path(corpus) / "statements.parquet", columns=["text", "is_duplicate"])
    st = st[~st.is_duplicate]
    return st.text.sample(n=min(n, len(st)), random_state=seed).tolist()


def run_corpus(args) -> int:
    from nabra.data.ingest import expand_inputs

    _check_json(args)
    found, problems = expand_inputs(args.input)
    # a missing input reached the build as no input at all (a RuntimeError traceback), or beside others was
    # left out of figures labelled with the files asked for; nabra's own output folders are skipped, as in a build
    missing = [p for p in problems if not p.reason.endswith("skipped")]
    if missing or not found:
        raise UserError("--input: " + "; ".join(map(str, missing or problems)))
    files = [str(f) for f in found]
    # the temp folders are removed at the end: each run left its corpus (or exported models, 285 MB for
    # e5-small) in /tmp for good
    with tempfile.TemporaryDirectory(prefix="nabra-bench-") as tmp:
        return _run_corpus(args, files, args.out or tmp + "/corpus")


def _run_corpus(args, files: list[str], out: str) -> int:
    from nabra.evaluation.bench import bench_corpus

    if args.sizes and max(args.sizes) > len(files):  # "16 files" was printed for a build of fewer
        raise UserError(f"--sizes {max(args.sizes)}: the inputs hold {len(files)} file(s)")
    runs = [(f"{n} files", files[:n]) for n in args.sizes] if args.sizes else [("all inputs", files)]
    if args.synthetic:
        from nabra.evaluation.synth import make_synthetic

        syn = Path(args.synthetic)
        if not syn.exists():
            make_synthetic(args.input[0], syn, copies=8)
        runs.append((f"synthetic {syn.name}", sorted(str(f) for f in syn.glob("*.zip"))))
    res = []
    for label, inputs in runs:
        for w in args.workers or [None]:
            r = bench_corpus(inputs, out, workers=w, name=f"corpus {label}" + (f" w{w}" if w else ""))
            res.append({"run": label, **r})
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


def run_train(args) -> int:
    from nabra.evaluation.bench import bench_train

    _check_json(args)
    texts = _texts(args.corpus, 20000)
    tok_texts = _texts(args.corpus, 100000, seed=1)  # the tokenizer learns from more text than the batches use
    res = [bench_train(texts, g, steps=args.steps or 50, tokenizer_texts=tok_texts)
           for g in args.geometry]
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


def run_encoder(args) -> int:
    from nabra.evaluation.bench import bench_encoder

    _check_json(args)
    for e in args.encoder:  # a wrong path went to the Hugging Face hub as a model id: an OSError traceback
        if not (Path(e) / "config.json").is_file():
            raise UserError(f"--encoder {e}: " + ("no config.json, not an encoder folder (from `nabra encoder "
                                                  "import` or `hf download`)" if Path(e).is_dir() else "no such folder"))
    texts = _texts(args.corpus, 5000)
    with tempfile.TemporaryDirectory(prefix="nabra-bench-") as work:
        res = [bench_encoder(e, texts, Path(work), steps=args.steps, n_predict=args.n) for e in args.encoder]
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


def run_predict(args) -> int:
    from nabra.evaluation.bench import base_model_dir, bench_predict

    _check_json(args)
    texts = _texts(args.corpus, args.n)
    # named after the model's folder: any run or export folder is measured, not only the tiny model
    name = Path(args.model).resolve().name
    kw = dict(threads=args.threads, repeat=args.repeat, int8_ffn_out=args.int8_ffn_out, graph=args.onnx_graph)
    with tempfile.TemporaryDirectory(prefix="nabra-bench-") as w:
        work = Path(w)
        res = [bench_predict(args.model, texts, work, name, **kw)]
        if args.base:
            res.append(bench_predict(base_model_dir(_texts(args.corpus, 100000, 1), work / "base"), texts, work,
                                     "bert-base", **kw))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0
