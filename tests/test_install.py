"""A regular (non-editable) install works from any folder (issue 11, part 1).

Builds a wheel from a copy of the project, installs it with --no-deps into a fresh virtual
environment that borrows this interpreter's installed dependencies, and runs the commands from a
temporary folder outside the checkout: corpus build and label weak on the sample shipped inside the
wheel, annotate import, and predict with a trained model. Part of the default suite, so CI runs it.
"""
from __future__ import annotations

import csv
import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO_ROOT

# what a build reads is the source tree; these are outputs, caches and data of a working checkout
_NOT_SOURCE = shutil.ignore_patterns(".git", "__pycache__", "*.egg-info", "build", "dist", "runs", "out", ".venv",
                                     "wandb", ".pytest_cache", ".whl", "reports", "corpus", "datasets", "models")


def _run(cmd: list, cwd: Path, env: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    res = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{cmd} exited {res.returncode}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    assert "Traceback" not in res.stderr, res.stderr
    return res


def _isolation() -> list[str]:
    """Build with this interpreter's setuptools when it meets pyproject's build-system.requires (no download);
    else let pip fetch one that does. A fresh `python -m venv` of 3.11 ships setuptools 65, which failed the
    build with "invalid pyproject.toml config: `project.license`" (an SPDX string needs setuptools 77)."""
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import Requirement

    try:
        import tomllib
    except ImportError:  # Python 3.10: the requirement is not read; pip fetches one (build isolation)
        return []
    with open(REPO_ROOT / "pyproject.toml", "rb") as f:
        needs = [Requirement(r) for r in tomllib.load(f)["build-system"]["requires"]]
    try:
        met = all(version(r.name) in r.specifier for r in needs)
    except PackageNotFoundError:
        met = False
    return ["--no-build-isolation"] if met else []


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(REPO_ROOT, src, ignore=_NOT_SOURCE)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", *_isolation(), "-q", "-w", tmp / "dist", src], tmp, env)
    wheel = next((tmp / "dist").glob("nabra-*.whl"))
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], tmp, env)
    py = venv / "bin" / "python"
    # the fresh environment sees this interpreter's packages (torch, transformers, ...) after its own,
    # as `venv --system-site-packages` would; nabra itself comes only from the wheel
    purelib = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp, env).stdout.strip())
    parents = dict.fromkeys(site.getsitepackages() + [sysconfig.get_paths()["purelib"]])
    (purelib / "_nabra_test_parent.pth").write_text("\n".join(parents) + "\n", encoding="utf-8")
    # --force-reinstall: run from an environment holding a regular install of nabra (seen here through the .pth
    # above), pip took the wheel as already installed, and nabra came from that environment, not the wheel
    _run([sys.executable, "-m", "pip", "--python", py, "install", "--no-deps", "--no-index", "--force-reinstall", "-q",
          wheel], tmp, env)
    work = tmp / "elsewhere"
    work.mkdir()
    env = {**env, "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", "NABRA_SHARED": str(tmp / "no-shared"),
           "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}
    return {"py": py, "nabra": venv / "bin" / "nabra", "work": work, "env": env, "wheel": wheel}


def test_the_wheel_ships_configs_lexicons_and_the_sample(installed):
    import zipfile

    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    for f in ("nabra/configs/corpus.yaml", "nabra/configs/labels.yaml", "nabra/configs/train/tiny.yaml",
              "nabra/data/lexicons/rules.yaml", "nabra/data/sample/articles.jsonl", "nabra/data/sample/article.txt",
              "nabra/data/splits/test_ids.txt", "nabra/data/saudinewsnet.sha256", "nabra/paths.py"):
        assert f in names, f


def test_installed_nabra_runs_from_any_folder(installed, sample_run):
    py, nabra, work, env = installed["py"], installed["nabra"], installed["work"], installed["env"]
    where = _run([py, "-c", "import nabra, nabra.paths as p; print(nabra.__file__); print(p.sample_dir())"],
                 work, env).stdout.split()
    assert where[0].startswith(str(py.parent.parent)), "nabra came from the checkout, not the wheel"
    sample = Path(where[1])
    assert sample.is_relative_to(py.parent.parent) and (sample / "article.txt").exists()
    # installed there is no git commit to record: the code hash is the checkout's (the wheel was built from it)
    from nabra.io import code_sha1

    installed_code = _run([py, "-c", "from nabra.io import code_sha1, git_commit; print(code_sha1(), git_commit())"],
                          work, env).stdout.split()
    assert installed_code == [code_sha1(), "None"]

    _run([nabra, "corpus", "build", "--input", sample / "articles.jsonl", "--out", "corpus", "--no-progress"], work, env)
    _run([nabra, "label", "weak", "--corpus", "corpus", "--out", "weak"], work, env)
    st = pd.read_parquet(work / "corpus/statements.parquet").head(3)
    with open(work / "batch.csv", "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["statement_id", "stance", "sentiment"])
        w.writerows([sid, "neutral", "neutral"] for sid in st.statement_id)
    _run([nabra, "annotate", "import", "batch.csv", "--corpus", "corpus", "--out", "gold_new.jsonl"], work, env)
    assert len((work / "gold_new.jsonl").read_text(encoding="utf-8").splitlines()) == 3
    res = _run([nabra, "predict", sample_run, sample / "article.txt"], work, env)
    assert "statements in 1 article(s) labelled" in res.stderr and "article.txt" in res.stdout
