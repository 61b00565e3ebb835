"""`nabra annotate sample|suggest|export|import`: choose statements to annotate, and Label Studio / CSV interop."""
from __future__ import annotations

import io
import json
import sys
from pathlib import Path

from nabra.cli.main import count, positive_int, share
from nabra.errors import UserError


QUOTA_HELP = ("quotas over the predicted stance (neutral gets 1/(2 x classes) of the batch, every other class an "
              "equal share of the rest; a class with too few candidates passes its unfilled quota on to the others "
              "in the same proportions), the most uncertain first within each class, at most ceil(n/K)+1 per k-means "
              "cluster of the model's embeddings (lifted only if the batch cannot be filled otherwise) and at most 2 "
              "per article")


def register(sub) -> None:
    p = sub.add_parser("annotate", help="sample statements for annotation; export/import Label Studio and CSV")
    s = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    sm = s.add_parser("sample", help="draw the statements to annotate (seeded, stratified by weak cues)")
    sm.add_argument("--corpus", required=True)
    sm.add_argument("--out", default="data/annotations/sample.jsonl")
    sm.add_argument("--seed", type=int, default=13)
    sm.add_argument("--random", type=count, default=350, help="statements drawn uniformly from the pool (default 350)")
    sm.add_argument("--per-class", type=count, default=220,
                    help="statements flagged by a weak cue, per non-neutral stance (default 220; 0 = random only)")
    sm.add_argument("--neutral-flagged", type=count, default=150, help="flagged neutral statements (default 150)")
    sm.add_argument("--double", type=share, default=0.2, help="share marked for a second reading (default 0.2)")
    sm.add_argument("--exclude", nargs="*", action="extend", default=[],
                    help="statements already annotated or held out: standoff .jsonl files, id lists (.txt, one a "
                         "line) or folders of them (data/annotations data/splits); their article groups are left out "
                         "(a new batch; see --exclude-scope); repeat it or list several")
    sm.add_argument("--exclude-scope", choices=["group", "article"], default="group",
                    help="what --exclude leaves out: group (default) = their article groups (articles sharing a "
                         "duplicate cluster, the unit splits are drawn by), duplicate clusters and texts, as "
                         "`annotate suggest` does; article = their articles and duplicate clusters only (how "
                         "batches r29 and s31 were drawn: reproduces them)")
    sm.set_defaults(func=run_sample)
    sg = s.add_parser("suggest", help="the next batch chosen by a trained model: uncertain, all classes, diverse",
                      description="Active learning: a trained model scores a seeded random subset of the unlabelled "
                                  "pool and the most uncertain statements are picked, with "
                                  + QUOTA_HELP + ". Statements whose article group or duplicate cluster holds a "
                                  "dev/test, annotated or --exclude statement are never picked. The JSON/CSV for "
                                  "the readers carry no prediction; OUT.ids.jsonl keeps them for the record.")
    sg.add_argument("--model", required=True, help="run directory (its best model) or model/export folder")
    sg.add_argument("--corpus", required=True)
    sg.add_argument("--n", type=int, required=True, help="statements to pick")
    sg.add_argument("--out", required=True,
                    help="Label Studio JSON to write; OUT.csv and OUT.ids.jsonl (standoff records) are written beside it")
    sg.add_argument("--annotations", default=None,
                    help="standoff records already annotated or being read, a folder (every *.jsonl) or a file "
                         "(default: the package's data/annotations)")
    sg.add_argument("--exclude", nargs="*", action="extend", default=[],
                    help="more files or folders of statement ids to keep out (JSONL with statement_id, or one id "
                         "per line), e.g. a batch being read now; repeat it or list several")
    sg.add_argument("--splits", default=None, help="frozen splits folder (default: the package's data/splits)")
    sg.add_argument("--candidates", type=positive_int, default=8000,
                    help="eligible statements drawn at random and scored (default 8000; ~25/s for e5 on 2 cores)")
    sg.add_argument("--strategy", choices=["margin", "entropy"], default="margin",
                    help="uncertainty: stance margin top1-top2 (small = unsure, default) or entropy")
    sg.add_argument("--clusters", type=positive_int, default=None, help="k-means clusters (default n/5)")
    sg.add_argument("--seed", type=int, default=17)
    sg.add_argument("--batch-size", type=positive_int, default=32)
    sg.add_argument("--min-hits", type=int, default=4,
                    help="political keywords an article needs to join the pool (the sampler's rule; 0 = every article)")
    sg.add_argument("--enrich", type=share, default=0.0,
                    help="share of the candidates drawn from statements a weak rule flags for each non-neutral "
                         "stance (default 0: all random); rare stances are ~1%% of the corpus")
    sg.add_argument("--enrich-stances", nargs="+", default=None, metavar="STANCE",
                    help="enrich with these stances only (default: every non-neutral stance)")
    sg.set_defaults(func=run_suggest)
    e = s.add_parser("export", help="write statements as Label Studio tasks (JSON) and CSV")
    e.add_argument("--corpus", required=True)
    e.add_argument("--ids", required=True,
                   help="a sample.jsonl / gold*.jsonl file (its statement ids, and labels if it has them), "
                        "or a text file of statement ids, one per line")
    e.add_argument("--pass", dest="pass_", default="final", choices=["1", "2", "final"],
                   help="with a gold file: which pass to export (1, 2, final)")
    e.add_argument("--out", required=True, help="output path: Label Studio JSON there and the CSV beside it "
                                                 "(OUT with .csv); --out X.csv writes the CSV there and the JSON to X.json")
    e.set_defaults(func=run_export)
    i = s.add_parser("import", help="read a Label Studio export or the CSV back into standoff records")
    i.add_argument("file", help="Label Studio JSON export or CSV")
    i.add_argument("--corpus", required=True)
    i.add_argument("--out", required=True, help="standoff JSONL to write (records of this import)")
    i.add_argument("--annotator", default=None, help="annotator name (default: from the file)")
    i.add_argument("--pass", dest="pass_", default=None, choices=["1", "2", "final"],
                   help="1, 2 or final, for every record (default: the file's pass column, else 1)")
    i.set_defaults(func=run_import)
    f = s.add_parser("finalize", help="readings + adjudications -> one gold file with a final record per statement")
    f.add_argument("readings", nargs="+", help="standoff JSONL files of pass-1/pass-2 readings (from `annotate import`)")
    f.add_argument("--adjudications", nargs="*", default=[],
                   help="adjudicator files (CSV or Label Studio JSON: statement_id, stance, sentiment[, reason])")
    f.add_argument("--adjudicator", default=None,
                   help="who adjudicated (a person's or a model's name), recorded as the final records' annotator; "
                        "required with --adjudications: the dataset card says who read what")
    f.add_argument("--corpus", required=True, help="corpus folder (checks the adjudicated ids and hashes)")
    f.add_argument("--out", required=True, help="gold JSONL to write, e.g. data/annotations/gold_r29.jsonl")
    f.set_defaults(func=run_finalize)


def run_sample(args) -> int:
    from nabra.config import load_labels
    from nabra.data.corpus import load_corpus
    from nabra.data.sample import draw, write_sample

    st, ar, _ = load_corpus(args.corpus)
    exclude = None
    if args.exclude:
        ids = _ids_of(args.exclude)
        exclude = set(st.statement_id[st.statement_id.isin(ids)])
        print(f"excluding {len(exclude)} annotated statements, their "
              + ("article groups, duplicate clusters and texts" if args.exclude_scope == "group"
                 else "articles and duplicate clusters"))
    df = draw(st, ar, load_labels(), seed=args.seed, random_slice=args.random, per_class=args.per_class,
              neutral_flagged=args.neutral_flagged if args.per_class else 0, double_share=args.double,
              exclude=exclude, exclude_scope=args.exclude_scope)
    write_sample(df, args.out)
    print(f"{len(df)} statements ({int(df.double.sum())} for a second reading) -> {args.out}")
    # the default draw keeps an old batch reproducible (seed 13 drew the first gold batch), so it does not
    # leave out what is annotated or frozen since: said, with the flag that does
    if not args.exclude:
        from nabra.paths import data_file, splits_dir

        known = _ids_of([str(p) for p in (data_file("annotations"), splits_dir()) if Path(p).is_dir()])
        again = int(df.statement_id.isin(known).sum())
        if again:
            print(f"warning: {again} of them are annotated already or in a frozen split; "
                  "--exclude data/annotations data/splits leaves those out (and their article groups)", file=sys.stderr)
    print("  " + ", ".join(f"{k} {v}" for k, v in df.stratum.value_counts().sort_index().items()))
    # a stratum the pool cannot fill came back short without a word (--random 1200 gave 139 on one zip)
    got = df.stratum.value_counts()
    asked = {"random": args.random}
    if args.per_class:  # the strata draw() fills, named as it names them
        for k in load_labels().tasks["stance"].names:
            asked[f"flagged:{k}"] = args.neutral_flagged if k == "neutral" else args.per_class
    short = [f"{k} {int(got.get(k, 0))} of {n}" for k, n in asked.items() if got.get(k, 0) < n]
    if short:
        print("warning: drew fewer than asked, as the pool (non-duplicate statements of political articles, at "
              "most 2 an article, less --exclude) holds no more: " + ", ".join(short), file=sys.stderr)
    return 0


def _ids_of(paths: list[str]) -> set[str]:
    from nabra.io import shipped_data  # data/annotations, data/splits as the README writes them: any folder

    ids: set[str] = set()
    for e in map(shipped_data, paths):  # a folder: its JSONL records and its one-id-a-line .txt files (split ids)
        files = sorted([*Path(e).glob("*.jsonl"), *Path(e).glob("*.txt")]) if Path(e).is_dir() else [Path(e)]
        for f in files:
            ids |= {r["statement_id"] for r in read_id_records(f)}
    return ids


def run_suggest(args) -> int:
    from nabra.data.suggest import suggest
    from nabra.paths import data_file

    if args.n < 1:
        raise UserError(f"--n must be >= 1, got {args.n}")
    from nabra.io import shipped_data

    ann = shipped_data(args.annotations) if args.annotations else data_file("annotations")
    if args.annotations and not ann.exists():
        raise UserError(f"--annotations {ann}: no such file or folder")
    annotated = _ids_of([str(ann)]) if ann.exists() else set()
    exclude = _ids_of(args.exclude)
    print(f"keeping out {len(annotated):,} annotated statement(s) from {ann}"
          + (f" and {len(exclude):,} from --exclude" if args.exclude else ""))
    res = suggest(args.model, args.corpus, args.n, args.out, annotated=annotated, exclude=exclude,
                  splits_dir=args.splits, candidates=args.candidates, strategy=args.strategy, clusters=args.clusters,
                  seed=args.seed, batch_size=args.batch_size, min_hits=args.min_hits, enrich=args.enrich,
                  enrich_stances=args.enrich_stances, progress=sys.stderr.isatty())
    print(f"{res['picked']} statements -> " + ", ".join(res["files"]))
    return 0


def run_export(args) -> int:
    import pandas as pd

    from nabra.data.annotate import export_tasks, task_files
    from nabra.data.corpus import load_corpus
    from nabra.io import shipped_data, write_atomic  # shipped_data: --ids data/annotations/sample.jsonl from any folder

    ids_file = shipped_data(args.ids)
    out = Path(args.out)
    # `--ids r37.jsonl --out r37.jsonl` replaced the drawn batch with the export (as import refuses it)
    for written in (*task_files(out), out.with_suffix(".rejects.txt")):
        if ids_file.is_file() and written.resolve() == ids_file.resolve():
            raise UserError(f"--out {args.out}: would write {written}, the --ids file itself; give another name")
    st, _, _ = load_corpus(args.corpus)
    recs = read_id_records(ids_file)
    if any("pass" in r for r in recs):  # annotation records: one pass of them (plain ids have none)
        want = args.pass_ if args.pass_ == "final" else int(args.pass_)
        held = sorted({str(r.get("pass")) for r in recs})
        recs = [r for r in recs if r.get("pass") == want]
        if not recs:  # it wrote an empty batch ("exported 0 tasks") and exit code 0
            raise UserError(f"--ids {args.ids}: no record of pass {args.pass_} (it holds pass {', '.join(held)}); "
                            "choose one with --pass")
    ids = pd.DataFrame(recs, columns=None if recs else ["statement_id"])
    keep = [c for c in ("statement_id", "stance", "sentiment", "annotator", "pass") if c in ids.columns]
    rows = ids[keep].merge(st[["statement_id", "article_id", "start", "end", "text_sha1", "text"]], on="statement_id")
    missing = sorted(set(ids.statement_id) - set(rows.statement_id))
    rej = out.with_suffix(".rejects.txt")
    # an earlier run's list would read as this export's, also when this one is killed before its own list
    rej.unlink(missing_ok=True)
    out_json, out_csv = task_files(out)
    n = export_tasks(rows, out_json, out_csv)
    if missing:  # ids of another corpus, or mistyped: said, and listed, rather than dropped
        write_atomic(rej, "".join(f"{i}: not in the corpus {args.corpus}\n" for i in missing))
        print(f"warning: {len(missing)} id(s) not in the corpus, not exported (listed in {rej}): "
              + ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""), file=sys.stderr)
    print(f"exported {n} tasks -> {out_json} and {out_csv}")
    return 0


def run_import(args) -> int:
    from nabra.config import load_labels
    from nabra.data.annotate import import_file, write_records
    from nabra.data.corpus import load_corpus
    from nabra.io import write_atomic

    if Path(args.out).resolve() == Path(args.file).resolve():  # the readers' export was replaced by its records
        raise UserError(f"--out {args.out}: is the file being imported; give another file name")
    st, _, _ = load_corpus(args.corpus)
    pass_ = args.pass_ if args.pass_ in (None, "final") else int(args.pass_)
    recs, errors = import_file(args.file, st, load_labels(), annotator=args.annotator, pass_=pass_)
    for e in errors:
        print(f"rejected: {e}", file=sys.stderr)
    rej = Path(args.out).with_suffix(".rejects.txt")
    # an earlier import's reasons would read as this one's, also beside records of a run killed before its own
    rej.unlink(missing_ok=True)
    if recs:
        write_records(recs, args.out)
    if errors:
        write_atomic(rej, "\n".join(errors) + "\n")
        print(f"imported {len(recs)} record(s), rejected {len(errors)} (reasons in {rej})", file=sys.stderr)
        return 1
    print(f"imported {len(recs)} record(s) -> {args.out}")
    return 0


def run_finalize(args) -> int:
    """Writes every reading plus one final record per statement: the single reading, the agreed label
    of two readings, or the adjudicator's (with its reason). Statements whose readings disagree and
    that no adjudication covers are listed, and nothing is written."""
    import csv

    from nabra.config import load_labels
    from nabra.data.annotate import finalize, import_file, is_audit, read_records, write_records
    from nabra.data.corpus import load_corpus
    from nabra.data.ingest import decode

    # readings, and audit decisions (final records that override the earlier final one: finalize keeps them)
    if args.adjudications and not args.adjudicator:  # it defaulted to llm-adjudicator, whoever adjudicated
        raise UserError("--adjudications needs --adjudicator NAME: who settled the disagreements, recorded in "
                        "each final record")
    recs = [r for f in args.readings for r in read_records(f) if r["pass"] != "final" or is_audit(r)]
    st, _, _ = load_corpus(args.corpus)
    adj, errors = [], []
    for f in args.adjudications:
        got, errs = import_file(f, st, load_labels(), annotator=args.adjudicator, pass_="final")
        errors += errs
        if Path(f).suffix.lower() == ".csv":  # the adjudicator's reason travels with the record
            text, err = decode(Path(f).read_bytes(), f)  # as import_file reads it (BOM, Windows-1256)
            if err:
                raise UserError(f"{f}: {err}")
            why = {r["statement_id"]: (r.get("reason") or "").strip() for r in csv.DictReader(io.StringIO(text))}
            for r in got:
                if why.get(r["statement_id"]):
                    r["reason"] = why[r["statement_id"]]
        adj += got
    if errors:
        raise UserError("adjudications rejected:\n  " + "\n  ".join(errors[:20]))
    out, pending = finalize(recs, adj)  # an adjudicator's reason travels into its final record
    if pending:
        raise UserError(f"{len(pending)} statement(s) read twice with different labels and no adjudication: "
                        + ", ".join(pending[:10]) + (" ..." if len(pending) > 10 else ""))
    used = {r["statement_id"] for r in out if r["pass"] == "final" and r["annotator"] == args.adjudicator}
    unused = sorted({r["statement_id"] for r in adj} - used)
    if unused:  # an adjudication settles a disagreement only; said, not silently dropped
        print(f"warning: {len(unused)} adjudication(s) not applied (their readings agree, or there is none): "
              + ", ".join(unused[:10]) + (" ..." if len(unused) > 10 else ""), file=sys.stderr)
    write_records(out, args.out)
    finals = [r for r in out if r["pass"] == "final"]
    by = {}
    for r in finals:
        by[r["annotator"]] = by.get(r["annotator"], 0) + 1
    print(f"{len(out) - len(finals)} readings, {len(finals)} final records -> {args.out}")
    print("  final from: " + ", ".join(f"{k} {v}" for k, v in sorted(by.items())))
    return 0


def read_id_records(path: Path) -> list[dict]:
    """JSONL records with a statement_id, or plain statement ids one per line; a bad line is named."""
    from nabra.io import read_text  # here, not at the top: nabra.io loads pydantic (0.16 s at every start)

    if not path.is_file():
        raise UserError(f"{path}: no such file")
    recs = []
    for n, line in enumerate(read_text(path).splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if not line.startswith("{"):
            recs.append({"statement_id": line})
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{path} line {n}: invalid JSON ({e.msg})") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("statement_id"), str):
            raise UserError(f"{path} line {n}: no statement_id string")
        recs.append(rec)
    return recs
