"""The datatrove corpus pipeline: same corpus as the in-memory reference (duplicates across tasks,
repeated records, the short-first-statement rule), the same hash for any tasks/workers/executor,
resume after a kill, and the Ray executor on a local cluster."""
from __future__ import annotations

import json

import pytest

from conftest import SAMPLE, cli
from nabra.config import load_corpus_config
from nabra.data.corpus import ArticleProcessor, build, content_hash, dedup_key, load_corpus, mark_duplicates
from nabra.data.ingest import read_inputs, RawArticle

CFG = load_corpus_config()
S1 = "أعلنت وزارة التعليم اليوم عن خطة جديدة لتطوير المناهج في المدارس الحكومية كلها"
S2 = "حذرت الهيئة العامة المخالفين من عقوبات صارمة تصل إلى السجن والغرامة المالية الكبيرة"
S3 = "وأكد المتحدث الرسمي أن الحملات الميدانية مستمرة في جميع المناطق دون توقف أبدا"
SHORT = "قال الوزير إن الخطة ستبدأ قريبا"  # under dedup_min_chars (40)
# the same dedup key as SHORT (diacritics and punctuation only) but 40 characters or more
SHORT_LONG = "قَالَ الوَزِيرُ: إِنَّ الخُطَّةَ سَتَبْدَأُ قَرِيبًا!!"


def _write(path, texts):
    path.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), "utf-8")


def reference_hash(files, cfg=CFG):
    """Today's semantics, in memory: every article in input order, repeated records dropped, then
    exact + MinHash LSH duplicates over the whole corpus (nabra.data.corpus.mark_duplicates)."""
    proc, seen, arts, sts = ArticleProcessor(cfg), set(), [], []
    for item in read_inputs([str(f) for f in files]):
        if not isinstance(item, RawArticle):
            continue
        art, kept, _ = proc.process(item)
        if art["article_id"] in seen:
            continue
        seen.add(art["article_id"])
        if kept:
            arts.append(art)
            sts.extend(kept)
    counts = mark_duplicates(sts, cfg)
    return content_hash(arts, sts), counts


@pytest.fixture()
def dup_inputs(tmp_path):
    """Four files (four tasks): duplicates that cross task boundaries, a record repeated in another
    file, near duplicates, and a key whose first statement is too short for near-duplicate checks."""
    near1 = S1.replace("الحكومية", "الحكومية والأهلية")
    near2 = S2.replace("الكبيرة", "الكبيرة جدا")
    _write(tmp_path / "a.jsonl", [f"{S1}. {S2}.", f"{SHORT}. {S3}."])
    _write(tmp_path / "b.jsonl", [f"{near1}. {S3}.", f"{SHORT_LONG} {near2}."])
    _write(tmp_path / "c.jsonl", [f"{S1}. {S2}.", f"{S2}. {near1}."])  # the first: a repeated record of a.jsonl
    _write(tmp_path / "d.jsonl", [f"{SHORT_LONG.replace('!!', '؟')} {S3.replace('أبدا', 'أبدا أبدا')}."])
    return sorted(tmp_path.glob("*.jsonl"))


def test_same_corpus_as_the_in_memory_reference(dup_inputs, tmp_path):
    cfg = CFG.model_copy(update={"minhash_threshold": 0.5})
    ref_hash, ref_counts = reference_hash(dup_inputs, cfg)
    res = build([str(f) for f in dup_inputs], tmp_path / "out", cfg, progress=False, tasks=4, workers=1)
    m = res.manifest
    assert m["content_hash"] == ref_hash
    assert m["duplicates"] == ref_counts
    assert ref_counts["near_duplicate_links"] >= 2 and ref_counts["exact_duplicate_pairs"] >= 2
    assert m["counts"]["articles_repeated"] == 1
    rej = [json.loads(l) for l in (tmp_path / "out" / "rejects.jsonl").read_text("utf-8").splitlines()]
    assert sum(r["reason"] == "repeated_record" for r in rej) == 1
    st = load_corpus(tmp_path / "out")[0]
    # the long twins of a short first statement are its exact duplicates and nothing more: a key
    # whose first statement is short takes no part in near-duplicate links
    first = st[st.text.str.startswith("قال الوزير")].statement_id.iloc[0]
    cluster = st[st.dup_cluster == first]
    assert len(cluster) == 3 and cluster.text.map(dedup_key).nunique() == 1


@pytest.mark.parametrize("tasks,workers", [(1, 1), (2, 2), (4, 2), (8, 2)])
def test_same_hash_for_any_tasks_and_workers(dup_inputs, tmp_path, tasks, workers):
    ref_hash, _ = reference_hash(dup_inputs)
    res = build([str(f) for f in dup_inputs], tmp_path / "out", CFG, progress=False, tasks=tasks, workers=workers)
    assert res.manifest["content_hash"] == ref_hash


def test_pool_forks_a_driver_without_threads_and_uses_the_forkserver_beside_one(dup_inputs, tmp_path):
    """The pool forks this process while it runs no other Python thread (fsspec's IO loop aside), and
    starts from the forkserver when one runs (a lock held at the fork could hang the child): same corpus."""
    import threading

    from nabra.data import pipeline as pl

    ref_hash, _ = reference_hash(dup_inputs)
    alone = [threading.main_thread(), threading.Thread(name="fsspecIO")]
    with pytest.MonkeyPatch.context() as mp:  # the CLI's driver: no thread of its own
        mp.setattr(pl.threading, "enumerate", lambda: alone)
        assert pl._pool_start_method() == "fork"
        assert pl._pool_start_method(fork=False) == "forkserver"  # `nabra predict --workers`: torch tasks
    stop = threading.Event()
    other = threading.Thread(target=stop.wait, name="a caller's thread")
    other.start()
    try:
        assert pl._pool_start_method() == "forkserver"
        res = build([str(f) for f in dup_inputs], tmp_path / "out", CFG, progress=False, tasks=2, workers=2)
    finally:
        stop.set()
        other.join()
    assert res.manifest["content_hash"] == ref_hash


def _big_jsonl(path):
    """JSON Lines with what a cut must not disturb: a blank line, a line that is not JSON, a record that
    is not an object, a "\\r\\n" ending and an unescaped U+2028 inside a string (JSON allows it;
    str.splitlines() would cut the record there)."""
    lines = [json.dumps({"text": f"{S1} رقم {i}. {S2} {i}.", "url": f"u{i}"}, ensure_ascii=False) for i in range(12)]
    lines[3] = json.dumps({"text": f"{S3}\u2028{S2}.", "url": "sep"}, ensure_ascii=False)
    lines[5], lines[7], lines[9] = "", "{not json", "[1, 2]"
    lines[10] += "\r"
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


def test_json_lines_cut_into_byte_ranges_read_as_the_whole_file(tmp_path, monkeypatch):
    """A JSON Lines file is cut at line starts; its ranges, read one by one, give the records, locators
    and problem line numbers of a whole-file read. Zips, JSON arrays and .txt are never cut."""
    import nabra.data.pipeline as pl
    from nabra.data.ingest import read_file

    big = _big_jsonl(tmp_path / "big.jsonl")
    arr = tmp_path / "arr.json"
    # a JSON array after a BOM and 70 kB of blank lines (the reader and the planner both see an array)
    arr.write_text("\ufeff" + "\n" * 70_000 + json.dumps([{"text": S1}, {"text": S2}], ensure_ascii=False, indent=1),
                   "utf-8")
    txt = tmp_path / "one.txt"
    txt.write_text(S1, "utf-8")
    files = [str(arr), str(big), str(txt)]
    assert pl.plan_units(files) == [(f, 0, -1, 1) for f in files]  # under PIECE_BYTES: whole files
    units = pl.plan_units(files, tasks=6)
    assert [u for u in units if u[0] != str(big)] == [(str(arr), 0, -1, 1), (str(txt), 0, -1, 1)]
    assert [i.content for i in read_file(arr)] == [S1, S2]
    spans = [u[1:] for u in units if u[0] == str(big)]
    data = big.read_bytes()
    assert len(spans) == 4 and spans[0][0] == 0 and spans[-1][1] == len(data)
    for (a, b, line), nxt in zip(spans, spans[1:] + [(len(data), 0, 0)]):
        assert b == nxt[0] and a < b and (a == 0 or data[a - 1:a] == b"\n")
        assert line == data[:a].count(b"\n") + 1

    def rows(items):
        return [(i.content, i.locator, i.url) if isinstance(i, RawArticle) else (i.reason, i.line) for i in items]

    whole = rows(read_file(big))
    assert rows(x for a, b, line in spans for x in read_file(big, (a, b, line))) == whole
    assert ("record line 10 is not a JSON object", 10) in whole and ("invalid JSON (Expecting property name enclosed "
                                                                     "in double quotes)", 8) in whole
    assert sum(1 for r in whole if r[2:] == ("sep",)) == 1  # the U+2028 record stayed one record
    monkeypatch.setattr(pl, "PIECE_BYTES", len(data) // 3 + 1)
    assert len([u for u in pl.plan_units(files) if u[0] == str(big)]) == 3  # cut by default over PIECE_BYTES


def test_one_large_json_lines_file_same_corpus_in_any_number_of_tasks(tmp_path):
    """Cut into ranges, one file gives the corpus, rejects and provenance of one task reading it whole."""
    big = _big_jsonl(tmp_path / "big.jsonl")
    one = build([str(big)], tmp_path / "one", CFG, progress=False, tasks=1, workers=1)
    five = build([str(big)], tmp_path / "five", CFG, progress=False, tasks=5, workers=2)
    assert five.manifest["pipeline"]["tasks"] == 5
    assert five.manifest["content_hash"] == one.manifest["content_hash"]
    assert five.manifest["counts"] == one.manifest["counts"] and one.manifest["counts"]["input_problems"] == 2
    s1, a1, _ = load_corpus(tmp_path / "one")
    s5, a5, _ = load_corpus(tmp_path / "five")
    assert a5.equals(a1) and s5.equals(s1) and "line 12" in set(a1["locator"])
    assert (tmp_path / "five/rejects.jsonl").read_bytes() == (tmp_path / "one/rejects.jsonl").read_bytes()


def test_sample_same_hash_with_one_and_two_workers(sample_corpus, tmp_path):
    want = load_corpus(sample_corpus)[2]["content_hash"]
    assert cli("corpus", "build", "--input", SAMPLE / "articles.jsonl", "--out", tmp_path / "w2", "--workers", "2",
               "--tasks", "2", "--no-progress") == 0
    assert load_corpus(tmp_path / "w2")[2]["content_hash"] == want


def test_local_pool_takes_the_heaviest_incomplete_tasks_first(tmp_path):
    """With several workers, tasks go out largest input first (a rank's output does not depend on the
    process that runs it); a task with a completion record is still skipped."""
    from nabra.data.pipeline import _executor, plan_units, unit_weights

    files = []
    for i, size in enumerate((10, 300, 20, 200)):
        files.append(str(tmp_path / f"{i}.txt"))
        (tmp_path / f"{i}.txt").write_text("x" * size)
    units = plan_units(files)
    assert unit_weights(units, 2) == [310.0, 220.0]
    assert unit_weights([(files[1], 100, 250, 3)], 1) == [150.0]  # a byte range weighs its bytes
    ex = _executor("local", [], 4, 2, tmp_path / "logs", weights=unit_weights(units, 4))
    assert ex.get_incomplete_ranks(range(4)) == [1, 3, 2, 0]
    (tmp_path / "logs" / "completions").mkdir(parents=True)
    (tmp_path / "logs" / "completions" / "00003").write_text("")
    assert ex.get_incomplete_ranks(range(4)) == [1, 2, 0]
    assert _executor("local", [], 4, 2, tmp_path / "logs2").get_incomplete_ranks(range(4)) == [0, 1, 2, 3]
    one = _executor("local", [], 4, 1, tmp_path / "logs3", weights=unit_weights(units, 4))
    assert one.get_incomplete_ranks(range(4)) == [0, 1, 2, 3]  # one worker: input order


def test_killed_build_resumes_and_skips_completed_tasks(dup_inputs, tmp_path, monkeypatch, capsys):
    import nabra.data.corpus as corpus

    out = tmp_path / "out"
    args = ("corpus", "build", "--input", *dup_inputs, "--out", out, "--tasks", "4", "--workers", "1")
    real = corpus.ArticleProcessor.process
    seen = []

    def killed_at_c(self, art):
        seen.append(art.input_file)
        if art.input_file.endswith("c.jsonl"):
            raise KeyboardInterrupt  # killed during the third task
        return real(self, art)

    monkeypatch.setattr(corpus.ArticleProcessor, "process", killed_at_c)
    try:  # main() turns Ctrl-C into exit 130 (or lets it through, before it did)
        assert cli(*args) == 130
    except KeyboardInterrupt:
        pass
    assert not out.exists()
    assert sorted((tmp_path / ".out.work" / "logs" / "segment" / "completions").iterdir())  # tasks 0 and 1 done

    def counted(self, art):
        seen.append(art.input_file)
        return real(self, art)

    seen.clear()
    monkeypatch.setattr(corpus.ArticleProcessor, "process", counted)
    assert cli(*args) == 0
    assert "resuming the build" in capsys.readouterr().err
    assert not any(f.endswith(("a.jsonl", "b.jsonl")) for f in seen)  # completed tasks were skipped
    assert load_corpus(out)[2]["content_hash"] == reference_hash(dup_inputs)[0]
    assert not (tmp_path / ".out.work").exists()


def test_changed_arguments_start_afresh(dup_inputs, tmp_path, capsys):
    from nabra.io import prepare_work

    work = tmp_path / "w"
    assert not prepare_work(work, {"tasks": 2})
    assert prepare_work(work, {"tasks": 2})
    assert not prepare_work(work, {"tasks": 3})  # another build: nothing of the old one is reused


def test_ray_executor_on_a_local_cluster(sample_corpus, tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'nabra[ray]'); the Ray executor is untested here")
    ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
             configure_logging=False)
    try:
        assert cli("corpus", "build", "--input", SAMPLE / "articles.jsonl", "--out", tmp_path / "ray", "--executor",
                   "ray", "--tasks", "2", "--workers", "2", "--no-progress") == 0
    finally:
        ray.shutdown()
    assert load_corpus(tmp_path / "ray")[2]["content_hash"] == load_corpus(sample_corpus)[2]["content_hash"]


def test_predict_with_workers_keeps_the_order_of_one_process(sample_run, tmp_path, capsys):
    arts = [json.loads(l)["text"] for l in (SAMPLE / "articles.jsonl").read_text("utf-8").splitlines()]
    files = []
    for i in range(5):  # five files, labelled by two worker processes
        f = tmp_path / f"in{i}.txt"
        f.write_text(arts[i * 3] + "\n" + arts[i * 3 + 1], "utf-8")
        files.append(f)
    (tmp_path / "bad.txt").write_text("", "utf-8")
    files.insert(2, tmp_path / "bad.txt")
    assert cli("predict", sample_run, *files, "--format", "jsonl", "--out", tmp_path / "one.jsonl") == 0
    assert cli("predict", sample_run, *files, "--format", "jsonl", "--out", tmp_path / "two.jsonl",
               "--workers", "2") == 0
    assert "bad.txt: empty file" in capsys.readouterr().err
    one, two = (tmp_path / "one.jsonl").read_text("utf-8"), (tmp_path / "two.jsonl").read_text("utf-8")
    assert one == two and len(one.splitlines()) > 10


def test_predict_with_workers_cuts_a_large_json_lines_file_and_names_repeats_across_tasks(sample_run, tmp_path,
                                                                                         monkeypatch, capsys):
    import nabra.data.pipeline as pl

    lines = (SAMPLE / "articles.jsonl").read_text("utf-8").splitlines()[:6]
    english = json.dumps({"url": "u-en", "text": "An article in English only. It has two sentences."})
    lines.insert(1, english)
    big = tmp_path / "big.jsonl"
    # the first record and the one with no Arabic statement again, in the last range
    big.write_text("\n".join(lines + [lines[0], english]) + "\n", "utf-8")
    monkeypatch.setattr(pl, "PIECE_BYTES", big.stat().st_size // 3 + 1)
    assert len(pl.plan_units([str(big)])) == 3
    assert cli("predict", sample_run, big, "--format", "jsonl", "--out", tmp_path / "one.jsonl") == 0
    err_one = capsys.readouterr().err
    assert len(pl.plan_units([str(big)], tasks=4)) == 4
    assert cli("predict", sample_run, big, "--format", "jsonl", "--out", tmp_path / "two.jsonl", "--workers", "2",
               "--tasks", "4") == 0
    err_two = capsys.readouterr().err
    for err in (err_one, err_two):  # one process and four tasks name the same repeats
        assert f"{big} line 8: the same article as {big} line 1; labelled once" in err
        assert f"{big} line 9: the same article as {big} line 2; labelled once" in err
        assert err.count("no Arabic statement found") == 1
    one, two = (tmp_path / "one.jsonl").read_text("utf-8"), (tmp_path / "two.jsonl").read_text("utf-8")
    assert one == two and len(one.splitlines()) > 10


def test_normalize_line_fast_path_gives_the_per_character_result():
    import random

    from nabra.data.clean import normalize_chars, normalize_line

    # presentation forms that NFKC expands (a ligature, U+FDFA with spaces inside), fullwidth, a
    # character outside the BMP and a lone surrogate; lines past 64 characters take the array path
    alphabet = list("قال الوزير ") + ["\u0640", "\u00a0", "\u200f", "\ufeff", "\ufefb", "\t", "  ", "\u2003", "x",
                                         "\ufdfa", "\ufe70", "\uff21", "\u3000", "\U0001F600", "\ud800"]
    rng = random.Random(1)
    for _ in range(20000):
        line = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, rng.choice([12, 150]))))
        text, offs = normalize_line(line, 7)
        assert (text, list(offs)) == normalize_chars(line, 7), repr(line)


def test_minhash_signatures_from_token_hashes_equal_rensas_from_shingle_strings(sample_corpus, monkeypatch):
    """The shingles go to rensa as hashes computed in numpy: the signatures must be the ones rensa makes
    from the shingle strings (else the duplicate clusters, and the gold splits made from them, move)."""
    import numpy as np
    import pandas as pd
    from rensa import RMinHash

    from nabra.data import pipeline as pl

    texts = pd.read_parquet(sample_corpus / "statements.parquet", columns=["text"]).text.tolist()
    # every token length rensa treats apart (0, 1-3, 4-7, 8-16 and over 16 bytes: 3- and 4-byte characters)
    keys = [dedup_key(t) for t in texts] + ["", "a", "ab", "abc", "abcd", "abcdefg", "قال", "😀😀😀😀😀😀", "ab😀c",
                                            "中文中文中文", "٢٠١٥ م", "x" * 40]

    def from_strings(keys, sh=5, perm=128):
        tokens = [[k[p:p + sh] for p in range(max(1, len(k) - sh + 1))] for k in keys]
        return np.asarray(RMinHash.digest_matrix_from_token_sets(tokens, num_perm=perm, seed=1).to_rows(), np.uint32)

    assert pl._rensa_hash_ok()
    hashes, offsets = pl.shingle_hashes(keys, 5)
    assert len(hashes) == offsets[-1] == sum(max(1, len(k) - 4) for k in keys)
    assert np.array_equal(pl.minhash_signatures(keys, 5, 128), from_strings(keys))
    # where the hash cannot be matched (another rensa), the strings go to rensa as before
    monkeypatch.setattr(pl, "_rensa_hash_ok", lambda: False)
    assert pl.shingle_hashes(keys, 5) is None
    assert np.array_equal(pl.minhash_signatures(keys, 5, 128), from_strings(keys))


def _tiny_zip(path):
    import zipfile

    recs = [{"source": "s", "url": f"u{i}", "title": f"t{i}", "date_extracted": "d", "author": "a",
             "content": f"{S1}. {S2} رقم {i}.\n{S3}."} for i in range(3)]
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("2015-01-01.json", json.dumps(recs, ensure_ascii=False))
    return path


def test_synthetic_archive_repeats_every_article_under_another_id(tmp_path):
    from nabra.evaluation.synth import make_synthetic

    src = tmp_path / "src"
    src.mkdir()
    _tiny_zip(src / "a.zip")
    zips = make_synthetic(src, tmp_path / "syn", copies=3)
    res = build([str(z) for z in zips], tmp_path / "out", CFG, progress=False)
    c, d = res.manifest["counts"], res.manifest["duplicates"]
    assert len(zips) == 3 and c["articles_read"] == 9 and c.get("articles_repeated", 0) == 0
    assert d["duplicates_marked"] >= 2 * c["statements_kept"] // 3  # copies 1 and 2 are duplicates of copy 0


def test_cluster_roots_folded_file_by_file_match_components_of_all_edges():
    """The driver's fold (one edge file at a time into parent pointers) names every cluster after its
    smallest statement, exactly as connected components over all the edges at once."""
    import numpy as np
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from nabra.data.pipeline import RANK_SHIFT, ClusterRoots, spanning_forest

    rng = np.random.default_rng(0)
    sizes = [500, 300, 700]  # statements per part; gids are rank << RANK_SHIFT | sequence
    gids = np.concatenate([(r << RANK_SHIFT) + np.arange(n) for r, n in enumerate(sizes)])
    files = [gids[rng.integers(0, len(gids), size=(k, 2))] for k in (400, 50, 0, 300, 250)]
    cr = ClusterRoots(sizes)
    for e in files:
        cr.add(spanning_forest(e) if len(e) % 2 else e)  # forests and raw edge lists alike
    roots, size = cr.finish()
    dense = np.concatenate(files)
    ij = cr.dense(dense)
    n = len(gids)
    _, labels = connected_components(coo_matrix((np.ones(len(ij)), (ij[:, 0], ij[:, 1])), shape=(n, n)),
                                     directed=False)
    first = {}
    for i, lab in enumerate(labels):
        first.setdefault(lab, i)
    assert roots.tolist() == [first[lab] for lab in labels]
    assert size.tolist() == np.bincount(labels)[labels].tolist()
    assert cr.unions == n - labels.max() - 1


def test_write_behind_writes_the_file_a_plain_writer_writes_and_raises_its_errors(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from nabra.data.pipeline import WriteBehind

    schema = pa.schema([("t", pa.string()), ("n", pa.int32())])
    tables = [pa.table({"t": [S1[:i], S2], "n": [i, -i]}, schema=schema) for i in range(5)]
    plain, behind = pq.ParquetWriter(tmp_path / "a.parquet", schema), WriteBehind(tmp_path / "b.parquet", schema)
    for t in tables:
        plain.write_table(t)
        behind.write_table(t)
    plain.close()
    behind.close()
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    w = WriteBehind(tmp_path / "c.parquet", schema)
    w.write_table(pa.table({"x": [1.5]}))  # not the schema: the error comes out at the next call
    with pytest.raises(ValueError, match="schema"):
        w.write_table(tables[0])
    w.close()
    # as a context manager: an error in the caller's loop stops the thread and is the one raised
    import threading

    with pytest.raises(KeyError, match="the caller's"):
        with WriteBehind(tmp_path / "d.parquet", schema) as w:
            w.write_table(tables[1])
            w.write_table(pa.table({"x": [1.5]}))  # a pending error of its own, hidden by the caller's
            raise KeyError("the caller's")
    assert not any(t.name.startswith("nabra-parquet") for t in threading.enumerate())


def test_work_folder_stdin_and_leftovers_are_handled_safely(tmp_path, monkeypatch, capsys):
    """--work was deleted whatever it held; a killed stdin build resumed with the next stdin's stream
    as if it were the same input; a write stage killed before its rename left .OUT.tmp-* behind forever."""
    import io
    import sys

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    assert cli("corpus", "build", "--input", SAMPLE / "articles.jsonl", "--out", tmp_path / "c", "--work", mine,
               "--no-progress") == 2
    assert "holds files of its own" in capsys.readouterr().err and (mine / "notes.txt").exists()

    stale = tmp_path / ".c.tmp-killed"
    stale.mkdir()
    (stale / "articles.parquet").write_bytes(b"half")
    text = (SAMPLE / "article.txt").read_text(encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
    assert cli("corpus", "build", "--input", "-", "--out", tmp_path / "c", "--no-progress") == 0
    first = load_corpus(tmp_path / "c")[0]
    assert not stale.exists()
    # a stdin build never resumes: two runs on the same stream do not share a fingerprint
    from nabra.data import corpus

    seen, real = [], corpus.prepare_work
    monkeypatch.setattr(corpus, "prepare_work", lambda w, fp: seen.append(fp) or real(w, fp))
    for _ in range(2):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
        assert cli("corpus", "build", "--input", "-", "--out", tmp_path / "c", "--no-progress") == 0
    assert len(seen) == 2 and seen[0] != seen[1]
    assert len(load_corpus(tmp_path / "c")[0]) == len(first)


def test_ray_wants_absolute_paths_and_counts_are_positive(capsys):
    """Ray's workers read relative paths from another folder (the build failed on a missing stats file,
    predict labelled nothing); --tasks/--workers of 0 or below ran as 1 without a word."""
    assert cli("corpus", "build", "--input", "data/sample/articles.jsonl", "--out", "rel", "--executor", "ray") == 2
    assert "--executor ray needs absolute paths" in capsys.readouterr().err
    for flag in ("--tasks", "--workers"):
        with pytest.raises(SystemExit):
            cli("corpus", "build", "--input", SAMPLE / "articles.jsonl", "--out", "x", flag, "0")
        assert "must be >= 1" in capsys.readouterr().err


def test_predict_names_repeats_the_same_with_one_or_two_workers(sample_run, tmp_path, capsys):
    """A repeat inside a task was named after that task's first copy, not the first of all, and the
    warnings came out in another order than with one process."""
    lines = (SAMPLE / "articles.jsonl").read_text("utf-8").splitlines()
    (tmp_path / "a.jsonl").write_text(lines[1] + "\n", "utf-8")
    (tmp_path / "b.jsonl").write_text("\n".join([lines[1], lines[2], lines[3], lines[1]]) + "\n", "utf-8")
    runs = {}
    for w in ("1", "2"):
        assert cli("predict", sample_run, tmp_path / "a.jsonl", tmp_path / "b.jsonl", "--format", "jsonl",
                   "--workers", w, "--tasks", "2") == 0
        out = capsys.readouterr()
        runs[w] = (out.out, [l for l in out.err.splitlines() if l.startswith("warning")])
    assert runs["1"] == runs["2"]
    assert runs["1"][1] == [f"warning: {tmp_path / 'b.jsonl'} line {n}: the same article as {tmp_path / 'a.jsonl'} line 1; "
                            "labelled once" for n in (1, 4)]


def test_the_pool_manager_dies_with_a_killed_build(tmp_path):
    """datatrove's multiprocess.Manager outlived a SIGKILLed `nabra corpus build` and held its stdout, so
    `nabra corpus build ... | cat` never ended; the executor now starts one that dies with its parent."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from datatrove.pipeline.base import PipelineStep

    from nabra.data import pipeline as pl

    script = tmp_path / "m.py"
    script.write_text("import time\nfrom nabra.data.pipeline import dying_manager\nm = dying_manager()\n"
                      "print(m._process.pid, flush=True)\ntime.sleep(60)\n")
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    pid = int(p.stdout.readline())
    os.kill(p.pid, signal.SIGKILL)
    p.wait()

    def alive() -> bool:
        try:
            return open(f"/proc/{pid}/stat").read().split()[2] != "Z"
        except FileNotFoundError:
            return False

    for _ in range(50):
        if not alive():
            break
        time.sleep(0.1)
    assert not alive()

    seen = []

    class Probe(PipelineStep):
        name, type = "probe", "probe"

        def run(self, data=None, rank: int = 0, world_size: int = 1):
            import multiprocess

            seen.append(multiprocess.Manager is pl.dying_manager)
            return
            yield

    pl.HeaviestFirst([Probe()], tasks=1, workers=1, logging_dir=str(tmp_path / "logs")).run()
    assert seen == [True]


def test_an_unforeseen_error_in_one_file_is_a_problem_for_that_file(tmp_path, monkeypatch):
    """An error no check foresaw (here a library's, on one HTML page) stopped the whole build."""
    import nabra.data.ingest as ingest

    def boom(html, file):
        raise RuntimeError("the extractor broke")
    monkeypatch.setattr(ingest, "_from_html", boom)
    _write(tmp_path / "a.jsonl", ["أعلنت الوزارة عن خطة جديدة لتطوير التعليم في المدارس الحكومية."])
    (tmp_path / "b.html").write_text("<p>خبر</p>", "utf-8")
    items = list(read_inputs([str(tmp_path / "b.html"), str(tmp_path / "a.jsonl")]))
    assert str(items[0]) == f"{tmp_path / 'b.html'}: cannot read the rest of the file: RuntimeError: the extractor broke"
    assert isinstance(items[1], RawArticle)


def test_atomic_dir_sweeps_what_killed_commands_left_and_keeps_a_running_ones(tmp_path):
    """A command killed by SIGKILL (no cleanup runs) left its .OUT.tmp-* folder beside OUT forever (an export:
    12 MB); only corpus build and train swept their own. A folder of a command still running is kept."""
    import os
    import subprocess

    from nabra.io import atomic_dir

    gone = subprocess.Popen(["true"])
    gone.wait()  # a process id that no longer runs
    left = [tmp_path / f".out.tmp-{gone.pid}-ab12", tmp_path / f".out.old-{gone.pid}", tmp_path / ".out.tmp-x1y2"]
    running = tmp_path / f".out.tmp-{os.getppid()}-cd34"
    for d in (*left, running):
        d.mkdir()
        (d / "model.safetensors").write_bytes(b"half")
    with atomic_dir(tmp_path / "out") as tmp:
        (tmp / "a.json").write_text("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([running.name, "out"])


def test_sigterm_ends_a_command_as_ctrl_c_does(sample_dataset, tmp_path, monkeypatch, capsys):
    """SIGTERM (`kill`, a scheduler's time limit) ended nabra at once: no 'interrupted' line and the temporary
    output folder left behind. Now it is Ctrl-C's path: the folder removed, a line, exit 128 + 15."""
    import os
    import signal

    def caller_handler(signum, frame):  # what the old code let through to the caller (pytest would die)
        raise RuntimeError("SIGTERM reached the caller")

    previous = signal.signal(signal.SIGTERM, caller_handler)
    try:
        monkeypatch.setattr("nabra.evaluation.baselines._dump_tfidf",
                            lambda *a: os.kill(os.getpid(), signal.SIGTERM))
        assert cli("baseline", "--data", sample_dataset, "--out", tmp_path / "b") == 143
        assert signal.getsignal(signal.SIGTERM) is caller_handler  # the caller's handler is back
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert "nabra baseline: interrupted (SIGTERM)" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # neither b nor .b.tmp-*
