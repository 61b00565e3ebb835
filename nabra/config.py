"""Typed configuration: YAML files in configs/ validated into pydantic models.

One source of defaults: the field defaults below. Config files hold only overrides. Unknown or
mistyped keys fail with the dotted key name and the file they came from.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT / "configs"


class ConfigError(ValueError):
    """A user error in a config file or an override: the message names the key."""


def shared_dir() -> Path:
    """The shared data folder: $NABRA_SHARED, else ../shared beside the project root."""
    return Path(os.environ.get("NABRA_SHARED", REPO_ROOT.parent / "shared"))


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --------------------------------------------------------------------------- corpus
class FurnitureRules(Strict):
    drop_line: list[str] = Field(
        default_factory=list, description="regexes; a matching line is furniture and is dropped")
    block_start: list[str] = Field(
        default_factory=list,
        description="regexes for 'read also' headers: the line and the headline lines after it are dropped")
    list_start: list[str] = Field(
        default_factory=list,
        description="regexes for related-article headers: the line and every list/headline line after it are dropped")
    bullet: str = Field(r"^\s*[•●▪◦·*\-–]\s*", description="regex of a list bullet")
    headline_max_words: int = Field(25, description="a line without final punctuation and at most this many words reads as a headline")


class CorpusConfig(Strict):
    min_chars: int = Field(20, description="statements shorter than this are rejected (too_short)")
    min_words: int = Field(4, description="statements with fewer words are rejected (too_short)")
    max_chars: int = Field(1000, description="statements longer than this are rejected (too_long)")
    min_arabic_ratio: float = Field(0.6, description="share of letters that must be Arabic (not_arabic)")
    abbreviations: list[str] = Field(
        default_factory=list, description="tokens ending in '.' after which a statement never ends (e.g. د.)")
    furniture: FurnitureRules = Field(default_factory=FurnitureRules)
    minhash_perm: int = Field(128, description="MinHash permutations for near-duplicate detection")
    minhash_threshold: float = Field(0.7, description="Jaccard threshold of the LSH index")
    shingle_chars: int = Field(5, description="character shingle size for near-duplicate detection")
    dedup_min_chars: int = Field(40, description="statements shorter than this are only checked for exact duplicates")
    workers: int = Field(2, description="processes used to clean and segment articles")


# --------------------------------------------------------------------------- loading
def _fmt_loc(loc: tuple) -> str:
    return ".".join(str(p) for p in loc)


def validate(model: type[BaseModel], data: dict, source: str) -> Any:
    try:
        return model.model_validate(data or {})
    except ValidationError as e:
        msgs = []
        for err in e.errors():
            key = _fmt_loc(err["loc"])
            if err["type"] == "extra_forbidden":
                msgs.append(f"unknown key '{key}'")
            else:
                msgs.append(f"key '{key}': {err['msg']} (got {err.get('input')!r})")
        raise ConfigError(f"{source}: " + "; ".join(msgs)) from None


def parse_overrides(pairs: list[str] | None) -> dict:
    """`--set a.b=1` pairs into a nested dict; values parsed as YAML scalars."""
    out: dict = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ConfigError(f"--set {pair!r}: expected key=value, e.g. --set training.seed=1")
        key, value = pair.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = yaml.safe_load(value)
    return out


def deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return data


def load(model: type[BaseModel], path: str | Path | None, overrides: list[str] | None = None):
    """Read a YAML file (or nothing), apply `--set` overrides, validate into `model`."""
    data = read_yaml(path) if path else {}
    data = deep_merge(data, parse_overrides(overrides))
    return validate(model, data, str(path) if path else "config")


def load_corpus_config(path: str | Path | None = None, overrides: list[str] | None = None) -> CorpusConfig:
    return load(CorpusConfig, path or CONFIG_DIR / "corpus.yaml", overrides)


# --------------------------------------------------------------------------- labels
class LabelDef(Strict):
    arabic: str = Field(description="Arabic name")
    definition: str = Field(description="one-line definition from the spec")


class TaskDef(Strict):
    description: str = ""
    tie_break: list[str] = Field(default_factory=list, description="order used when two labels tie")
    labels: dict[str, LabelDef]

    @property
    def names(self) -> list[str]:
        """Sorted label list: the label2id order saved with every model."""
        return sorted(self.labels)


class LabelSchema(Strict):
    tasks: dict[str, TaskDef]

    def check(self, task: str, label: str, where: str = "") -> None:
        if task not in self.tasks:
            raise ConfigError(f"{where}unknown task '{task}' (known: {', '.join(self.tasks)})")
        if label not in self.tasks[task].labels:
            raise ConfigError(f"{where}unknown {task} label '{label}' (known: {', '.join(self.tasks[task].names)})")


def load_labels(path: str | Path | None = None) -> LabelSchema:
    schema = load(LabelSchema, path or CONFIG_DIR / "labels.yaml")
    for name, task in schema.tasks.items():
        if sorted(task.tie_break) != task.names:
            raise ConfigError(f"labels.yaml: tasks.{name}.tie_break must list each label once")
    return schema
