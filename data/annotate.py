"""Gold annotations as standoff records (spec: "Annotation record"), agreement, and Label Studio / CSV interop.

A record: {"statement_id", "article_id", "start", "end", "text_sha1", "stance", "sentiment",
"annotator", "pass"} with pass 1, 2 or "final". No statement text is stored; joining to a rebuilt
corpus re-checks every span by its sha1.

Audit records (`nabra label audit-import`): final records marked "audit": true, with a "reason"
(annotator "llm-audit").
They override the earlier final record of their statement, the last one read winning (files in name
order: gold_audit.jsonl after gold.jsonl), and `finalize` keeps them; the earlier records stay.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pandas as pd

from nabra.config import ConfigError, LabelSchema
from nabra.io import read_text, sha1_text, write_atomic

RECORD_KEYS = ["statement_id", "article_id", "start", "end", "text_sha1", "stance", "sentiment", "annotator", "pass"]
TASKS = ("stance", "sentiment")  # the spec's record carries these two tasks


# ----------------------------------------------------------------------------- records
def read_records(path: str | Path, rejects: list[str] | None = None, schema: LabelSchema | None = None,
                 where: dict | None = None) -> list[dict]:
    """All records of a folder (every gold*.jsonl) or of one file, checked for shape (and, given `schema`,
    for known labels and pass). A bad record stops the read with its file:line, unless `rejects` is given:
    then it is listed there ("file:line: reason") and skipped, so that `dataset build` builds the rest.
    `where`, given, receives "file:line" of each record by record_key (the last one read wins, as in finals)."""
    p = Path(path)
    files = sorted(p.glob("gold*.jsonl")) if p.is_dir() else [p]
    if not files or not all(f.exists() for f in files):
        raise FileNotFoundError(f"{path}: no gold*.jsonl annotation file")
    out = []
    for f in files:
        for n, line in enumerate(read_text(f).splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                why = record_error(rec, schema)
            except json.JSONDecodeError as e:
                why = f"invalid JSON ({e.msg})"
            if why and rejects is None:
                raise ConfigError(f"{f}:{n}: {why}")
            if why:
                rejects.append(f"{f}:{n}: {why}")
            else:
                out.append(rec)
                if where is not None:
                    where[record_key(rec)] = f"{f}:{n}"
    return out


def record_key(rec: dict) -> tuple:
    """What tells one statement's records apart: its id, pass and whether it is an audit decision."""
    return rec["statement_id"], rec["pass"], is_audit(rec)


def record_error(rec, schema: LabelSchema | None = None) -> str | None:
    """Why a parsed JSONL line is not an annotation record (None: it is one)."""
    if not isinstance(rec, dict):
        return "not a JSON object (an annotation record is one object a line)"
    if not isinstance(rec.get("statement_id", ""), str):
        return f"statement_id must be a string, got {rec['statement_id']!r}"
    missing = [k for k in RECORD_KEYS if k not in rec]
    if missing:
        return f"record lacks {missing}"
    return "; ".join(check_labels(rec, schema)) or None if schema else None


def write_records(records: list[dict], path: str | Path) -> None:
    order = {1: 0, 2: 1, "final": 2}
    records = sorted(records, key=lambda r: (r["statement_id"], order.get(r["pass"], 3), r["annotator"]))
    write_atomic(path, "".join(json.dumps({k: r[k] for k in RECORD_KEYS} | {k: r[k] for k in OPTIONAL_KEYS if r.get(k)},
                                          ensure_ascii=False) + "\n" for r in records))


def is_audit(rec: dict) -> bool:
    """A final record marked "audit": an audit decision, which overrides the earlier final record.
    (An adjudicator's final record carries a reason too, but settles a first disagreement.)"""
    return rec.get("pass") == "final" and rec.get("audit") is True


PASSES = (1, 2, "final")
OPTIONAL_KEYS = ("reason", "audit")  # an adjudicator's or auditor's reason; audit: true on audit records


def parse_pass(value) -> int | str | None:
    """1, 2 or "final" from a file or flag ("1", 1, 1.0, "final"); anything else gives the raw value
    back, which check_labels then rejects with the record's name."""
    if isinstance(value, str):
        value = value.strip()
        if value == "final":
            return value
    try:
        n = int(value)
    except (TypeError, ValueError):
        return value
    return n if n == value or str(n) == value else value


def check_labels(rec: dict, schema: LabelSchema) -> list[str]:
    errs = []
    for task in TASKS:  # a list or dict (hand-edited records) is no label either, and is unhashable
        if not isinstance(rec.get(task), str) or rec[task] not in schema.tasks[task].labels:
            errs.append(f"unknown {task} label {rec.get(task)!r} (known: {', '.join(schema.tasks[task].names)})")
    if rec.get("pass") not in (1, 2, "final"):
        errs.append(f"pass must be 1, 2 or \"final\", got {rec.get('pass')!r}")
    return errs


def join(records: list[dict], statements: pd.DataFrame, where: dict | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Joins records to corpus statements; returns (joined rows, one message per mismatch), each message
    led by the record's file:line when `where` (from read_records) has it."""
    by_id = statements.set_index("statement_id")
    rows, problems = [], []
    for r in records:
        sid = r["statement_id"]
        at = (where or {}).get(record_key(r))
        name = f"{at}: {sid}" if at else sid
        if sid not in by_id.index:
            problems.append(f"{name}: not in the corpus (was it built from the same input and config?)")
            continue
        st = by_id.loc[sid]
        if st["article_id"] != r["article_id"] or int(st["start"]) != r["start"] or int(st["end"]) != r["end"]:
            problems.append(f"{name}: offsets/article differ (record {r['article_id']} {r['start']}-{r['end']}, "
                            f"corpus {st['article_id']} {st['start']}-{st['end']})")
            continue
        if st["text_sha1"] != r["text_sha1"] or sha1_text(st["text"]) != r["text_sha1"]:
            problems.append(f"{name}: text hash mismatch: the rebuilt span is not the one that was labelled")
            continue
        rows.append({**r, "text": st["text"], "dup_cluster": st["dup_cluster"]})
    return pd.DataFrame(rows), problems


def finals(records: list[dict]) -> list[dict]:
    """One final record per statement: the audit record read last where there is one, else the final one."""
    from collections import Counter

    out = [r for r in records if r["pass"] == "final" and not is_audit(r)]
    n = Counter(r["statement_id"] for r in out)
    if len(n) != len(out):
        dup = sorted(i for i, c in n.items() if c > 1)[:5]
        raise ConfigError(f"statements with more than one final record: {dup}")
    audits = {r["statement_id"]: r for r in records if is_audit(r)}
    return [audits.pop(r["statement_id"], r) for r in out] + list(audits.values())


def agreement(records: list[dict]) -> dict:
    """Cohen's kappa per task between pass 1 and pass 2, on statements read twice."""
    from sklearn.metrics import cohen_kappa_score

    p1 = {r["statement_id"]: r for r in records if r["pass"] == 1}
    p2 = {r["statement_id"]: r for r in records if r["pass"] == 2}
    both = sorted(set(p1) & set(p2))
    out = {"double_annotated": len(both)}
    for task in TASKS:
        a = [p1[i][task] for i in both]
        b = [p2[i][task] for i in both]
        # kappa is undefined (NaN, which is not JSON) without two readings or with one label in all of them
        out[task] = {
            "kappa": round(float(cohen_kappa_score(a, b)), 4) if len(set(a) | set(b)) > 1 else None,
            "observed_agreement": round(sum(x == y for x, y in zip(a, b)) / len(both), 4) if both else None,
            "disagreements": sum(x != y for x, y in zip(a, b)),
        }
    return out


# ----------------------------------------------------------------------------- interop
def _ls_result(rec: dict) -> list[dict]:
    return [{"from_name": t, "to_name": "text", "type": "choices", "value": {"choices": [rec[t]]}}
            for t in TASKS if rec.get(t)]


def task_files(out: str | Path) -> tuple[Path, Path]:
    """The Label Studio JSON and the CSV beside it for `--out`: OUT and OUT with .csv; `--out X.csv`
    gives X.json and X.csv (both were written into X.csv, the CSV over the JSON)."""
    out = Path(out)
    return (out.with_suffix(".json") if out.suffix.lower() == ".csv" else out), out.with_suffix(".csv")


def export_tasks(rows: pd.DataFrame, out_json: str | Path, out_csv: str | Path | None = None) -> int:
    """rows: statements (statement_id, article_id, start, end, text_sha1, text) and optionally
    stance/sentiment/annotator/pass. Writes Label Studio tasks and a CSV of the same batch."""
    tasks = []
    for r in rows.to_dict("records"):
        task = {"data": {k: r[k] for k in ("statement_id", "article_id", "start", "end", "text_sha1", "text")}}
        for k in ("start", "end"):
            task["data"][k] = int(task["data"][k])
        if all(isinstance(r.get(t), str) and r.get(t) for t in TASKS):
            task["annotations"] = [{"completed_by": r.get("annotator") or "export", "result": _ls_result(r),
                                    "was_cancelled": False}]
        tasks.append(task)
    write_atomic(out_json, json.dumps(tasks, ensure_ascii=False, indent=1) + "\n")
    if out_csv:
        buf = io.StringIO()
        cols = ["statement_id", "article_id", "start", "end", "text_sha1", "text", "stance", "sentiment", "annotator", "pass"]
        w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows.to_dict("records"):
            w.writerow({c: ("" if r.get(c) is None or (isinstance(r.get(c), float) and pd.isna(r.get(c))) else r.get(c))
                        for c in cols})
        write_atomic(out_csv, buf.getvalue())
    return len(tasks)


def _parse_ls(items: list) -> list[tuple[str, dict]]:
    """Label Studio JSON export (full or JSON_MIN) into (locator, flat dict) pairs. A locator names the
    task: its place in the file, Label Studio's task id and the statement id, where there are."""
    out = []
    for i, t in enumerate(items):
        loc = f"task #{i}"
        if not isinstance(t, dict):
            out.append((loc, {"_error": "not a JSON object"}))
            continue
        tid = [f"id {t['id']}"] if isinstance(t.get("id"), (int, str)) else []
        if "data" in t:  # full export
            if not isinstance(t["data"], dict):
                out.append((_named(loc, *tid), {"_error": "its 'data' is not a JSON object"}))
                continue
            flat = dict(t["data"])
            loc = _named(loc, *tid, *([str(flat["statement_id"])] if flat.get("statement_id") is not None else []))
            raw = t.get("annotations") or []
            if not isinstance(raw, list) or not all(isinstance(a, dict) for a in raw):
                out.append((loc, {"_error": "its 'annotations' is not a list of objects"}))
                continue
            anns = [a for a in raw if not a.get("was_cancelled")]
            if len(anns) > 1:  # Label Studio's overlap: which reading is meant cannot be guessed
                out.append((loc, {"_error": f"{len(anns)} annotations (readers "
                                            f"{', '.join(str(a.get('completed_by')) for a in anns)}); export one "
                                            "reader at a time and import each with its --pass"}))
                continue
            if anns:
                a = anns[-1]
                flat["annotator"] = str(a.get("completed_by") or "")
                labels, why = _ls_choices(a.get("result", []))
                if why:
                    out.append((loc, {"_error": why}))
                    continue
                flat.update(labels)
            out.append((loc, flat))
        else:  # JSON_MIN: fields flattened
            out.append((_named(loc, *tid, str(t.get("statement_id"))), dict(t)))
    return out


def _named(loc: str, *names: str) -> str:
    return f"{loc} ({', '.join(names)})" if names else loc


def _ls_choices(results) -> tuple[dict, str | None]:
    """{task: label} of one annotation's `result`, or why it cannot be read: an item of another
    from_name, or without one label in value.choices, rejects the task (it was a traceback, or a
    reading silently left half unlabelled)."""
    if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
        return {}, f"its annotation's 'result' is not a list of objects (got {json.dumps(results, ensure_ascii=False)[:80]})"
    got: dict[str, str] = {}
    for k, res in enumerate(results):
        name = res.get("from_name")
        if name not in TASKS:
            return {}, f"result item {k}: unknown from_name {name!r} (known: {', '.join(TASKS)})"
        if name in got:
            return {}, f"result item {k}: a second {name} choice"
        value = res.get("value")
        ch = value.get("choices") if isinstance(value, dict) else None
        if isinstance(ch, str):  # a bare string (hand-made exports) is that choice, not its letters
            ch = [ch]
        if not (isinstance(ch, list) and len(ch) == 1 and isinstance(ch[0], str)):
            return {}, (f"result item {k} ({name}): " + ("no value.choices" if ch is None else
                                                         f"value.choices must be a list of one label, got {ch!r}"))
        got[name] = ch[0]
    return got, None


def import_file(path: str | Path, statements: pd.DataFrame, schema: LabelSchema, annotator: str | None = None,
                pass_: int | str | None = None) -> tuple[list[dict], list[str]]:
    """Reads a Label Studio export (.json) or the CSV back into standoff records.

    Returns (records, errors); each error names the record. Unknown labels, unknown statement
    ids and hash mismatches are rejected. A file that cannot be read as a whole (missing, not text, not
    JSON, no statement_id column) is a UserError: it was one "rejected record", with a rejects file
    written beside --out for a mistyped name.
    """
    from nabra.data.ingest import decode
    from nabra.errors import UserError

    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise UserError(f"{p}: cannot read ({e.strerror})") from None
    # UTF-8 with or without the byte-order mark spreadsheet programs write, else Windows-1256 (Excel's
    # Arabic CSVs): the corpus reader's decoder
    text, err = decode(data, str(p))
    if err:
        raise UserError(f"{p}: {err}")
    if p.suffix.lower() == ".csv":
        try:
            items = [(f"{p.name}:{n}", row) for n, row in enumerate(csv.DictReader(io.StringIO(text)), 2)]
        except csv.Error as e:
            raise UserError(f"{p}: unreadable CSV ({e})") from None
        if items and "statement_id" not in items[0][1]:
            raise UserError(f"{p}: no statement_id column (columns: {', '.join(map(str, items[0][1]))})")
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise UserError(f"{p}: invalid JSON ({e.msg} at line {e.lineno})") from None
        items = [(f"{p.name} {loc}", d) for loc, d in _parse_ls(data if isinstance(data, list) else [data])]
    by_id = statements.set_index("statement_id")
    records, errors = [], []
    first_at: dict[tuple, str] = {}
    for loc, d in items:
        if "_error" in d:
            errors.append(f"{loc}: {d['_error']}")
            continue
        sid = d.get("statement_id")
        if not isinstance(sid, str) or sid not in by_id.index:
            errors.append(f"{loc}: unknown statement id {sid!r}")
            continue
        bad = [k for k in ("text", "text_sha1", "stance", "sentiment", "annotator") if d.get(k) is not None
               and not isinstance(d[k], str)]
        if bad:
            errors.append(f"{loc}: {', '.join(bad)} must be text, got {', '.join(repr(d[k]) for k in bad)}")
            continue
        st = by_id.loc[sid]
        if d.get("text_sha1") and d["text_sha1"] != st["text_sha1"]:
            errors.append(f"{loc}: text_sha1 {d['text_sha1']} does not match the corpus ({st['text_sha1']})")
            continue
        if d.get("text") and sha1_text(d["text"]) != st["text_sha1"]:
            errors.append(f"{loc}: the text differs from the corpus statement (hash mismatch)")
            continue
        # a pass given (--pass) wins over the file's column, as --annotator does: a CSV exported with its pass-1
        # labels for a second reader came back as pass 1 under `--pass 2`; without one, the file's, else 1
        p_raw = pass_ if pass_ is not None else d.get("pass") or 1
        rec = {"statement_id": sid, "article_id": st["article_id"], "start": int(st["start"]), "end": int(st["end"]),
               "text_sha1": st["text_sha1"], "stance": d.get("stance") or None, "sentiment": d.get("sentiment") or None,
               "annotator": annotator or d.get("annotator") or "unknown", "pass": parse_pass(p_raw)}
        # a task nobody labelled yet (Label Studio's "annotations": [], an empty CSV row) was reported as
        # "unknown stance label None (known: ...)", as if a label had been mistyped
        errs = (["not labelled yet (no stance and no sentiment)"] if rec["stance"] is None and rec["sentiment"] is None
                else check_labels(rec, schema))
        if errs:
            errors.append(f"{loc}: " + "; ".join(errs))
            continue
        if (sid, rec["pass"]) in first_at:  # a row pasted twice: two readings of one pass, one reader
            errors.append(f"{loc}: {sid} read again in pass {rec['pass']} (first at {first_at[sid, rec['pass']]})")
            continue
        first_at[sid, rec["pass"]] = loc
        records.append(rec)
    return records, errors


def finalize(records: list[dict], adjudications: list[dict] | None = None) -> tuple[list[dict], list[str]]:
    """Adds one "final" record per statement: the single reading, the agreed label of two readings,
    or the adjudicator's label where they disagree. Returns (all records, statements still needing
    adjudication)."""
    from collections import Counter

    # one reading a pass: a file given twice (or one reader's batch imported twice) made two pass-1
    # readings, counted as an "agreed" final label and as doubled readings in the gold file
    twice = sorted({sid for (sid, p), n in Counter((r["statement_id"], r["pass"]) for r in records
                                                   if r["pass"] != "final").items() if n > 1})
    if twice:
        raise ConfigError(f"{len(twice)} statement(s) with more than one reading of one pass, e.g. {twice[0]}: "
                          "give each readings file once; a second, independent reader's file is imported with "
                          "--pass 2")
    adj = {r["statement_id"]: r for r in (adjudications or [])}
    by: dict[str, list[dict]] = {}
    for r in records:
        if r["pass"] != "final":
            by.setdefault(r["statement_id"], []).append(r)
    out = [r for r in records if r["pass"] != "final" or is_audit(r)]
    pending = []
    for sid, rs in sorted(by.items()):
        base = {k: rs[0][k] for k in ("statement_id", "article_id", "start", "end", "text_sha1")}
        if len(rs) == 1:
            out.append({**base, "stance": rs[0]["stance"], "sentiment": rs[0]["sentiment"],
                        "annotator": rs[0]["annotator"], "pass": "final"})
        elif all(r["stance"] == rs[0]["stance"] and r["sentiment"] == rs[0]["sentiment"] for r in rs):
            out.append({**base, "stance": rs[0]["stance"], "sentiment": rs[0]["sentiment"],
                        "annotator": "agreed", "pass": "final"})
        elif sid in adj:
            out.append({**base, "stance": adj[sid]["stance"], "sentiment": adj[sid]["sentiment"],
                        "annotator": adj[sid].get("annotator", "adjudicator"), "pass": "final",
                        **({"reason": adj[sid]["reason"]} if adj[sid].get("reason") else {})})
        else:
            pending.append(sid)
    return out, pending
