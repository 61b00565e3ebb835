"""A synthetic archive N times the size of SaudiNewsNet, for the corpus benchmark
(`nabra bench synth`, or `python -m nabra.evaluation.synth SRC OUT --copies 8`).

Copy 0 is the original; copy c > 0 of every article gets another url (so another article id) and
light edits: in about half of its paragraphs one word is replaced by another word of the same
article. The copies are therefore what a large real archive holds: the same stories again, mostly
exact duplicate statements, some near duplicates. One zip is read and written at a time.
"""
from __future__ import annotations

import argparse
import json
import random
import zipfile
from pathlib import Path


def _edit(text: str, rng: random.Random) -> str:
    paras = text.split("\n")
    for i, p in enumerate(paras):
        words = p.split(" ")
        if len(words) > 8 and rng.random() < 0.5:
            words[rng.randrange(len(words))] = rng.choice(words)
            paras[i] = " ".join(words)
    return "\n".join(paras)


def make_synthetic(src: str | Path, out: str | Path, copies: int = 8, seed: int = 0) -> list[Path]:
    """Writes `copies` versions of every SaudiNewsNet zip in `src` into `out`; returns the zips."""
    src, out = Path(src), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    zips = sorted(src.glob("*.zip")) if src.is_dir() else [src]
    written = []
    for z in zips:
        with zipfile.ZipFile(z) as zf:
            members = {m: json.loads(zf.read(m).decode("utf-8")) for m in zf.namelist() if m.endswith(".json")}
        for c in range(copies):
            target = out / f"{z.stem}-copy{c}.zip"
            with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zo:
                for m, records in members.items():
                    rng = random.Random(f"{seed}:{z.name}:{m}:{c}")
                    recs = records if c == 0 else [
                        {**r, "url": f"{r.get('url', '')}#copy{c}", "content": _edit(r.get("content") or "", rng)}
                        for r in records]
                    zo.writestr(m, json.dumps(recs, ensure_ascii=False))
            written.append(target)
    return written


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", help="folder of SaudiNewsNet zips")
    ap.add_argument("out", help="output folder (keep it outside the repository)")
    ap.add_argument("--copies", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    files = make_synthetic(a.src, a.out, a.copies, a.seed)
    print(f"{len(files)} zips, {sum(f.stat().st_size for f in files) / 1e6:.0f} MB in {a.out}")


if __name__ == "__main__":
    main()
