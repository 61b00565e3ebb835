"""The model folder is the contract: what prediction needs is written into it, and checked before loading.

`nabra train` and `nabra export` write, beside the weights, config (label maps) and tokenizer:
  nabra_preprocess.json  the text preprocessing (train/text.py)
  nabra_pipeline.json    the corpus cleaning/segmentation config the training statements were cut
                         with, max_length, and where the training data came from (for the model card)
`nabra predict` and `StanceClassifier` read only these files, never the repo's configs/, so editing
configs/corpus.yaml cannot change an old model's predictions.

`validate` opens each file far enough to know it is whole (JSON parses, the safetensors header
matches the file size, the ONNX graph parses) and names the broken file, instead of a library
traceback from deep inside the load.
"""
from __future__ import annotations

import json
from pathlib import Path

from nabra.train.text import PREPROCESS_FILE

PIPELINE_FILE = "nabra_pipeline.json"
REQUIRED = ["config.json", "tokenizer.json", "tokenizer_config.json", PREPROCESS_FILE, PIPELINE_FILE]
PREPROCESS_KINDS = ("none", "arabert")  # train/text.py's Preprocessor


class ModelDirError(FileNotFoundError):
    """A model folder that is missing, incomplete or damaged; the message names the file."""


def save_pipeline(out: Path, corpus_config: dict, max_length: int, training_data: dict) -> None:
    from nabra.io import write_json

    write_json(Path(out) / PIPELINE_FILE, {"corpus_config": corpus_config, "max_length": int(max_length),
                                           "training_data": training_data})


def load_pipeline(directory: Path) -> dict:
    return _read_json(Path(directory) / PIPELINE_FILE)


def corpus_config(pipeline: dict):
    """The corpus cleaning/segmentation config the model was trained with, as a CorpusConfig."""
    from pydantic import ValidationError

    from nabra.config import CorpusConfig

    try:
        return CorpusConfig.model_validate(pipeline["corpus_config"])
    except (KeyError, TypeError, ValidationError) as e:
        raise ModelDirError(f"{PIPELINE_FILE}: corpus_config is missing or invalid ({str(e).splitlines()[0]})") from None


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ModelDirError(f"{path}: not a UTF-8 JSON file") from None
    except json.JSONDecodeError as e:
        raise ModelDirError(f"{path}: broken JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    if not isinstance(data, dict):
        raise ModelDirError(f"{path}: expected a JSON object")
    return data


def _check_safetensors(path: Path, tasks: dict | None = None) -> None:
    """The header's tensors must end exactly where the file ends: a copy cut short fails here. Each
    task's head must have as many outputs as config.json has labels for it (as the ONNX check does)."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise ModelDirError(f"{path}: truncated safetensors file ({size} bytes, no header)")
        n = int.from_bytes(head, "little")
        if n > size - 8:
            raise ModelDirError(f"{path}: truncated safetensors file (header of {n} bytes, file of {size})")
        try:
            header = json.loads(fh.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ModelDirError(f"{path}: not a safetensors file (unreadable header)") from None
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)
            and "data_offsets" in v]
    need = 8 + n + max(ends, default=0)
    if size < need:
        raise ModelDirError(f"{path}: truncated safetensors file ({size:,} bytes, its header needs {need:,}); "
                            "copy or export the model again")
    # an edited config.json was "model.safetensors: cannot be loaded (... look at the above report!)", no report
    shapes = [header.get(f"heads.{t}.bias", {}).get("shape") for t in tasks or {}]
    check_head_widths(path, [s[0] if isinstance(s, list) and s else None for s in shapes], tasks or {})


def check_head_widths(weights: Path, widths: list, tasks: dict) -> None:
    """Each task's head in `weights` (safetensors or ONNX) must give as many outputs as config.json has
    labels for it; `widths` in task order, None where unknown. One message for both backends: the
    config.json beside the weights is what was edited or copied from another model."""
    bad = [f"{t} {w} in the weights, {len(labels)} in config.json" for (t, labels), w in zip(tasks.items(), widths)
           if isinstance(w, int) and isinstance(labels, list) and w != len(labels)]
    if len(widths) != len(tasks):
        bad.append(f"{len(widths)} heads in the weights, {len(tasks)} tasks in config.json")
    if bad:
        raise ModelDirError(f"{weights.parent / 'config.json'}: its label maps do not fit {weights.name} "
                            f"({'; '.join(bad)}): the config of another model? Copy or export the model again")


def no_onnx(directory: Path, onnx_file: str) -> str:
    # model.int8.onnx comes from --format onnx-int8: "--format onnx" for it wrote only model.onnx
    fmt = "onnx-int8" if onnx_file.endswith(".int8.onnx") else "onnx"
    return f"{directory}: no {onnx_file} (run `nabra export --format {fmt}` first)"


def resolve(path: str | Path) -> Path:
    """A run directory means its best model (RUN/model)."""
    p = Path(path)
    if p.is_dir() and (p / "model").is_dir() and not (p / "config.json").exists():
        p = p / "model"
    if p.is_file():  # model.onnx given itself, or an article given first: "no such model folder" misled
        raise ModelDirError(f"{path}: a file, not a model folder; give the folder that holds the model")
    if not p.is_dir():
        raise ModelDirError(f"{path}: no such model folder")
    if (p / "config.yaml").exists() and (p / "run_info.json").exists() and not (p / "model").exists():
        # an unfinished run was told "lacks config.json, ... retrain or re-export an older model"
        raise ModelDirError(f"{path}: a run directory with no model/ yet (training did not finish): "
                            f"continue it with `nabra train --resume {path}`")
    return p


def validate(path: str | Path, backend: str, onnx_file: str | None = None) -> Path:
    """Checks that the folder holds every file prediction reads and that each is whole; returns it."""
    p = resolve(path)
    need = list(REQUIRED) + (["model.safetensors"] if backend == "torch" else [])
    missing = [f for f in need if not (p / f).exists()]
    if missing:
        hint = (" (written by `nabra train` or `nabra export` of this version; retrain or re-export an older model)"
                if PIPELINE_FILE in missing else " (was it written by `nabra train` or `nabra export`?)")
        if "config.json" in missing and "tokenizer.json" in missing:  # nothing of a model: no old one to re-export
            hint = ": not a model folder; give one written by `nabra train` (RUN or RUN/model) or `nabra export`"
        raise ModelDirError(f"{p}: model folder lacks {', '.join(missing)}{hint}")
    cfg = _read_json(p / "config.json")
    if not isinstance(cfg.get("tasks"), dict) or not cfg["tasks"]:
        raise ModelDirError(f"{p / 'config.json'}: no 'tasks' label maps; not a nabra model config")
    if cfg.get("task_order") is not None and sorted(cfg["task_order"]) != sorted(cfg["tasks"]):
        raise ModelDirError(f"{p / 'config.json'}: task_order {cfg['task_order']} does not list the tasks "
                            f"{sorted(cfg['tasks'])}")
    # the keys the loaders read, so that a damaged file is named here, not a KeyError from inside them
    tok = _read_json(p / "tokenizer.json")
    if not isinstance(tok.get("model"), dict) or not isinstance(tok.get("added_tokens"), list):
        raise ModelDirError(f"{p / 'tokenizer.json'}: not a tokenizers file (no 'model' or 'added_tokens')")
    _read_json(p / "tokenizer_config.json")
    pre = _read_json(p / PREPROCESS_FILE)
    if pre.get("kind") not in PREPROCESS_KINDS or not isinstance(pre.get("prefix", ""), str):
        raise ModelDirError(f"{p / PREPROCESS_FILE}: kind must be one of {', '.join(PREPROCESS_KINDS)} "
                            f"(got {pre.get('kind')!r}) and prefix a string")
    pipe = load_pipeline(p)
    if not isinstance(pipe.get("max_length"), int) or pipe["max_length"] < 2:
        raise ModelDirError(f"{p / PIPELINE_FILE}: max_length is missing or not a number of tokens")
    corpus_config(pipe)
    if backend == "torch":
        _check_safetensors(p / "model.safetensors", cfg["tasks"])
    elif onnx_file and not (p / onnx_file).exists():
        raise ModelDirError(no_onnx(p, onnx_file))
    return p
