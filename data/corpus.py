"""`nabra corpus build`: raw articles -> cleaned, segmented, deduplicated statement corpus.

Writes, into OUT (atomically, replacing it only when the build succeeds):
  statements.parquet  one row per kept statement: ids, offsets into the cleaned body and into the
                      raw text, text, text_sha1, duplicate cluster
  articles.parquet    one row per article: id, provenance, cleaned body, raw text
  rejects.jsonl       every dropped record (bad input, furniture line, filtered statement,
                      repeated record) with its reason
  manifest.json       inputs and their hashes, counts per stage and source, config, versions,
                      and the content hash of the output
"""
from __future__ import annotations

import os
import re
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from nabra.config import CorpusConfig
from nabra.data.clean import Cleaner
from nabra.data.ingest import Problem, RawArticle, expand_inputs, file_sha256
from nabra.data.segment import Segmenter
from nabra.io import prepare_work, read_json, read_parquet, sha1_text

_ARABIC = re.compile(r"[\u0621-\u064A\u066E-\u06D3\u06FA-\u06FF]")
_LETTER = re.compile(r"[^\W\d_]")
_DIACRITICS = re.compile(r"[\u064B-\u0652\u0670]")
_NONWORD = re.compile(r"[^\w]+")

_CHAR_TABLES: tuple | None = None


def _char_tables():
    """Per BMP code point: is it a _LETTER / an _ARABIC match. Built by running those very regexes
    over every BMP character, so the tables cannot disagree with them."""
    global _CHAR_TABLES
    if _CHAR_TABLES is None:
        import numpy as np

        every = "".join(map(chr, range(0x10000)))
        tables = []
        for rx in (_LETTER, _ARABIC):
            t = np.zeros(0x10000, np.int32)
            t[[m.start() for m in rx.finditer(every)]] = 1
            tables.append(t)
        _CHAR_TABLES = tuple(tables)
    return _CHAR_TABLES


def span_letter_counts(body: str, spans: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """(letters, Arabic letters) in body[s:e] for each span, as len(_LETTER.findall(...)) and
    len(_ARABIC.findall(...)) count them, from prefix sums over the body's code points: one numpy
    pass per article instead of two regex scans and two lists of 1-char strings per statement
    (those were 10% of a build). Text outside the BMP (emoji) or with lone surrogates, which has
    no UTF-32 form, is counted with the regexes."""
    import numpy as np

    if not spans:
        return [], []
    try:
        cp = np.frombuffer(body.encode("utf-32-le"), np.uint32)
    except UnicodeEncodeError:
        cp = None
    if cp is None or (cp.size and int(cp.max()) >= 0x10000):
        texts = [body[s:e] for s, e in spans]
        return [len(_LETTER.findall(t)) for t in texts], [len(_ARABIC.findall(t)) for t in texts]
    se = np.array(spans, np.int64)
    out = []
    for table in _char_tables():
        cum = np.zeros(len(cp) + 1, np.int64)
        np.cumsum(table[cp], out=cum[1:])
        out.append((cum[se[:, 1]] - cum[se[:, 0]]).tolist())
    return out[0], out[1]


# ----------------------------------------------------------------------------- per article
class ArticleProcessor:
    """Clean + segment + filter one article. Shared by the corpus builder and `nabra predict`."""

    def __init__(self, cfg: CorpusConfig):
        self.cfg = cfg
        self.cleaner = Cleaner(cfg.furniture)
        self.segmenter = Segmenter(cfg.abbreviations)

    def filter_reason(self, text: str, letters: int | None = None, arabic: int | None = None) -> str | None:
        """Why `text` is rejected, or None. `letters` / `arabic` (counts of _LETTER / _ARABIC matches)
        may be given when already known (process() counts them for a whole body at once)."""
        cfg = self.cfg
        # maxsplit: counting words up to min_words is enough (and cheaper on long statements)
        if len(text) < cfg.min_chars or len(text.split(None, max(cfg.min_words - 1, 0))) < cfg.min_words:
            return "too_short"
        if len(text) > cfg.max_chars:
            return "too_long"
        if letters is None:
            letters, arabic = len(_LETTER.findall(text)), len(_ARABIC.findall(text))
        if letters == 0 or arabic / letters < cfg.min_arabic_ratio:
            return "not_arabic"
        return None

    def process(self, art: RawArticle) -> tuple[dict, list[dict], list[dict]]:
        """Returns (article row, kept statement rows, reject records)."""
        aid = art.article_id
        cleaned = self.cleaner.clean(art.content)
        body, offs = cleaned.body, cleaned.offsets
        rejects = [{"kind": "furniture", "reason": rule, "article_id": aid, "input_file": art.input_file,
                    "text": line} for rule, line in cleaned.dropped]
        article = {"article_id": aid, "source": art.source, "url": art.url, "title": art.title,
                   "author": art.author, "date": art.date, "input_file": art.input_file,
                   "locator": art.locator, "format": art.format, "body": body, "raw": art.content}
        statements = []
        spans = list(self.segmenter.spans(body))
        letters, arabic = span_letter_counts(body, spans)
        for idx, (s, e) in enumerate(spans):
            text = body[s:e]
            sid = f"{aid}-{idx:03d}"  # index over all segments, so filters never shift ids
            reason = self.filter_reason(text, letters[idx], arabic[idx])
            if reason:
                rejects.append({"kind": "statement", "reason": reason, "statement_id": sid,
                                "article_id": aid, "input_file": art.input_file, "text": text})
                continue
            statements.append({
                "statement_id": sid, "article_id": aid, "index": idx, "start": s, "end": e,
                "raw_start": int(offs[s]), "raw_end": int(offs[e - 1]) + 1, "text": text,
                "text_sha1": sha1_text(text), "source": art.source,
            })
        return article, statements, rejects


# ----------------------------------------------------------------------------- dedup
def dedup_key(text: str) -> str:
    """Exact-duplicate key: no diacritics, no punctuation, single spaces."""
    return _NONWORD.sub(" ", _DIACRITICS.sub("", text)).strip()


class UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)  # the earliest statement names the cluster


def mark_duplicates(statements: list[dict], cfg: CorpusConfig) -> dict:
    """Adds dup_cluster / is_duplicate / dup_kind to each row (nothing is dropped); returns counts.

    Exact duplicates share a normalised key; near duplicates are found with MinHash LSH over
    character shingles (rensa, a Rust MinHash with datasketch's semantics, ~20x faster here).
    """
    from rensa import RMinHash, RMinHashLSH

    n = len(statements)
    uf = UnionFind(n)
    first: dict[str, int] = {}
    exact = 0
    for i, st in enumerate(statements):
        k = dedup_key(st["text"])
        j = first.setdefault(k, i)
        if j != i:
            uf.union(j, i)
            exact += 1
    lsh = RMinHashLSH(threshold=cfg.minhash_threshold, num_perm=cfg.minhash_perm, num_bands=16)
    sh = cfg.shingle_chars
    hashes: dict[int, object] = {}
    for i, st in enumerate(statements):
        if first[dedup_key(st["text"])] != i or len(st["text"]) < cfg.dedup_min_chars:
            continue
        key = dedup_key(st["text"])
        m = RMinHash(num_perm=cfg.minhash_perm, seed=1)
        m.update([key[p:p + sh] for p in range(max(1, len(key) - sh + 1))])
        hashes[i] = m
        lsh.insert(i, m)
    near = 0
    for i, m in hashes.items():
        for j in lsh.query(m):
            if j != i and uf.find(j) != uf.find(i) and m.jaccard(hashes[j]) >= cfg.minhash_threshold:
                uf.union(i, j)
                near += 1
    sizes = Counter(uf.find(i) for i in range(n))
    dups = 0
    for i, st in enumerate(statements):
        root = uf.find(i)
        st["dup_cluster"] = statements[root]["statement_id"]
        st["is_duplicate"] = root != i
        st["cluster_size"] = sizes[root]
        dups += root != i
    return {"exact_duplicate_pairs": exact, "near_duplicate_links": near, "duplicates_marked": dups,
            "clusters_with_duplicates": sum(1 for v in sizes.values() if v > 1)}


# ----------------------------------------------------------------------------- build
@dataclass
class BuildResult:
    out: Path
    manifest: dict
    problems: list[Problem] = field(default_factory=list)


STATEMENT_SCHEMA = pa.schema([
    ("statement_id", pa.string()), ("article_id", pa.string()), ("index", pa.int32()),
    ("start", pa.int32()), ("end", pa.int32()), ("raw_start", pa.int32()), ("raw_end", pa.int32()),
    ("text", pa.string()), ("text_sha1", pa.string()), ("source", pa.string()),
    ("dup_cluster", pa.string()), ("is_duplicate", pa.bool_()), ("cluster_size", pa.int32()),
])
ARTICLE_COLUMNS = ["article_id", "source", "url", "title", "author", "date", "input_file", "locator",
                   "format", "body", "raw"]


def content_hash(articles: list[dict], statements: list[dict]) -> str:
    lines = [f"{a['article_id']}\t{sha1_text(a['body'])}" for a in articles]
    lines += [f"{s['statement_id']}\t{s['start']}\t{s['end']}\t{s['text_sha1']}\t{s['dup_cluster']}"
              for s in statements]
    return sha1_text("\n".join(lines))


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def build(inputs: list[str], out: str | Path, cfg: CorpusConfig, progress: bool = True,
          log=_stderr, tasks: int | None = None, workers: int | None = None, executor: str = "local",
          work: str | Path | None = None) -> BuildResult:
    """Builds the corpus of `inputs` into `out` (see the module docstring for what it writes) with the
    datatrove pipeline of nabra.data.pipeline: `tasks` blocks of input units (default: one per file,
    a JSON Lines file over pipeline.PIECE_BYTES cut into byte ranges; more tasks than units cut JSON
    Lines files further, tasks beyond what can be cut are dropped),
    run `workers` at a time (default: cfg.workers) by the local or the Ray executor. A build killed
    part-way and started again with the same arguments skips the tasks it completed (kept in `work`,
    default: a hidden folder beside `out`, removed when the build succeeds). With workers > 1 the
    local pool forks this process, or, where another Python thread runs, starts its processes from a
    forkserver that imports the caller's main module: a script that calls build() needs the usual
    `if __name__ == "__main__":` guard (else each worker may rerun it)."""
    from nabra.data import pipeline as pl

    t0 = time.perf_counter()
    files, problems = expand_inputs(inputs)
    out = Path(out)
    work = Path(work) if work else out.parent / f".{out.name}.work"
    check_apart(inputs, files, out, work)
    input_records, readable = [], []
    for f in files:
        if str(f) != "-":
            try:  # read once here: a file that cannot be read (permissions, I/O error) is one input problem
                input_records.append({"path": str(f), "bytes": f.stat().st_size, "sha256": file_sha256(f)})
            except OSError as e:
                problems.append(Problem(str(f), f"cannot read file ({e.strerror or e})"))
                continue
        readable.append(f)
    files = readable
    for p in problems:
        if log:
            log(f"warning: {p}")
    if not files:
        raise BuildError(nothing_built(problems, 0), problems)
    if any(str(f) == "-" for f in files):
        tasks, workers, executor = 1, 1, "local"  # stdin is read by this process only
    units, tasks = pl.plan_tasks([str(f) for f in files], tasks)
    total_bytes = sum(r["bytes"] for r in input_records)
    # a small input is built in this process unless workers are asked for: starting a pool costs more
    workers = max(1, workers or (cfg.workers if total_bytes >= pl.SMALL_INPUT_BYTES else 1))
    partitions = pl.partitions_for(total_bytes)
    fingerprint = pl._fingerprint([f for f in files if str(f) != "-"], cfg, tasks, partitions, units)
    if any(str(f) == "-" for f in files):  # another stdin stream looks the same: never resume one
        fingerprint["stdin"] = os.urandom(8).hex()
    resumed = prepare_work(work, fingerprint)
    if resumed and log:
        log(f"resuming the build in {work}: completed tasks are skipped")
    stage_times = pl.run_stages(units, work, cfg, tasks, workers, executor, partitions, quiet=not progress)
    try:
        res = pl.assemble(files, work, out, cfg, tasks, partitions, problems, input_records, t0, log, stage_times)
    except BuildError:
        shutil.rmtree(work, ignore_errors=True)  # finished, with nothing to show: nothing to resume
        raise
    shutil.rmtree(work, ignore_errors=True)
    return BuildResult(out, res["manifest"], res["problems"])


def check_apart(inputs: list[str], files: list[Path], out: Path, work: Path) -> None:
    """Refuses an output (or work) folder inside an input folder, or an input inside it: the next build
    would read this one's rejects.jsonl, manifest.json and parts as articles. Refused rather than
    skipped: skipping only --out would still read the work and temporary folders beside it (and any
    older corpus kept there), and a refusal costs one path change."""
    for flag, given in (("--out", out), ("--work", work)):
        o = given.resolve()
        for spec in inputs:
            if spec != "-" and Path(spec).is_dir() and (o == Path(spec).resolve() or Path(spec).resolve() in o.parents):
                raise BuildError(f"{flag} {given} is inside --input {spec}: a later build would read what this one "
                                 f"writes there (rejects.jsonl, manifest.json) as articles; put it outside {spec}")
        inside = next((f for f in files if str(f) != "-" and o in f.resolve().parents), None)
        if inside:
            raise BuildError(f"--input {inside} lies inside {flag} {given}, which the build replaces or removes; "
                             "put the output outside the input")


def nothing_built(problems: list[Problem], articles_read: int) -> str:
    """The one message of a build that kept nothing: every input rejected, or no statement kept."""
    if problems and not articles_read:
        shown = "; ".join(map(str, problems[:3])) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        return f"nothing could be built: every input was rejected ({len(problems)} input problem(s)): {shown}"
    return ("nothing could be built: no article with a statement in the input"
            + (f" ({len(problems)} input problem(s): {problems[0]})" if problems else ""))


def why_empty(rejects: list[dict], cfg: CorpusConfig) -> str:
    """Why an article kept no statement, from its reject records: empty text or the filters' counts."""
    reasons = Counter(r["reason"] for r in rejects if r["kind"] == "statement")
    if not reasons:
        return "empty text after removing page furniture"
    words = {"not_arabic": f"not Arabic (under {cfg.min_arabic_ratio:.0%} Arabic letters)",
             "too_short": "too short", "too_long": "too long"}
    return f"all {sum(reasons.values())} sentence(s) rejected: " + ", ".join(
        f"{c} {words.get(k, k)}" for k, c in reasons.most_common())


def empty_reasons(rejects: list[dict], cfg: CorpusConfig) -> list[tuple[str, str]]:
    """(input file, why) for each input file none of whose articles kept a statement."""
    by_file: dict[str, list[dict]] = {}
    for r in rejects:
        if r["kind"] in ("statement", "furniture"):
            by_file.setdefault(r["input_file"], []).append(r)
    empty = dict.fromkeys(r["input_file"] for r in rejects if r["reason"] == "empty_article")
    return [(f, why_empty(by_file.get(f, []), cfg)) for f in empty]


class BuildError(RuntimeError):
    def __init__(self, msg: str, problems: list[Problem] | None = None):
        super().__init__(msg)
        self.problems = problems or []


def load_corpus(corpus_dir: str | Path):
    """Reads a built corpus: (statements DataFrame, articles DataFrame, manifest)."""
    d = Path(corpus_dir)
    if not (d / "manifest.json").exists():
        raise FileNotFoundError(f"{d}: not a finished corpus (no manifest.json); run `nabra corpus build` first")
    missing = [f for f in ("statements.parquet", "articles.parquet") if not (d / f).is_file()]
    if missing:  # a dataset folder (it has a manifest.json too) was named only by a bare path
        raise FileNotFoundError(f"{d}: no {missing[0]}, not a corpus folder (a dataset?): give a folder "
                                "from `nabra corpus build`")
    manifest = read_json(d / "manifest.json")
    return read_parquet(d / "statements.parquet"), read_parquet(d / "articles.parquet"), manifest


def summary(manifest: dict) -> str:
    c, d, t = manifest["counts"], manifest["duplicates"], manifest.get("timing", {})
    lines = [
        f"articles read      {c.get('articles_read', 0):>9,}   kept {c.get('articles_kept', 0):,}"
        f"   empty {c.get('articles_empty', 0):,}   repeated {c.get('articles_repeated', 0):,}",
        f"statements kept    {c.get('statements_kept', 0):>9,}   of {c.get('statements_segmented', 0):,} segmented",
        f"furniture dropped  {c.get('furniture_lines_dropped', 0):>9,} lines",
        "rejected by reason " + (", ".join(f"{k} {v:,}" for k, v in manifest["rejected_by_reason"].items()
                                           if k not in ("read_also", "related_list", "furniture_line")) or "none"),
        f"duplicates         {d['duplicates_marked']:>9,} statements in {d['clusters_with_duplicates']:,} clusters"
        f" (exact {d['exact_duplicate_pairs']:,}, near links {d['near_duplicate_links']:,})",
        f"input problems     {c.get('input_problems', 0):>9,}",
    ]
    if t:
        lines.append(f"time               {t['wall_s']:>9.2f} s   peak memory {t['peak_rss_mb']:,.0f} MB")
    lines.append(f"content hash       {manifest['content_hash']}")
    return "\n".join(lines)
