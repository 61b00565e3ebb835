"""Damaged and odd inputs: each gets a message naming the file and why, the good input beside it is kept,
and nothing ends in a traceback (issue 11, part 3)."""
from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
import zipfile
import zlib

import pandas as pd
import pytest

from conftest import REPO_ROOT, SAMPLE, cli
from nabra.data.corpus import load_corpus

BODY = ("أكد وزير الخارجية في مؤتمر صحفي عقده اليوم أن المملكة تدعم كل الجهود الرامية إلى إحلال السلام في "
        "المنطقة رقم {i}. وأضاف الوزير أن المباحثات مع الجانب الآخر كانت بناءة ومثمرة في الجولة {i}.")


def _records(tag: str, n: int = 30) -> bytes:
    recs = [{"source": "test", "url": f"http://x/{tag}/{i}", "title": f"{tag} {i}", "content": BODY.format(i=i)}
            for i in range(n)]
    return json.dumps(recs, ensure_ascii=False).encode("utf-8")


def damaged_zip(path) -> None:
    """A zip whose directory reads but whose member a.json has damaged deflate data (zlib.error)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a.json", _records("a"))
        z.writestr("b.json", _records("b"))
    raw = bytearray(buf.getvalue())
    info = zipfile.ZipFile(io.BytesIO(bytes(raw))).getinfo("a.json")
    start = info.header_offset + 30 + len(info.filename)
    for k in range(8):
        raw[start + 40 + k] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(zlib.error):  # the case of the issue: "invalid distance too far back" and kin
        zipfile.ZipFile(path).read("a.json")


def test_damaged_zip_member_is_rejected_by_name_and_the_rest_built(tmp_path, capsys):
    damaged_zip(tmp_path / "day.zip")
    assert cli("corpus", "build", "--input", tmp_path / "day.zip", "--out", tmp_path / "c", "--no-progress") == 0
    err = capsys.readouterr().err
    assert "day.zip!a.json: corrupt zip member" in err
    st, ar, man = load_corpus(tmp_path / "c")
    assert len(ar) == 30 and set(ar.title.str.split().str[0]) == {"b"}
    rejects = [json.loads(l) for l in (tmp_path / "c/rejects.jsonl").read_text(encoding="utf-8").splitlines()]
    assert any(r["kind"] == "input" and r["input_file"].endswith("day.zip!a.json") for r in rejects)


def test_empty_zip_and_empty_member_are_reported_like_empty_files(tmp_path, capsys):
    """They were skipped without a word, where an empty file on disk is an input problem."""
    zipfile.ZipFile(tmp_path / "none.zip", "w").close()
    with zipfile.ZipFile(tmp_path / "day.zip", "w") as z:
        z.writestr("2015-01-01.json", " \n")
        z.writestr("2015-01-02.json", _records("b"))
    assert cli("corpus", "build", "--input", tmp_path / "none.zip", tmp_path / "day.zip", "--out", tmp_path / "c",
               "--no-progress") == 0
    err = capsys.readouterr().err
    # the member holds a space and a newline: not called empty, as a 0-byte file is
    assert "none.zip: zip holds no file" in err and "day.zip!2015-01-01.json: no text (only whitespace, 2 bytes)" in err
    rejects = [json.loads(l) for l in (tmp_path / "c/rejects.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sum(r["kind"] == "input" for r in rejects) == 2
    assert len(load_corpus(tmp_path / "c")[1]) == 30


def test_damaged_zip_member_in_predict_keeps_the_good_member(sample_run, tmp_path, capsys):
    damaged_zip(tmp_path / "day.zip")
    assert cli("predict", sample_run, tmp_path / "day.zip", "--format", "jsonl") == 0
    out, err = capsys.readouterr()
    rows = [json.loads(l) for l in out.splitlines()]
    assert len(rows) == 60 and {r["input_file"] for r in rows} == {f"{tmp_path / 'day.zip'}!b.json"}
    assert "day.zip!a.json: corrupt zip member" in err
    assert cli("predict", sample_run, tmp_path / "day.zip", "--format", "jsonl", "--strict") == 1


def test_binary_file_without_nul_bytes_is_not_text(tmp_path, capsys):
    rnd = random.Random(0)
    (tmp_path / "blob.txt").write_bytes(bytes(rnd.randrange(1, 256) for _ in range(6000)))
    (tmp_path / "good.txt").write_text(BODY.format(i=1), encoding="utf-8")
    assert cli("corpus", "build", "--input", tmp_path / "blob.txt", tmp_path / "good.txt", "--out", tmp_path / "c",
               "--no-progress") == 0
    assert "blob.txt: binary data, not text" in capsys.readouterr().err
    st, ar, _ = load_corpus(tmp_path / "c")
    assert list(ar.input_file) == [str(tmp_path / "good.txt")] and len(st) == 2


def test_all_english_input_names_the_file_and_why(sample_run, tmp_path, capsys):
    f = tmp_path / "english.txt"
    f.write_text("The minister said on Monday that talks were constructive. Both sides will meet again next week.",
                 encoding="utf-8")
    assert cli("corpus", "build", "--input", f, "--out", tmp_path / "c", "--no-progress") == 2
    err = capsys.readouterr().err
    assert f"{f}: all 2 sentence(s) rejected: 2 not Arabic" in err and "Traceback" not in err
    assert not (tmp_path / "c").exists()
    assert cli("predict", sample_run, f) == 1
    assert f"{f}: no Arabic statement found (all 2 sentence(s) rejected: 2 not Arabic" in capsys.readouterr().err


def test_html_menus_and_copyright_inside_p_are_furniture(tmp_path):
    page = tmp_path / "page.html"
    page.write_text(
        "<html><head><title>خبر</title></head><body><p>الرئيسية | محليات | اقتصاد | رياضة | اتصل بنا</p><article>"
        f"<p>{BODY.format(i=1)}</p></article><p>جميع الحقوق محفوظة لصحيفة الخبر 2015</p></body></html>",
        encoding="utf-8")
    assert cli("corpus", "build", "--input", page, "--out", tmp_path / "c", "--no-progress") == 0
    st, _, _ = load_corpus(tmp_path / "c")
    assert len(st) == 2 and not st.text.str.contains("الرئيسية|الحقوق").any()
    rejects = (tmp_path / "c/rejects.jsonl").read_text(encoding="utf-8")
    assert "الرئيسية | محليات" in rejects and "جميع الحقوق محفوظة" in rejects


def test_peak_memory_is_the_largest_process_not_the_sum(tmp_path):
    """The manifest's peak is the largest process's (what `/usr/bin/time -v` reports), not a sum over
    the builder and its workers, which share pages (540 MB reported where 296 MB was measured)."""
    out = tmp_path / "c"
    assert cli("corpus", "build", "--input", SAMPLE / "articles.jsonl", "--out", out, "--no-progress",
               "--workers", "2", "--tasks", "2") == 0
    t = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["timing"]
    stages = t["peak_rss_mb_by_stage"]
    assert t["peak_rss_mb"] == max(stages.values()) < sum(stages.values())


def test_unknown_override_names_the_override(tmp_path, capsys):
    assert cli("corpus", "build", "--input", SAMPLE / "articles.jsonl", "--out", tmp_path / "c",
               "--set", "no.such.key=1") == 2
    err = capsys.readouterr().err
    assert "--set no.such.key=1: unknown key 'no.such.key'" in err and "corpus.yaml" not in err


@pytest.mark.parametrize("how, message", [
    ("config", "bad.yaml: key 'furniture.drop_line.1': Value error, not a regular expression (missing ), unterminated"),
    ("set", "--set 'furniture.bullet=[': the value is not valid YAML"),
    ("bytes", "bad.yaml: not UTF-8 text (invalid start byte at byte 0)"),
])
def test_bad_corpus_config_names_the_key_before_any_work(tmp_path, capsys, how, message):
    """A pattern that does not compile failed inside a pipeline task (traceback, work folder left);
    an override that is not YAML and a config that is not text raised from the YAML reader."""
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"\xff\xfe" if how == "bytes" else 'furniture:\n  drop_line: ["ok", "(unclosed"]\n'.encode())
    args = ["--set", "furniture.bullet=["] if how == "set" else ["--config", bad]
    assert cli("corpus", "build", "--input", SAMPLE / "article.txt", "--out", tmp_path / "c", *args) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [bad]  # no output, no work folder


def test_failed_train_leaves_no_output_folder(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli("train", "--config", REPO_ROOT / "configs/train/tiny.yaml", "--data", tmp_path / "nodata",
               "--out", out) == 2
    assert "not a dataset" in capsys.readouterr().err
    assert not out.exists()


# ----------------------------------------------------------------------------- predict
def test_predict_strict_and_input_file_in_jsonl(sample_run, tmp_path, capsys):
    art = SAMPLE / "article.txt"
    assert cli("predict", sample_run, art, tmp_path / "missing.txt", "--format", "jsonl") == 0
    rows = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert rows and all(r["input_file"] == str(art) for r in rows)
    assert cli("predict", sample_run, art, tmp_path / "missing.txt", "--strict") == 1
    assert "missing.txt: no such file or folder" in capsys.readouterr().err


def test_identical_zip_members_give_no_duplicate_statement_ids(sample_run, tmp_path, capsys):
    import warnings

    z = tmp_path / "dup.zip"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name: that is the point
        with zipfile.ZipFile(z, "w") as zf:
            zf.writestr("a.json", _records("a", 3))
            zf.writestr("copy.json", _records("a", 3))
            zf.writestr("a.json", _records("a", 3))
    assert cli("predict", sample_run, z, "--format", "jsonl") == 0
    out, err = capsys.readouterr()
    ids = [json.loads(l)["statement_id"] for l in out.splitlines()]
    assert len(ids) == 6 and len(set(ids)) == len(ids)
    assert "the same article as" in err


def test_predict_options_are_checked_before_the_model_loads(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:  # argparse's own exit, with the option named
        cli("predict", tmp_path / "no-model", SAMPLE / "article.txt", "--batch-size", "0")
    assert e.value.code == 2 and "--batch-size: must be >= 1, got 0" in capsys.readouterr().err
    assert cli("predict", tmp_path / "no-model", tmp_path / "none.txt") == 2
    assert "no input to label: " in capsys.readouterr().err


def test_predict_into_a_closed_pipe_exits_quietly(sample_run):
    """`nabra predict ... | head -1`: the reader leaves early; no BrokenPipeError traceback."""
    code = "import sys; from nabra.cli.main import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-c", code, "predict", str(sample_run), str(SAMPLE / "articles.jsonl"),
                             "--format", "jsonl"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "NABRA_VERBOSE": ""})
    proc.stdout.readline()
    proc.stdout.close()  # what `head -1` does after its line
    err = proc.stderr.read().decode("utf-8", "replace")
    assert proc.wait(timeout=300) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err


# ----------------------------------------------------------------------------- annotate import
def _csv_rows(sample_corpus, n=3) -> list[dict]:
    st = pd.read_parquet(sample_corpus / "statements.parquet").head(n)
    return [{"statement_id": s, "text": t, "stance": "neutral", "sentiment": "neutral"}
            for s, t in zip(st.statement_id, st.text)]


def _write_csv(path, rows, encoding):
    import csv

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    path.write_bytes(buf.getvalue().encode(encoding))


@pytest.mark.parametrize("encoding", ["utf-8-sig", "cp1256"])
def test_annotate_import_reads_bom_and_windows_1256_csv(sample_corpus, tmp_path, capsys, encoding):
    rows = _csv_rows(sample_corpus)
    _write_csv(tmp_path / "batch.csv", rows, encoding)
    out = tmp_path / "gold_new.jsonl"
    assert cli("annotate", "import", tmp_path / "batch.csv", "--corpus", sample_corpus, "--out", out) == 0, \
        capsys.readouterr().err
    recs = [json.loads(l) for l in out.read_text(encoding="utf-8").splitlines()]
    assert sorted(r["statement_id"] for r in recs) == sorted(r["statement_id"] for r in rows)


def test_annotate_import_bad_pass_is_a_message_and_good_records_stay(sample_corpus, tmp_path, capsys):
    rows = _csv_rows(sample_corpus)
    items = [{**r, "pass": p} for r, p in zip(rows, ["abc", 2, "final"])]
    (tmp_path / "batch.json").write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    out = tmp_path / "gold_new.jsonl"
    assert cli("annotate", "import", tmp_path / "batch.json", "--corpus", sample_corpus, "--out", out) == 1
    err = capsys.readouterr().err
    assert f"({rows[0]['statement_id']}): pass must be 1, 2 or \"final\", got 'abc'" in err
    recs = [json.loads(l) for l in out.read_text(encoding="utf-8").splitlines()]
    assert sorted(str(r["pass"]) for r in recs) == ["2", "final"]
    with pytest.raises(SystemExit) as e:
        cli("annotate", "import", tmp_path / "batch.json", "--corpus", sample_corpus, "--out", out, "--pass", "x")
    assert e.value.code == 2 and "argument --pass: invalid choice: 'x'" in capsys.readouterr().err
    # --out = the file imported: it was replaced by the records (the readers' export gone)
    before = (tmp_path / "batch.json").read_bytes()
    assert cli("annotate", "import", tmp_path / "batch.json", "--corpus", sample_corpus, "--out", tmp_path / "batch.json") == 2
    assert "is the file being imported" in capsys.readouterr().err
    assert (tmp_path / "batch.json").read_bytes() == before


def test_annotate_export_takes_plain_ids_and_names_a_bad_json_line(sample_corpus, tmp_path, capsys):
    import pandas as pd

    ids = pd.read_parquet(sample_corpus / "statements.parquet").statement_id[:3].tolist()
    (tmp_path / "ids.txt").write_text("\n".join(ids) + "\n", encoding="utf-8")
    assert cli("annotate", "export", "--corpus", sample_corpus, "--ids", tmp_path / "ids.txt",
               "--out", tmp_path / "batch.json") == 0
    assert len(json.loads((tmp_path / "batch.json").read_text(encoding="utf-8"))) == 3
    (tmp_path / "bad.jsonl").write_text('{"statement_id": "%s"}\n{"statement_id": \n' % ids[0], encoding="utf-8")
    assert cli("annotate", "export", "--corpus", sample_corpus, "--ids", tmp_path / "bad.jsonl",
               "--out", tmp_path / "b2.json") == 2
    err = capsys.readouterr().err
    assert "bad.jsonl line 2: invalid JSON" in err and "Traceback" not in err


def test_annotate_export_names_a_non_utf8_file_reports_unknown_ids_and_mixed_passes(sample_corpus, tmp_path, capsys):
    """Were: a UnicodeDecodeError traceback, ids not in the corpus dropped without a word, and a
    KeyError when only some records carry a pass."""
    import pandas as pd

    ids = pd.read_parquet(sample_corpus / "statements.parquet").statement_id[:3].tolist()
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe" + ids[0].encode())
    assert cli("annotate", "export", "--corpus", sample_corpus, "--ids", tmp_path / "bin.txt",
               "--out", tmp_path / "b.json") == 2
    assert "bin.txt: not UTF-8 text (invalid start byte at byte 0)" in capsys.readouterr().err
    (tmp_path / "ids.txt").write_text(f"{ids[0]}\nNOPE-000\n", encoding="utf-8")
    assert cli("annotate", "export", "--corpus", sample_corpus, "--ids", tmp_path / "ids.txt",
               "--out", tmp_path / "b.json") == 0
    assert "1 id(s) not in the corpus, not exported" in capsys.readouterr().err
    assert (tmp_path / "b.rejects.txt").read_text(encoding="utf-8").startswith("NOPE-000: not in the corpus")
    recs = [{"statement_id": ids[0], "pass": 1}, {"statement_id": ids[1]}, {"statement_id": ids[2], "pass": 2}]
    (tmp_path / "mixed.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    assert cli("annotate", "export", "--corpus", sample_corpus, "--ids", tmp_path / "mixed.jsonl",
               "--out", tmp_path / "m.json", "--pass", "1") == 0
    assert [t["data"]["statement_id"] for t in json.loads((tmp_path / "m.json").read_text(encoding="utf-8"))] == [ids[0]]


@pytest.mark.parametrize("content, message", [
    (b"5\n", "gold.jsonl:1: not a JSON object"),
    (b'{"statement_id": ["x"]}\n', "gold.jsonl:1: statement_id must be a string, got ['x']"),
    (b"\xff\n", "gold.jsonl: not UTF-8 text"),
])
def test_malformed_annotation_records_name_the_line(tmp_path, capsys, content, message):
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / "gold.jsonl").write_bytes(content)
    assert cli("label", "agreement", "--annotations", tmp_path / "ann") == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_label_studio_tasks_of_the_wrong_shape_are_rejected_by_task(sample_corpus, tmp_path, capsys):
    rows = _csv_rows(sample_corpus)
    good = {"data": {"statement_id": rows[0]["statement_id"]},
            "annotations": [{"completed_by": "r1", "result": [
                {"from_name": "stance", "value": {"choices": rows[0]["stance"]}},  # a bare string, not a list
                {"from_name": "sentiment", "value": {"choices": [rows[0]["sentiment"]]}}]}]}
    sid = rows[1]["statement_id"]
    two = {"data": {"statement_id": sid}, "annotations": [dict(good["annotations"][0]), dict(good["annotations"][0], completed_by="r2")]}
    tasks = [{"data": 5}, {"statement_id": ["x"]}, good, {"data": {"statement_id": sid}, "annotations": ["r"]},
             {"data": {"statement_id": sid}, "annotations": [{"result": ["neutral"]}]}, two,
             {"statement_id": sid, "text": 123}, {"statement_id": sid, "stance": ["neutral"]}]
    (tmp_path / "ls.json").write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")
    out = tmp_path / "gold_new.jsonl"
    assert cli("annotate", "import", tmp_path / "ls.json", "--corpus", sample_corpus, "--out", out) == 1
    err = capsys.readouterr().err
    assert "task #0: its 'data' is not a JSON object" in err and "unknown statement id ['x']" in err
    assert f"task #3 ({sid}): its 'annotations' is not a list of objects" in err
    assert "its annotation's 'result' is not a list of objects" in err
    assert "2 annotations (readers r1, r2); export one reader at a time" in err
    assert "text must be text, got 123" in err and "stance must be text, got ['neutral']" in err
    assert "Traceback" not in err
    (rec,) = [json.loads(l) for l in out.read_text(encoding="utf-8").splitlines()]
    assert (rec["stance"], rec["sentiment"]) == (rows[0]["stance"], rows[0]["sentiment"])


def test_export_checks_its_report_and_out_before_loading(sample_run, tmp_path, capsys):
    """A bad --report gave a JSONDecodeError or KeyError traceback (after writing half the export), and
    --out set to the model folder a shutil.SameFileError."""
    (tmp_path / "bad.json").write_text("x", encoding="utf-8")
    (tmp_path / "partial.json").write_text('{"tasks": {"stance": {}}, "split": "dev"}', encoding="utf-8")
    for rep, message in (("bad.json", "not a JSON report"), ("partial.json", "lacks n_statements"),
                         ("none.json", "no such file")):
        assert cli("export", "--model", sample_run, "--out", tmp_path / "x", "--format", "hf",
                   "--report", tmp_path / rep) == 2
        assert message in capsys.readouterr().err
    assert cli("export", "--model", sample_run, "--out", sample_run / "model", "--format", "hf") == 2
    assert "is the model folder itself" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_pretrain_refuses_fine_tuning_settings_it_would_not_apply(sample_corpus, tmp_path, capsys):
    assert cli("pretrain", "--config", REPO_ROOT / "configs/pretrain/tiny.yaml", "--corpus", sample_corpus,
               "--out", tmp_path / "mlm", "--set", "model.freeze_layers=2", "--set", "model.input_prefix=q") == 2
    assert "does not use model.input_prefix, model.freeze_layers" in capsys.readouterr().err


def test_freeze_without_gold_is_refused(sample_corpus, tmp_path, capsys):
    """--freeze with weak labels alone wrote no split ids and said nothing."""
    assert cli("label", "weak", "--corpus", sample_corpus, "--out", tmp_path / "weak") == 0
    assert cli("dataset", "build", "--corpus", sample_corpus, "--weak", tmp_path / "weak", "--freeze",
               "--splits", tmp_path / "splits", "--out", tmp_path / "ds") == 2
    assert "--freeze writes the split ids of gold annotations" in capsys.readouterr().err
    assert not (tmp_path / "splits").exists() and not (tmp_path / "ds").exists()


def test_predict_reads_windows_1256_stdin_and_names_a_surrogate_record(sample_run, tmp_path, capsys, monkeypatch):
    """stdin was decoded by Python's own reader (surrogates for a non-UTF-8 byte) and a JSON record with
    an escaped lone surrogate passed; both ended in a UnicodeEncodeError traceback."""
    import sys

    text = (SAMPLE / "article.txt").read_text(encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode("cp1256")), errors="surrogateescape"))
    assert cli("predict", sample_run, "-", "--format", "jsonl") == 0
    rows = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert len(rows) == 6 and all(text[r["start"]:r["end"]] == r["text"] for r in rows)
    (tmp_path / "sur.jsonl").write_text('{"text": "\\ud800 ' + text.splitlines()[0] + '"}\n', encoding="utf-8")
    assert cli("predict", sample_run, tmp_path / "sur.jsonl", SAMPLE / "article.txt", "--format", "jsonl") == 0
    captured = capsys.readouterr()
    assert "sur.jsonl:1: record line 1 holds an unpaired surrogate" in captured.err
    assert len(captured.out.splitlines()) == 6


def test_label_report_refuses_a_weak_labelled_dataset(sample_corpus, sample_dataset, capsys):
    """It scored the labeller against its own labels: macro-F1 1.0 'on gold dev'."""
    assert cli("label", "report", "--corpus", sample_corpus, "--dataset", sample_dataset) == 2
    assert "its labels are weak, not gold" in capsys.readouterr().err


def test_agreement_without_double_readings_or_with_one_label(sample_gold_records, tmp_path, capsys):
    """No statement read twice gave a TypeError traceback; one label everywhere wrote NaN into --json."""
    from nabra.data.annotate import write_records

    r = {**sample_gold_records[0], "stance": "neutral", "sentiment": "neutral", "annotator": "a", "pass": 1}
    (tmp_path / "one").mkdir()
    write_records([r], tmp_path / "one" / "gold.jsonl")
    assert cli("label", "agreement", "--annotations", tmp_path / "one") == 0
    assert "no statement was read twice" in capsys.readouterr().out
    (tmp_path / "two").mkdir()
    write_records([r, {**r, "annotator": "b", "pass": 2}], tmp_path / "two" / "gold.jsonl")
    assert cli("label", "agreement", "--annotations", tmp_path / "two", "--json") == 0
    ag = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert ag["stance"]["kappa"] is None and ag["stance"]["observed_agreement"] == 1.0


def test_demo_never_deletes_a_folder_it_did_not_write_and_wants_positive_epochs(tmp_path, capsys):
    """`--out` was removed whatever it held (`nabra demo --out ~`); `--epochs -1` trained 0 steps and
    reported success, `nan` crashed, and `--epochs 0` silently meant 60 with --tiny."""
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("x")
    assert cli("demo", "--tiny", "--out", tmp_path / "mine") == 2
    assert "is not a `nabra demo` folder" in capsys.readouterr().err
    assert (tmp_path / "mine" / "thesis.tex").exists()
    for bad in ("-1", "0", "nan"):
        with pytest.raises(SystemExit) as e:
            cli("demo", "--tiny", "--epochs", bad, "--out", tmp_path / "d")
        assert e.value.code == 2 and "must be a finite number > 0" in capsys.readouterr().err


def test_benchmark_files_and_mismatched_models_are_named(sample_run, sample_dataset, tmp_path, capsys):
    """A damaged benchmark CSV gave a pandas traceback; a model whose labels are not the dataset's a
    ValueError from the metrics; --bootstrap -5 a numpy one."""
    import shutil

    from nabra.config import ConfigError
    from nabra.evaluation.benchmarks import read_table

    (tmp_path / "q.csv").write_text('text,stance\n"unterminated,Favor\n', encoding="utf-8")
    (tmp_path / "w.csv").write_bytes("text,stance\nنص,Favor\n".encode("cp1256"))
    for f in ("q.csv", "w.csv"):
        with pytest.raises(ConfigError, match=f"{f}: not a readable csv file"):
            read_table(tmp_path / f, "csv")
    ds = tmp_path / "ds"
    shutil.copytree(sample_dataset, ds)
    man = json.loads((ds / "manifest.json").read_text())
    man["tasks"]["stance"] = [l.capitalize() for l in man["tasks"]["stance"]]
    (ds / "manifest.json").write_text(json.dumps(man))
    for split in ("train", "dev", "test"):
        df = pd.read_parquet(ds / f"{split}.parquet")
        df["stance"] = df.stance.str.capitalize()
        df.to_parquet(ds / f"{split}.parquet", index=False)
    assert cli("evaluate", "--model", sample_run, "--data", ds, "--split", "test", "--no-baselines",
               "--out", tmp_path / "r") == 2
    assert "its labels do not match the dataset's: stance: model" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli("evaluate", "--model", sample_run, "--data", ds, "--bootstrap", "-5", "--out", tmp_path / "r")
    assert "must be >= 1" in capsys.readouterr().err


def test_a_damaged_manifest_or_plan_is_named(sample_dataset, tmp_path, capsys):
    import shutil

    ds = tmp_path / "ds"
    shutil.copytree(sample_dataset, ds)
    (ds / "manifest.json").write_text('{"tasks": ', encoding="utf-8")
    assert cli("train", "--config", REPO_ROOT / "configs/train/tiny.yaml", "--data", ds, "--out", tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert f"{ds / 'manifest.json'}: damaged JSON" in err and "Traceback" not in err


def test_compare_names_a_run_without_a_head_and_fetch_a_file_as_out(sample_run, sample_dataset, tmp_path, capsys):
    import shutil

    one = tmp_path / "stance_only"
    shutil.copytree(sample_run / "model", one)
    cfg = json.loads((one / "config.json").read_text())
    cfg["tasks"] = {"stance": cfg["tasks"]["stance"]}
    cfg["task_order"] = ["stance"]
    (one / "config.json").write_text(json.dumps(cfg))
    assert cli("evaluate", "compare", "--reference", sample_run, "--candidate", one, "--data", sample_dataset,
               "--out", tmp_path / "cmp") == 2
    assert f"{one}: no head for sentiment of the dataset" in capsys.readouterr().err
    (tmp_path / "afile").write_text("x")
    assert cli("data", "fetch", "saudinewsnet", "--out", tmp_path / "afile", "--from", tmp_path) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_sample_exclude_reads_id_lists_in_a_folder(sample_corpus, tmp_path, capsys):
    """A folder of one-id-a-line files (data/splits) excluded nothing: only *.jsonl was read there."""
    import pandas as pd

    st = pd.read_parquet(sample_corpus / "statements.parquet")
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "test_ids.txt").write_text("\n".join(st.statement_id) + "\n", encoding="utf-8")
    assert cli("annotate", "sample", "--corpus", sample_corpus, "--seed", "3", "--exclude", tmp_path / "splits",
               "--out", tmp_path / "s.jsonl") == 0
    assert f"excluding {len(st)} annotated statements" in capsys.readouterr().out
    assert (tmp_path / "s.jsonl").read_text(encoding="utf-8").strip() == ""


@pytest.mark.parametrize("setting, message", [
    ("training.grad_accum=0", "key 'training.grad_accum': Input should be greater than or equal to 1"),
    ("training.batch_size=0", "key 'training.batch_size'"),
    ("training.learning_rate=-1", "key 'training.learning_rate': Input should be greater than 0"),
    ("training.warmup=-1", "key 'training.warmup'"),
    ("data.max_train_samples=-5", "key 'data.max_train_samples'"),
    ("data.max_train_samples=0", "key 'data.max_train_samples'"),
    ("model.dropout=2", "key 'model.dropout'"),
    ("data.tasks=[]", "key 'data.tasks'"),
    ("data.tasks=[stance, stance]", "data.tasks: each task once"),
])
def test_training_numbers_out_of_range_are_refused_by_key(sample_dataset, tmp_path, capsys, setting, message):
    """They loaded, then failed deep in transformers (ZeroDivisionError, ValueError) or did the wrong thing
    in silence (a negative cap dropped rows from the end, 0 meant no cap)."""
    assert cli("train", "--config", REPO_ROOT / "configs/train/tiny.yaml", "--data", sample_dataset,
               "--out", tmp_path / "r", "--set", setting) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_shipped_configs_are_found_by_name_from_any_folder(sample_dataset, tmp_path, monkeypatch):
    """Installed, `--config configs/train/tiny.yaml` (the README's) named no file outside the checkout."""
    from nabra.config import load_pretrain_config, load_train_config

    monkeypatch.chdir(tmp_path)
    for name in ("configs/train/tiny.yaml", "train/tiny.yaml", "tiny"):
        assert load_train_config(name).model.tiny is not None
    assert load_pretrain_config("configs/pretrain/tiny.yaml").max_statements == 60000


def test_installed_nabra_never_writes_into_its_package_and_finds_shared_beside_the_work(sample_corpus, tmp_path,
                                                                                        monkeypatch, capsys):
    """Installed (no checkout around the package), --card wrote a top-level `data` package into
    site-packages, --freeze overwrote the shipped splits, and ../shared meant site-packages' parent."""
    import nabra.config as config

    monkeypatch.setattr(config, "in_checkout", lambda: False)
    monkeypatch.delenv("NABRA_SHARED", raising=False)
    for extra, message in ((["--freeze"], "give --splits DIR to freeze splits"), (["--card"], "--card rewrites the checkout")):
        assert cli("dataset", "build", "--corpus", sample_corpus, "--annotations", tmp_path, "--out", tmp_path / "ds",
                   *extra) == 2
        assert message in capsys.readouterr().err
    (tmp_path / "shared").mkdir()
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    assert config.shared_dir() == tmp_path / "shared"


def test_out_never_replaces_a_folder_it_did_not_write(sample_corpus, tmp_path, capsys):
    """`--out` naming the input folder, a folder holding the input or a file: atomic_dir replaced it
    whole (articles and a user's notes gone, rc 0). Now refused, nothing written; a rebuild into the
    command's own earlier output still replaces it."""
    import shutil

    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(SAMPLE / "articles.jsonl", raw)
    (raw / "notes.md").write_text("mine", encoding="utf-8")
    assert cli("corpus", "build", "--input", raw, "--out", raw, "--no-progress") == 2
    assert f"--out {raw} is inside --input {raw}" in capsys.readouterr().err
    assert sorted(p.name for p in raw.iterdir()) == ["articles.jsonl", "notes.md"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.md").write_text("mine", encoding="utf-8")
    assert cli("corpus", "build", "--input", raw / "articles.jsonl", "--out", mine, "--no-progress") == 2
    assert "holds notes.md, which this command does not write: not replaced" in capsys.readouterr().err
    assert sorted(p.name for p in mine.iterdir()) == ["notes.md"]
    assert cli("corpus", "build", "--input", raw / "articles.jsonl", "--out", tmp_path, "--no-progress") == 2
    assert (raw / "notes.md").exists()
    copy = tmp_path / "corpus"
    shutil.copytree(sample_corpus, copy)
    assert cli("label", "weak", "--corpus", copy, "--out", copy) == 2  # would replace the corpus with weak labels
    assert (copy / "statements.parquet").exists()
    (tmp_path / "afile").write_text("x")
    assert cli("corpus", "build", "--input", raw / "articles.jsonl", "--out", tmp_path / "afile", "--no-progress") == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    for _ in range(2):  # its own output: replaced
        assert cli("corpus", "build", "--input", raw / "articles.jsonl", "--out", tmp_path / "c", "--no-progress") == 0


def test_predict_out_never_overwrites_an_input_or_the_model(sample_run, tmp_path, capsys):
    """`predict --out` naming an input file replaced the article with its labels; inside the model
    folder (--out MODEL/config.json) it broke the model."""
    art = tmp_path / "a.txt"
    art.write_text((SAMPLE / "article.txt").read_text(encoding="utf-8"), encoding="utf-8")
    before = art.read_bytes()
    assert cli("predict", sample_run, art, "--out", art) == 2
    assert "is an input or inside the model folder" in capsys.readouterr().err
    assert art.read_bytes() == before
    cfg = sample_run / "model" / "config.json"
    kept = cfg.read_bytes()
    assert cli("predict", sample_run, art, "--out", cfg) == 2
    assert cfg.read_bytes() == kept


def test_a_damaged_parquet_file_is_named_by_every_reader(sample_corpus, sample_dataset, tmp_path, monkeypatch,
                                                          capsys):
    """A truncated table (a copy cut short, a full disk) gave pyarrow's ArrowInvalid traceback."""
    import shutil

    ds, weak = tmp_path / "ds", tmp_path / "weak"
    shutil.copytree(sample_dataset, ds)
    for split in ("train", "dev"):
        (ds / f"{split}.parquet").write_bytes((sample_dataset / f"{split}.parquet").read_bytes()[:100])
    assert cli("label", "weak", "--corpus", sample_corpus, "--out", weak) == 0
    (weak / "weak_labels.parquet").write_bytes((weak / "weak_labels.parquet").read_bytes()[:100])
    capsys.readouterr()
    runs = [(["dataset", "build", "--corpus", sample_corpus, "--weak", weak, "--out", tmp_path / "d"], weak / "weak_labels.parquet"),
            (["evaluate", "--model", tmp_path / "m", "--data", ds, "--out", tmp_path / "r"], ds / "dev.parquet"),
            (["baseline", "--data", ds, "--out", tmp_path / "b"], ds / "train.parquet"),
            (["train", "--config", "tiny", "--data", ds, "--out", tmp_path / "run"], ds / "train.parquet")]
    for args, bad in runs:
        assert cli(*args) == 2, args
        err = capsys.readouterr().err
        assert f"{bad}: damaged or not a Parquet file (Parquet magic bytes not found" in err, err
        assert "build it again with the nabra command that made it" in err and "Traceback" not in err
    from nabra.errors import UserError
    from nabra.io import read_parquet

    def refused(*a, **kw):  # pyarrow's own PermissionError names no file
        raise PermissionError(13, "Failed to open local file. Detail: [errno 13] Permission denied")

    monkeypatch.setattr(pd, "read_parquet", refused)
    with pytest.raises(UserError, match="dev.parquet: permission denied: nabra may not read it"):
        read_parquet(ds / "dev.parquet")


@pytest.mark.parametrize("code, cause", [(13, "permission denied"), (28, "no space left on device"),
                                         (30, "read-only file system"), (122, "disk quota exceeded")])
def test_a_write_refused_by_the_system_is_one_line_naming_the_path(sample_corpus, tmp_path, monkeypatch, capsys,
                                                                    code, cause):
    """A read-only or full output folder (PermissionError, ENOSPC, EROFS, EDQUOT) gave a traceback."""
    import errno
    import tempfile

    assert errno.errorcode[code]  # the codes of Linux, where nabra runs
    ids = tmp_path / "ids.txt"
    ids.write_text(pd.read_parquet(sample_corpus / "statements.parquet").statement_id[0] + "\n", encoding="utf-8")
    out = tmp_path / "out"
    real = tempfile.mkstemp

    def refused(*a, dir=None, **kw):  # what the system answers when the folder cannot take the file
        raise OSError(code, os.strerror(code), str(dir))

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    assert cli("annotate", "export", "--corpus", sample_corpus, "--ids", ids, "--out", out / "batch.json") == 2
    err = capsys.readouterr().err
    assert err == f"nabra annotate: error: {out}: {cause}\n"
    monkeypatch.setattr("nabra.data.annotate.export_tasks",  # a folder refusing its entry: mkdtemp's temp name
                        lambda *a: (_ for _ in ()).throw(OSError(code, os.strerror(code), str(out / ".batch.tmp-x1"))))
    monkeypatch.setattr(tempfile, "mkstemp", real)
    assert cli("annotate", "export", "--corpus", sample_corpus, "--ids", ids, "--out", out / "batch.json") == 2
    assert capsys.readouterr().err == f"nabra annotate: error: {out}: {cause}\n"
    monkeypatch.setattr(tempfile, "mkstemp", real)
    # an OSError of another kind is a bug: it keeps its traceback
    monkeypatch.setattr("nabra.data.annotate.export_tasks", lambda *a: (_ for _ in ()).throw(OSError(errno.EBADF, "x")))
    with pytest.raises(OSError):
        cli("annotate", "export", "--corpus", sample_corpus, "--ids", ids, "--out", out / "batch.json")


def test_a_read_only_output_folder_is_named(sample_corpus, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("the folder stays writable (running as root): the monkeypatched test covers it")
        assert cli("label", "weak", "--corpus", sample_corpus, "--out", ro / "weak") == 2
        err = capsys.readouterr().err
        assert err.startswith(f"nabra label: error: {ro}") and "permission denied" in err and "Traceback" not in err
    finally:
        ro.chmod(0o755)


def test_ctrl_c_prints_one_line_and_exits_130(sample_corpus, tmp_path, monkeypatch, capsys):
    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr("nabra.data.weak.run", interrupted)
    assert cli("label", "weak", "--corpus", sample_corpus, "--out", tmp_path / "weak") == 130
    assert capsys.readouterr().err == "nabra label: interrupted\n"


def test_annotate_export_to_a_csv_path_writes_each_format_to_its_own_file(sample_corpus, tmp_path, capsys):
    """--out X.csv wrote the JSON into X.csv, then the CSV over it: one file, said twice."""
    import csv

    ids = pd.read_parquet(sample_corpus / "statements.parquet").statement_id[:3].tolist()
    (tmp_path / "ids.txt").write_text("\n".join(ids) + "\n", encoding="utf-8")
    assert cli("annotate", "export", "--corpus", sample_corpus, "--ids", tmp_path / "ids.txt",
               "--out", tmp_path / "batch.csv") == 0
    assert f"-> {tmp_path / 'batch.json'} and {tmp_path / 'batch.csv'}" in capsys.readouterr().out
    assert [t["data"]["statement_id"] for t in json.loads((tmp_path / "batch.json").read_text(encoding="utf-8"))] == ids
    with open(tmp_path / "batch.csv", encoding="utf-8") as fh:
        assert [r["statement_id"] for r in csv.DictReader(fh)] == ids


def test_sample_exclude_repeated_keeps_every_list(sample_corpus, tmp_path, capsys):
    """`--exclude A --exclude B` kept only B (argparse's store); `--exclude A B` still works."""
    st = pd.read_parquet(sample_corpus / "statements.parquet")
    (tmp_path / "a.txt").write_text("\n".join(st.statement_id[:3]) + "\n", encoding="utf-8")
    (tmp_path / "b.txt").write_text("\n".join(st.statement_id[10:12]) + "\n", encoding="utf-8")
    base = ["annotate", "sample", "--corpus", sample_corpus, "--random", "5", "--per-class", "0", "--out", tmp_path / "s.jsonl"]
    for extra in (["--exclude", tmp_path / "a.txt", "--exclude", tmp_path / "b.txt"],
                  ["--exclude", tmp_path / "a.txt", tmp_path / "b.txt"]):
        assert cli(*base, *extra) == 0
        assert "excluding 5 annotated statements" in capsys.readouterr().out


def test_dataset_build_refuses_weak_labels_of_another_corpus(sample_corpus, sample_dataset, tmp_path, capsys):
    """--weak of another corpus joined on the statement ids the two share and dropped the rest without a
    word (here: "dataset written", 0 statements in every split); a missing --weak folder was named bare."""
    weak = sample_dataset.parent / "weak"
    other = tmp_path / "other"
    assert cli("corpus", "build", "--input", SAMPLE / "article.txt", "--out", other, "--no-progress") == 0
    capsys.readouterr()
    assert cli("dataset", "build", "--corpus", other, "--weak", weak, "--out", tmp_path / "ds") == 2
    err = capsys.readouterr().err
    assert f"--weak {weak}: labels another corpus" in err and f"nabra label weak --corpus {other}" in err
    assert not (tmp_path / "ds").exists()
    assert cli("dataset", "build", "--corpus", other, "--weak", tmp_path / "nope", "--out", tmp_path / "ds") == 2
    assert f"--weak {tmp_path / 'nope'}: not a weak labels folder (no weak_labels.parquet)" in capsys.readouterr().err
    assert cli("dataset", "build", "--corpus", sample_corpus, "--weak", weak, "--out", tmp_path / "ds") == 0


@pytest.mark.parametrize("cmd, flag, bad", [
    ("annotate sample", "--random", "-5"), ("annotate sample", "--per-class", "-3"),
    ("annotate sample", "--neutral-flagged", "-1"), ("annotate sample", "--double", "nan"),
    ("annotate sample", "--double", "1.5"), ("annotate suggest", "--enrich", "3"),
    ("dataset build", "--weak-threshold", "5"), ("dataset build", "--weak-threshold", "nan")])
def test_counts_and_shares_out_of_range_are_refused_by_the_flag(sample_corpus, tmp_path, capsys, cmd, flag, bad):
    """--random -5 drew no random slice, --double 2 or nan and --weak-threshold 5 or nan were taken as they
    came (an empty weak_train, no second readings), all with exit code 0 and not a word."""
    rest = {"annotate sample": ["--out", tmp_path / "s.jsonl"],
            "annotate suggest": ["--model", tmp_path / "m", "--n", "5", "--out", tmp_path / "a.json"],
            "dataset build": ["--weak", tmp_path / "w", "--out", tmp_path / "d"]}[cmd]
    with pytest.raises(SystemExit) as e:
        cli(*cmd.split(), "--corpus", sample_corpus, flag, bad, *rest)
    assert e.value.code == 2 and f"argument {flag}: must be" in capsys.readouterr().err


@pytest.mark.parametrize("top", ["0", "-1"])
def test_audit_sheet_top_below_one_is_refused_by_the_flag(sample_corpus, tmp_path, capsys, top):
    """--top 0 or -1 wrote an empty re-read sheet ("0 statement/task rows to re-read") and exit code 0."""
    with pytest.raises(SystemExit) as e:
        cli("label", "audit-sheet", "--suspects", tmp_path / "suspects.csv", "--corpus", sample_corpus,
            "--top", top, "--out", tmp_path / "sheet.csv")
    assert e.value.code == 2 and "argument --top: must be >= 1" in capsys.readouterr().err


def test_label_report_help_names_both_refused_test_splits(capsys):
    """--help offered test-v2 among the choices and said only "the test split is refused"; test-v2 is too."""
    with pytest.raises(SystemExit):
        cli("label", "report", "--help")
    assert "test and test-v2 are refused" in " ".join(capsys.readouterr().out.split())


def test_predict_reads_the_readmes_data_sample_article_from_any_folder(sample_run, tmp_path, monkeypatch, capsys):
    """README step 5, `nabra predict models/tiny data/sample/article.txt`, run outside the checkout (or after
    `pip install .`): 'no input to label: data/sample/article.txt: no such file or folder'. It reads the shipped
    copy now, as data/annotations and data/splits are read; a path that is not shipped is still named."""
    monkeypatch.chdir(tmp_path)
    assert cli("predict", sample_run, "data/sample/article.txt", "--format", "jsonl", "--out", "p.jsonl") == 0
    text = (SAMPLE / "article.txt").read_text(encoding="utf-8")
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text(encoding="utf-8").splitlines()]
    assert rows and all(text[r["start"]:r["end"]] == r["text"] for r in rows)
    capsys.readouterr()
    assert cli("predict", sample_run, "data/sample/nosuch.txt") == 2
    assert "data/sample/nosuch.txt: no such file or folder" in capsys.readouterr().err


@pytest.mark.parametrize("args, flag", [
    (["predict", "--model", "m", "--corpus", "c", "--n", "0"], "--n"),  # ZeroDivisionError
    (["predict", "--model", "m", "--corpus", "c", "--threads", "0"], "--threads"),  # torch's RuntimeError
    (["predict", "--model", "m", "--corpus", "c", "--repeat", "0"], "--repeat"),  # ran one pass, recorded 0
    (["train", "--corpus", "c", "--steps", "0"], "--steps"),  # ran the default 50
    (["encoder", "--encoder", "e", "--corpus", "c", "--n", "-1"], "--n"),
    (["corpus", "--input", "i", "--sizes", "abc"], "--sizes"),  # ValueError traceback
    (["corpus", "--input", "i", "--sizes", "0"], "--sizes"),  # 'corpus build failed' RuntimeError traceback
    (["corpus", "--input", "i", "--workers", "0"], "--workers")])
def test_bench_counts_below_one_are_refused_by_the_flag(capsys, args, flag):
    with pytest.raises(SystemExit) as e:
        cli("bench", *args)
    assert e.value.code == 2 and f"argument {flag}:" in capsys.readouterr().err


def test_bench_corpus_sizes_above_the_input_files_are_refused(capsys):
    """`--sizes 16` on fewer files built them all and printed the figures as '16 files'."""
    assert cli("bench", "corpus", "--input", SAMPLE / "article.txt", "--sizes", "1", "4") == 2
    assert "--sizes 4: the inputs hold 1 file(s)" in capsys.readouterr().err


def test_baseline_help_names_both_refused_test_splits(capsys):
    """--tune-split's help said "test is refused"; test-v2 is refused too (as label report's help now says)."""
    with pytest.raises(SystemExit):
        cli("baseline", "--help")
    assert "test and test-v2 are refused" in " ".join(capsys.readouterr().out.split())


def test_a_dataset_given_as_corpus_a_missing_dataset_and_a_folder_as_bin_are_named(sample_dataset, sample_run, tmp_path, capsys):
    """A dataset folder given as --corpus was named by a bare path ('ds/statements.parquet'); `export --data nothere`
    said the dataset 'has no test split'; `encoder import --bin FOLDER` said 'no such file'."""
    assert cli("label", "weak", "--corpus", sample_dataset, "--out", tmp_path / "w") == 2
    assert f"{sample_dataset}: no statements.parquet, not a corpus folder" in capsys.readouterr().err
    assert cli("export", "--model", sample_run, "--out", tmp_path / "e", "--data", tmp_path / "nothere") == 2
    assert f"{tmp_path / 'nothere'}: no such dataset folder" in capsys.readouterr().err
    assert cli("encoder", "import", "--bin", tmp_path, "--out", tmp_path / "enc") == 2
    assert f"{tmp_path}: a folder; --bin takes the model file itself" in capsys.readouterr().err


# ----------------------------------------------------------------------------- session 30: predict and bench
def test_predict_rows_name_the_record_their_offsets_index(sample_run, tmp_path, capsys):
    """A JSON array or JSONL file holds many articles, and start/end index one record's text field; the rows
    named only the file, so a user could not tell which record to slice. Now a locator column names it."""
    texts = [BODY.format(i=i) for i in range(3)]
    recs = [{"url": f"http://x/{i}", "text": t} for i, t in enumerate(texts)]
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in recs), "utf-8")
    (tmp_path / "b.json").write_text(json.dumps(recs[::-1], ensure_ascii=False), "utf-8")
    assert cli("predict", sample_run, tmp_path / "a.jsonl", "--format", "jsonl") == 0
    rows = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert {r["locator"] for r in rows} == {"line 1", "line 2", "line 3"}
    assert all(texts[int(r["locator"].split()[1]) - 1][r["start"]:r["end"]] == r["text"] for r in rows)
    assert cli("predict", sample_run, tmp_path / "b.json", "--format", "csv", "--out", tmp_path / "p.csv") == 0
    df = pd.read_csv(tmp_path / "p.csv")
    assert list(df.columns[:2]) == ["input_file", "locator"] and set(df.locator) == {"#0", "#1", "#2"}
    assert all(recs[::-1][int(r.locator[1:])]["text"][r.start:r.end] == r.text for r in df.itertuples())
    assert cli("predict", sample_run, tmp_path / "b.json") == 0
    assert f"# {tmp_path / 'b.json'} #1  (article " in capsys.readouterr().out


def test_python_api_refuses_a_string_for_a_list(sample_run):
    """clf.predict("one statement") labelled each character as a statement, with no error."""
    from nabra import StanceClassifier

    clf = StanceClassifier.from_pretrained(sample_run)
    with pytest.raises(TypeError, match=r"predict\(\[text\]\)"):
        clf.predict(BODY.format(i=1))
    with pytest.raises(TypeError, match="got a NoneType"):
        clf.predict(["نص", None])
    with pytest.raises(TypeError, match=r"got a list; for several texts use predict\(texts\)"):
        clf.predict_article([BODY.format(i=1)])
    assert len(clf.predict([BODY.format(i=1)])) == 1


def test_missing_int8_onnx_names_the_export_format_that_writes_it(sample_run, capsys):
    """The hint for a missing model.int8.onnx was `--format onnx`, which writes only model.onnx."""
    assert cli("predict", sample_run, SAMPLE / "article.txt", "--backend", "onnx", "--onnx-file", "model.int8.onnx") == 2
    assert "no model.int8.onnx (run `nabra export --format onnx-int8` first)" in capsys.readouterr().err


def test_bench_inputs_and_json_are_checked_before_measuring(sample_corpus, tmp_path, capsys):
    """--json in a missing folder failed after the whole benchmark; a missing --input was a RuntimeError
    traceback from the child build; --encoder with a wrong path went to the hub (OSError traceback); a
    folder that is not a corpus was named by a bare 'X/statements.parquet'."""
    assert cli("bench", "corpus", "--input", SAMPLE / "article.txt", "--json", tmp_path / "no" / "t.json") == 2
    assert f"--json {tmp_path / 'no' / 't.json'}: folder {tmp_path / 'no'} does not exist" in capsys.readouterr().err
    assert cli("bench", "corpus", "--input", tmp_path / "missing.txt") == 2
    assert f"--input: {tmp_path / 'missing.txt'}: no such file or folder" in capsys.readouterr().err
    assert cli("bench", "corpus", "--input", SAMPLE / "article.txt", tmp_path / "missing.txt") == 2
    assert "missing.txt: no such file or folder" in capsys.readouterr().err
    assert cli("bench", "encoder", "--encoder", tmp_path / "nothere", "--corpus", sample_corpus) == 2
    assert f"--encoder {tmp_path / 'nothere'}: no such folder" in capsys.readouterr().err
    assert cli("bench", "predict", "--model", tmp_path, "--corpus", tmp_path) == 2
    assert f"--corpus {tmp_path}: no statements.parquet, not a corpus folder" in capsys.readouterr().err
    (tmp_path / "afile").write_text("x")
    assert cli("bench", "corpus", "--input", SAMPLE / "article.txt", "--out", tmp_path / "afile") == 2
    assert "the corpus build being measured failed (its error is above)" in capsys.readouterr().err


def test_bench_removes_its_temp_folders(tmp_path, monkeypatch, capsys):
    """Every `nabra bench` run left its temp folder in /tmp: the corpus it built, or for predict/encoder the
    exported models (285 MB for e5-small a run)."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert cli("bench", "corpus", "--input", SAMPLE / "article.txt") == 0
    assert "content_hash" in capsys.readouterr().out
    assert not list(tmp_path.glob("nabra-bench-*"))
