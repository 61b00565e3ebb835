"""`nabra predict MODEL_DIR INPUT...`: label every statement of new articles."""
from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
from pathlib import Path

from nabra.cli.main import positive_int
from nabra.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("predict", help="label every statement of articles (.txt, .html, JSONL, SaudiNewsNet zip, or - for stdin)")
    p.add_argument("model", help="run directory, model folder or export folder")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="files or folders: .txt, .html, .json/.jsonl (records with a text or content field), "
                        "SaudiNewsNet .zip; - reads stdin. start/end are character offsets into each article's "
                        "text as read: the .txt file's, the record's text field (the record named by the locator "
                        "column: '#N' in a JSON array, 'line N' in JSON Lines), the HTML page's extracted text")
    p.add_argument("--format", default="table", choices=["table", "jsonl", "csv"])
    p.add_argument("--backend", default="torch", choices=["torch", "onnx"])
    p.add_argument("--onnx-file", default=None, help="with --backend onnx: model.onnx (default) or model.int8.onnx (used when the "
                   "export wrote only that)")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--out", default="-", help="output file (default: stdout); written atomically")
    p.add_argument("--strict", action="store_true", help="exit 1 when any input had a problem (the rest is still labelled)")
    p.add_argument("--workers", type=positive_int, default=1,
                   help="processes labelling input files in parallel (datatrove executor); output order is kept")
    p.add_argument("--executor", choices=["local", "ray"], default="local", help="with --workers: local or Ray")
    p.add_argument("--tasks", type=positive_int, default=None,
                   help="with --workers: blocks of input (default: one per file, and a JSON Lines file over 64 MB "
                        "cut at line starts into ~64 MB ranges); more tasks than that cut JSON Lines files further")
    p.set_defaults(func=run)


def check_options(args) -> None:
    """Everything that can be checked without the model, checked before it loads (seconds, not a traceback)."""
    from nabra.data.ingest import expand_inputs
    from nabra.io import shipped_data

    # data/sample/article.txt as the README writes it: the shipped copy from any folder (as data/annotations)
    args.inputs = [i if i == "-" else str(shipped_data(i)) for i in args.inputs]
    if args.onnx_file and args.backend != "onnx":
        raise UserError("--onnx-file needs --backend onnx")
    if args.out != "-":
        parent = Path(args.out).resolve().parent
        if not parent.is_dir():
            raise UserError(f"--out {args.out}: folder {parent} does not exist")
        if Path(args.out).is_dir():
            raise UserError(f"--out {args.out}: is a folder; give a file name")
    files, problems = expand_inputs(args.inputs)
    if not files:
        raise UserError("no input to label: " + "; ".join(str(p) for p in problems))
    if args.out != "-":  # the output replaced an input file, or a file of the model folder
        out = Path(args.out).resolve()
        if out in {f.resolve() for f in files} or Path(args.model).resolve() in out.parents:
            raise UserError(f"--out {args.out}: is an input or inside the model folder {args.model}; "
                            "give another file name")


def run(args) -> int:
    from nabra.train.predict import StanceClassifier

    check_options(args)
    kw = {"batch_size": args.batch_size}
    if args.onnx_file:
        kw["onnx_file"] = args.onnx_file
    clf = StanceClassifier.from_pretrained(args.model, backend=args.backend, **kw)
    if clf.onnx_file and clf.onnx_file != (args.onnx_file or "model.onnx"):  # an int8-only export: said, not silent
        print(f"note: {args.model} holds no model.onnx; labelling with {clf.onnx_file}", file=sys.stderr)
    if args.out == "-":
        n_rows, n_art, problems = write_rows(clf, args, sys.stdout)
    else:
        # a temp file beside --out, renamed when complete: a failed run never leaves half a file
        out = Path(args.out)
        fd, tmp = tempfile.mkstemp(dir=out.resolve().parent, prefix=f".{out.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
                n_rows, n_art, problems = write_rows(clf, args, fh)
            os.chmod(tmp, 0o644)
            os.replace(tmp, out)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    print(f"{n_rows} statements in {n_art} article(s) labelled; {len(problems)} input problem(s)", file=sys.stderr)
    if n_art == 0:
        return 1
    if problems and args.strict:
        print(f"--strict: {len(problems)} input problem(s), see warnings above", file=sys.stderr)
        return 1
    return 0


def write_rows(clf, args, fh) -> tuple[int, int, list[str]]:
    from nabra.train.predict import predict_inputs

    tasks = list(clf.tasks)
    writer = None
    n_rows = n_art = 0
    problems = []
    if args.workers > 1 and "-" not in args.inputs:
        from nabra.train.predict_pipeline import predict_parallel

        if args.executor == "ray":
            from nabra.cli.corpus import _connect_ray, check_cluster_paths

            check_cluster_paths([*args.inputs, str(args.model)])
            _connect_ray(None)
        kw = {"batch_size": args.batch_size, **({"onnx_file": args.onnx_file} if args.onnx_file else {})}
        records = predict_parallel(args.model, args.inputs, args.workers, backend=args.backend,
                                   executor=args.executor, tasks=args.tasks, **kw)
    else:
        records = predict_inputs(clf, args.inputs)
    for art, rows, problem in records:
        if problem:
            problems.append(problem)
            print(f"warning: {problem}", file=sys.stderr)
            continue
        n_art += 1
        # the record inside the file (JSON "#3", JSONL "line 4"; empty for .txt/.html): the offsets index
        # that record's text, which input_file alone does not name when a file holds many articles
        loc = art.get("locator") or ""
        if args.format == "table":
            fh.write(f"\n# {art['input_file']}{' ' + loc if loc else ''}  (article {art['article_id']}, {len(rows)} statements)\n")
            fh.write(f"{'start':>6} {'end':>6}  " + "  ".join(f"{t:<22}" for t in tasks) + "  text\n")
        for r in rows:
            n_rows += 1
            if args.format == "jsonl":
                fh.write(json.dumps({"input_file": art["input_file"], "locator": loc, **r}, ensure_ascii=False) + "\n")
            elif args.format == "csv":
                flat = {"input_file": art["input_file"], "locator": loc, "article_id": r["article_id"], "statement_id": r["statement_id"],
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
    return n_rows, n_art, problems


def _cell(row: dict, task: str) -> str:
    return f"{row[task]} {row[task + '_prob']:.2f}".ljust(22)
