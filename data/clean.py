"""Cleaning: drop page furniture line by line, normalise Unicode, and keep the map back to the raw text.

The body is the kept lines, each normalised and stripped, joined by "\n". `offsets[i]` is the
index in the raw text of body character i, so any span of the body maps back to the raw text.
No library removes Arabic news-site furniture (trafilatura does it for HTML, not for text that
was already extracted), so these rules are ours; their patterns live in configs/corpus.yaml.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from nabra.config import FurnitureRules

TATWEEL = "\u0640"
# Zero-width and direction marks carry no text: dropped.
_DROP = {"\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u202a", "\u202b", "\u202c",
         "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069", "\ufeff", "\u00ad", TATWEEL}
_SPACES = {"\u00a0", "\u1680", "\u2000", "\u2001", "\u2002", "\u2003", "\u2004", "\u2005", "\u2006",
           "\u2007", "\u2008", "\u2009", "\u200a", "\u202f", "\u205f", "\u3000", "\t", "\r", "\x0b", "\x0c"}
_FINAL_PUNCT = tuple(".!?؟…»\"”:")


def _norm_char(ch: str) -> str:
    if ch in _DROP:
        return ""
    if ch in _SPACES:
        return " "
    o = ord(ch)
    # Arabic presentation forms (ligatures, contextual shapes) back to base letters.
    if 0xFB50 <= o <= 0xFDFF or 0xFE70 <= o <= 0xFEFF or 0xFF01 <= o <= 0xFF5E:
        return unicodedata.normalize("NFKC", ch)
    return ch


# Any character _norm_char changes: a line without one and without a double space inside is normal
# once stripped of its end spaces (most lines: the fast path below skips the per-character loop).
_LINE_END = re.compile(r"(\r\n|\r|\n)")  # captured: split() keeps each line's end, for the offsets
_SPECIAL = re.compile("[" + "".join(sorted(_DROP | _SPACES)) + "\uFB50-\uFDFF\uFE70-\uFEFF\uFF01-\uFF5E]")


def normalize_line(raw: str, base: int) -> tuple[str, Sequence[int]]:
    """Normalise one line; returns text and, per output char, its index in the raw document (a range
    where the line maps one to one: no list of ints per character to build)."""
    core = raw.strip(" ")
    if "  " not in core and not _SPECIAL.search(core):
        lead = base + len(raw) - len(raw.lstrip(" "))
        return core, range(lead, lead + len(core))
    return normalize_chars(raw, base) if len(raw) < _ARRAY_MIN else _normalize_array(raw, base)


def normalize_chars(raw: str, base: int) -> tuple[str, list[int]]:
    """normalize_line by definition: map every character, collapse runs of spaces, strip the ends."""
    out: list[str] = []
    offs: list[int] = []
    prev_space = True  # also strips leading spaces
    for i, ch in enumerate(raw):
        rep = _norm_char(ch)
        for r in rep:
            if r == " ":
                if prev_space:
                    continue
                prev_space = True
            else:
                prev_space = False
            out.append(r)
            offs.append(base + i)
    while out and out[-1] == " ":
        out.pop()
        offs.pop()
    return "".join(out), offs


# normalize_chars for long lines, with str.translate and numpy instead of a Python loop per character:
# the lines that miss normalize_line's fast path are mostly whole paragraphs with a double space or a
# no-break space (one SaudiNewsNet zip: 1 line in 10, 29% of the characters), and the loop took most
# of the corpus build's cleaning time. The same output, checked against normalize_chars in the tests.
_ARRAY_MIN = 64  # measured per line: 32 chars loop 13 us / arrays 20 us; 64 chars 33 / 27 us; 128: 47 / 32 us
_TRANSLATE: dict[int, str | None] = {ord(c): None for c in _DROP} | {ord(c): " " for c in _SPACES}
_OUT_LEN = np.ones(0x10000, np.int64)  # per BMP code point: characters _norm_char makes of it
_OUT_LEN[[ord(c) for c in _DROP]] = 0
for _lo, _hi in ((0xFB50, 0xFDFF), (0xFE70, 0xFEFF), (0xFF01, 0xFF5E)):
    for _o in range(_lo, _hi + 1):
        _rep = _norm_char(chr(_o))
        _OUT_LEN[_o] = len(_rep)
        if _rep != chr(_o):
            _TRANSLATE[_o] = _rep or None


def _normalize_array(raw: str, base: int) -> tuple[str, np.ndarray]:
    cp = np.frombuffer(raw.encode("utf-32-le", "surrogatepass"), np.uint32)
    made = np.where(cp < 0x10000, _OUT_LEN[np.minimum(cp, 0xFFFF)], 1)
    src = np.repeat(np.arange(base, base + len(raw)), made)  # each output character's raw index
    out = np.frombuffer(raw.translate(_TRANSLATE).encode("utf-32-le", "surrogatepass"), np.uint32)
    space = out == 32
    keep = ~(space & np.concatenate(([True], space[:-1])))  # a space after a space (or at the start) goes
    idx = np.flatnonzero(keep)
    if len(idx) and space[idx[-1]]:
        idx = idx[:-1]  # runs are single now: at most one space at the end
    return out[idx].tobytes().decode("utf-32-le", "surrogatepass"), src[idx]


@dataclass
class Cleaned:
    body: str
    offsets: np.ndarray  # int64, one per body character: its index in the raw text
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (rule, line)


class Cleaner:
    def __init__(self, rules: FurnitureRules):
        self.drop = [re.compile(p) for p in rules.drop_line]
        self.block = [re.compile(p) for p in rules.block_start]
        self.lists = [re.compile(p) for p in rules.list_start]
        self.bullet = re.compile(rules.bullet)
        self.headline_words = rules.headline_max_words

    def _is_headline(self, line: str) -> bool:
        s = line.strip()
        return len(s.split()) <= self.headline_words and not s.endswith(_FINAL_PUNCT[:4])

    def clean(self, raw: str) -> Cleaned:
        """Returns the cleaned body, its offset map and the furniture lines it dropped."""
        lines: list[tuple[str, list[int]]] = []
        dropped: list[tuple[str, str]] = []
        mode = None  # None | "block" (read-also headline) | "list" (related articles)
        pos = 0
        # lines split where they end in the raw text itself (\r\n and \r included), so the offsets
        # index the text as given, not a copy with its line ends rewritten
        if "\r" in raw:
            parts = _LINE_END.split(raw)
            raw_lines = zip(parts[0::2], [len(e) for e in parts[1::2]] + [0])
        else:
            raw_lines = ((line, 1) for line in raw.split("\n"))
        for rawline, end_len in raw_lines:
            text, offs = normalize_line(rawline, pos)
            pos += len(rawline) + end_len
            if not text:
                continue
            if any(p.search(text) for p in self.lists):
                mode = "list"
                dropped.append(("related_list", text))
                continue
            if any(p.search(text) for p in self.block):
                mode = "block"
                dropped.append(("read_also", text))
                continue
            if mode == "list" and (self.bullet.match(text) or self._is_headline(text)):
                dropped.append(("related_list", text))
                continue
            if mode == "block" and self._is_headline(text) and not self.bullet.match(text):
                dropped.append(("read_also", text))
                mode = None  # one headline per "read also"
                continue
            mode = None
            if any(p.search(text) for p in self.drop):
                dropped.append(("furniture_line", text))
                continue
            lines.append((text, offs))
        # offsets as one int64 array, not a list of ints (one Python int per character of the corpus,
        # ~36M on SaudiNewsNet, was the cleaning's largest memory traffic)
        body_parts, pieces = [], []
        for j, (text, offs) in enumerate(lines):
            if j:
                body_parts.append("\n")
                pieces.append(np.array([offs_end], np.int64))  # the newline: just after the line before
            body_parts.append(text)
            pieces.append(np.arange(offs.start, offs.stop) if isinstance(offs, range) else np.asarray(offs, np.int64))
            offs_end = offs[-1] + 1
        return Cleaned("".join(body_parts), np.concatenate(pieces) if pieces else np.zeros(0, np.int64), dropped)
