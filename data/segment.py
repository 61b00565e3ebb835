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
_WORD_BEFORE = re.compile(r"(\S+)$")


class Segmenter:
    def __init__(self, abbreviations: list[str]):
        self.abbrev = set(abbreviations)

    def _is_abbrev(self, text: str, end: int) -> bool:
        m = _WORD_BEFORE.search(text, 0, end)
        return bool(m) and m.group(1) in self.abbrev

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
