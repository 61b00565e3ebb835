"""Corpus builder: input formats, furniture rules, normalisation, segmentation offsets, filters,
duplicates, rejects, bad input, determinism, atomic writes, and the real seed article."""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from conftest import SAMPLE, cli, need_shared
from nabra.config import load_corpus_config
from nabra.data.clean import Cleaner
from nabra.data.corpus import build, load_corpus
from nabra.data.ingest import decode
from nabra.data.segment import Segmenter

CFG = load_corpus_config()
BODY1 = "أعلنت الوزارة عن خطة جديدة لتطوير التعليم في المدارس الحكومية. وقال الوزير إن الخطة تبدأ العام المقبل."
BODY2 = "حذرت الهيئة المخالفين من عقوبات صارمة تصل إلى السجن. وأكد المتحدث أن الحملات مستمرة في كل المناطق."


def spans(text):
    return [text[s:e] for s, e in Segmenter(CFG.abbreviations).spans(text)]


def statements(out: Path) -> pd.DataFrame:
    return load_corpus(out)[0]


# ----------------------------------------------------------------------------- formats
def test_every_input_format(tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps({"text": BODY1, "title": "t1"}, ensure_ascii=False) + "\n"
                                      + json.dumps({"content": BODY2, "url": "u2"}, ensure_ascii=False) + "\n", "utf-8")
    (tmp_path / "b.txt").write_text(BODY1 + "\nالمصدر: وكالة\n", "utf-8")
    (tmp_path / "c.html").write_text(
        "<html><head><title>خبر</title></head><body><nav>الرئيسية | أخبار | رياضة</nav><article><h1>خبر</h1>"
        f"<p>{BODY2}</p><p>{BODY1}</p></article><footer>جميع الحقوق محفوظة</footer></body></html>", "utf-8")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("2015-01-01.json", json.dumps([{"source": "x", "url": "u", "date_extracted": "d", "title": "t",
                                                    "author": "a", "content": BODY2 + " وتابع."}], ensure_ascii=False))
    (tmp_path / "d.zip").write_bytes(buf.getvalue())
    out = tmp_path / "out"
    res = build([str(tmp_path / "a.jsonl"), str(tmp_path / "b.txt"), str(tmp_path / "c.html"),
                 str(tmp_path / "*.zip")], out, CFG, progress=False)
    arts = load_corpus(out)[1]
    assert set(arts.format) == {"jsonl", "txt", "html", "saudinewsnet-zip"}
    assert res.manifest["counts"]["articles_read"] == 5
    html_body = arts[arts.format == "html"].body.iloc[0]
    assert "الرئيسية" not in html_body and "حقوق" not in html_body and "حذرت الهيئة" in html_body
    assert all(s.text_sha1 for s in statements(out).itertuples())


def test_folder_input(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.txt").write_text(BODY1, "utf-8")
    (tmp_path / "in" / "notes.md").write_text("ignored", "utf-8")
    res = build([str(tmp_path / "in")], tmp_path / "out", CFG, progress=False)
    assert res.manifest["counts"]["articles_kept"] == 1 and not res.problems


# ----------------------------------------------------------------------------- furniture
@pytest.mark.parametrize("line,rule", [
    ("المصدر: وكالة الأنباء", "furniture_line"),
    ("طباعة شارك لافروف روسيا", "furniture_line"),
    ("الوسوم: سياسة اقتصاد", "furniture_line"),
    ("كتب: محمد علي", "furniture_line"),
    ("بقلم: سارة أحمد", "furniture_line"),
    ("شارك الخبر", "furniture_line"),
    ("تابعونا على تويتر وفيسبوك", "furniture_line"),
    ("آخر تحديث: 12 مارس 2015", "furniture_line"),
    ("صورة: الوزير خلال الاجتماع", "furniture_line"),
    ("رابط الخبر بصحيفة الوئام: عنوان", "furniture_line"),
    ("https://example.org/news/1", "furniture_line"),
    ("إقرأ أيضاً:", "read_also"),
    ("مقالات مشابهة", "related_list"),
])
def test_furniture_rule(line, rule):
    c = Cleaner(CFG.furniture).clean(f"{BODY1}\n{line}\n{BODY2}")
    assert line.split()[0] not in c.body.replace(BODY1, "").replace(BODY2, "")
    assert (rule, line) in c.dropped
    assert BODY1 in c.body and BODY2 in c.body


def test_read_also_drops_its_headline_but_keeps_the_body_after_it():
    c = Cleaner(CFG.furniture).clean(f"{BODY1}\nإقرأ أيضاً:\nالوزير: الحوار أولوية والتنازل مرفوض\n{BODY2}")
    assert "الحوار أولوية" not in c.body and BODY2 in c.body


def test_related_list_drops_every_bullet_and_headline():
    text = f"{BODY1}\nمقالات مشابهة\n  • عنوان أول هنا\n  • عنوان ثان طويل قليلا هنا\nعنوان بلا نقطة"
    c = Cleaner(CFG.furniture).clean(text)
    assert c.body == BODY1


def test_sentence_starting_with_share_verb_is_kept():
    line = "شارك الوزير في افتتاح المؤتمر الدولي للطاقة المتجددة بحضور عدد من المسؤولين."
    assert line in Cleaner(CFG.furniture).clean(line).body


def test_normalisation_keeps_offsets_to_the_raw_text():
    raw = "قـــال\u00a0الوزير  \u200fإن ﻻ تراجع عن الخطة.\n"
    c = Cleaner(CFG.furniture).clean(raw)
    assert c.body == "قال الوزير إن لا تراجع عن الخطة."
    for i, ch in enumerate(c.body):
        r = raw[c.offsets[i]]
        assert r == ch or (ch == " " and r.isspace()) or r == "ﻻ"


# ----------------------------------------------------------------------------- segmentation
def test_segmentation_rules():
    assert spans("قال الوزير. وأضاف أن") == ["قال الوزير.", "وأضاف أن"]
    assert spans("انتهى الاجتماع.وبدأ المؤتمر") == ["انتهى الاجتماع.", "وبدأ المؤتمر"]  # Arabic letter after '.'
    assert spans("ارتفع 0.3 نقطة و10.000 سهم بنسبة 8.71% اليوم") == ["ارتفع 0.3 نقطة و10.000 سهم بنسبة 8.71% اليوم"]
    assert spans("قال د. محمد إن الوضع مستقر") == ["قال د. محمد إن الوضع مستقر"]  # abbreviation
    assert spans("هل انتهت الأزمة؟، سأل الصحفي") == ["هل انتهت الأزمة؟،", "سأل الصحفي"]
    assert spans("قال: \"انتهى الأمر.\" ثم غادر") == ["قال: \"انتهى الأمر.\"", "ثم غادر"]
    assert spans("سطر أول\nسطر ثان") == ["سطر أول", "سطر ثان"]


def test_offsets_point_at_the_statement(sample_corpus):
    st, arts, _ = load_corpus(sample_corpus)
    bodies = dict(zip(arts.article_id, arts.body))
    raws = dict(zip(arts.article_id, arts.raw))
    for s in st.itertuples():
        assert bodies[s.article_id][s.start:s.end] == s.text
        assert raws[s.article_id][s.raw_start:s.raw_end] == s.text  # sample has nothing to normalise


@pytest.mark.parametrize("eol", ["\r\n", "\r", "\n\r\n"])
def test_raw_offsets_survive_windows_and_old_mac_line_ends(tmp_path, eol):
    """Line ends are not rewritten before the offsets are taken: raw_start/raw_end index the text as read."""
    raw = (SAMPLE / "article.txt").read_text("utf-8").replace("\n", eol)
    (tmp_path / "crlf.txt").write_text(raw, "utf-8", newline="")
    assert cli("corpus", "build", "--input", tmp_path / "crlf.txt", "--out", tmp_path / "out") == 0
    st, arts, _ = load_corpus(tmp_path / "out")
    assert "\r" in arts.raw.iloc[0] and len(st) > 5
    for s in st.itertuples():
        assert arts.raw.iloc[0][s.raw_start:s.raw_end] == s.text
    ref = Cleaner(CFG.furniture).clean(raw.replace("\r\n", "\n").replace("\r", "\n"))
    assert Cleaner(CFG.furniture).clean(raw).body == ref.body  # the same statements as with \n alone


# ----------------------------------------------------------------------------- filters, dups, rejects
def test_filters_duplicates_and_rejects(tmp_path):
    arts = [{"text": BODY1 + "\nقصير جدا.\n" + "Latin text only here, nothing Arabic at all in it."},
            {"text": BODY1.replace("الحكومية", "الحكومية كلها")},  # near duplicate of the first statement
            {"text": BODY1},  # exact duplicates
            {"text": "   "}]
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(a, ensure_ascii=False) for a in arts), "utf-8")
    res = build([str(tmp_path / "a.jsonl")], tmp_path / "out", CFG.model_copy(update={"minhash_threshold": 0.5}),
                progress=False)
    rej = [json.loads(l) for l in (tmp_path / "out" / "rejects.jsonl").read_text("utf-8").splitlines()]
    reasons = {r["reason"] for r in rej}
    assert {"too_short", "not_arabic", "empty_article"} <= reasons
    st = statements(tmp_path / "out")
    first = st[st.text.str.startswith("أعلنت الوزارة")]
    assert first.dup_cluster.nunique() == 1 and first.is_duplicate.sum() == 2  # nothing dropped, all marked
    assert res.manifest["duplicates"]["exact_duplicate_pairs"] >= 1
    assert res.manifest["duplicates"]["near_duplicate_links"] >= 1


# ----------------------------------------------------------------------------- bad input
def test_bad_inputs_are_reported_and_the_rest_is_built(tmp_path, capsys):
    good = tmp_path / "good.txt"
    good.write_text(BODY1, "utf-8")
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 not really a zip")
    (tmp_path / "lines.jsonl").write_text(json.dumps({"text": BODY2}, ensure_ascii=False) + "\n{oops\n", "utf-8")
    (tmp_path / "win.txt").write_bytes((BODY2 + " وانتهى.").encode("cp1256"))
    (tmp_path / "bin.txt").write_bytes(b"\x00\x01\x02binary")
    (tmp_path / "x.pdf").write_bytes(b"%PDF")
    inputs = [good, tmp_path / "missing.txt", tmp_path / "broken.zip", tmp_path / "lines.jsonl",
              tmp_path / "win.txt", tmp_path / "bin.txt", tmp_path / "x.pdf"]
    code = cli("corpus", "build", "--input", *inputs, "--out", tmp_path / "out", "--no-progress")
    err = capsys.readouterr().err
    assert code == 0
    assert "missing.txt: no such file" in err
    assert "broken.zip: corrupt or unreadable zip" in err
    assert "lines.jsonl:2: invalid JSON" in err
    assert "bin.txt: binary file" in err
    assert "x.pdf: unsupported file type" in err
    man = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert man["counts"]["input_problems"] == 5
    assert man["counts"]["articles_kept"] == 3  # good.txt, lines.jsonl line 1, win.txt (Windows-1256)
    assert cli("corpus", "build", "--input", *inputs, "--out", tmp_path / "out2", "--strict", "--no-progress") == 1


@pytest.mark.parametrize("pool", [[], ["--workers", "2", "--tasks", "3"]], ids=["in-process", "pool"])
def test_an_unreadable_input_is_rejected_and_the_rest_is_built(tmp_path, monkeypatch, capsys, pool):
    """A file that cannot be opened (mode 000, as a user who is not root) was a PermissionError
    traceback; JSON too deep or with a 5000-digit number a RecursionError / ValueError one."""
    import os

    import nabra.data.ingest as ingest

    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    (inp / "good.txt").write_text(BODY1, "utf-8")
    locked = inp / "locked.txt"
    locked.write_text(BODY2, "utf-8")
    locked.chmod(0)
    if os.access(locked, os.R_OK):  # root reads it anyway: refuse it where nabra opens it
        real = open

        def fake_open(f, *a, **k):
            if Path(f) == locked:
                raise PermissionError(13, "Permission denied", str(f))
            return real(f, *a, **k)
        monkeypatch.setattr(ingest, "open", fake_open, raising=False)
    (inp / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (inp / "big.jsonl").write_text('{"text": "x", "n": ' + "1" * 5000 + "}\n")
    (inp / "not.zip").write_text("not a zip")
    code = cli("corpus", "build", "--input", inp, "--out", out, "--no-progress", *pool)
    err = capsys.readouterr().err
    assert code == 0, err
    assert f"{locked}: cannot read file (Permission denied)" in err
    assert "deep.json: invalid JSON array: nested too deeply to read" in err
    assert "big.jsonl:1: invalid JSON (Exceeds the limit (4300 digits)" in err
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text("utf-8").splitlines()]
    assert sorted(Path(r["input_file"]).name for r in rejects if r["kind"] == "input") == \
        ["big.jsonl", "deep.json", "locked.txt", "not.zip"]
    assert load_corpus(out)[2]["counts"]["articles_kept"] == 1


def test_every_input_rejected_is_one_error(tmp_path, capsys):
    (tmp_path / "not.zip").write_text("not a zip")
    (tmp_path / "bin.txt").write_bytes(b"\x00\x01binary")
    for pool in ([], ["--workers", "2", "--tasks", "2"]):
        assert cli("corpus", "build", "--input", tmp_path / "not.zip", tmp_path / "bin.txt",
                   "--out", tmp_path / "out", "--no-progress", *pool) == 2
        err = capsys.readouterr().err
        assert "nothing could be built: every input was rejected (2 input problem(s)): " in err
        assert "not.zip: corrupt or unreadable zip" in err and "bin.txt: binary file" in err
        assert not (tmp_path / "out").exists()


def test_an_output_inside_the_input_is_refused(tmp_path, capsys):
    """`--input raw --out raw/corpus`: the next build read its own rejects.jsonl and manifest.json
    as articles (133 input problems, 19 more articles on the sample)."""
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.txt").write_text(BODY1, "utf-8")
    assert cli("corpus", "build", "--input", raw, "--out", raw / "corpus", "--no-progress") == 2
    assert f"--out {raw / 'corpus'} is inside --input {raw}: a later build would read" in capsys.readouterr().err
    assert cli("corpus", "build", "--input", raw, "--out", tmp_path / "c", "--work", raw / "w", "--no-progress") == 2
    assert f"--work {raw / 'w'} is inside --input {raw}" in capsys.readouterr().err
    assert cli("corpus", "build", "--input", raw / "a.txt", "--out", raw, "--no-progress") == 2
    assert f"--input {raw / 'a.txt'} lies inside --out {raw}" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"] and [p.name for p in raw.iterdir()] == ["a.txt"]


def test_repeated_input_flags_add_up(tmp_path):
    """`--input a.txt --input b.txt` read b.txt only (argparse kept the last list)."""
    (tmp_path / "a.txt").write_text(BODY1, "utf-8")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "b.txt").write_text(BODY2, "utf-8")
    assert cli("corpus", "build", "--input", tmp_path / "a.txt", "--input", tmp_path / "d", "--out",
               tmp_path / "out", "--no-progress") == 0
    assert [Path(i["path"]).name for i in load_corpus(tmp_path / "out")[2]["inputs"]] == ["a.txt", "b.txt"]


def test_windows_1256_then_report():
    assert decode(BODY1.encode("cp1256"), "x")[0] == BODY1
    assert decode("plain english".encode("utf-16-le") + b"\xff\xfe", "x")[1] is not None


def test_a_stray_byte_in_utf8_is_named_not_read_as_windows_1256(tmp_path, capsys):
    """One bad byte used to send the whole file to the Windows-1256 fallback, which reads UTF-8 Arabic
    as mojibake that still passes the Arabic check. Now JSON Lines lose only the bad line (named), a
    text file is refused with the line named, and real Windows-1256 still decodes."""
    lines = [json.dumps({"text": BODY1}, ensure_ascii=False).encode("utf-8"),
             json.dumps({"text": "café " + BODY2}, ensure_ascii=False).encode("utf-8").replace("é".encode(), b"\xe9"),
             json.dumps({"text": BODY2}, ensure_ascii=False).encode("utf-8")]
    (tmp_path / "mixed.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    (tmp_path / "stray.txt").write_bytes(BODY1.encode("utf-8") + b"\n\xff " + BODY2.encode("utf-8"))
    code = cli("corpus", "build", "--input", tmp_path / "mixed.jsonl", tmp_path / "stray.txt",
               "--out", tmp_path / "out", "--no-progress")
    err = capsys.readouterr().err
    assert code == 0
    assert "mixed.jsonl:2: not valid UTF-8 (byte 13 of the line: invalid continuation byte); record skipped" in err
    assert "stray.txt: not valid UTF-8 at line 2 (byte" in err and "not read as Windows-1256" in err
    st, arts, _ = load_corpus(tmp_path / "out")
    assert sorted(arts.locator) == ["line 1", "line 3"]
    assert set(st.text) >= {"أعلنت الوزارة عن خطة جديدة لتطوير التعليم في المدارس الحكومية."}
    assert all("\u0600" <= c <= "\u06ff" or not c.isalpha() for t in st.text for c in t)  # no mojibake
    assert decode(BODY1.encode("cp1256") + b"\n" + BODY2.encode("cp1256"), "x")[0] == BODY1 + "\n" + BODY2


def test_nothing_built_is_an_error(tmp_path, capsys):
    assert cli("corpus", "build", "--input", tmp_path / "nope.txt", "--out", tmp_path / "out") == 2
    assert "nothing could be built" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_unknown_config_key_is_named(tmp_path, capsys):
    assert cli("corpus", "build", "--input", SAMPLE, "--out", tmp_path / "o", "--set", "min_charz=3") == 2
    assert "unknown key 'min_charz'" in capsys.readouterr().err


# ----------------------------------------------------------------------------- determinism, atomicity
def test_rebuild_is_identical(sample_corpus, tmp_path):
    build([str(SAMPLE / "articles.jsonl")], tmp_path / "again", CFG, progress=False)
    a, b = load_corpus(sample_corpus), load_corpus(tmp_path / "again")
    assert a[0].statement_id.tolist() == b[0].statement_id.tolist()
    assert a[2]["content_hash"] == b[2]["content_hash"]


def test_killed_build_leaves_no_corpus(tmp_path, monkeypatch):
    import nabra.io

    def boom(*a, **k):
        raise KeyboardInterrupt  # the process is stopped while writing OUT (the manifest is its last file)
    monkeypatch.setattr(nabra.io, "write_json", boom)
    with pytest.raises(KeyboardInterrupt):
        build([str(SAMPLE / "articles.jsonl")], tmp_path / "out", CFG, progress=False)
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.tmp-*"))


# ----------------------------------------------------------------------------- the real seed article
@pytest.mark.shared
def test_seed_article_keeps_body_and_drops_furniture(tmp_path):
    seed = need_shared("data", "seed", "article.txt")
    assert cli("corpus", "build", "--input", seed, "--out", tmp_path / "seed", "--no-progress") == 0
    texts = statements(tmp_path / "seed").text.tolist()
    joined = "\n".join(texts)
    for needle in ["محادثة هاتفية", "إسطنبول", "أعرب عن تعازيه", "معاقبتهم لا محالة", "تفادي مواجهة عسكرية مباشرة"]:
        assert needle in joined, needle
    for furniture in ["المصدر", "إقرأ أيضاً", "طباعة شارك", "مقالات مشابهة", "مهرجان العين للهجن",
                      "قوة الفضاء الأمريكية", "أوروبا تستعد للحرب", "صندوق صيانة الطرق"]:
        assert all(furniture not in t for t in texts), furniture
    # the read-also headline is dropped, its body kept
    assert not any(t.startswith("لافروف: تفادي المواجهة") for t in texts)
    assert len(texts) == 16


def test_a_damaged_corpus_table_is_named(sample_corpus, tmp_path, capsys):
    """A truncated statements.parquet gave pyarrow's ArrowInvalid traceback in every later stage."""
    import shutil

    shutil.copytree(sample_corpus, tmp_path / "corp")
    path = tmp_path / "corp" / "statements.parquet"
    path.write_bytes(path.read_bytes()[:100])
    assert cli("label", "weak", "--corpus", tmp_path / "corp", "--out", tmp_path / "weak") == 2
    err = capsys.readouterr().err
    assert f"{path}: damaged or not a Parquet file" in err and "Traceback" not in err


@pytest.mark.parametrize("override, message", [
    ("minhash_perm=0", "key 'minhash_perm': Input should be greater than or equal to 32 (got 0)"),
    ("minhash_perm=3", "key 'minhash_perm': Input should be a multiple of 32 (got 3)"),
    ("shingle_chars=0", "key 'shingle_chars': Input should be greater than or equal to 1 (got 0)"),
    ("minhash_threshold=1.5", "key 'minhash_threshold': Input should be less than or equal to 1 (got 1.5)"),
    ("min_arabic_ratio=2", "key 'min_arabic_ratio': Input should be less than or equal to 1 (got 2)"),
    ("workers=0", "key 'workers': Input should be greater than or equal to 1 (got 0)"),
    ("max_chars=0", "key 'max_chars': Input should be greater than or equal to 1 (got 0)")])
def test_dedup_settings_it_cannot_run_with_are_refused_before_any_work(tmp_path, capsys, override, message):
    """--set minhash_perm=0 (or 3) was a numpy ValueError traceback from a worker; shingle_chars=0 made every
    statement one signature, so every pair a candidate: a build of one zip ran for over 10 minutes."""
    assert cli("corpus", "build", "--input", SAMPLE / "article.txt", "--out", tmp_path / "c", "--no-progress",
               "--set", override) == 2
    assert f"nabra corpus: error: --set {override}: {message}" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # no corpus, no work folder to resume


def test_a_json_file_of_one_pretty_printed_object_is_one_article(tmp_path, capsys):
    """A .json file holding one indented object (valid JSON) was read as JSON Lines: one "invalid JSON (Extra
    data)" problem a line, and the article lost ("nothing could be built")."""
    rec = {"title": "t1", "url": "u1", "text": BODY1}
    (tmp_path / "one.json").write_text(json.dumps(rec, ensure_ascii=False, indent=2), "utf-8")
    (tmp_path / "arr.json").write_text(json.dumps([rec], ensure_ascii=False, indent=2), "utf-8")
    (tmp_path / "two.json").write_text(json.dumps(rec, ensure_ascii=False) + "\n{bad\n", "utf-8")  # JSON Lines
    for name in ("one", "arr"):
        assert cli("corpus", "build", "--input", tmp_path / f"{name}.json", "--out", tmp_path / name, "--no-progress") == 0
    one, arr = load_corpus(tmp_path / "one")[1], load_corpus(tmp_path / "arr")[1]
    assert list(one.article_id) == list(arr.article_id) and one.title[0] == "t1"
    assert cli("corpus", "build", "--input", tmp_path / "two.json", "--out", tmp_path / "two", "--no-progress") == 0
    assert "two.json:2: invalid JSON" in capsys.readouterr().err and len(load_corpus(tmp_path / "two")[1]) == 1


def test_macos_zip_metadata_is_no_input_problem(tmp_path, capsys):
    """A folder zipped on macOS carries __MACOSX/._name resource forks and .DS_Store: each was an input
    problem ("binary file (NUL bytes)"), and `--strict` failed a build whose every article was read."""
    with zipfile.ZipFile(tmp_path / "mac.zip", "w") as zf:
        zf.writestr("news/2015.json", json.dumps([{"title": "t", "url": "u", "content": BODY1}], ensure_ascii=False))
        zf.writestr("__MACOSX/news/._2015.json", b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        \x00\x02")
        zf.writestr("news/.DS_Store", b"\x00\x00\x00\x01Bud1" + b"\x00" * 64)
    assert cli("corpus", "build", "--input", tmp_path / "mac.zip", "--out", tmp_path / "c", "--no-progress",
               "--strict") == 0
    assert "binary file" not in capsys.readouterr().err
    assert load_corpus(tmp_path / "c")[2]["counts"]["articles_read"] == 1
    # the same unzipped onto a drive macOS writes resource forks to ("._name" beside each file)
    (tmp_path / "dir" / "__MACOSX").mkdir(parents=True)
    for f in ("dir/a.json", "dir/._a.json", "dir/__MACOSX/._a.json"):
        (tmp_path / f).write_bytes(zipfile.ZipFile(tmp_path / "mac.zip").read(
            "news/2015.json" if f == "dir/a.json" else "__MACOSX/news/._2015.json"))
    assert cli("corpus", "build", "--input", tmp_path / "dir", "--out", tmp_path / "d", "--no-progress",
               "--strict") == 0
    assert load_corpus(tmp_path / "d")[2]["counts"]["articles_read"] == 1


def test_an_earlier_nabra_output_inside_an_input_folder_is_skipped_and_named(sample_corpus, tmp_path, capsys):
    """A corpus kept inside the folder given to --input was read as input: its rejects.jsonl (dropped
    furniture lines, short statements) became articles of the new corpus, its manifest.json a broken record."""
    import shutil

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text(BODY1, "utf-8")
    shutil.copytree(sample_corpus, tmp_path / "in" / "old" / "corpus")
    assert cli("corpus", "build", "--input", tmp_path / "in", "--out", tmp_path / "c", "--no-progress") == 0
    err = capsys.readouterr().err
    assert f"{tmp_path / 'in' / 'old' / 'corpus'}: an output of nabra" in err and "invalid JSON" not in err
    man = load_corpus(tmp_path / "c")[2]
    assert man["counts"]["articles_read"] == 1 and len(man["problems"]) == 1


def test_zip_members_of_other_types_are_skipped_as_in_a_folder(tmp_path, capsys):
    """A README.md or a nested zip inside an article zip was read as a text article and rejected (not_arabic,
    binary file): an input problem that failed `--strict`, though a folder skips such files."""
    with zipfile.ZipFile(tmp_path / "news.zip", "w") as zf:
        zf.writestr("news/2015.json", json.dumps([{"title": "t", "url": "u", "content": BODY1}], ensure_ascii=False))
        zf.writestr("news/README.md", "SaudiNewsNet: one JSON file per day.")
        zf.writestr("news/old.zip", b"PK\x05\x06" + b"\x00" * 18)
    assert cli("corpus", "build", "--input", tmp_path / "news.zip", "--out", tmp_path / "c", "--no-progress",
               "--strict") == 0
    assert "README" not in capsys.readouterr().err
    assert load_corpus(tmp_path / "c")[2]["counts"]["articles_read"] == 1
    with zipfile.ZipFile(tmp_path / "docs.zip", "w") as zf:
        zf.writestr("README.md", "no articles here")
    assert cli("corpus", "build", "--input", tmp_path / "docs.zip", "--out", tmp_path / "d", "--no-progress",
               "--strict") != 0
    assert "docs.zip: zip holds no .jsonl/.json/.txt/.html file" in capsys.readouterr().err


def test_a_killed_build_takes_its_pool_workers_with_it(tmp_path):
    """SIGKILL/SIGTERM of a build (`kill`, the OOM killer) left its pool workers running: each finished its
    task in the background, writing into the work folder that the same command, started again, was using."""
    import contextlib
    import signal
    import subprocess
    import sys
    import time

    import psutil

    script = tmp_path / "slow_build.py"
    script.write_text(f"""
import time
from nabra.data import pipeline
real = pipeline.ArticleReader.run
def slow(self, *a, **k):  # every task takes 60 s: the workers are mid-task when the build is killed
    time.sleep(60)
    yield from real(self, *a, **k)
pipeline.ArticleReader.run = slow
if __name__ == "__main__":
    from nabra.config import load_corpus_config
    from nabra.data.corpus import build
    build([{str(SAMPLE / 'articles.jsonl')!r}], {str(tmp_path / 'out')!r}, load_corpus_config(),
          progress=False, tasks=2, workers=2)
""")
    p, kids = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path), []
    try:
        deadline = time.time() + 30
        while time.time() < deadline and len(psutil.Process(p.pid).children()) < 3:  # manager + 2 workers
            time.sleep(0.2)
        kids = psutil.Process(p.pid).children(recursive=True)
        assert len(kids) >= 3
        time.sleep(1)  # the workers are inside their tasks
        p.send_signal(signal.SIGKILL)
        p.wait()
        gone, alive = psutil.wait_procs(kids, timeout=5)
        assert not alive, f"still running after the build was killed: {[k.pid for k in alive]}"
    finally:
        p.kill()
        for k in kids:  # on failure, no worker is left running after the test
            with contextlib.suppress(psutil.NoSuchProcess):
                k.kill()
