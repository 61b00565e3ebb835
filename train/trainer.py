"""`nabra train`: fine-tune one encoder with one head per task on a `nabra dataset build` folder.

Writes into RUN_DIR:
  config.yaml          the resolved config (every default filled in)
  run_info.json        dataset path and manifest hash, git commit, package versions, device, label maps
  tokenizer/           the tokenizer (trained on the corpus for the tiny model), saved before training
  checkpoints/         Trainer checkpoints (resume from the last one with --resume)
  metrics.jsonl        every log line (loss, learning rate, dev metrics) with its step
  model/               the best model: safetensors, config with label maps, tokenizer, preprocessing
  dev_metrics.json     the best model's dev metrics
The steps are separate functions (load_data, make_model, encode, train_model, evaluate) that a
test can call one by one.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from nabra.config import ConfigError, TrainConfig
from nabra.data.dataset import dataset_manifest, ids_hash, load_split, rows_hash
from nabra.io import atomic_dir, git_commit, provenance, read_json, read_parquet, readable_weights, refuse_foreign, write_atomic, write_json
from nabra.train.model_dir import save_pipeline
from nabra.train.text import Preprocessor, check_model_available, load_tokenizer, train_wordpiece


# ----------------------------------------------------------------------------- data
def check_task_keys(cfg: TrainConfig) -> None:
    """Per-task settings name tasks of data.tasks, and weights are >= 0 with some dev score left: a
    misspelt task was ignored, and all-zero metric weights divided by zero after the first epoch."""
    for key, by_task in (("training.loss_weights", cfg.training.loss_weights),
                         ("training.metric_weights", cfg.training.metric_weights),
                         ("data.label_columns", cfg.data.label_columns)):
        unknown = sorted(set(by_task) - set(cfg.data.tasks))
        if unknown:
            raise ConfigError(f"{key}: {', '.join(unknown)} is not a task of data.tasks ({', '.join(cfg.data.tasks)})")
    if len(set(cfg.data.tasks)) != len(cfg.data.tasks):
        raise ConfigError(f"data.tasks: each task once, got {cfg.data.tasks}")
    for key, w in (("training.loss_weights", cfg.training.loss_weights), ("training.metric_weights", cfg.training.metric_weights)):
        if any(v < 0 for v in w.values()):
            raise ConfigError(f"{key}: weights must be >= 0, got {w}")
    if sum(cfg.training.metric_weights.get(t, 1.0) for t in cfg.data.tasks) <= 0:
        raise ConfigError("training.metric_weights: every task weighs 0, so no dev score picks the best checkpoint")


def load_data(cfg: TrainConfig, dataset_dir: str | Path, splits=("train", "dev")) -> tuple[dict, dict]:
    """Returns ({split: DataFrame with columns text[, text_pair], one per task}, {task: labels}).

    Columns are checked (and renamed through data.label_columns / text_column) before training."""
    man = dataset_manifest(dataset_dir)
    d = cfg.data
    check_task_keys(cfg)
    label_lists = {}
    for t in d.tasks:
        if t not in man.get("tasks", {}):
            raise ConfigError(f"data.tasks: task '{t}' is not in the dataset {dataset_dir} "
                              f"(it has: {', '.join(man.get('tasks', {}))})")
        label_lists[t] = list(man["tasks"][t])
    out = {}
    uses = {"train": "train on", "dev": "choose the best checkpoint on"}  # an empty one: IndexError in HF
    for split in splits:
        df = load_split(dataset_dir, split, use=uses.get(split, "score"))
        if split == "train" and d.use_weak:
            wp = Path(dataset_dir) / "weak_train.parquet"
            if not wp.exists():
                raise ConfigError(f"data.use_weak: {wp} does not exist (build the dataset with --weak)")
            df = pd.concat([df, read_parquet(wp)], ignore_index=True)
        cols = {d.text_column: "text"}
        if d.text_pair_column:
            cols[d.text_pair_column] = "text_pair"
        for t in d.tasks:
            cols[d.label_columns.get(t, t)] = t
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise ConfigError(f"{dataset_dir}/{split}.parquet lacks column(s) {missing} "
                              f"(has {list(df.columns)}); map them with data.text_column / data.label_columns")
        df = df.rename(columns=cols)
        for t in d.tasks:
            bad = set(df[t].dropna()) - set(label_lists[t])
            if bad:
                raise ConfigError(f"{split}: task {t} has label(s) {sorted(bad)} not in {label_lists[t]}")
        cap = d.max_train_samples if split == "train" else d.max_eval_samples
        if cap:
            df = df.iloc[:cap]
        keep = ["statement_id"] if "statement_id" in df.columns else []
        out[split] = df[keep + list(dict.fromkeys(cols.values()))].reset_index(drop=True)
    return out, label_lists


# ----------------------------------------------------------------------------- model
def make_model(cfg: TrainConfig, label_lists: dict, train_df: pd.DataFrame, tokenizer_dir: Path | None = None):
    """Returns (model, tokenizer, preprocessor). AraBERT / any encoder by name or folder; or a tiny
    BERT from config with a WordPiece tokenizer trained on the training texts."""
    from nabra.train.model import NabraModel, tiny_bert_config

    m = cfg.model
    pre = Preprocessor(m.preprocess, m.preprocess_model, m.input_prefix)
    cw = class_weights(cfg, train_df, label_lists)
    kw = dict(loss_weights={t: cfg.training.loss_weights.get(t, 1.0) for t in label_lists}, class_weights=cw,
              classifier_dropout=m.dropout, text_pair=cfg.data.text_pair_column is not None,
              pooling=m.pooling, label_smoothing=cfg.training.label_smoothing)
    if m.name_or_path is None:
        if m.tiny is None:
            raise ConfigError("model.name_or_path is null: give model.tiny to build a model from a config")
        if tokenizer_dir is not None and (tokenizer_dir / "tokenizer.json").exists():
            tok = load_tokenizer(str(tokenizer_dir), m.max_length)
        else:
            texts = tokenizer_texts(cfg, train_df)
            tok = train_wordpiece(pre(texts), m.tiny.vocab_size, m.max_length)
        enc = tiny_bert_config(m.tiny, len(tok), tok.pad_token_id, m.max_length)
        model = NabraModel.from_encoder_config(enc, label_lists, **kw)
    else:
        check_model_available(m.name_or_path)
        tok = load_tokenizer(str(tokenizer_dir) if tokenizer_dir and (tokenizer_dir / "tokenizer_config.json").exists()
                             else m.name_or_path, m.max_length)
        model = NabraModel.from_encoder(m.name_or_path, label_lists, **kw)
        if len(tok) > model.encoder.get_input_embeddings().num_embeddings:
            model.encoder.resize_token_embeddings(len(tok))
            model.config.encoder = model.encoder.config.to_dict()
    if m.freeze_embeddings:
        # the optimizer skips a frozen matrix: with 250k rows it would dominate every step on CPU
        model.encoder.get_input_embeddings().weight.requires_grad_(False)
    if m.freeze_layers:
        freeze_lower_layers(model.encoder, m.freeze_layers)
    return model, tok, pre


def freeze_lower_layers(encoder, n: int) -> None:
    """Fixes the embeddings and the first n transformer layers of an HF encoder (BERT, XLM-R,
    ELECTRA: encoder.layer; DistilBERT: transformer.layer). Their outputs then need no gradient,
    so autograd neither stores their activations nor runs their backward."""
    import torch.nn as nn

    layers = None
    for path in ("encoder.layer", "transformer.layer", "layers"):
        obj = encoder
        for part in path.split("."):
            obj = getattr(obj, part, None)
        if isinstance(obj, nn.ModuleList):
            layers = obj
            break
    if layers is None:
        raise ConfigError(f"model.freeze_layers: cannot find the layer list of {type(encoder).__name__} "
                          "(looked for encoder.layer, transformer.layer, layers); set model.freeze_layers: 0")
    if n > len(layers):
        raise ConfigError(f"model.freeze_layers: {n} is more than the encoder's {len(layers)} layers")
    for module in [encoder.get_input_embeddings(), getattr(encoder, "embeddings", None), *layers[:n]]:
        if module is not None:
            module.requires_grad_(False)


def tokenizer_texts(cfg: TrainConfig, train_df: pd.DataFrame) -> list[str]:
    corpus = cfg.model.tiny.tokenizer_corpus if cfg.model.tiny else None
    if corpus:
        st = read_parquet(Path(corpus) / "statements.parquet", columns=["text"])
        return st.text.tolist()
    texts = train_df.text.tolist()
    if "text_pair" in train_df:
        texts += train_df.text_pair.dropna().tolist()
    return texts


def class_weights(cfg: TrainConfig, train_df: pd.DataFrame, label_lists: dict) -> dict:
    if cfg.training.class_weights == "none":
        return {}
    out = {}
    for t, labels in label_lists.items():
        counts = train_df[t].value_counts().reindex(labels).fillna(0).to_numpy(dtype=float)
        present = counts > 0
        w = np.zeros(len(labels))
        # sklearn's "balanced" weights, capped so that a class with 2 examples does not dominate
        w[present] = counts[present].sum() / (present.sum() * counts[present])
        out[t] = [round(float(x), 6) for x in np.clip(w, 0.0, 10.0)]
    return out


def encode(df: pd.DataFrame, tok, pre: Preprocessor, max_length: int, label_lists: dict | None = None):
    """DataFrame -> datasets.Dataset with input_ids, attention_mask[, token_type_ids], length and
    labels_<task> (class ids; -100 where a label is missing). No padding here: the collator pads
    each batch to its own longest statement."""
    from datasets import Dataset

    texts = pre(df.text.tolist())
    pairs = pre(df.text_pair.fillna("").tolist(), pair=True) if "text_pair" in df else None
    enc = tok(texts, pairs, truncation=True, max_length=max_length) if pairs else \
        tok(texts, truncation=True, max_length=max_length)
    data = {k: enc[k] for k in enc.keys()}
    data["length"] = [len(x) for x in enc["input_ids"]]
    for t, labels in (label_lists or {}).items():
        if t in df:
            idx = {l: i for i, l in enumerate(labels)}
            data[f"labels_{t}"] = [idx.get(v, -100) if isinstance(v, str) else -100 for v in df[t]]
    return Dataset.from_dict(data)


# ----------------------------------------------------------------------------- metrics
def metric_fn(label_lists: dict, weights: dict):
    from sklearn.metrics import accuracy_score, f1_score

    tasks = list(label_lists)

    def compute(pred) -> dict:
        logits = pred.predictions if isinstance(pred.predictions, (tuple, list)) else (pred.predictions,)
        labels = pred.label_ids if isinstance(pred.label_ids, (tuple, list)) else (pred.label_ids,)
        out, total, wsum = {}, 0.0, 0.0
        for t, lg, y in zip(tasks, logits, labels):
            keep = y != -100
            p = np.asarray(lg).argmax(-1)[keep]
            y = y[keep]
            # as nabra evaluate counts it (evaluation/metrics.py): over the labels in gold or predictions, so
            # dev_metrics.json and the report agree on a dev split that lacks a class
            f1 = f1_score(y, p, average="macro", zero_division=0)
            out[f"{t}_macro_f1"] = round(float(f1), 6)
            out[f"{t}_accuracy"] = round(float(accuracy_score(y, p)), 6)
            w = weights.get(t, 1.0)
            total += w * f1
            wsum += w
        out["combined_macro_f1"] = round(total / wsum, 6)
        return out

    return compute


# ----------------------------------------------------------------------------- training
def cpu_bf16() -> bool:
    """True when this CPU multiplies bf16 natively (AVX512-BF16 or AMX): there autocast to bf16 runs the
    matmuls ~2x faster than fp32 (measured: 412 vs 190 GFLOP/s here); elsewhere bf16 is emulated and slower."""
    import torch

    try:  # oneDNN's own capability probe; a private torch op, hence guarded
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def precision_args(cfg: TrainConfig) -> dict:
    import torch

    p = resolve_precision(cfg.training.precision)
    if p == "fp16" and not torch.cuda.is_available():
        raise ConfigError("training.precision: fp16 needs a GPU; on CPU use bf16 (native on AVX512-BF16/AMX CPUs) or fp32")
    # the Trainer refuses bf16 without a GPU unless told it is training on the CPU on purpose
    return {"bf16": p == "bf16", "fp16": p == "fp16", "use_cpu": not torch.cuda.is_available()}


def resolve_precision(p: str) -> str:
    """auto: bf16 on a GPU that has it, else fp16 on GPU; on CPU bf16 where the CPU multiplies bf16 natively
    (autocast, fp32 master weights, as on GPU), else fp32."""
    import torch

    if p != "auto":
        return p
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_bf16() else "fp32"


def hf_args(cfg, output_dir: Path, **task):
    """The TrainingArguments `nabra train` and `nabra pretrain` share (schedule, checkpoints, seeds, data
    order, workers, precision), from cfg.training; `task` adds each one's own (evaluation, logging)."""
    import torch
    from transformers import TrainingArguments

    t = cfg.training
    steps = t.eval_strategy == "steps"
    return TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=t.epochs, max_steps=t.max_steps,
        per_device_train_batch_size=t.batch_size, gradient_accumulation_steps=t.grad_accum,
        learning_rate=t.learning_rate, weight_decay=t.weight_decay, warmup_steps=t.warmup, lr_scheduler_type="linear",
        save_strategy=t.eval_strategy, save_steps=t.eval_steps if steps else None, save_total_limit=t.save_total_limit,
        seed=t.seed, data_seed=t.seed, full_determinism=not torch.cuda.is_available(),
        train_sampling_strategy="group_by_length" if t.group_by_length else "random", length_column_name="length",
        dataloader_num_workers=t.dataloader_workers, dataloader_pin_memory=torch.cuda.is_available(),
        log_level_replica="passive",  # the default level, warning, printed the Trainer's warnings again from each replica
        **precision_args(cfg), **task)


def training_args(cfg: TrainConfig, run_dir: Path, label_names: list[str]):
    from transformers.integrations import is_wandb_available

    t, lg = cfg.training, cfg.logging
    report = "none"
    if lg.wandb:
        if not is_wandb_available():
            raise ConfigError("logging.wandb: true but wandb is not installed (pip install wandb)")
        os.environ.setdefault("WANDB_MODE", "offline")
        os.environ.setdefault("WANDB_PROJECT", lg.wandb_project)
        report = ["wandb"]
    steps = t.eval_strategy == "steps"
    return hf_args(
        cfg, run_dir / "checkpoints", per_device_eval_batch_size=t.eval_batch_size,
        eval_strategy=t.eval_strategy, eval_steps=t.eval_steps if steps else None,
        load_best_model_at_end=t.select_best, metric_for_best_model="combined_macro_f1", greater_is_better=True,
        logging_steps=lg.logging_steps, report_to=report, run_name=run_dir.name,
        restore_callback_states_from_checkpoint=True,  # --resume keeps early stopping's patience count
        label_names=label_names, disable_tqdm=False)


class _WandbRecord:
    """Puts nabra's resolved config, label maps and data hashes into the wandb run's config: the Trainer's
    WandbCallback records only its TrainingArguments and the model config, so a wandb run named no data."""

    def __new__(cls, record: dict):
        from transformers import TrainerCallback

        class Cb(TrainerCallback):
            def on_train_begin(self, args, state, control, **kw):  # after WandbCallback started the run
                import wandb

                if state.is_world_process_zero and wandb.run is not None:
                    wandb.config.update({"nabra": record}, allow_val_change=True)

        return Cb()


class _JsonlLogger:
    """Appends every Trainer log (loss, lr, eval metrics) to metrics.jsonl."""

    def __new__(cls, path: Path):
        from transformers import TrainerCallback

        class Cb(TrainerCallback):
            def on_log(self, args, state, control, logs=None, **kw):
                if logs and state.is_world_process_zero:
                    with open(path, "a", encoding="utf-8") as fh:
                        fh.write(json.dumps({"step": state.global_step, "epoch": state.epoch, **logs}) + "\n")

        return Cb()


def drop_logs_after(path: Path, step: int) -> None:
    """--resume redoes the steps after its checkpoint: the lines the killed run logged for them stayed in
    metrics.jsonl, so the resumed run's lines for the same steps (another loss: HF averages from the
    checkpoint on) came after them, twice per step. A line cut short by the kill goes as well."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        try:
            if json.loads(line)["step"] <= step:
                keep.append(line)
        except (ValueError, KeyError, TypeError):
            pass
    write_atomic(path, "".join(keep))


EPOCH_RNG_FILE = "epoch_rng_state.pt"


class EpochOrder:
    """Makes a run resumed inside an epoch see that epoch's statements in the uninterrupted order.

    HF's LengthGroupedSampler (`group_by_length`, the default) shuffles from torch's global RNG when the
    epoch starts; on --resume the Trainer restores the RNG as it was at the checkpoint, so a resumed epoch
    was reshuffled and skipped the wrong statements. The RNG state at each epoch's start is saved in every
    checkpoint and put back at the start of the resumed epoch, before the sampler draws (the Trainer then
    restores the checkpoint's own state for the steps that follow, as before). An uninterrupted run draws
    exactly what it drew before. Hand-written: HF offers no seeded length-grouped sampler."""

    def __new__(cls, resume_from: str | None):
        import torch
        from transformers import TrainerCallback

        class Cb(TrainerCallback):
            def __init__(self):
                saved = Path(resume_from or "") / EPOCH_RNG_FILE
                self.pending = torch.load(saved) if resume_from and saved.exists() else None
                self.at_start = None

            def on_epoch_begin(self, args, state, control, **kw):
                inside = abs(state.epoch - round(state.epoch)) > 1e-6  # the checkpoint's epoch, e.g. 1.43
                if self.pending is not None and inside:
                    torch.set_rng_state(self.pending)  # resumed inside this epoch: its draw as it was
                self.pending = None
                self.at_start = torch.get_rng_state()

            def on_save(self, args, state, control, **kw):
                if state.is_world_process_zero and self.at_start is not None:
                    ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                    torch.save(self.at_start, ckpt / EPOCH_RNG_FILE)

        return Cb()


LAYER = re.compile(r"\.layers?\.(\d+)\.")  # encoder block index in HF names (BERT's layer.N, most others' layers.N)


def param_depth(name: str, n_layers: int) -> int:
    """0 for the embeddings, k for encoder block k-1, n_layers + 1 for what sits above (pooler, heads)."""
    m = LAYER.search(name)
    if m:
        return int(m.group(1)) + 1
    return 0 if "embeddings" in name else n_layers + 1


def grouped_optimizer(cfg: TrainConfig, model):
    """AdamW with the heads at training.head_learning_rate and the encoder's layers at decaying rates
    (training.layer_lr_decay: Howard & Ruder 2018; Sun et al. 2019, "How to Fine-Tune BERT"); None when
    neither is set, and the Trainer builds its own optimizer. Same grouping as the Trainer's (no decay
    on biases and LayerNorm weights); the Trainer's scheduler scales each group from its own peak."""
    import torch

    t = cfg.training
    if t.head_learning_rate is None and t.layer_lr_decay == 1.0:
        return None
    n_layers = model.encoder.config.num_hidden_layers
    groups: dict[tuple, list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.startswith("heads."):
            lr = t.head_learning_rate or t.learning_rate
        else:
            lr = t.learning_rate * t.layer_lr_decay ** max(n_layers - param_depth(name, n_layers), 0)
        decay = not (name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name)
        groups.setdefault((lr, decay), []).append(p)
    return torch.optim.AdamW(
        [{"params": ps, "lr": lr, "weight_decay": t.weight_decay if decay else 0.0}
         for (lr, decay), ps in sorted(groups.items(), key=lambda kv: (-kv[0][0], kv[0][1]))],
        lr=t.learning_rate, fused=True)


PROBE_C = (0.001, 0.01, 0.1, 1.0, 10.0)  # the probes' inverse L2 strengths tried (pooled states are not normalised)


def pooled_states(model, tok, ds, batch_size: int = 64) -> np.ndarray:
    """The frozen encoder's pooled states (what the heads read, no dropout) of every row of `ds`."""
    import torch
    from transformers import DataCollatorWithPadding

    cols = [c for c in ("input_ids", "attention_mask", "token_type_ids") if c in ds.column_names]
    rows = {c: ds[c] for c in cols}
    order = np.argsort(np.asarray(ds["length"]), kind="stable")  # length-sorted batches: little padding
    collate = DataCollatorWithPadding(tok)
    feats = np.zeros((len(ds), model.encoder.config.hidden_size), np.float32)
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for i in range(0, len(ds), batch_size):
            idx = order[i:i + batch_size]
            batch = collate([{c: rows[c][j] for c in cols} for j in idx])
            feats[idx] = model.pool(**{c: batch[c] for c in cols}).float().numpy()
    model.train(was_training)
    return feats


def probe_heads(model, tok, train_ds, dev_ds, label_lists: dict, log=None) -> dict:
    """LP-FT (Kumar et al., ICLR 2022, "Fine-Tuning can Distort Pretrained Features and Underperform
    Out-of-Distribution"): each head starts as the logistic regression of its task's train labels on the
    frozen encoder's pooled states (classes weighted as the training loss weighs them; L2 strength chosen
    on dev macro-F1), not at random, so that the first fine-tuning steps do not bend the pretrained
    features toward a random head. Returns, per task, the C chosen and the probe's dev macro-F1."""
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    xt, xd = pooled_states(model, tok, train_ds), pooled_states(model, tok, dev_ds)
    chosen = {}
    for t, labels in label_lists.items():
        yt, yd = np.asarray(train_ds[f"labels_{t}"]), np.asarray(dev_ds[f"labels_{t}"])
        kt, kd = yt != -100, yd != -100
        if len(set(yt[kt].tolist())) != len(labels):
            if log:
                log(f"linear probe: the {t} head stays random (not every class is in the train split)")
            continue
        cw = model.class_weight(t)
        sw = cw.cpu().numpy()[yt[kt]] if cw is not None else None
        best = None
        for C in PROBE_C:
            lr = LogisticRegression(C=C, max_iter=3000).fit(xt[kt], yt[kt], sample_weight=sw)
            f1 = f1_score(yd[kd], lr.predict(xd[kd]), labels=list(range(len(labels))), average="macro",
                          zero_division=0) if kd.any() else 0.0
            if best is None or f1 > best[0]:
                best = (f1, C, lr)
        f1, C, lr = best
        w, b = lr.coef_, lr.intercept_
        if len(labels) == 2:  # one logistic: logits (-z/2, z/2) give the same probabilities under softmax
            w, b = np.concatenate([-w / 2, w / 2]), np.concatenate([-b / 2, b / 2])
        head = model.heads[t]
        with torch.no_grad():
            head.weight.copy_(torch.as_tensor(w, dtype=head.weight.dtype))
            head.bias.copy_(torch.as_tensor(b, dtype=head.bias.dtype))
        chosen[t] = {"C": C, "dev_macro_f1": round(float(f1), 4)}
    return chosen


def train_model(cfg: TrainConfig, model, tok, train_ds, dev_ds, run_dir: Path, label_lists: dict,
                resume: bool = False, callbacks=None, args=None, log=print):
    from transformers import DataCollatorWithPadding, EarlyStoppingCallback, Trainer

    args = args or training_args(cfg, run_dir, [f"labels_{t}" for t in label_lists])
    start = None
    if resume:  # several processes: the main one removes a checkpoint cut short, then the others look
        with args.main_process_first(local=False, desc="the checkpoint to resume"):
            start = last_complete_checkpoint(run_dir / "checkpoints", log)
            if main_process():
                drop_logs_after(run_dir / "metrics.jsonl", int(Path(start).name.split("-")[-1]))
    cbs = [_JsonlLogger(run_dir / "metrics.jsonl"), EpochOrder(start)]
    if cfg.training.early_stopping_patience > 0 and cfg.training.select_best:
        cbs.append(EarlyStoppingCallback(early_stopping_patience=cfg.training.early_stopping_patience))
    trainer = Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=dev_ds,
                      data_collator=DataCollatorWithPadding(tok), processing_class=tok,
                      compute_metrics=metric_fn(label_lists, cfg.training.metric_weights),
                      callbacks=cbs + list(callbacks or []), optimizers=(grouped_optimizer(cfg, model), None))
    trainer.train(resume_from_checkpoint=start)
    return trainer


def last_complete_checkpoint(ckpts: Path, log=print, must: bool = True) -> str | None:
    """The newest checkpoint the Trainer finished saving (trainer_state.json is written last). One cut
    short by Ctrl-C or a kill is removed: HF took the newest folder and failed on it on every --resume.
    None complete: a ConfigError if `must` (train --resume), else None (pretraining starts afresh)."""
    done = []
    for c in ckpts.glob("checkpoint-*"):
        if _readable_json(c / "trainer_state.json") and any(c.glob("*.safetensors")):
            done.append(c)
        else:  # HF writes trainer_state.json in place: a kill mid-write leaves it truncated
            log(f"{c}: saving was cut short (no complete trainer_state.json, or no weights): removed")
            shutil.rmtree(c)
    if not done and not must:
        return None
    if not done:
        raise ConfigError(f"{ckpts}: no complete checkpoint to resume from; start the run again without --resume")
    return str(max(done, key=lambda c: int(c.name.split("-")[-1])))  # HF names them checkpoint-<step>


def _readable_json(path: Path) -> bool:
    try:
        json.loads(path.read_text(encoding="utf-8"))
        return True
    except (OSError, ValueError):
        return False


def save_model(model, tok, pre: Preprocessor, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    readable_weights(out)
    tok.save_pretrained(out)
    pre.save(out)
    # label maps per task, readable without torch
    write_json(out / "label_maps.json", {t: {"label2id": model.config.task_label2id(t), "id2label": model.config.task_id2label(t)}
                                         for t in model.config.tasks})


def pipeline_record(cfg: TrainConfig, dataset_dir, data: dict) -> tuple[dict, int, dict]:
    """(corpus config, max_length, training data facts) for nabra_pipeline.json: from the dataset's
    manifest, which carries its corpus's config; a dataset without one (benchmarks) gets the defaults."""
    from nabra.config import load_corpus_config
    from nabra.data.ingest import file_sha256
    from nabra.paths import sample_dir

    import torch

    man = dataset_manifest(dataset_dir)
    corpus = man.get("corpus_config") or load_corpus_config().model_dump()
    sample = file_sha256(sample_dir() / "articles.jsonl")
    facts = {"label_source": man.get("label_source"), "corpus_inputs": man.get("corpus_inputs"),
             "embedded_sample": sample in (man.get("corpus_input_sha256") or []),
             "corpus_config_from": "dataset manifest" if man.get("corpus_config") else "nabra defaults",
             "dataset_content_hash": man.get("content_hash"), "train_statements": len(data["train"]),
             "dev_statements": len(data["dev"]),
             # the run's own record, so that a model folder copied away from its run still says how it was made
             "seed": cfg.training.seed, "git_commit": git_commit(), "run_config": cfg.model_dump(),
             # what `precision: auto` and `threads: null` became on the machine that trained it
             "precision": resolve_precision(cfg.training.precision), "threads": torch.get_num_threads(),
             "train_rows_hash": rows_hash(data["train"])}
    return corpus, cfg.model.max_length, facts


# what a run directory holds (train.log: `nabra demo`'s copy of the output)
RUN_FILES = {"checkpoints", "config.yaml", "run_info.json", "metrics.jsonl", "tokenizer", "model",
             "dev_metrics.json", "train.log"}


def run(cfg: TrainConfig, dataset_dir: str | Path, out: str | Path, resume: bool = False, callbacks=None,
        log=print) -> dict:
    """Trains and writes RUN_DIR (see module docstring); returns the best model's dev metrics."""
    import torch
    from transformers import set_seed

    run_dir = Path(out)
    log = log if main_process() else (lambda *a, **k: None)  # several processes: the main one speaks
    cfg = absolute_model_path(cfg)
    if cfg.training.threads:
        torch.set_num_threads(cfg.training.threads)
    set_seed(cfg.training.seed)
    precision_args(cfg)  # an impossible precision fails before anything is written
    ckpts = run_dir / "checkpoints"
    if resume and (run_dir / "model").exists() and (run_dir / "dev_metrics.json").exists():
        # finished: resuming again would train one step more and overwrite the model
        log(f"{run_dir} is finished (model/ and dev_metrics.json written): nothing to resume")
        return read_json(run_dir / "dev_metrics.json")
    if resume and not (ckpts.exists() and any(ckpts.glob("checkpoint-*"))):
        log(f"no checkpoint in {ckpts}: starting from scratch")
        resume = False
    if not resume and (run_dir / "model").exists():
        raise ConfigError(f"{run_dir} already holds a finished run; choose another --out or use --resume")
    if not resume and ckpts.exists() and any(ckpts.glob("checkpoint-*")):
        raise ConfigError(f"{run_dir} holds checkpoints of an unfinished run: continue it with --resume {run_dir}")
    if not resume and run_dir.is_dir():
        # a run writes into --out itself (checkpoints survive a kill): any other folder (the dataset,
        # a project folder) got run files mixed into it
        refuse_foreign(run_dir, [p.name for p in run_dir.iterdir() if p.name not in RUN_FILES], "training",
                       "give a new or empty folder for --out")
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        return _run(cfg, dataset_dir, run_dir, resume, callbacks, log)
    except BaseException:
        # a run that failed before its first checkpoint leaves nothing behind (no empty --out folder)
        if created and main_process() and not any(run_dir.glob("checkpoints/checkpoint-*")):
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def absolute_model_path(cfg: TrainConfig) -> TrainConfig:
    """A local encoder folder given relative to the working folder (`models/e5-small-snn`) is recorded
    absolute: the run's config is read again from other folders (evaluate's embeddings + LR baseline,
    --resume), where the relative name was taken for a hub id (40 s of retries, then a wrong hint)."""
    name = cfg.model.name_or_path
    if not name or Path(name).is_absolute() or not Path(name).is_dir():
        return cfg
    return cfg.model_copy(update={"model": cfg.model.model_copy(update={"name_or_path": str(Path(name).resolve())})})


def data_record(dataset_dir, data: dict) -> dict:
    """What identifies a run's data, in run_info.json, checked again by --resume."""
    rec = {"dataset_content_hash": dataset_manifest(dataset_dir).get("content_hash")}
    for s in ("train", "dev"):
        # the rows really used (data.max_*_samples may cut the splits the content hash covers)
        if "statement_id" in data[s]:
            rec[f"{s}_ids_hash"] = ids_hash(data[s].statement_id)
        rec[f"{s}_rows_hash"] = rows_hash(data[s])
    return rec


def check_same_data(run_dir: Path, dataset_dir, data: dict) -> None:
    """--resume on data other than the run started with would mix two datasets in one model."""
    info = read_json(run_dir / "run_info.json")
    now = data_record(dataset_dir, data)
    changed = [k for k, v in now.items() if k in info and info[k] != v]
    if changed:
        raise ConfigError(f"{dataset_dir} is not the data {run_dir} was trained on ({', '.join(changed)} changed "
                          "since the run started): resuming would mix two datasets in one model; rebuild the "
                          "same dataset, or start a new run with another --out")


def _run(cfg: TrainConfig, dataset_dir, run_dir: Path, resume: bool, callbacks, log) -> dict:
    from transformers import EarlyStoppingCallback

    data, label_lists = load_data(cfg, dataset_dir)
    if resume:
        check_same_data(run_dir, dataset_dir, data)
    args = training_args(cfg, run_dir, [f"labels_{t}" for t in label_lists])  # starts the process group, if any
    # several processes: the main one trains the tiny tokenizer and writes the run's files, then the others
    # start (and read that tokenizer), so each file is written once and every process has the same vocabulary
    with args.main_process_first(local=False, desc="run files"):
        model, tok, pre = make_model(cfg, label_lists, data["train"], run_dir / "tokenizer")
        if not resume and main_process():
            (run_dir / "metrics.jsonl").unlink(missing_ok=True)
            write_atomic(run_dir / "config.yaml", yaml.safe_dump(cfg.model_dump(), sort_keys=False, allow_unicode=True))
            tok.save_pretrained(run_dir / "tokenizer")
            write_json(run_dir / "run_info.json", {
                "dataset_dir": str(Path(dataset_dir).resolve()), **data_record(dataset_dir, data),
                "dataset_label_source": dataset_manifest(dataset_dir).get("label_source"), **provenance(),
                "seed": cfg.training.seed, "label_maps": label_lists,
                "device": {**_device_info(), "processes": args.world_size},  # the batch is batch_size x grad_accum x processes
                "precision": resolve_precision(cfg.training.precision),
                "train_statements": len(data["train"]), "dev_statements": len(data["dev"]),
            })
    train_ds = encode(data["train"], tok, pre, cfg.model.max_length, label_lists)
    dev_ds = encode(data["dev"], tok, pre, cfg.model.max_length, label_lists)
    log(f"training {len(train_ds):,} statements, dev {len(dev_ds):,}; tasks " +
        ", ".join(f"{t} ({len(l)})" for t, l in label_lists.items()))
    if cfg.training.linear_probe and not resume:  # a resumed run takes its heads from the checkpoint
        probes = probe_heads(model, tok, train_ds, dev_ds, label_lists, log)
        log("heads start as linear probes (dev macro-F1 " +
            ", ".join(f"{t} {p['dev_macro_f1']:.3f} at C={p['C']:g}" for t, p in probes.items()) + ")")
    if cfg.logging.wandb:
        callbacks = [_WandbRecord({"config": cfg.model_dump(), "dataset_dir": str(Path(dataset_dir).resolve()),
                                   **data_record(dataset_dir, data), "label_maps": label_lists, **provenance()}),
                     *(callbacks or [])]
    trainer = train_model(cfg, model, tok, train_ds, dev_ds, run_dir, label_lists, resume, callbacks, args, log)
    trainer.remove_callback(EarlyStoppingCallback)  # it looked for eval_* in the dev_* scores below, and warned
    metrics = trainer.evaluate(dev_ds, metric_key_prefix="dev")
    metrics = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in metrics.items()
               if "runtime" not in k and "per_second" not in k}
    metrics["best_checkpoint"] = Path(trainer.state.best_model_checkpoint or "").name if cfg.training.select_best else "last"
    metrics["global_step"] = trainer.state.global_step
    if main_process():
        # written whole or not at all: a run killed while saving left a model/ without nabra_pipeline.json,
        # which export and predict took for an old model ("retrain") and train for a finished run
        with atomic_dir(run_dir / "model") as tmp:
            save_model(trainer.model, tok, pre, tmp)
            save_pipeline(tmp, *pipeline_record(cfg, dataset_dir, data))
        write_json(run_dir / "dev_metrics.json", metrics)
    return metrics


def main_process() -> bool:
    """False in the other processes of a run launched by torchrun or accelerate (they set RANK): only the
    main one writes nabra's files and prints."""
    return int(os.environ.get("RANK", "0")) == 0


def _device_info() -> dict:
    import torch

    info = {"cuda": torch.cuda.is_available(), "threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpus"] = torch.cuda.device_count()
    return info


def load_run_config(run_dir: str | Path) -> tuple[TrainConfig, str]:
    """The resolved config and dataset folder of an earlier run (for --resume)."""
    from nabra.config import read_yaml, validate

    run_dir = Path(run_dir)
    if not run_dir.exists():  # "no config.yaml; not a nabra run directory" named no way on
        raise FileNotFoundError(f"{run_dir}: no such run directory (a run stopped before its first checkpoint "
                                "leaves none behind): start it again with --config, --data and --out")
    if not (run_dir / "config.yaml").exists():
        raise FileNotFoundError(f"{run_dir}: no config.yaml; not a nabra run directory")
    cfg = validate(TrainConfig, read_yaml(run_dir / "config.yaml"), str(run_dir / "config.yaml"))
    if not (run_dir / "run_info.json").exists():
        raise ConfigError(f"{run_dir}/run_info.json: missing (it names the run's dataset): the run cannot be "
                          "resumed; start a new run with --out")
    info = read_json(run_dir / "run_info.json")
    if not isinstance(info, dict) or not info.get("dataset_dir"):
        raise ConfigError(f"{run_dir}/run_info.json: no dataset_dir (edited?): the run cannot be resumed; "
                          "start a new run with --out")
    return cfg, info["dataset_dir"]
