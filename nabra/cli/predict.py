"""`nabra predict MODEL_DIR INPUT...`: label every statement of new articles."""
from __future__ import annotations

import csv
import json
import sys


def register(sub) -> None:
    p = sub.add_parser("predict", help="label every statement of articles (.txt, .html, JSONL, SaudiNewsNet zip, or - for stdin)")
    p.add_argument("model", help="run directory, model folder or export folder")
    p.add_argument("inputs", nargs="+", metavar="INPUT")
    p.add_argument("--format", default="table", choices=["table", "jsonl", "csv"])
    p.add_argument("--backend", default="torch", choices=["torch", "onnx"])
    p.add_argument("--onnx-file", default=None, help="model.onnx (default) or model.int8.onnx")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--out", default="-", help="output file (default: stdout)")
    p.add_argument("--workers", type=int, default=1,
                   help="processes labelling input files in parallel (datatrove executor); output order is kept")
    p.add_argument("--executor", choices=["local", "ray"], default="local", help="with --workers: local or Ray")
    p.set_defaults(func=run)


def run(args) -> int:
    from nabra.cli.main import UserError
    from nabra.train.predict import ModelDirError, StanceClassifier, predict_inputs

    kw = {"batch_size": args.batch_size}
    if args.onnx_file:
        kw["onnx_file"] = args.onnx_file
    try:
        clf = StanceClassifier.from_pretrained(args.model, backend=args.backend, **kw)
    except ModelDirError as e:
        raise UserError(str(e)) from None
    fh = sys.stdout if args.out == "-" else open(args.out, "w", encoding="utf-8", newline="")
    tasks = list(clf.tasks)
    writer = None
    n_rows = n_art = 0
    problems = []
    if args.workers > 1 and "-" not in args.inputs:
        from nabra.train.predict_pipeline import predict_parallel

        if args.executor == "ray":
            from nabra.cli.corpus import _connect_ray

            _connect_ray(None)
        records = predict_parallel(args.model, args.inputs, args.workers, backend=args.backend,
                                   executor=args.executor, **kw)
    else:
        records = predict_inputs(clf, args.inputs)
    for art, rows, problem in records:
        if problem:
            problems.append(problem)
            print(f"warning: {problem}", file=sys.stderr)
            continue
        n_art += 1
        if args.format == "table":
            fh.write(f"\n# {art['input_file']}  (article {art['article_id']}, {len(rows)} statements)\n")
            fh.write(f"{'start':>6} {'end':>6}  " + "  ".join(f"{t:<22}" for t in tasks) + "  text\n")
        for r in rows:
            n_rows += 1
            if args.format == "jsonl":
                fh.write(json.dumps({k: v for k, v in r.items()}, ensure_ascii=False) + "\n")
            elif args.format == "csv":
                flat = {"input_file": art["input_file"], "article_id": r["article_id"], "statement_id": r["statement_id"],
                        "start": r["start"], "end": r["end"], "text": r["text"],
                        **{k: r[k] for t in tasks for k in (t, f"{t}_prob")}}
                if writer is None:
                    writer = csv.DictWriter(fh, fieldnames=list(flat))
                    writer.writeheader()
                writer.writerow(flat)
            else:
                labs = "  ".join(_cell(r, t) for t in tasks)
                text = r["text"] if len(r["text"]) <= 90 else r["text"][:87] + "..."
                fh.write(f"{r['start']:>6} {r['end']:>6}  {labs}  {text}\n")
    if fh is not sys.stdout:
        fh.close()
    print(f"{n_rows} statements in {n_art} article(s) labelled; {len(problems)} input problem(s)", file=sys.stderr)
    return 1 if n_art == 0 else 0


def _cell(row: dict, task: str) -> str:
    return f"{row[task]} {row[task + '_prob']:.2f}".ljust(22)
