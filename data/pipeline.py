"""`nabra corpus build` as a datatrove pipeline: bounded memory per process, local or Ray executors.

The stages (each a datatrove executor run; a task that completed is recorded under WORK/logs and
skipped when the same build is started again after a kill):

  segment  (--tasks tasks)  read a contiguous block of the input units (plan_units: the sorted input
           files, a JSON Lines file over PIECE_BYTES cut into byte ranges), clean, segment and
           filter each article (ArticleProcessor, the same code as `nabra predict`), and write the
           block's articles, statements and rejects to WORK/parts/RANK, with, per statement, its
           exact-duplicate key hash and its MinHash signature (rensa, as before), and the LSH band
           records, split into P hash partitions.
  dedup    (P + 16 x P tasks)  key partitions give exact-duplicate edges (each statement to the first
           of its key); band partitions give near-duplicate edges: statements sharing a band are
           verified with the signatures' Jaccard estimate, as rensa's LSH query + jaccard did.
  write    (the driver) repeated records (the same article id twice) are dropped, connected
           components of the duplicate edges name each cluster after its earliest statement, and the
           parts are streamed, in input order, into OUT (atomically, as before).

Why not datatrove's own MinHash stages: they shingle words, hash with their own permutations and
take every band collision as a duplicate with no Jaccard check, so their clusters differ from the
ones nabra built so far (and that gold splits were made with). These stages keep those semantics
exactly while streaming like datatrove's: every task holds one partition of the corpus, not all of
it. P grows with the input size (one partition per PART_BYTES of input), so memory per task stays
flat as archives grow; the driver's union of the duplicate edges (ClusterRoots) holds 4 bytes a
statement and one edge file at a time.
"""
from __future__ import annotations

import functools
import hashlib
import importlib
import itertools
import json
import math
import os
import resource
import shutil
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datatrove.data import Document
from datatrove.executor.local import LocalPipelineExecutor
from datatrove.pipeline.base import PipelineStep

from nabra.config import CorpusConfig

NUM_BANDS = 16  # rensa RMinHashLSH(num_bands=16), as the in-memory builder used
BAND_TASKS = 4  # band tasks per hash partition (each takes every 4th band): fewer, larger tasks
PART_BYTES = 48 << 20  # input bytes per dedup hash partition: sets memory per dedup task
RANK_SHIFT = 40  # global id = rank << 40 | sequence number within the rank (ranks take contiguous units)
PIECE_BYTES = 64 << 20  # a JSON Lines file larger than this is read by several tasks, a byte range each
SMALL_INPUT_BYTES = 1 << 20  # below this, the default is one worker (this process)
BATCH = 4096  # statements per write batch

ARTICLE_SCHEMA = pa.schema([(c, pa.string()) for c in ["article_id", "source", "url", "title", "author", "date",
                                                        "input_file", "locator", "format", "body", "raw"]])
PART_STATEMENTS = pa.schema([
    ("statement_id", pa.string()), ("article_id", pa.string()), ("index", pa.int32()),
    ("start", pa.int32()), ("end", pa.int32()), ("raw_start", pa.int32()), ("raw_end", pa.int32()),
    ("text", pa.string()), ("text_sha1", pa.string()), ("source", pa.string()), ("gid", pa.int64()),
    ("agid", pa.int64()),
])
# body_sha1: the content hash's line of each article, computed by the (parallel) segment tasks
PART_ARTICLES = ARTICLE_SCHEMA.append(pa.field("gid", pa.int64())).append(pa.field("body_sha1", pa.string()))
PART_FORMAT = 2  # of WORK/parts; in the fingerprint, so that a resume never mixes parts of two formats
ARTMETA_SCHEMA = pa.schema([("aid", pa.int64()), ("gid", pa.int64()), ("source", pa.string()),
                            ("segmented", pa.int32()), ("kept", pa.int32())])
KEY_DT = np.dtype([("key", "<u8"), ("gid", "<i8")])
BAND_DT = np.dtype([("band", "<u8"), ("gid", "<i8"), ("key", "<u8"), ("long", "u1")])  # long: len >= dedup_min_chars
_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93],
                dtype=np.uint64)


# datatrove logs every task to stderr; `--no-progress` silences it in the task processes too (they
# import this module before their first task; the variable is set before the pool starts)
if os.environ.get("NABRA_TASK_LOGS") == "0":
    from loguru import logger as _logger

    _logger.disable("datatrove")


def _part_rejects(parts) -> list[dict]:
    """The reject records of every task's part (read only when nothing was built, to say why per file)."""
    out = []
    for p in parts:
        f = p / "rejects.jsonl"
        if f.exists():
            with open(f, encoding="utf-8") as fh:
                out += [r for r in map(json.loads, fh) if "_a" not in r]  # "_a": an article header line
    return out


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def key_hash(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "little")


def band_hashes(sigs: np.ndarray) -> np.ndarray:
    """(n, perm) uint32 signatures -> (n, 16) uint64 hashes of each band's values (rensa's bands:
    16 runs of perm/16 consecutive values). Equal bands give equal hashes; an accidental collision
    only adds a candidate, which the Jaccard check then judges."""
    n = len(sigs)
    v = np.ascontiguousarray(sigs, dtype=np.uint32).view(np.uint64).reshape(n, NUM_BANDS, -1)
    h = np.zeros((n, NUM_BANDS), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(v.shape[2]):
            h = (h ^ v[:, :, k]) * _MIX[k % len(_MIX)]
            h ^= h >> np.uint64(29)
    return h


def minhash_signatures(keys: list[str], shingle_chars: int, num_perm: int) -> np.ndarray:
    """(n, num_perm) uint32 rensa MinHash signatures (seed 1) of each key's character shingles, as
    the in-memory builder made them (a key shorter than a shingle is one token). The shingles go to
    rensa as token hashes (shingle_hashes), not as ~25 Python strings a statement: the same signatures."""
    from rensa import RMinHash

    hashed = shingle_hashes(keys, shingle_chars)
    if hashed is None:  # text that is not valid UTF-8, or a rensa whose token hash is not the one below
        sh = shingle_chars
        tokens = [[k[p:p + sh] for p in range(max(1, len(k) - sh + 1))] for k in keys]
        rows = RMinHash.digest_matrix_from_token_sets(tokens, num_perm=num_perm, seed=1).to_rows()
    else:
        rows = RMinHash.digest_matrix_from_flat_token_hashes(hashed[0], hashed[1], num_perm=num_perm, seed=1).to_rows()
    return np.fromiter(itertools.chain.from_iterable(rows), np.uint32, len(keys) * num_perm).reshape(len(keys), num_perm)


# rensa's token hash (rustc-hash 2's FxHasher over the token's UTF-8 bytes, then its finish), in numpy
# for every shingle of a batch at once. Why by hand: building the shingle strings for rensa took half
# of the segment stage's MinHash time (5.8M strings for one SaudiNewsNet zip), and rensa takes
# precomputed token hashes (digest_matrix_from_flat_token_hashes) for exactly that; the hashes must be
# rensa's own, or the signatures, hence the duplicate clusters and the gold splits, would change.
# _rensa_hash_ok() checks them against rensa.RMinHash.hash_token_sets once per process.
_FX_K, _FX_SEED1, _FX_SEED2 = 0xF1357AEA2E62A9C5, 0x243F6A8885A308D3, 0x13198A2E03707344
_LO32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)


def _mul_fold(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(x * y as 128 bits): low 64 bits XOR high 64 bits, from 32-bit halves (numpy has no u128).
    In place where it can: x and y are overwritten (new arrays page-fault: ~half the time here)."""
    xl, yl = x & _LO32, y & _LO32
    x >>= _S32  # x, y: the high halves now
    y >>= _S32
    ll = xl * yl
    xl *= y  # lo(x) * hi(y)
    yl *= x  # hi(x) * lo(y)
    x *= y  # hi(x) * hi(y)
    mid = ll >> _S32
    np.bitwise_and(xl, _LO32, out=y)
    mid += y
    np.bitwise_and(yl, _LO32, out=y)
    mid += y
    ll &= _LO32
    xl >>= _S32
    yl >>= _S32
    x += xl
    x += yl
    xl[:] = mid
    xl >>= _S32
    x += xl  # the high 64 bits
    mid <<= _S32
    mid |= ll  # the low 64 bits
    mid ^= x
    return mid


def _fx_hash(buf: bytes, start: np.ndarray, n: np.ndarray) -> np.ndarray:
    """rensa's hash of the byte strings buf[start:start+n], each 0-16 bytes long; buf is padded with 8
    zero bytes on each side (start counts from the text, not from the padding)."""
    u64 = np.ndarray((len(buf) - 7,), np.dtype("<u8"), buffer=buf, strides=(1,))  # unaligned reads
    head = u64[start + 8]  # the 8 bytes from the start
    tail = u64[start + n]  # the 8 bytes that end at the end
    nn = n.astype(np.uint64)
    # rensa reads 8-16 bytes as the first and the last 8; 4-7 as the first and the last 4 (the last 4 are
    # the top half of `tail`); 1-3 as the first byte, then the last byte above the middle one
    mid_byte = (head >> (np.uint64(8) * (nn // np.uint64(2)))) & np.uint64(0xFF)
    w0 = np.where(n >= 8, head, np.where(n >= 4, head & _LO32, head & np.uint64(0xFF)))
    w1 = np.where(n >= 8, tail, np.where(n >= 4, tail >> _S32, ((tail >> np.uint64(56)) << np.uint64(8)) | mid_byte))
    w0[n == 0] = 0
    w1[n == 0] = 0
    w0 ^= np.uint64(_FX_SEED1)
    w1 ^= np.uint64(_FX_SEED2)
    h = _mul_fold(w0, w1)
    h ^= nn
    h *= np.uint64(_FX_K)
    w0[:] = h
    h <<= np.uint64(26)
    w0 >>= np.uint64(38)
    h |= w0
    return h  # rotated left by 26


@functools.cache
def _rensa_hash_ok() -> bool:
    from rensa import RMinHash

    probe = ["", "a", "ab", "abc", "abcd", "abcdefg", "قال ا", "الوزير", "x y z", "٢٠١٥ م", "😀😀😀😀"]
    data = bytes(8) + "".join(probe).encode("utf-8") + bytes(8)
    lens = np.array([len(t.encode("utf-8")) for t in probe], np.int64)
    starts = np.concatenate(([0], np.cumsum(lens)[:-1]))
    return _fx_hash(data, starts, lens).tolist() == [int(v) for v in RMinHash.hash_token_sets([probe])[0]]


def shingle_hashes(keys: list[str], sh: int) -> tuple[np.ndarray, np.ndarray] | None:
    """rensa's token hash of every `sh`-character shingle of every key (a key shorter than `sh` is one
    token) and each key's offset into them; None where this cannot be done exactly (see above)."""
    if not keys or not _rensa_hash_ok():
        return None
    text = "".join(keys)
    try:
        utf8 = bytes(8) + text.encode("utf-8") + bytes(8)
    except UnicodeEncodeError:
        return None  # a lone surrogate: rensa's own path decides what to do with it
    cp = np.frombuffer(text.encode("utf-32-le"), np.uint32)
    nchar = np.fromiter(map(len, keys), np.int64, len(keys))
    ntok = np.maximum(1, nchar - sh + 1)
    offsets = np.concatenate(([0], np.cumsum(ntok)))
    first = np.repeat(np.cumsum(nchar) - nchar, ntok)  # each token's key's first character
    c0 = first + np.arange(offsets[-1]) - np.repeat(offsets[:-1], ntok)
    byte_at = np.concatenate(([0], np.cumsum(1 + (cp >= 0x80) + (cp >= 0x800) + (cp >= 0x10000))))
    width = np.repeat(np.minimum(sh, nchar), ntok)
    b0 = byte_at[c0]
    n = byte_at[c0 + width] - b0
    long = np.flatnonzero(n > 16)  # rensa's loop for longer input: rare (3- and 4-byte characters)
    n[long] = 0
    hashes = _fx_hash(utf8, b0, n)
    if len(long):
        from rensa import RMinHash

        hashes[long] = RMinHash.hash_token_sets([[text[c:c + w] for c, w in zip(c0[long], width[long])]])[0]
    return hashes, offsets.astype(np.uint64)


def shard(items: list, rank: int, world_size: int) -> tuple[int, int]:
    """Contiguous block of the ordered `items` for `rank`, so that rank order is input order."""
    n = len(items)
    return rank * n // world_size, (rank + 1) * n // world_size


Unit = tuple[str, int, int, int]  # (file, start byte, end byte, line number at start); end -1: the whole file


def plan_units(files: list[str], tasks: int | None = None) -> list[Unit]:
    """The segment stage's units of input, in input order: whole files, except JSON Lines files over
    PIECE_BYTES, which are cut at line starts into byte ranges (about PIECE_BYTES each), so that one
    large file keeps every worker busy and a task holds one range in memory, not the file. `tasks`
    above the number of units cuts JSON Lines files further (the largest pieces first) until there is
    one unit per task or nothing left to cut (zips, JSON arrays, .txt and .html are read whole).
    A unit's records, locators and line numbers are those of a whole-file read, so the corpus does
    not depend on the cut (test_same_hash_for_any_tasks_and_workers)."""
    from nabra.data.ingest import is_json_lines

    sizes = [0 if f == "-" else os.path.getsize(f) for f in files]
    cuttable = [f != "-" and s > 1 and is_json_lines(Path(f)) for f, s in zip(files, sizes)]
    pieces = [max(1, math.ceil(s / PIECE_BYTES)) if c else 1 for s, c in zip(sizes, cuttable)]
    for _ in range(max(0, (tasks or 0) - sum(pieces))):
        i = max((i for i, c in enumerate(cuttable) if c), key=lambda i: sizes[i] / pieces[i], default=None)
        if i is None:
            break
        pieces[i] += 1
    units: list[Unit] = []
    for f, size, n in zip(files, sizes, pieces):
        units.extend(_line_spans(f, size, n) if n > 1 else [(f, 0, -1, 1)])
    return units


def plan_tasks(files: list[str], tasks: int | None = None) -> tuple[list[Unit], int]:
    """plan_units, and how many tasks take them: `tasks` (default one per unit), never more than units
    (a task with nothing to read would only cost a start)."""
    units = plan_units(files, tasks)
    return units, max(1, min(tasks or len(units), len(units)))


def read_units(units: list[Unit]):
    """ingest's items (RawArticle or Problem) of `units`, in order."""
    from nabra.data.ingest import read_file

    for f, start, end, line in units:
        yield from read_file(Path(f), None if end < 0 else (start, end, line))


def _line_spans(file: str, size: int, n: int) -> list[Unit]:
    """`file` cut into at most n byte ranges of about size/n bytes, each starting at a line start, with
    the number of its first line (counted as ingest counts: lines end at "\\n"). Reads the file once."""
    cuts = [0]
    with open(file, "rb") as fh:
        for k in range(1, n):
            fh.seek(max(k * size // n - 1, cuts[-1]))
            fh.readline()  # to the end of the line that holds the target byte
            if cuts[-1] < fh.tell() < size:
                cuts.append(fh.tell())
        cuts.append(size)
        lines, pos, line = [1], 0, 1
        fh.seek(0)
        for end in cuts[1:-1]:
            while pos < end:
                chunk = fh.read(min(16 << 20, end - pos))
                line += chunk.count(b"\n")
                pos += len(chunk)
            lines.append(line)
    return [(file, a, b, first) for a, b, first in zip(cuts, cuts[1:], lines)]


def partitions_for(total_bytes: int) -> int:
    return max(1, math.ceil(total_bytes / PART_BYTES))


# ----------------------------------------------------------------------------- segment stage blocks
class ArticleReader(PipelineStep):
    """Reads this task's block of input units (plan_units) with nabra's ingest (zips, JSONL, txt,
    html); unreadable input becomes a document carrying the Problem, so every task reports its own bad
    files."""

    type = "📖 - READER"
    name = "nabra ingest"

    def __init__(self, units: list[Unit]):
        super().__init__()
        self.units = units

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        from nabra.data.ingest import Problem

        a, b = shard(self.units, rank, world_size)
        for item in read_units(self.units[a:b]):
            if isinstance(item, Problem):
                self.stat_update("input_problems")
                yield Document(text="", id="", metadata={"problem": item})
            else:
                self.stat_update("articles")
                yield Document(text=item.content, id=item.article_id, metadata={"raw": item})


class CleanSegment(PipelineStep):
    """Furniture cleaning, segmentation with offsets and statement filters (ArticleProcessor)."""

    type = "✂️ - FORMAT"
    name = "nabra clean + segment"

    def __init__(self, cfg_json: str):
        super().__init__()
        self.cfg_json = cfg_json

    def run(self, data, rank: int = 0, world_size: int = 1):
        from nabra.data.corpus import ArticleProcessor

        proc = ArticleProcessor(CorpusConfig.model_validate_json(self.cfg_json))
        for doc in data:
            if "raw" in doc.metadata:
                with self.track_time():
                    doc.metadata["result"] = proc.process(doc.metadata.pop("raw"))
                self.stat_update("statements_kept", value=len(doc.metadata["result"][1]))
            yield doc


class PartWriter(PipelineStep):
    """Writes one task's part: articles/statements Parquet, rejects, per-article counts, signatures
    and the dedup records, split into the hash partitions the dedup tasks read."""

    type = "💽 - WRITER"
    name = "nabra part writer"

    def __init__(self, work: str, cfg_json: str, partitions: int):
        super().__init__()
        self.work, self.cfg_json, self.partitions = work, cfg_json, partitions

    def run(self, data, rank: int = 0, world_size: int = 1):
        from nabra.data.corpus import dedup_key
        from nabra.io import sha1_text

        cfg = CorpusConfig.model_validate_json(self.cfg_json)
        cpu0 = time.process_time()
        part = Path(self.work) / "parts" / f"{rank:05d}"
        if part.exists():
            shutil.rmtree(part)  # a task killed half-way is redone from scratch
        part.mkdir(parents=True)
        base = rank << RANK_SHIFT
        aw = pq.ParquetWriter(part / "articles.parquet", PART_ARTICLES)
        sw = pq.ParquetWriter(part / "statements.parquet", PART_STATEMENTS)
        mw = pq.ParquetWriter(part / "artmeta.parquet", ARTMETA_SCHEMA)
        rej = open(part / "rejects.jsonl", "w", encoding="utf-8")
        sig_f = open(part / "sigs.u32", "wb")
        problems, keys, bands = [], [], []
        # the write stage adds these up instead of parsing every reject line
        rej_reasons, rej_kinds = Counter(), Counter()
        arts, sts, meta = [], [], []
        n_art = n_st = 0
        sh = cfg.shingle_chars

        def flush():
            nonlocal arts, sts, meta
            if arts:
                aw.write_table(pa.Table.from_pylist(arts, schema=PART_ARTICLES))
            if meta:
                mw.write_table(pa.Table.from_pylist(meta, schema=ARTMETA_SCHEMA))
            if sts:
                sw.write_table(pa.Table.from_pylist(sts, schema=PART_STATEMENTS))
                dk = [dedup_key(s["text"]) for s in sts]
                gids = np.array([s["gid"] for s in sts], dtype=np.int64)
                kh = np.array([key_hash(k) for k in dk], dtype=np.uint64)
                # signatures of every statement (short ones too): the band stage needs the first
                # statement of each key, whatever its length, to decide if the key takes part
                sig = minhash_signatures(dk, sh, cfg.minhash_perm)
                sig_f.write(sig.tobytes())
                k = np.empty(len(sts), KEY_DT)
                k["key"], k["gid"] = kh, gids
                keys.append(k)
                bh = band_hashes(sig)
                b = np.empty((len(sts), NUM_BANDS), BAND_DT)
                b["band"], b["gid"], b["key"] = bh, gids[:, None], kh[:, None]
                b["long"] = np.array([len(s["text"]) >= cfg.dedup_min_chars for s in sts], bool)[:, None]
                bands.append(b)
            arts, sts, meta = [], [], []

        for doc in data:
            if "problem" in doc.metadata:
                p = doc.metadata["problem"]
                problems.append({"file": p.file, "reason": p.reason, "line": p.line})
                continue
            art, kept, rjs = doc.metadata["result"]
            gid = base + n_art
            n_art += 1
            n_seg = len(kept) + sum(1 for r in rjs if r["kind"] == "statement")
            meta.append({"aid": int(art["article_id"][1:], 16), "gid": gid, "source": art["source"],
                         "segmented": n_seg, "kept": len(kept)})
            # the header line lets the writer replace this article's rejects with one repeated_record
            rej.write(json.dumps({"_a": gid, "_rr": {"kind": "article", "reason": "repeated_record",
                                                     "article_id": art["article_id"], "input_file": art["input_file"],
                                                     "locator": art["locator"]}}, ensure_ascii=False) + "\n")
            if not kept:
                rjs = rjs + [{"kind": "article", "reason": "empty_article", "article_id": art["article_id"],
                              "input_file": art["input_file"], "locator": art["locator"], "text": art["raw"][:500]}]
            for r in rjs:
                rej.write(json.dumps(r, ensure_ascii=False) + "\n")
                rej_reasons[r["reason"]] += 1
                rej_kinds[r["kind"]] += 1
            if not kept:
                continue
            art["gid"], art["body_sha1"] = gid, sha1_text(art["body"])
            arts.append(art)
            for s in kept:
                s["gid"], s["agid"] = base + n_st, gid
                n_st += 1
                sts.append(s)
            self.stat_update("articles_written")
            if len(sts) >= BATCH:
                flush()
            yield doc
        flush()
        for w in (aw, sw, mw):
            w.close()
        rej.close()
        sig_f.close()
        P = self.partitions
        key_arr = np.concatenate(keys) if keys else np.empty(0, KEY_DT)
        band_arr = np.concatenate(bands) if bands else np.empty((0, NUM_BANDS), BAND_DT)
        del keys, bands
        for p in range(P):
            kp = key_arr[key_arr["key"] % np.uint64(P) == p]
            np.save(part / f"keys_{p:04d}.npy", kp)
        for bi in range(NUM_BANDS):
            col = band_arr[:, bi]
            for p in range(P):
                bp = col[col["band"] % np.uint64(P) == p]
                np.save(part / f"band_{bi:02d}_{p:04d}.npy", bp)
        (part / "meta.json").write_text(json.dumps({
            "articles": n_art, "statements": n_st, "problems": problems, "reject_reasons": rej_reasons,
            "reject_kinds": rej_kinds, "peak_rss_mb": _peak_rss_mb(),
            "cpu_s": round(time.process_time() - cpu0, 2)}))


# ----------------------------------------------------------------------------- dedup stage
class DedupEdges(PipelineStep):
    """Task t < P: exact-duplicate edges of key partition t. Task t >= P: near-duplicate edges of
    bands j, j+4, ... in hash partition p. Reads every part's records of its partition only."""

    type = "🫂 - DEDUP"
    name = "nabra duplicate edges"

    def __init__(self, work: str, cfg_json: str, partitions: int, segment_tasks: int):
        super().__init__()
        self.work, self.cfg_json = work, cfg_json
        self.partitions, self.segment_tasks = partitions, segment_tasks

    def _load(self, name: str, dtype) -> np.ndarray:
        parts = [np.load(Path(self.work) / "parts" / f"{r:05d}" / name) for r in range(self.segment_tasks)]
        return np.concatenate(parts) if parts else np.empty(0, dtype)

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        P = self.partitions
        out = Path(self.work) / "edges"
        out.mkdir(parents=True, exist_ok=True)
        cpu0 = time.process_time()
        with self.track_time():
            if rank < P:
                edges, stats = self._exact(rank)
                name = f"exact_{rank:04d}"
            else:
                j, p = divmod(rank - P, P)
                found = [self._near(b, p) for b in range(j, NUM_BANDS, BAND_TASKS)]
                edges = spanning_forest(np.concatenate([e for e, _ in found]))
                stats = {"candidates": sum(s["candidates"] for _, s in found)}
                name = f"near_{j:02d}_{p:04d}"
        tmp = out / f".{name}.npy"
        np.save(tmp, edges)
        os.replace(tmp, out / f"{name}.npy")
        stats["peak_rss_mb"] = _peak_rss_mb()
        stats["cpu_s"] = round(time.process_time() - cpu0, 2)
        (out / f"{name}.json").write_text(json.dumps(stats))
        return
        yield  # a generator, as datatrove steps are

    def _exact(self, p: int):
        rec = self._load(f"keys_{p:04d}.npy", KEY_DT)
        rec = rec[np.lexsort((rec["gid"], rec["key"]))]
        first = np.ones(len(rec), bool)
        first[1:] = rec["key"][1:] != rec["key"][:-1]
        rep = rec["gid"][np.maximum.accumulate(np.where(first, np.arange(len(rec)), 0))]
        dup = ~first
        self.stat_update("exact_duplicates", value=int(dup.sum()))
        return np.stack([rep[dup], rec["gid"][dup]], axis=1), {"statements": len(rec), "keys": int(first.sum())}

    def _near(self, b: int, p: int):
        cfg = CorpusConfig.model_validate_json(self.cfg_json)
        rec = self._load(f"band_{b:02d}_{p:04d}.npy", BAND_DT)
        rec = rec[np.lexsort((rec["gid"], rec["band"]))]
        # one member per key in each band group: the earliest statement of the key stands for it (the
        # others are its exact duplicates, with the same signature); repeated records collapse too
        grp_start = np.ones(len(rec), bool)
        grp_start[1:] = rec["band"][1:] != rec["band"][:-1]
        gidx = np.cumsum(grp_start) - 1
        order = np.lexsort((rec["gid"], rec["key"], gidx))
        r2 = rec[order]
        g2 = gidx[order]
        firstkey = np.ones(len(r2), bool)
        firstkey[1:] = (g2[1:] != g2[:-1]) | (r2["key"][1:] != r2["key"][:-1])
        r2, g2 = r2[firstkey], g2[firstkey]
        # groups with two keys or more are candidates
        counts = np.bincount(g2, minlength=int(gidx.max()) + 1 if len(gidx) else 0)
        cand = counts[g2] >= 2
        r2, g2 = r2[cand], g2[cand]
        if not len(r2):
            return np.empty((0, 2), np.int64), {"candidates": 0}
        # a key takes part only when its earliest statement is long enough (dedup_min_chars)
        keep = r2["long"].astype(bool)
        r2, g2 = r2[keep], g2[keep]
        sigs = self._signatures(r2["gid"])
        edges = []
        starts = np.flatnonzero(np.r_[True, g2[1:] != g2[:-1]]) if len(g2) else np.empty(0, int)
        ends = np.r_[starts[1:], len(g2)]
        thr, perm = cfg.minhash_threshold, float(cfg.minhash_perm)
        for s, e in zip(starts, ends):
            if e - s < 2:
                continue
            gids = r2["gid"][s:e]
            sg = sigs[s:e]
            for a, c in self._components(sg, thr, perm):
                edges.append((gids[a], gids[c]))
        self.stat_update("near_edges", value=len(edges))
        return (np.array(edges, dtype=np.int64).reshape(-1, 2), {"candidates": int(len(r2))})

    @staticmethod
    def _components(sg: np.ndarray, thr: float, perm: float):
        """Edges (first member, member) of the components of 'Jaccard estimate >= thr' in a group: the
        same connectivity as every verified pair, with at most n-1 edges."""
        n = len(sg)
        parent = list(range(n))

        def find(i):
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        step = 256
        for i0 in range(0, n, step):
            a = sg[i0:i0 + step]
            for j0 in range(i0, n, step):
                eq = (a[:, None, :] == sg[None, j0:j0 + step, :]).sum(-1)
                ii, jj = np.nonzero(eq / perm >= thr)
                for i, j in zip((ii + i0).tolist(), (jj + j0).tolist()):
                    if i < j:
                        ri, rj = find(i), find(j)
                        if ri != rj:
                            parent[max(ri, rj)] = min(ri, rj)
        return [(find(i), i) for i in range(n) if find(i) != i]

    def _signatures(self, gids: np.ndarray) -> np.ndarray:
        cfg_perm = CorpusConfig.model_validate_json(self.cfg_json).minhash_perm
        out = np.empty((len(gids), cfg_perm), np.uint32)
        rank = gids >> RANK_SHIFT
        row = gids & ((1 << RANK_SHIFT) - 1)
        width = cfg_perm * 4
        for r in np.unique(rank):
            idx = np.flatnonzero(rank == r)
            with open(Path(self.work) / "parts" / f"{int(r):05d}" / "sigs.u32", "rb") as fh:
                for i in idx[np.argsort(row[idx])]:
                    fh.seek(int(row[i]) * width)
                    out[i] = np.frombuffer(fh.read(width), np.uint32)
        return out


# ----------------------------------------------------------------------------- driver
# What a task process imports before its first document (~2.3 s CPU together: datatrove's executor
# pulls in huggingface_hub, pyarrow's from_pylist pulls in pandas). Every stage starts a new pool, so
# each process of each stage would pay it again: the pool's processes are forked from a process that
# imported them once, this one where fork is safe, else the forkserver (datatrove's default).
# scipy.sparse.csgraph: every dedup task reduces its edges to a spanning forest (~0.5 s CPU to import)
TASK_MODULES = ["nabra.data.pipeline", "nabra.data.corpus", "datatrove.executor.local", "rensa", "pandas",
                "scipy.sparse.csgraph"]


def _fork_is_safe() -> bool:
    """Whether the corpus pool may fork this process: on Linux, with no Python thread but fsspec's IO
    loop (datatrove's first pool starts it; fsspec resets it in a forked child). The native threads of
    the corpus stages' libraries are fork-safe (jemalloc's and OpenBLAS's atfork handlers); another
    Python thread may hold a lock at the fork (a notebook's kernel runs several). Forking the CLI's
    driver, which already imported most of TASK_MODULES (and needs pandas and scipy for the write
    stage), saves the forkserver's start: ~1.8 s before the first task, on one core. (Not for `nabra
    predict --workers`: its tasks run torch, whose OpenMP pool does not survive a fork.)"""
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and t.name != "fsspecIO"]
    return sys.platform == "linux" and not others


def _pool_start_method(fork: bool = True) -> str:
    """Makes TASK_MODULES ready for the pool's processes and says how to start them."""
    if fork and _fork_is_safe():
        for m in TASK_MODULES:
            importlib.import_module(m)  # inherited by every process the pool forks
        return "fork"
    import multiprocess  # datatrove's pools come from multiprocess (dill), not multiprocessing

    # takes effect when the forkserver starts (the first pool); "__main__" is the default entry
    multiprocess.get_context("forkserver").set_forkserver_preload(["__main__"] + TASK_MODULES)
    return "forkserver"


class HeaviestFirst(LocalPipelineExecutor):
    """datatrove's local executor, handing out the heaviest tasks first. Its pool takes tasks in rank
    order, and ranks follow the input order, so a large file late in the list left one worker finishing
    it while the others idled. The process that runs a rank does not change its output (parts/RANK),
    so the order is free: largest first (LPT scheduling)."""

    def __init__(self, *args, weights: list[float] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.weights = weights
        self.driver_pid = os.getpid()

    def _launch_run_for_rank(self, rank: int, *args, **kwargs):
        # a pool worker outlived a build killed by SIGTERM/SIGKILL (the usual `kill`, the OOM killer): it
        # finished its task in the background, writing into WORK while the same command, started again,
        # redid that task in the same part folder; it now ends with the build (the task is redone on resume)
        if os.getpid() != self.driver_pid:
            _die_with_parent()
        return super()._launch_run_for_rank(rank, *args, **kwargs)

    def get_incomplete_ranks(self, ranks=None, skip_completed=None) -> list[int]:
        todo = super().get_incomplete_ranks(ranks, skip_completed)
        # one worker keeps input order: nothing to balance, and progress then follows the input
        return sorted(todo, key=lambda r: -self.weights[r]) if self.weights and self.workers > 1 else todo

    def run(self):
        # datatrove's run starts a multiprocess.Manager, whose server process outlived a SIGKILLed build
        # and held its stdout (`nabra corpus build ... | cat` waited until it was killed by hand); here
        # it is started so that it dies with this process
        import multiprocess

        real = multiprocess.Manager
        multiprocess.Manager = dying_manager
        try:
            return super().run()
        finally:
            multiprocess.Manager = real


def dying_manager():
    """multiprocess.Manager() whose server process ends when the process that started it ends."""
    import multiprocess
    from multiprocess.managers import SyncManager

    m = SyncManager(ctx=multiprocess.get_context())
    m.start(_die_with_parent)
    return m


def _die_with_parent() -> None:
    import ctypes
    import signal

    parent = os.getppid()
    try:  # Linux's PR_SET_PDEATHSIG (1): SIGTERM when the parent ends; elsewhere the old behaviour
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took hold
        os._exit(0)


class WriteBehind:
    """pq.ParquetWriter whose write_table runs in a thread, one table behind the caller. pyarrow
    encodes and compresses without the GIL, so the serial write stage reads and filters the next
    batch meanwhile (encoding was ~1.5 s of its ~5 s on all SaudiNewsNet). Calls keep their order,
    so the file is the one a plain writer makes. As a context manager it closes the file on success
    and, on an error, stops the thread and lets the error through (the caller's atomic_dir drops the
    half-written file)."""

    def __init__(self, path: Path, schema: pa.Schema):
        self._writer = pq.ParquetWriter(path, schema)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="nabra-parquet")
        self._pending = None

    def write_table(self, table: pa.Table) -> None:
        self._wait()
        self._pending = self._thread.submit(self._writer.write_table, table)

    def _wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()  # raises the writer's error here, in the caller (once)

    def close(self) -> None:
        try:
            self._wait()
        finally:
            self._thread.shutdown()
            self._writer.close()

    def __enter__(self) -> "WriteBehind":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.close()
        except Exception:
            if exc_type is None:
                raise
            # else the error already on its way out is the one to report


def _executor(kind: str, pipeline: list, tasks: int, workers: int, logging_dir: Path, weights: list[float] | None = None,
              fork: bool = False):
    """datatrove's executor for `kind`; both record completed tasks under logging_dir. `weights` (one per
    task, e.g. its input bytes) lets the local pool hand out the heaviest tasks first; `fork`: the local
    pool may fork this process (see _fork_is_safe)."""
    if kind == "ray":
        from datatrove.executor.ray import RayPipelineExecutor

        # one CPU and a modest memory reservation per task: the tasks are sized to stay well under it
        return RayPipelineExecutor(pipeline, tasks=tasks, workers=workers, logging_dir=str(logging_dir),
                                   cpus_per_task=1, mem_per_cpu_gb=1)
    # workers=1 runs the tasks in this process (no pool to start for a small input or stdin)
    start = _pool_start_method(fork) if workers > 1 and tasks > 1 else "forkserver"
    return HeaviestFirst(pipeline, tasks=tasks, workers=max(1, min(workers, tasks)), logging_dir=str(logging_dir),
                         weights=weights, start_method=start)


def unit_weights(units: list[Unit], tasks: int) -> list[float]:
    """Input bytes of each task's block of units (stdin counts 0)."""
    sizes = [end - start if end >= 0 else 0 if f == "-" else os.path.getsize(f) for f, start, end, _ in units]
    return [float(sum(sizes[slice(*shard(units, r, tasks))])) for r in range(tasks)]


def _fingerprint(files: list[Path], cfg: CorpusConfig, tasks: int, partitions: int, units: list[Unit]) -> dict:
    return {"files": [[str(f), f.stat().st_size, f.stat().st_mtime_ns] for f in files],
            "config": cfg.model_dump(), "tasks": tasks, "partitions": partitions, "part_format": PART_FORMAT,
            "units": [list(u) for u in units]}


def run_stages(units: list[Unit], work: Path, cfg: CorpusConfig, tasks: int, workers: int, executor: str,
               partitions: int, quiet: bool = True) -> dict:
    """The segment and dedup stages (datatrove executors); each skips the tasks it completed before."""
    from loguru import logger

    os.environ["NABRA_TASK_LOGS"] = "0" if quiet else "1"
    if quiet:
        logger.disable("datatrove")  # per-task progress goes to WORK/logs; the summary is printed at the end
    else:
        logger.enable("datatrove")
    cfg_json = cfg.model_dump_json()
    t0 = time.perf_counter()
    _executor(executor, [ArticleReader(units), CleanSegment(cfg_json), PartWriter(str(work), cfg_json, partitions)],
              tasks, workers, work / "logs" / "segment", weights=unit_weights(units, tasks), fork=True).run()
    _check_complete(work / "logs" / "segment", tasks, "segment")
    t1 = time.perf_counter()
    n_dedup = partitions * (1 + BAND_TASKS)
    _executor(executor, [DedupEdges(str(work), cfg_json, partitions, tasks)], n_dedup, workers,
              work / "logs" / "dedup", fork=True).run()
    _check_complete(work / "logs" / "dedup", n_dedup, "dedup")
    # wall time of this run's stages (a resumed run times only what it redid)
    return {"segment_s": round(t1 - t0, 2), "dedup_s": round(time.perf_counter() - t1, 2)}


def _check_complete(logdir: Path, tasks: int, stage: str) -> None:
    done = len(list((logdir / "completions").glob("*"))) if (logdir / "completions").exists() else 0
    if done != tasks:
        raise RuntimeError(f"{stage} stage: {done} of {tasks} tasks completed; see {logdir}/logs")


def _parts(work: Path, tasks: int) -> list[Path]:
    return [work / "parts" / f"{r:05d}" for r in range(tasks)]


def spanning_forest(edges: np.ndarray) -> np.ndarray:
    """(root, member) edges with the connected components of `edges`, one per node but the root, the
    root being each component's smallest id. A near task finds the same pair in several of its bands
    (8 near-copies of a statement give up to 7 edges in each of 16 bands); this keeps at most n-1."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if not len(edges):
        return np.empty((0, 2), np.int64)
    nodes = np.unique(edges)
    ij = np.searchsorted(nodes, edges)
    # bool entries: a pair may repeat any number of times (the driver maps many edges onto the same two
    # roots), and summed booleans stay True where small integers could wrap to zero
    g = coo_matrix((np.ones(len(ij), bool), (ij[:, 0], ij[:, 1])), shape=(len(nodes), len(nodes)))
    _, labels = connected_components(g, directed=False)
    _, first = np.unique(labels, return_index=True)  # nodes are sorted: the first of a label is its smallest
    root = nodes[first][labels]
    member = root != nodes
    return np.stack([root[member], nodes[member]], axis=1)


class ClusterRoots:
    """Union of the duplicate edges into one root per statement, folded one edge file at a time.

    Statements get dense ids in input order (part offset + sequence number), so the state is one array
    of N parent pointers (4 bytes a statement, duplicate or not) and never the edge list: at 8x
    SaudiNewsNet the edges were 27M pairs and their union held 650 MB. A component's root is its
    smallest id, i.e. its earliest statement, as before. (scipy has components but no incremental
    union of a graph streamed from disk, hence this fold.)"""

    def __init__(self, part_sizes: list[int]):
        self.offsets = np.concatenate([[0], np.cumsum(part_sizes)]).astype(np.int64)
        n = int(self.offsets[-1])
        self.parent = np.arange(n, dtype=np.int32 if n < 2**31 else np.int64)
        self.unions = 0

    def dense(self, gids: np.ndarray) -> np.ndarray:
        return self.offsets[gids >> RANK_SHIFT] + (gids & ((1 << RANK_SHIFT) - 1))

    def _find(self, x: np.ndarray) -> np.ndarray:
        r = self.parent[x]
        while True:  # chains are at most one link per fold deep
            up = self.parent[r]
            if (up == r).all():
                return r
            r = up

    def add(self, gid_edges: np.ndarray) -> None:
        if not len(gid_edges):
            return
        roots = self._find(self.dense(gid_edges))
        forest = spanning_forest(roots[roots[:, 0] != roots[:, 1]])
        self.parent[forest[:, 1]] = forest[:, 0]  # members of the forest are old roots: one union each
        self.unions += len(forest)

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """(root id, cluster size) per dense id; compresses every chain."""
        self.parent = self._find(np.arange(len(self.parent)))
        return self.parent, np.bincount(self.parent, minlength=len(self.parent)).astype(np.int32)[self.parent]


def cluster_edges(work: Path, partitions: int, repeated_gids: np.ndarray, part_sizes: list[int]):
    """Cluster roots over every duplicate edge file. Returns (ClusterRoots, root per dense id, cluster
    size per dense id, counts)."""
    edir = work / "edges"
    cr = ClusterRoots(part_sizes)
    for p in range(partitions):
        ex = np.load(edir / f"exact_{p:04d}.npy")
        if len(repeated_gids):  # statements of repeated records are not in the corpus
            ex = ex[~np.isin(ex[:, 1], repeated_gids)]
        cr.add(ex)
    exact_unions = cr.unions
    for j in range(BAND_TASKS):
        for p in range(partitions):
            cr.add(np.load(edir / f"near_{j:02d}_{p:04d}.npy"))
    ex_stats = [json.loads((edir / f"exact_{p:04d}.json").read_text()) for p in range(partitions)]
    n_exact = sum(s["statements"] - s["keys"] for s in ex_stats) - len(repeated_gids)
    roots, sizes = cr.finish()
    n = int((sizes > 1).sum())  # statements with a duplicate
    counts = {"exact_duplicate_pairs": int(n_exact), "near_duplicate_links": int(cr.unions - exact_unions),
              "duplicates_marked": int(cr.unions), "clusters_with_duplicates": int(n - cr.unions)}
    return cr, roots, sizes, counts


def assemble(files: list[Path], work: Path, out: Path, cfg: CorpusConfig, tasks: int, partitions: int,
             expand_problems: list, input_records: list[dict], t0: float, log, stage_times: dict) -> dict:
    """Streams the parts, in input order, into OUT (atomically) and returns the manifest."""
    from nabra.data.corpus import STATEMENT_SCHEMA, BuildError, empty_reasons, nothing_built
    from nabra.data.ingest import Problem
    from nabra.io import atomic_dir, versions, write_json

    parts = _parts(work, tasks)
    metas = [json.loads((p / "meta.json").read_text()) for p in parts]
    problems = list(expand_problems) + [Problem(d["file"], d["reason"], d["line"]) for m in metas for d in m["problems"]]
    for p in problems[len(expand_problems):]:
        if log:
            log(f"warning: {p}")
    # repeated records: the same article id again (same url, title, text); the first one stays
    # ParquetFile.read, not pq.read_table: the latter imports pyarrow.dataset (~0.8 s) for a plain file
    am = pa.concat_tables([pq.ParquetFile(p / "artmeta.parquet").read() for p in parts])
    aid = am.column("aid").to_numpy()
    _, first = np.unique(aid, return_index=True)
    rep_mask = np.ones(len(aid), bool)
    rep_mask[first] = False
    repeated_art = np.sort(am.column("gid").to_numpy()[rep_mask])
    counts, per_source = Counter(), {}
    kept_col, seg_col = am.column("kept").to_numpy(), am.column("segmented").to_numpy()
    for src, kept, seg, rep in zip(am.column("source").to_pylist(), kept_col, seg_col, rep_mask):
        c = per_source.setdefault(src, Counter())
        c["articles_read"] += 1
        counts["articles_read"] += 1
        if rep:
            counts["articles_repeated"] += 1
            continue
        counts["statements_segmented"] += int(seg)
        if kept == 0:
            counts["articles_empty"] += 1
            continue
        c["articles_kept"] += 1
        c["statements_kept"] += int(kept)
    del am, aid, kept_col, seg_col

    repeated_st = _repeated_statement_gids(parts, repeated_art)
    cr, roots, sizes, dup_counts = cluster_edges(work, partitions, repeated_st, [m["statements"] for m in metas])
    reasons = Counter()
    h = hashlib.sha1()
    n_lines = 0

    def hash_lines(lines: pa.ChunkedArray):
        """Adds lines to the content hash: the sha1 of every line of the output, joined by newlines.
        Joined by pyarrow a batch at a time: a Python loop over 239k statements took ~1 s of the
        serial write stage."""
        nonlocal n_lines
        lines = lines.combine_chunks()
        if not len(lines):
            return
        block = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, len(lines)], pa.int32()), lines), "\n")[0]
        if n_lines:
            h.update(b"\n")
        h.update(block.as_buffer())
        n_lines += len(lines)

    with atomic_dir(out) as tmp:
        n_art = 0
        with WriteBehind(tmp / "articles.parquet", ARTICLE_SCHEMA) as aw:
            for p in parts:
                for batch in pq.ParquetFile(p / "articles.parquet").iter_batches(batch_size=2048):
                    keep = _not_in(batch.column("gid").to_numpy(), repeated_art)
                    t = pa.Table.from_batches([batch]).filter(pa.array(keep))
                    hash_lines(pc.binary_join_element_wise(t.column("article_id"), t.column("body_sha1"), "\t"))
                    aw.write_table(t.drop_columns(["gid", "body_sha1"]))
                    n_art += t.num_rows
        if not n_art:
            raise BuildError(nothing_built(problems, counts["articles_read"])
                             + "".join(f"; {f}: {why}" for f, why in empty_reasons(_part_rejects(parts), cfg)[:5]),
                             problems)
        # each cluster root's statement id, filled as the roots stream past (a root comes first in input
        # order): a sorted array, 40 bytes a cluster where a dict of str took ~130 (ids are ASCII,
        # "a" + 15 hex digits + "-" + the segment index: 20-24 bytes)
        root_ids = np.unique(roots[sizes > 1])
        root_sid = np.zeros(len(root_ids), "S32")
        n_st = 0
        with WriteBehind(tmp / "statements.parquet", STATEMENT_SCHEMA) as sw:
            for p in parts:
                for batch in pq.ParquetFile(p / "statements.parquet").iter_batches(batch_size=BATCH):
                    t = pa.Table.from_batches([batch])
                    keep = _not_in(t.column("agid").to_numpy(), repeated_art)
                    if not keep.all():
                        t = t.filter(pa.array(keep))
                    gid = cr.dense(t.column("gid").to_numpy())
                    root, size = roots[gid], sizes[gid]
                    is_dup = root != gid
                    sids = t.column("statement_id").combine_chunks()
                    new = np.flatnonzero(~is_dup & (size > 1))
                    if len(new):
                        root_sid[np.searchsorted(root_ids, gid[new])] = sids.take(new).to_numpy(zero_copy_only=False)
                    dup_cluster = sids  # a duplicate is named after its cluster's root, which came before it
                    if is_dup.any():
                        names = pa.array(root_sid[np.searchsorted(root_ids, root[is_dup])]).cast(pa.string())
                        dup_cluster = pc.replace_with_mask(sids, pa.array(is_dup), names)
                    hash_lines(pc.binary_join_element_wise(
                        sids, t.column("start").cast(pa.string()), t.column("end").cast(pa.string()),
                        t.column("text_sha1"), dup_cluster, "\t"))
                    t = (t.drop_columns(["gid", "agid"]).append_column("dup_cluster", dup_cluster)
                         .append_column("is_duplicate", pa.array(is_dup)).append_column("cluster_size", pa.array(size, pa.int32())))
                    sw.write_table(t.cast(STATEMENT_SCHEMA))
                    n_st += t.num_rows
        counts["articles_kept"] = n_art
        counts["statements_kept"] = n_st
        with open(tmp / "rejects.jsonl", "w", encoding="utf-8") as fh:
            for p, m in zip(parts, metas):
                rank = int(p.name)
                if not _in_range(repeated_art, rank << RANK_SHIFT, (rank + 1) << RANK_SHIFT):
                    # no repeated record in this part: its lines go out as written (json.dumps of the
                    # same dicts), less the article headers, with the counts its task made
                    with open(p / "rejects.jsonl", encoding="utf-8") as rf:
                        fh.writelines(line for line in rf if not line.startswith('{"_a": '))
                    reasons.update(m["reject_reasons"])
                    counts["statements_rejected"] += m["reject_kinds"].get("statement", 0)
                    counts["furniture_lines_dropped"] += m["reject_kinds"].get("furniture", 0)
                    continue
                skip = False
                with open(p / "rejects.jsonl", encoding="utf-8") as rf:
                    for line in rf:
                        r = json.loads(line)
                        if "_a" in r:
                            skip = bool(len(repeated_art)) and _in_sorted(repeated_art, r["_a"])
                            if skip:
                                r = r["_rr"]
                            else:
                                continue
                        elif skip:
                            continue
                        reasons[r["reason"]] += 1
                        counts["statements_rejected"] += r["kind"] == "statement"
                        counts["furniture_lines_dropped"] += r["kind"] == "furniture"
                        fh.write(json.dumps(r, ensure_ascii=False) + "\n")
            for p in problems:
                fh.write(json.dumps({"kind": "input", "reason": p.reason, "input_file": p.file, "line": p.line},
                                    ensure_ascii=False) + "\n")
        counts["input_problems"] = len(problems)
        for k in ("statements_rejected", "furniture_lines_dropped"):
            counts.setdefault(k, 0)
        manifest = {
            "inputs": input_records,
            "counts": dict(sorted(counts.items())),
            "duplicates": dup_counts,
            "rejected_by_reason": dict(sorted(reasons.items())),
            "per_source": {k: dict(sorted(v.items())) for k, v in sorted(per_source.items())},
            "problems": [str(p) for p in problems],
            "config": cfg.model_dump(),
            "versions": versions(),
            "content_hash": h.hexdigest(),
        }
        edge_stats = [json.loads(f.read_text()) for f in sorted((work / "edges").glob("*.json"))]
        manifest["timing"] = {
            "wall_s": round(time.perf_counter() - t0, 2), **stage_times,
            "cpu_s_by_stage": {"segment": round(sum(m["cpu_s"] for m in metas), 2),
                               "dedup": round(sum(s["cpu_s"] for s in edge_stats), 2),
                               "write": round(time.process_time(), 2)},
            "peak_rss_mb": max([_peak_rss_mb()] + [m["peak_rss_mb"] for m in metas]
                               + [s["peak_rss_mb"] for s in edge_stats]),
            "peak_rss_mb_by_stage": {"segment": max(m["peak_rss_mb"] for m in metas),
                                     "dedup": max(s["peak_rss_mb"] for s in edge_stats),
                                     "write": _peak_rss_mb()},
        }
        manifest["pipeline"] = {"tasks": tasks, "dedup_partitions": partitions}
        write_json(tmp / "manifest.json", manifest)  # written last: its presence marks a finished build
    return {"manifest": manifest, "problems": problems}


def _in_range(arr: np.ndarray, lo: int, hi: int) -> bool:
    """Whether sorted `arr` holds a value in [lo, hi)."""
    return bool(np.searchsorted(arr, hi) > np.searchsorted(arr, lo))


def _in_sorted(arr: np.ndarray, v: int) -> bool:
    i = np.searchsorted(arr, v)
    return bool(i < len(arr) and arr[i] == v)


def _not_in(values: np.ndarray, sorted_arr: np.ndarray) -> np.ndarray:
    return ~np.isin(values, sorted_arr) if len(sorted_arr) else np.ones(len(values), bool)


def _repeated_statement_gids(parts: list[Path], repeated_art: np.ndarray) -> np.ndarray:
    if not len(repeated_art):
        return np.empty(0, np.int64)
    out = []
    for p in parts:
        t = pq.ParquetFile(p / "statements.parquet").read(columns=["gid", "agid"])
        out.append(t.column("gid").to_numpy()[~_not_in(t.column("agid").to_numpy(), repeated_art)])
    return np.sort(np.concatenate(out))
