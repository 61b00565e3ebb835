"""Reading articles from any mix of inputs: SaudiNewsNet zips, JSONL, .txt, .html, folders, globs, stdin.

Every unreadable input becomes a `Problem` naming the file (and line) instead of an exception, so
one bad file never stops the rest; callers count and report them.
"""
from __future__ import annotations

import glob as globlib
import hashlib
import json
import sys
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Union

TEXT_EXT = {".txt"}
HTML_EXT = {".html", ".htm"}
JSONL_EXT = {".jsonl", ".json", ".ndjson"}
ZIP_EXT = {".zip"}
KNOWN_EXT = TEXT_EXT | HTML_EXT | JSONL_EXT | ZIP_EXT


@dataclass
class RawArticle:
    content: str
    input_file: str
    locator: str = ""  # line number or member/index inside the file
    source: str = ""
    url: str = ""
    title: str = ""
    author: str = ""
    date: str = ""
    format: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def article_id(self) -> str:
        """Stable across runs and machines: depends on the record, not on where the file lies."""
        key = "\x1f".join([self.url, self.title, self.content])
        return "a" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:15]


@dataclass
class Problem:
    file: str
    reason: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.reason}"


Item = Union[RawArticle, Problem]


def expand_inputs(inputs: list[str]) -> tuple[list[Path], list[Problem]]:
    """Paths, folders (recursive) and globs into a sorted, de-duplicated list of files."""
    files: list[Path] = []
    problems: list[Problem] = []
    for spec in inputs:
        if spec == "-":
            files.append(Path("-"))
            continue
        p = Path(spec)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in KNOWN_EXT
                           and not _os_metadata(f.relative_to(p).as_posix()))
            outputs = _nabra_outputs({f.parent for f in found}, p)
            for d in sorted(outputs):
                problems.append(Problem(str(d), "an output of nabra (a corpus, weak labels, dataset or build work "
                                                "folder), not articles: skipped"))
            found = [f for f in found if not any(d == f.parent or d in f.parents for d in outputs)]
            if not found and not outputs:
                problems.append(Problem(spec, "folder holds no .zip/.jsonl/.json/.txt/.html file"))
            files.extend(found)
        elif p.is_file():
            files.append(p)
        elif any(c in spec for c in "*?["):
            matched = sorted(Path(m) for m in globlib.glob(spec, recursive=True) if Path(m).is_file())
            if not matched:
                problems.append(Problem(spec, "glob matched no file"))
            files.extend(matched)
        else:
            problems.append(Problem(spec, "no such file or folder"))
    seen, unique = set(), []
    for f in files:
        key = str(f.resolve()) if str(f) != "-" else "-"
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique, problems


def decode(data: bytes, name: str) -> tuple[str | None, str | None]:
    """UTF-8, else Windows-1256 (common for Arabic pages); returns (text, problem)."""
    if b"\x00" in data[:4096]:
        return None, "binary file (NUL bytes), not text"
    try:
        return _binary_check(data.decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        if _mostly_utf8(data):  # Windows-1256 would turn its Arabic into mojibake that still looks Arabic
            line = data.count(b"\n", 0, e.start) + 1
            return None, (f"not valid UTF-8 at line {line} (byte {e.start}: {e.reason}); "
                          "the rest is UTF-8, so it is not read as Windows-1256: fix or re-encode that line")
    try:
        text = data.decode("cp1256")
    except UnicodeDecodeError as e:
        return None, f"not UTF-8 and not Windows-1256 ({e.reason} at byte {e.start})"
    arabic = sum(1 for c in text if "\u0600" <= c <= "\u06ff")
    if arabic < 0.2 * max(1, sum(c.isalpha() for c in text)):
        return None, "not UTF-8; Windows-1256 decoding gives no Arabic text"
    return _binary_check(text)


_HIGH_BYTES = bytes(range(0x80, 0x100))


def _empty(data: bytes) -> str:
    # a file of spaces and newlines is not 0 bytes: "empty" sent users to check a copy that had worked
    return "empty file" if not data else f"no text (only whitespace, {len(data):,} bytes)"


def _mostly_utf8(data: bytes) -> bool:
    """UTF-8 but for a few stray bytes (at most 1 in 20 non-ASCII bytes fails). Windows-1256 Arabic
    fails at nearly every letter, as its letters are single bytes that UTF-8 reads as broken sequences."""
    high = len(data) - len(data.translate(None, _HIGH_BYTES))
    return data.decode("utf-8", "replace").count("\ufffd") <= 0.05 * high


def _lines_decode_alone(data: bytes, suffix: str, in_range: bool = False) -> bool:
    """JSON Lines (not one array: a range of a file never starts one) that are UTF-8 but for some lines."""
    return suffix in JSONL_EXT and _mostly_utf8(data) and (
        in_range or not _starts_json_array(data[:4096].decode("utf-8", "replace")))


def _read_json_lines_bytes(data: bytes, file: str, fmt: str, first_line: int = 1) -> Iterator[Item]:
    """JSON Lines whose bytes are UTF-8 but for some lines: each such line is one Problem (record
    skipped, line named), every other record is read as usual."""
    lines = data.split(b"\n")
    for lineno, line in enumerate(lines, first_line):
        try:
            line.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            yield Problem(file, f"not valid UTF-8 (byte {e.start} of the line: {e.reason}); record skipped", lineno)
            lines[lineno - first_line] = b""
    yield from _read_json_text(b"\n".join(lines).decode("utf-8-sig"), file, fmt, first_line)


# Text has next to no control, unassigned or private-use characters; binary data decoded as
# Windows-1256 (which maps nearly every byte) has about one in eight.
_NOT_TEXT = {"Cc", "Cn", "Co", "Cs"}
_TEXT_CONTROLS = set("\n\r\t\f\v")
MAX_NOT_TEXT_SHARE = 0.02


def _binary_check(text: str) -> tuple[str | None, str | None]:
    sample = text[:20000]
    bad = sum(1 for c in sample if c not in _TEXT_CONTROLS and (c == "\ufffd" or unicodedata.category(c) in _NOT_TEXT))
    if sample and bad / len(sample) > MAX_NOT_TEXT_SHARE:
        return None, f"binary data, not text ({bad / len(sample):.0%} control or unassigned characters)"
    return text, None


def _from_record(rec: dict, file: str, locator: str, fmt: str) -> Item:
    if not isinstance(rec, dict):
        return Problem(file, f"record {locator} is not a JSON object", None)
    content = rec.get("text", rec.get("content"))
    if not isinstance(content, str):
        return Problem(file, f"record {locator} has no 'text' or 'content' string")
    try:  # JSON may escape a lone surrogate (\ud800), which no UTF-8 text can hold
        "".join(v for v in rec.values() if isinstance(v, str)).encode("utf-8")
    except UnicodeEncodeError as e:
        return Problem(file, f"record {locator} holds an unpaired surrogate ({e.object[e.start:e.end]!r}), not text")
    known = {"text", "content", "source", "url", "title", "author", "date", "date_extracted"}
    return RawArticle(
        content=content, input_file=file, locator=locator, format=fmt,
        source=str(rec.get("source") or Path(file).stem), url=str(rec.get("url") or ""),
        title=str(rec.get("title") or ""), author=str(rec.get("author") or ""),
        date=str(rec.get("date") or rec.get("date_extracted") or ""),
        extra={k: v for k, v in rec.items() if k not in known and isinstance(v, (str, int, float, bool))},
    )


def _starts_json_array(head: str) -> bool:
    """Whether JSON text starts with "[" (one array, SaudiNewsNet's layout) rather than a record a line:
    the one test for the reader and for is_json_lines, so that both read a file the same way."""
    return head.lstrip("\ufeff \t\r\n").startswith("[")


def _read_json_text(text: str, file: str, fmt: str, first_line: int = 1) -> Iterator[Item]:
    if first_line == 1 and _starts_json_array(text):  # a range after the first is never an array's start
        try:
            records = json.loads(text)
        except json.JSONDecodeError as e:
            yield Problem(file, f"invalid JSON array: {e.msg}", e.lineno)
            return
        except (ValueError, RecursionError) as e:  # a number over 4300 digits; arrays nested too deep
            yield Problem(file, f"invalid JSON array: {_json_limit(e)}")
            return
        for i, rec in enumerate(records):
            yield _from_record(rec, file, f"#{i}", fmt)
        return
    if first_line == 1 and file.lower().endswith(".json"):
        # one pretty-printed object (a .json file of one article): valid JSON, which the JSON Lines read
        # rejected line by line ("invalid JSON (Extra data)") and lost
        try:
            rec = json.loads(text)
        except (ValueError, RecursionError):  # JSON Lines after all: read a line at a time below
            rec = None
        if isinstance(rec, dict):
            item = _from_record(rec, file, "line 1", fmt)
            if isinstance(item, Problem):
                item.line = 1
            yield item
            return
    # JSON Lines end at "\n" only: str.splitlines() also breaks at U+2028, U+0085 and others, which a
    # JSON string may hold unescaped (a record cut in two); a "\r" before the "\n" is JSON whitespace
    for lineno, line in enumerate(text.split("\n"), first_line):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            yield Problem(file, f"invalid JSON ({e.msg})", lineno)
            continue
        except (ValueError, RecursionError) as e:
            yield Problem(file, f"invalid JSON ({_json_limit(e)})", lineno)
            continue
        item = _from_record(rec, file, f"line {lineno}", fmt)
        if isinstance(item, Problem):
            item.line = lineno
        yield item


def _json_limit(e: Exception) -> str:
    """What Python's json refused in valid-looking JSON (not a JSONDecodeError)."""
    if isinstance(e, RecursionError):
        return "nested too deeply to read"
    return str(e).split(";")[0]  # "Exceeds the limit (4300 digits) for integer string conversion: ..."


def is_json_lines(path: Path) -> bool:
    """A .jsonl/.json/.ndjson file that is not one JSON array: records one per line, so that it can be
    read in byte ranges cut at line starts (read_file's `span`)."""
    if path.suffix.lower() not in JSONL_EXT:
        return False
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 16):  # to the first character that is not JSON whitespace
            head = chunk.decode("utf-8", "replace")
            if head.lstrip("\ufeff \t\r\n"):
                return not _starts_json_array(head)
    return True


def _read_zip(path: Path) -> Iterator[Item]:
    try:
        zf = zipfile.ZipFile(path)
        # ZipInfo, not names: a zip may hold two entries of one name, and reading by name gives the last twice
        files = [i for i in zf.infolist() if not i.is_dir() and not _os_metadata(i.filename)]
    except (zipfile.BadZipFile, OSError) as e:
        yield Problem(str(path), f"corrupt or unreadable zip ({e})")
        return
    if not files:
        yield Problem(str(path), "zip holds no file")
        return
    # as in a folder, only the article types are read: a README.md or a nested zip was read as a text
    # article and rejected (not_arabic), an input problem that failed a --strict build
    members = [i for i in files if Path(i.filename).suffix.lower() in KNOWN_EXT - ZIP_EXT]
    if not members:
        yield Problem(str(path), "zip holds no .jsonl/.json/.txt/.html file")
        return
    counts: dict[str, int] = {}
    for info in sorted(members, key=lambda i: i.filename):
        m = info.filename
        counts[m] = counts.get(m, 0) + 1
        name = f"{path}!{m}" + (f" (entry {counts[m]})" if counts[m] > 1 else "")
        try:
            data = zf.read(info)
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, NotImplementedError) as e:
            # damaged member data (zlib: "invalid distance too far back", CRC): this member only
            yield Problem(name, f"corrupt zip member, skipped ({type(e).__name__}: {e})")
            continue
        if not data.strip():
            yield Problem(name, _empty(data))  # as for a file on disk
            continue
        suffix = Path(m).suffix.lower()
        text, err = decode(data, name)
        if err and _lines_decode_alone(data, suffix):
            yield from _read_json_lines_bytes(data, name, "saudinewsnet-zip")
            continue
        if err:
            yield Problem(name, err)
            continue
        if suffix in JSONL_EXT:
            yield from _read_json_text(text, name, "saudinewsnet-zip")
        elif suffix in HTML_EXT:
            yield _from_html(text, name)
        else:  # .txt
            yield RawArticle(content=text, input_file=name, format="txt", source=Path(m).stem)


def _nabra_outputs(folders: set[Path], top: Path) -> set[Path]:
    """The folders among `folders` (and above them, up to the input folder `top`) that nabra wrote: an
    earlier corpus kept inside an input folder had its rejects.jsonl (dropped lines, short statements) read
    as articles, its manifest.json as a broken one. Known by a manifest that records nabra's version, or by
    a build's work record."""
    out, seen = set(), set()
    for d in folders:
        for f in (d, *d.parents):
            if f in seen or (f != top and top not in f.parents):
                break
            seen.add(f)
            for name in ("manifest.json", "weak_manifest.json", "job.json"):
                try:
                    if (f / name).is_file() and _made_by_nabra(json.loads((f / name).read_text(encoding="utf-8"))):
                        out.add(f)
                except (OSError, ValueError, RecursionError):
                    pass
    return out


def _made_by_nabra(rec) -> bool:
    return isinstance(rec, dict) and (isinstance(rec.get("versions"), dict) and "nabra" in rec["versions"]
                                      or "part_format" in rec)  # a manifest's provenance; a work folder's job.json


def _os_metadata(name: str) -> bool:
    """What macOS's "Compress" adds to a zip beside the files (__MACOSX/ resource forks "._x.json",
    .DS_Store): no article, yet each was an input problem ("binary file"), failing a --strict build."""
    parts = name.split("/")
    return parts[0] == "__MACOSX" or parts[-1] == ".DS_Store" or parts[-1].startswith("._")


def _from_html(html: str, file: str) -> Item:
    # trafilatura: maintained main-text extraction (drops menus, share bars, related links).
    import trafilatura

    text = trafilatura.extract(html, include_comments=False, include_tables=False,
                               include_links=False, favor_precision=True, deduplicate=False)
    if not text or not text.strip():
        return Problem(file, "no main text found in HTML page")
    meta = trafilatura.extract_metadata(html)
    return RawArticle(content=text, input_file=file, format="html", source=Path(file).stem,
                      title=(meta.title or "") if meta else "", url=(meta.url or "") if meta else "",
                      author=(meta.author or "") if meta else "", date=(meta.date or "") if meta else "")


def read_file(path: Path, span: tuple[int, int, int] | None = None) -> Iterator[Item]:
    """_read_file, where an error no check foresaw (a library's, on one odd file) becomes a Problem for
    that file too: one input must never stop the corpus build or `nabra predict` over all the others.
    Articles of the file read before the error stay."""
    try:
        yield from _read_file(path, span)
    except MemoryError:
        raise
    except Exception as e:
        where = f" (bytes {span[0]}-{span[1]})" if span else ""
        yield Problem(str(path), f"cannot read the rest of the file{where}: {type(e).__name__}: {e}")


def _read_file(path: Path, span: tuple[int, int, int] | None = None) -> Iterator[Item]:
    """Yields the articles of one input file, or Problems naming what is wrong with it. `span`
    (start byte, end byte, number of the line at start) reads only that part of a JSON Lines file,
    cut at line starts (nabra.data.pipeline.plan_units): records, locators and line numbers are
    those of a whole-file read."""
    name = str(path)
    if name == "-":  # bytes, through the same decoding as a file (sys.stdin's own decoding made surrogates)
        stream = getattr(sys.stdin, "buffer", None)  # a text stream without bytes (a notebook's) is read as text
        text, err = decode(stream.read() if stream else sys.stdin.read().encode("utf-8", "surrogateescape"), "<stdin>")
        if err:
            yield Problem("<stdin>", err)
        elif text.strip():
            yield RawArticle(content=text, input_file="<stdin>", format="txt", source="stdin")
        else:
            yield Problem("<stdin>", "empty input")
        return
    suffix = path.suffix.lower()
    if suffix in ZIP_EXT:
        yield from _read_zip(path)
        return
    if suffix not in KNOWN_EXT:
        yield Problem(name, f"unsupported file type '{suffix or '(none)'}' (use .zip, .jsonl, .json, .txt, .html)")
        return
    try:
        if span:
            with open(path, "rb") as fh:
                fh.seek(span[0])
                data = fh.read(span[1] - span[0])
        else:
            data = path.read_bytes()
    except OSError as e:
        yield Problem(name, f"cannot read file ({e.strerror})")
        return
    if not data.strip():
        if not span:  # a blank range of a larger file is no problem
            yield Problem(name, _empty(data))
        return
    text, err = decode(data, name)
    first_line = span[2] if span else 1
    if err and _lines_decode_alone(data, suffix, bool(span)):
        yield from _read_json_lines_bytes(data, name, "jsonl", first_line)  # only the bad lines are lost
        return
    if err:
        yield Problem(name, err + (f" (bytes {span[0]}-{span[1]})" if span else ""))
        return
    if suffix in JSONL_EXT:
        yield from _read_json_text(text, name, "jsonl", first_line)
    elif suffix in HTML_EXT:
        yield _from_html(text, name)
    else:
        yield RawArticle(content=text, input_file=name, format="txt", source=path.stem)


def read_inputs(inputs: list[str]) -> Iterator[Item]:
    files, problems = expand_inputs(inputs)
    yield from problems
    for f in files:
        yield from read_file(f)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


__all__ = ["RawArticle", "Problem", "read_inputs", "expand_inputs", "read_file", "is_json_lines", "decode", "file_sha256"]
