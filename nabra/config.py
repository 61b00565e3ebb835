"""Typed configuration: YAML files in configs/ validated into pydantic models.

One source of defaults: the field defaults below. Config files hold only overrides. Unknown or
mistyped keys fail with the dotted key name and the file they came from.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from nabra.paths import config_file

# The checkout (tests, git commit of a run); shipped files are found through nabra.paths instead.
REPO_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(ValueError):
    """A user error in a config file or an override: the message names the key."""


def shared_dir() -> Path:
    """The shared data folder: $NABRA_SHARED, else ../shared beside the checkout; installed (no checkout
    around the package), ./shared or ../shared of the current folder."""
    if os.environ.get("NABRA_SHARED"):
        return Path(os.environ["NABRA_SHARED"])
    if in_checkout():
        return REPO_ROOT.parent / "shared"
    here = [Path.cwd() / "shared", Path.cwd().parent / "shared"]
    return next((p for p in here if p.is_dir()), here[1])


def in_checkout() -> bool:
    """Whether nabra runs from its source tree (editable install, tests) rather than from site-packages."""
    return (REPO_ROOT / "pyproject.toml").is_file()


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --------------------------------------------------------------------------- corpus
def _compiles(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as e:  # checked here, so a bad pattern names its key instead of failing inside a task
        raise ValueError(f"not a regular expression ({e})") from None
    return pattern


Regex = Annotated[str, AfterValidator(_compiles)]


class FurnitureRules(Strict):
    drop_line: list[Regex] = Field(
        default_factory=list, description="regexes; a matching line is furniture and is dropped")
    block_start: list[Regex] = Field(
        default_factory=list,
        description="regexes for 'read also' headers: the line and the headline lines after it are dropped")
    list_start: list[Regex] = Field(
        default_factory=list,
        description="regexes for related-article headers: the line and every list/headline line after it are dropped")
    bullet: Regex = Field(r"^\s*[•●▪◦·*\-–]\s*", description="regex of a list bullet")
    headline_max_words: int = Field(25, ge=0, description="a line without final punctuation and at most this many words reads as a headline")


class CorpusConfig(Strict):
    min_chars: int = Field(20, ge=0, description="statements shorter than this are rejected (too_short)")
    min_words: int = Field(4, ge=0, description="statements with fewer words are rejected (too_short)")
    max_chars: int = Field(1000, ge=1, description="statements longer than this are rejected (too_long)")
    min_arabic_ratio: float = Field(0.6, ge=0, le=1, description="share of letters that must be Arabic (not_arabic)")
    abbreviations: list[str] = Field(
        default_factory=list, description="tokens ending in '.' after which a statement never ends (e.g. د.)")
    furniture: FurnitureRules = Field(default_factory=FurnitureRules)
    # a multiple of 32: 16 bands of pairs of 32-bit values (3 was a numpy traceback from a worker)
    minhash_perm: int = Field(128, ge=32, multiple_of=32, description="MinHash permutations for near-duplicate detection")
    minhash_threshold: float = Field(0.7, gt=0, le=1, description="Jaccard threshold of the LSH index")
    # 0 gave every statement one signature: every pair a candidate, a build that never ended
    shingle_chars: int = Field(5, ge=1, description="character shingle size for near-duplicate detection")
    dedup_min_chars: int = Field(40, ge=0, description="statements shorter than this are only checked for exact duplicates")
    workers: int = Field(2, ge=1, description="processes used to clean and segment articles")


# --------------------------------------------------------------------------- loading
def _fmt_loc(loc: tuple) -> str:
    return ".".join(str(p) for p in loc)


def validate(model: type[BaseModel], data: dict, source: str, overrides: list[str] | None = None) -> Any:
    """`overrides`: the `--set` pairs merged into `data`; an error on one of their keys names the
    override rather than the file."""
    try:
        return model.model_validate(data or {})
    except ValidationError as e:
        msgs = []
        for err in e.errors():
            key = _fmt_loc(err["loc"])
            pair = _override_for(key, overrides)
            if err["type"] == "extra_forbidden":
                # `--set no.such.key=1` fails on 'no'; the user typed the whole key
                msg = f"unknown key '{pair.split('=', 1)[0].strip() if pair else key}'"
            else:
                msg = f"key '{key}': {err['msg']} (got {err.get('input')!r})"
            msgs.append(f"--set {pair}: {msg}" if pair else f"{source}: {msg}")
        raise ConfigError("; ".join(msgs)) from None


def _override_for(key: str, overrides: list[str] | None) -> str | None:
    """The `--set` pair that wrote `key` (or a key under it, or the mapping above it), if any."""
    for pair in reversed(overrides or []):
        k = pair.split("=", 1)[0].strip()
        if k == key or k.startswith(key + ".") or key.startswith(k + "."):
            return pair
    return None


def parse_overrides(pairs: list[str] | None) -> dict:
    """`--set a.b=1` pairs into a nested dict; values parsed as YAML scalars. The same key twice: the
    last wins, and a key set after keys under it replaces them (`model.tiny.vocab_size=600`, then
    `model.tiny=null`). A key under one set before to a value that is not a mapping (`training=1`, then
    `training.seed=2`) is refused: it has nowhere to go."""
    out: dict = {}
    seen: list[tuple[list[str], object, str]] = []  # (key parts, value, pair) of every pair so far
    for pair in pairs or []:
        if "=" not in pair:
            raise ConfigError(f"--set {pair!r}: expected key=value, e.g. --set training.seed=1")
        key, value = pair.split("=", 1)
        parts = key.strip().split(".")
        try:
            parsed = yaml.load(value, Loader=UniqueKeyLoader)
        except DuplicateKeyError as e:
            raise ConfigError(f"--set {pair!r}: key '{e.key}' appears twice in the value; keep one") from None
        except yaml.YAMLError as e:
            problem = str(getattr(e, "problem", "") or e).strip()
            raise ConfigError(f"--set {pair!r}: the value is not valid YAML ({problem}); quote it, "
                              f"e.g. --set '{key.strip()}=\"{value}\"'") from None
        for parts0, parsed0, pair0 in seen:
            n = min(len(parts), len(parts0))
            if len(parts) > len(parts0) and parts[:n] == parts0[:n]:
                outer = parsed0
                if not isinstance(outer, dict):
                    raise ConfigError(
                        f"--set {pair0!r} and --set {pair!r} conflict: '{'.'.join(parts[:n])}' is set to "
                        f"{outer!r}, not a mapping, and a key under it is set too; keep one of them")
        seen.append((parts, parsed, pair))
        for p in reversed(parts):
            parsed = {p: parsed}
        out = deep_merge(out, parsed)
    return out


def deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping that holds one key twice (PyYAML keeps the last without a word)."""

    def __init__(self, key, first: int, second: int, mark):
        self.key, self.first, self.second = key, first, second
        super().__init__(None, None, f"key {key!r} appears twice (lines {first} and {second})", mark)


class UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a mapping with a key twice: two `training:` blocks silently kept
    only the second. PyYAML has no option for it, hence the check in the mapping constructor."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            lines: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<: *defaults` may be overridden by the keys beside it
                key = self.construct_object(key_node, deep=True)
                try:
                    if key in lines:
                        raise DuplicateKeyError(key, lines[key], key_node.start_mark.line + 1, key_node.start_mark)
                except TypeError:
                    continue  # an unhashable key: the base constructor reports it
                lines[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str, source: str | Path):
    """YAML a user wrote (configs, lexicons) with UniqueKeyLoader; errors are ConfigErrors naming `source`."""
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)
    except DuplicateKeyError as e:
        raise ConfigError(f"{source}: key '{e.key}' appears twice (lines {e.first} and {e.second}); the second "
                          "would silently replace the first: keep one") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: invalid YAML: {e}") from None


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    if path.is_dir():
        raise ConfigError(f"{path}: a folder, not a YAML config file")
    try:
        data = load_yaml(path.read_text(encoding="utf-8"), path) or {}
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return data


def load(model: type[BaseModel], path: str | Path | None, overrides: list[str] | None = None):
    """Read a YAML file (or nothing), apply `--set` overrides, validate into `model`."""
    data = read_yaml(path) if path else {}
    data = deep_merge(data, parse_overrides(overrides))
    return validate(model, data, str(path) if path else "config", overrides)


def load_corpus_config(path: str | Path | None = None, overrides: list[str] | None = None) -> CorpusConfig:
    return load(CorpusConfig, shipped(path, "", ("corpus.yaml",)) if path else config_file("corpus.yaml"),
                overrides)


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
    schema = load(LabelSchema, path or config_file("labels.yaml"))
    for name, task in schema.tasks.items():
        if sorted(task.tie_break) != task.names:
            raise ConfigError(f"labels.yaml: tasks.{name}.tie_break must list each label once")
    return schema


# --------------------------------------------------------------------------- training
class TinyModel(Strict):
    vocab_size: int = Field(8000, ge=16, description="WordPiece vocabulary trained on the corpus")
    hidden_size: int = Field(128, ge=1, description="hidden size of the tiny BERT")
    num_hidden_layers: int = Field(2, ge=1, description="transformer layers")
    num_attention_heads: int = Field(2, ge=1, description="attention heads")
    intermediate_size: int = Field(512, ge=1, description="feed-forward size")
    max_position_embeddings: int = Field(256, ge=2, description="longest input in tokens")
    tokenizer_corpus: str | None = Field(
        None, description="corpus folder whose statements train the tokenizer (default: the dataset's train split)")


class ModelConfig(Strict):
    name_or_path: str | None = Field(
        "aubmindlab/bert-base-arabertv02",
        description="HF hub name or local folder of the encoder; null builds a tiny BERT from `tiny`")
    tiny: TinyModel | None = Field(None, description="geometry of a BERT built from a config (offline path)")
    preprocess: Literal["arabert", "none"] = Field(
        "arabert", description="text preprocessing applied at train and predict time")
    preprocess_model: str = Field(
        "aubmindlab/bert-base-arabertv02", description="model name that selects ArabertPreprocessor's rules")
    max_length: int = Field(128, ge=2, description="truncate inputs to this many tokens (padding is dynamic)")
    dropout: float | None = Field(None, ge=0, lt=1, description="classifier dropout (default: the encoder's hidden dropout)")
    pooling: Literal["cls", "mean"] = Field(
        "cls", description="statement vector for the heads: the first token (BERT's [CLS]) or the mask-weighted "
                           "mean of the last hidden states (how e5 was trained)")
    input_prefix: str = Field("", description="text put before every statement, e.g. e5's 'query: ' or 'passage: '")
    freeze_embeddings: bool = Field(
        False, description="keep the word-embedding matrix fixed (a 250k-row matrix dominates each optimizer step on CPU)")
    freeze_layers: int = Field(
        0, ge=0, description="keep the embeddings and the first N encoder layers fixed: the backward pass stops at "
                             "layer N, so on CPU each frozen layer costs its forward only (about a third)")


class DataConfig(Strict):
    tasks: list[str] = Field(default_factory=lambda: ["stance", "sentiment"], min_length=1,
                             description="tasks to train, one head each; label lists come from the dataset manifest")
    text_column: str = Field("text", description="column holding the statement")
    text_pair_column: str | None = Field(None, description="column holding a second text (target/claim), if any")
    label_columns: dict[str, str] = Field(default_factory=dict,
                                          description="task -> label column, when they differ (default: same name)")
    use_weak: bool = Field(False, description="add the dataset's weak_train.parquet to the training data")
    max_train_samples: int | None = Field(None, ge=1, description="cap on training statements (smoke runs)")
    max_eval_samples: int | None = Field(None, ge=1, description="cap on dev statements (smoke runs)")


class TrainingConfig(Strict):
    seed: int = Field(42, description="seeds python, numpy, torch and the data order")
    epochs: float = Field(3.0, gt=0, allow_inf_nan=False, description="training epochs")
    max_steps: int = Field(-1, description="stop after this many steps (overrides epochs when > 0)")
    batch_size: int = Field(16, ge=1, description="per-device training batch size")
    eval_batch_size: int = Field(64, ge=1, description="per-device evaluation batch size")
    grad_accum: int = Field(1, ge=1, description="gradient accumulation steps")
    learning_rate: float = Field(3e-5, gt=0, description="peak learning rate")
    head_learning_rate: float | None = Field(
        None, gt=0, description="peak learning rate of the fresh classification heads (default: learning_rate); a "
                          "pretrained encoder wants a small rate, randomly initialised heads a larger one")
    layer_lr_decay: float = Field(
        1.0, gt=0, le=1, description="layer-wise learning-rate decay: encoder layer k of L trains at learning_rate "
                                     "x decay^(L-k), the embeddings at decay^L (1 = one rate for the whole encoder)")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay")
    warmup: float = Field(0.1, ge=0, description="warmup: a ratio of total steps if < 1, else a step count")
    linear_probe: bool = Field(False, description="LP-FT: each head starts as a logistic regression on the frozen "
                               "encoder's pooled states of the train split, not at random (for a pretrained encoder)")
    loss_weights: dict[str, float] = Field(default_factory=dict, description="task -> loss weight (default 1)")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="each task's cross-entropy targets keep 1 - x on the "
                                   "gold class and spread x over all classes (Szegedy et al. 2016; 0 = off)")
    class_weights: Literal["balanced", "none"] = Field("balanced", description="per-task class weights from train counts")
    metric_weights: dict[str, float] = Field(default_factory=dict,
                                             description="task -> weight in the combined dev macro-F1 (default equal)")
    early_stopping_patience: int = Field(3, ge=0, description="evaluations without improvement before stopping (0 = off)")
    select_best: bool = Field(True, description="keep the checkpoint with the best dev score (false: keep the last, and train the full length: early stopping needs the best checkpoint)")
    eval_strategy: Literal["epoch", "steps"] = Field("epoch", description="when to evaluate and checkpoint")
    eval_steps: int = Field(200, ge=1, description="with eval_strategy=steps: evaluate every N steps")
    save_total_limit: int = Field(2, ge=1, description="checkpoints kept besides the best")
    group_by_length: bool = Field(True, description="batch statements of similar length (less padding)")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 on a GPU that has it, else fp16 on GPU; on CPU bf16 autocast where the CPU "
                "has native bf16 (AVX512-BF16/AMX), else fp32")
    dataloader_workers: int = Field(0, ge=0, description="DataLoader worker processes")
    threads: int | None = Field(None, ge=1, description="torch CPU threads (default: torch's choice)")


class LoggingConfig(Strict):
    wandb: bool = Field(False, description="log to Weights & Biases (offline unless WANDB_MODE is set)")
    wandb_project: str = Field("nabra", description="wandb project name")
    logging_steps: int = Field(20, ge=1, description="log training loss every N steps")


class TrainConfig(Strict):
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)


def shipped(path: str | Path, kind: str, names: tuple[str, ...] | None = None) -> Path:
    """`path` if it exists, else the config nabra ships under that name in configs/`kind`/ (`tiny`,
    `train/tiny.yaml` or `configs/train/tiny.yaml`; kind "" for configs/ itself, limited to `names`), so
    that the README's commands work from any folder after `pip install .`. Neither: a ConfigError that
    lists the shipped names."""
    p = Path(path)
    if p.is_file():
        return p
    folder = config_file(kind)
    found = sorted(f.name for f in folder.glob("*.yaml") if names is None or f.name in names)
    name = p.name if p.suffix else f"{p.name}.yaml"
    if name in found:
        return folder / name
    what = {"benchmarks": "benchmark", "": "corpus"}.get(kind, kind)
    problem = "is a folder, not a config file" if p.is_dir() else "config file not found"
    raise ConfigError(f"{path}: {problem}, nor the name of a shipped {what} config (shipped: "
                      f"{', '.join(Path(f).stem for f in found)})")


def load_train_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    return load(TrainConfig, shipped(path, "train"), overrides)


class PretrainConfig(Strict):
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    mlm_probability: float = Field(0.15, gt=0, lt=1, description="share of tokens masked")
    max_statements: int | None = Field(None, ge=1, description="cap on corpus statements used (sampled with the seed)")


# what `nabra pretrain` reads of the shared model and training sections; anything else set there is a
# fine-tuning setting it would record without applying
PRETRAIN_USES = {"model": {"name_or_path", "tiny", "preprocess", "preprocess_model", "max_length"},
                 "training": {"seed", "epochs", "max_steps", "batch_size", "grad_accum", "learning_rate",
                              "weight_decay", "warmup", "group_by_length", "precision", "dataloader_workers", "threads",
                              # when pretraining checkpoints (it does not evaluate): what a kill can lose
                              "eval_strategy", "eval_steps", "save_total_limit"}}


def load_pretrain_config(path: str | Path, overrides: list[str] | None = None) -> PretrainConfig:
    path = shipped(path, "pretrain")
    cfg = load(PretrainConfig, path, overrides)
    unused = [f"{sec}.{k}" for sec, used in PRETRAIN_USES.items()
              for k, v in getattr(cfg, sec) if k not in used and v != getattr(type(getattr(cfg, sec))(), k)]
    if unused:
        raise ConfigError(f"nabra pretrain does not use {', '.join(unused)} (fine-tuning settings): "
                          f"leave them out of {path} and --set")
    return cfg


# --------------------------------------------------------------------------- benchmarks
class BenchTask(Strict):
    column: str = Field(description="label column in the files")
    rename: dict[str, str] = Field(default_factory=dict, description="value renames, e.g. '' -> None")
    headline_labels: list[str] | None = Field(None, description="labels averaged in the official F1")


class Published(Strict):
    task: str = Field(description="task the published figure is for")
    metric: Literal["macro_f1", "headline_f1", "accuracy"] = Field(description="which of our metrics it matches")
    value: float = Field(description="published figure (0-1)")
    source: str = Field(description="paper / shared task")


class BenchmarkConfig(Strict):
    name: str = Field(description="benchmark name")
    format: Literal["csv", "jsonl", "parquet"] = Field("csv", description="file format")
    files: dict[str, str] = Field(description="split -> path relative to the shared folder (train and test; dev optional)")
    text_column: str = Field("text", description="column of the text")
    text_pair_column: str | None = Field(None, description="column of a second text (target, claim)")
    id_column: str | None = Field(None, description="column of a record id (default: row number)")
    tasks: dict[str, BenchTask] = Field(description="task -> label column and renames")
    dev_share: float = Field(0.1, gt=0, lt=1, description="share of train held out as dev when no dev file is given")
    seed: int = Field(13, description="seed of the dev hold-out")
    published: list[Published] = Field(default_factory=list, description="published figures to print beside ours")


def load_benchmark_config(name_or_path: str) -> BenchmarkConfig:
    """A YAML path, or a shipped benchmark's name (`mawqif`) or path (`configs/benchmarks/mawqif.yaml`)."""
    return load(BenchmarkConfig, shipped(name_or_path, "benchmarks"))
