"""Segmentation of a cleaned body into statements with character offsets.

The unit is fixed by the label spec (shared/spec/labels.md): split at . ! ? ؟ (and ؟،) followed by
a space or an Arabic letter, and at line breaks; never inside a number or an abbreviation.
sentencex splits differently (it does not break before an Arabic letter glued to a full stop
and returns no offsets), so this small rule set implements the spec's definition directly.
"""
from __future__ import annotations

import re
from typing import Iterator

# End punctuation (a run of it, e.g. "..." or "؟!"), an optional Arabic comma after a question
# mark, then closing quotes/brackets that belong to the sentence.
_END = re.compile(r"[.!?؟…]+،?[»\"”'’)\]]*(?=\s|[\u0621-\u064A])")


class Segmenter:
    def __init__(self, abbreviations: list[str]):
        self.abbrev = set(abbreviations)
        # an abbreviation is one whitespace-free word: the longest one bounds how far back to look
        self._max_len = max((len(a) for a in self.abbrev), default=0)

    def _is_abbrev(self, text: str, end: int) -> bool:
        """True if the whitespace-delimited word ending at `end` is an abbreviation.

        Only the last max_len + 1 characters are looked at (a regex search for r"(\\S+)$" in
        text[:end] tried every start position: quadratic in the line length, 10% of a build).
        str.split() and the regex's \\s agree on what whitespace is (both use Py_UNICODE_ISSPACE)."""
        if end <= 0 or text[end - 1].isspace():
            return False
        tail = text[max(0, end - self._max_len - 1):end].split()
        # a tail with no whitespace that does not reach the line start is part of a longer word
        return bool(tail) and len(tail[-1]) <= self._max_len and tail[-1] in self.abbrev

    def spans(self, body: str) -> Iterator[tuple[int, int]]:
        """Yields (start, end) of every statement; body[start:end] is the stripped statement."""
        pos = 0
        for line in body.split("\n"):
            line_start = pos
            pos += len(line) + 1
            cut = 0
            for m in _END.finditer(line):
                if m.group(0).startswith(".") and self._is_abbrev(line, m.start() + 1):
                    continue
                yield from _strip(line, line_start, cut, m.end())
                cut = m.end()
            yield from _strip(line, line_start, cut, len(line))


def _strip(line: str, base: int, a: int, b: int) -> Iterator[tuple[int, int]]:
    while a < b and line[a].isspace():
        a += 1
    while b > a and line[b - 1].isspace():
        b -= 1
    if b > a:
        yield base + a, base + b
