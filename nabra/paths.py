"""Where nabra finds the files it ships: default configs, lexicons, the embedded sample, frozen splits.

They are package resources (importlib.resources), so a regular `pip install .` finds them in
site-packages and an editable install finds them in this checkout. The repo's configs/ stays the
place users edit; they pass their copy with --config, and these defaults apply when they don't.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path


def _resource(package: str, rel: str) -> Path:
    # A wheel is always unpacked on disk, so the Traversable is a real path; Path() makes it one
    # that every caller (open, read_text, pandas) accepts.
    return Path(str(resources.files(package).joinpath(rel)))


def config_file(rel: str) -> Path:
    """A default config shipped with nabra, e.g. config_file("corpus.yaml") or "train/tiny.yaml"."""
    return _resource("nabra.configs", rel)


def data_file(rel: str) -> Path:
    """A file shipped under the project's data/ folder, e.g. data_file("lexicons/rules.yaml")."""
    return _resource("nabra.data", rel)


def sample_dir() -> Path:
    """The embedded sample: 20 short articles (articles.jsonl) and one article (article.txt)."""
    return data_file("sample")


def splits_dir() -> Path:
    """The frozen train/dev/test statement ids of the gold dataset."""
    return data_file("splits")


def rules_file() -> Path:
    """The weak labeller's cue lexicons."""
    return data_file("lexicons/rules.yaml")
