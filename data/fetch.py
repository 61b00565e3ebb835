"""`nabra data fetch saudinewsnet`: the public SaudiNewsNet zips the gold annotations are standoff over.

The gold records in data/annotations hold offsets and hashes, never text, so a user who clones the
repository needs the articles themselves. They come from the dataset's published location (the
author's GitHub repository, CC BY-NC-SA 4.0) and are checked against data/saudinewsnet.sha256,
committed here: the corpus those records were made on, byte for byte. Offline, the error says
which files to download and where to put them; `--from DIR` takes a local copy instead.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from nabra.data.ingest import file_sha256
from nabra.errors import UserError
from nabra.paths import data_file

UPSTREAM = "https://github.com/ParallelMazen/SaudiNewsNet"
BROWSE_URL = UPSTREAM + "/tree/master/dataset"
RAW_URL = "https://raw.githubusercontent.com/ParallelMazen/SaudiNewsNet/master/dataset/{name}"
MANIFEST = "saudinewsnet.sha256"


def manifest() -> dict[str, str]:
    """file name -> sha256, from the committed sha256sum-format list."""
    out = {}
    for line in data_file(MANIFEST).read_text(encoding="utf-8").splitlines():
        if line.strip():
            sha, name = line.split()
            out[name.lstrip("*")] = sha
    return out


def _offline_message(out: Path, reason: str, names: list[str]) -> str:
    return (f"cannot download SaudiNewsNet ({reason}). Download these {len(names)} file(s) from {BROWSE_URL} "
            f"(the dataset's published location): {', '.join(names)}; put them in {out}/ and run this command "
            f"again (they are checked against the committed sha256 list), or put them in any folder and run "
            f"`nabra data fetch saudinewsnet --from THAT_FOLDER --out {out}`")


def _place(tmp: Path, dest: Path, want: str, origin: str, local: bool) -> None:
    got = file_sha256(tmp)
    if got != want:
        tmp.unlink(missing_ok=True)
        todo = (f"replace {origin} with the published file from {BROWSE_URL}" if local else
                "run the command again (a download cut short); if it fails again, the published file changed")
        raise UserError(f"{origin}: sha256 {got} does not match the committed {want} ({MANIFEST}): "
                        f"a different or damaged file; nothing was written for it: {todo}")
    os.chmod(tmp, 0o644)
    os.replace(tmp, dest)  # atomic: dest is either absent or the checked file


def fetch(out: str | Path, source: str | Path | None = None, timeout: float = 30.0, log=print) -> list[Path]:
    """Places every file of the manifest in `out`, checked; returns their paths. A file already there
    with the right hash is kept."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    # the folders made here (deepest first): a failed fetch removes those it left empty, so that it
    # leaves nothing new behind; the files it checked stay, and the same command fetches the rest
    made = [d for d in (out, *out.parents) if not d.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a file where a parent folder should be: a NotADirectoryError traceback
        raise UserError(f"--out {out}: cannot make the folder ({e.strerror or e})") from None
    try:
        return _fetch(out, source, timeout, log)
    except BaseException:
        for d in made:
            try:
                d.rmdir()
            except OSError:  # not empty: a checked file stays
                break
        raise


def _fetch(out: Path, source: str | Path | None, timeout: float, log) -> list[Path]:
    files = manifest()
    todo = [n for n, sha in files.items() if not ((out / n).exists() and file_sha256(out / n) == sha)]
    if source is not None:
        src = Path(source)
        missing = [n for n in todo if not (src / n).is_file()]
        if missing:
            raise UserError(f"--from {src}: lacks {len(missing)} of the {len(files)} SaudiNewsNet files: "
                            f"{', '.join(missing)} (get them from {BROWSE_URL})")
    for i, name in enumerate(todo, 1):
        fd, tmp_name = tempfile.mkstemp(dir=out, prefix=f".{name}.", suffix=".part")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as fh:
                if source is not None:
                    origin = str(Path(source) / name)
                    try:
                        with open(origin, "rb") as src_fh:
                            shutil.copyfileobj(src_fh, fh)
                    except OSError as e:
                        raise UserError(f"--from {source}: cannot read {origin} ({e.strerror or e})") from None
                else:
                    origin = RAW_URL.format(name=name)
                    try:
                        with urllib.request.urlopen(origin, timeout=timeout) as resp:
                            shutil.copyfileobj(resp, fh)
                    except (urllib.error.URLError, OSError) as e:
                        raise UserError(_offline_message(out, f"{origin}: {getattr(e, 'reason', e)}",
                                                         todo[i - 1:])) from None
            _place(tmp, out / name, files[name], origin, source is not None)
            log(f"  {name}  ok ({i}/{len(todo)})")
        finally:
            tmp.unlink(missing_ok=True)
    if not todo:
        log(f"all {len(files)} files already in {out}, checked")
    return [out / n for n in files]
