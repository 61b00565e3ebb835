"""`nabra data fetch saudinewsnet`: checked against the committed sha256 list; offline it says what to do."""
from __future__ import annotations

from conftest import cli, need_shared
from nabra.data import fetch


def test_manifest_lists_the_16_zips():
    m = fetch.manifest()
    assert len(m) == 16 and all(n.startswith("2015-") and n.endswith(".zip") and len(h) == 64 for n, h in m.items())


def test_fetch_from_a_local_copy_checks_every_file(tmp_path, capsys):
    src = need_shared("data", "saudinewsnet")
    out = tmp_path / "snn"
    assert cli("data", "fetch", "saudinewsnet", "--from", src, "--out", out) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(fetch.manifest())
    assert cli("data", "fetch", "saudinewsnet", "--from", src, "--out", out) == 0
    assert "all 16 files already in" in capsys.readouterr().out


def test_a_file_that_does_not_match_its_sha256_is_not_written(tmp_path, capsys):
    src = tmp_path / "copy"
    src.mkdir()
    for name in fetch.manifest():
        (src / name).write_bytes(b"not the published zip")
    out = tmp_path / "snn"
    assert cli("data", "fetch", "saudinewsnet", "--from", src, "--out", out) == 2
    err = capsys.readouterr().err
    first = sorted(fetch.manifest())[0]
    assert f"{src / first}: sha256 " in err and "does not match the committed" in err
    assert f"replace {src / first} with the published file from {fetch.BROWSE_URL}" in err
    assert not out.exists()  # no partial file, nor the empty folder, left behind


def test_a_local_copy_missing_files_names_them(tmp_path, capsys):
    (tmp_path / "copy").mkdir()
    assert cli("data", "fetch", "saudinewsnet", "--from", tmp_path / "copy", "--out", tmp_path / "snn") == 2
    err = capsys.readouterr().err
    assert "lacks 16 of the 16 SaudiNewsNet files: 2015-07-21.zip" in err


def test_offline_says_what_to_download_and_where(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(fetch, "RAW_URL", "http://127.0.0.1:9/{name}")  # nothing listens there
    out = tmp_path / "snn"
    assert cli("data", "fetch", "saudinewsnet", "--out", out, "--timeout", "5") == 2
    err = capsys.readouterr().err
    assert f"Download these 16 file(s) from {fetch.BROWSE_URL}" in err and f"put them in {out}/" in err
    assert "--from THAT_FOLDER" in err and "Traceback" not in err
    assert not out.exists()


def test_a_failed_fetch_leaves_nothing_new_but_the_files_it_checked(tmp_path, monkeypatch, capsys):
    """A failed fetch left an empty --out folder (and the folders above it that it made)."""
    import hashlib

    src = tmp_path / "copy"
    src.mkdir()
    (src / "a.zip").write_bytes(b"a")
    (src / "b.zip").write_bytes(b"damaged")
    monkeypatch.setattr(fetch, "manifest", lambda: {"a.zip": hashlib.sha256(b"a").hexdigest(),
                                                    "b.zip": hashlib.sha256(b"b").hexdigest()})
    out = tmp_path / "new" / "snn"
    (src / "a.zip").rename(src / "a.later")  # a.zip damaged too: the first file fails, nothing stays
    (src / "a.zip").write_bytes(b"wrong")
    assert cli("data", "fetch", "saudinewsnet", "--from", src, "--out", out) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy"]
    (src / "a.later").replace(src / "a.zip")  # a.zip checks out, b.zip does not: a.zip stays
    assert cli("data", "fetch", "saudinewsnet", "--from", src, "--out", out) == 2
    assert sorted(p.name for p in out.iterdir()) == ["a.zip"]
    mine = tmp_path / "mine"  # a folder that was there before stays, empty or not
    mine.mkdir()
    assert cli("data", "fetch", "saudinewsnet", "--from", src, "--out", mine) == 2
    assert mine.is_dir()
    assert "Traceback" not in capsys.readouterr().err


def test_a_timeout_of_zero_or_less_is_refused_by_the_flag(tmp_path, monkeypatch, capsys):
    """--timeout -1 reached urllib: a ValueError traceback ("Timeout value out of range") once the host
    resolved; --timeout 0 made a non-blocking socket, reported as "cannot download SaudiNewsNet"."""
    import pytest

    def no_network(*a, **kw):  # the flag must stop the command before any download is tried
        raise AssertionError("urlopen called")

    monkeypatch.setattr(fetch.urllib.request, "urlopen", no_network)
    for bad in ("-1", "0", "nan"):
        with pytest.raises(SystemExit) as e:
            cli("data", "fetch", "saudinewsnet", "--out", tmp_path / "snn", "--timeout", bad)
        assert e.value.code == 2 and "--timeout" in capsys.readouterr().err
    assert not (tmp_path / "snn").exists()


def test_an_out_below_a_file_is_named_not_a_traceback(tmp_path, capsys):
    """`--out afile/sub` (a file where a parent folder should be) was a NotADirectoryError traceback."""
    (tmp_path / "afile").write_text("x")
    assert cli("data", "fetch", "saudinewsnet", "--from", tmp_path, "--out", tmp_path / "afile" / "sub") == 2
    assert f"--out {tmp_path / 'afile' / 'sub'}: cannot make the folder (Not a directory)" in capsys.readouterr().err
