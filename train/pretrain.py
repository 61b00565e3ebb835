"""`nabra pretrain`: masked-language-model pretraining on unlabelled corpus statements.

Domain-adaptive pretraining: continues a given checkpoint (AraBERT, `model.name_or_path`) or
starts the tiny BERT from scratch (`model.name_or_path: null` + `model.tiny`). Writes OUT/ with
the MLM model (safetensors), tokenizer and preprocessing settings: a folder that `nabra train`
accepts as `model.name_or_path`. Also OUT/pretrain_info.json (corpus hash, steps, mean training loss of the steps this command ran).
Checkpoints go to .OUT.work/ beside OUT (`training.eval_strategy`/`eval_steps` say when): a run killed
mid-way is resumed by the same command from its last complete checkpoint; the folder goes when OUT is
written.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import torch
from datasets import Dataset
from transformers import AutoModelForMaskedLM, BertForMaskedLM, DataCollatorForLanguageModeling, Trainer, set_seed

from nabra.config import ConfigError, PretrainConfig
from nabra.data.corpus import load_corpus
from nabra.io import atomic_dir, prepare_work, readable_weights, refuse_foreign, versions, write_json
from nabra.train.model import tiny_bert_config
from nabra.train.text import Preprocessor, check_model_available, load_tokenizer, train_wordpiece
from nabra.train.trainer import (EpochOrder, hf_args, last_complete_checkpoint, main_process, precision_args,
                                 resolve_precision)


def run(cfg: PretrainConfig, corpus_dir: str | Path, out: str | Path, log=print, callbacks=()) -> dict:
    out = Path(out)
    if out.is_dir() and not (out / "pretrain_info.json").exists():
        # checked before minutes of training; the dataset folder once got a checkpoint mixed into it
        refuse_foreign(out, [p.name for p in out.iterdir()], "`nabra pretrain`",
                       "not an earlier `nabra pretrain` output; give a new or empty folder for --out")
    t = cfg.training
    if t.threads:
        torch.set_num_threads(t.threads)
    set_seed(t.seed)
    precision_args(cfg)  # an impossible precision fails before the corpus is read
    st, _, man = load_corpus(corpus_dir)
    st = st[~st.is_duplicate]
    if cfg.max_statements:
        st = st.sample(n=min(cfg.max_statements, len(st)), random_state=t.seed)
    m = cfg.model
    pre = Preprocessor(m.preprocess, m.preprocess_model)
    texts = pre(st.text.tolist())
    if m.name_or_path is None:
        if m.tiny is None:
            raise ConfigError("model.name_or_path is null: give model.tiny to build a model from a config")
        tok = train_wordpiece(texts, m.tiny.vocab_size, m.max_length)
        model = BertForMaskedLM(tiny_bert_config(m.tiny, len(tok), tok.pad_token_id, m.max_length))
    else:
        check_model_available(m.name_or_path)
        tok = load_tokenizer(m.name_or_path, m.max_length)
        model = AutoModelForMaskedLM.from_pretrained(m.name_or_path)
        if len(tok) > model.get_input_embeddings().num_embeddings:
            model.resize_token_embeddings(len(tok))
    enc = tok(texts, truncation=True, max_length=m.max_length, return_special_tokens_mask=True)
    ds = Dataset.from_dict({k: enc[k] for k in enc.keys()} | {"length": [len(x) for x in enc["input_ids"]]})
    work = out.parent / f".{out.name}.work"  # checkpoints, kept after a kill so that the same command resumes
    args = hf_args(cfg, work / "checkpoints", logging_steps=50, report_to="none")
    # the run's identity: a changed config or corpus starts afresh rather than continue another run
    job = {"config": cfg.model_dump(), "corpus_content_hash": man["content_hash"], "statements": len(ds)}
    with args.main_process_first(local=False, desc="the checkpoint to resume"):
        start = _checkpoint_to_resume(work, job, log)  # the main process first: it clears what it must
    if not main_process():  # another process of a torchrun / accelerate launch: it trains its share of each
        with tempfile.TemporaryDirectory() as tmp:  # batch; the main one alone writes --out
            return _train(cfg, args, tok, model, pre, ds, man, Path(tmp), start, callbacks)
    with atomic_dir(out) as tmp:  # a kill leaves no half-written model in --out
        info = _train(cfg, args, tok, model, pre, ds, man, tmp, start, callbacks)
    shutil.rmtree(work)
    return info


def _checkpoint_to_resume(work: Path, job: dict, log) -> str | None:
    """The last complete checkpoint in WORK of this same run, or None (WORK made afresh)."""
    if not main_process():
        return last_complete_checkpoint(work / "checkpoints", must=False, log=lambda *a: None)
    if not prepare_work(work, job, "pretraining's work folder"):
        return None
    start = last_complete_checkpoint(work / "checkpoints", must=False, log=log)
    if start:
        log(f"resuming from {start} (a run of the same config and corpus was stopped there)")
    return start


def _train(cfg: PretrainConfig, args, tok, model, pre, ds, man: dict, out: Path, start: str | None,
           callbacks=()) -> dict:
    collator = ContentSeededMLM(tok, mlm_probability=cfg.mlm_probability, seed=cfg.training.seed)
    trainer = Trainer(model=model, args=args, train_dataset=ds, data_collator=collator, processing_class=tok,
                      callbacks=[EpochOrder(start), *callbacks])
    res = trainer.train(resume_from_checkpoint=start)
    losses = [res.training_loss]
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        # the Trainer averages the loss over processes only at its logging steps: the steps after the last
        # one (all of them in a short run) were the main process's own, reported as the run's loss
        losses = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(losses, res.training_loss)
    model.save_pretrained(out)
    readable_weights(out)
    tok.save_pretrained(out)
    pre.save(out)
    info = {"corpus_content_hash": man["content_hash"], "statements": len(ds), "steps": trainer.state.global_step,
            "train_loss": round(sum(losses) / len(losses), 4),  # HF's mean over the steps after resumed_from
            "resumed_from": Path(start).name if start else None,
            **({"train_loss_per_process": [round(x, 4) for x in losses]} if len(losses) > 1 else {}),
            "config": cfg.model_dump(), "versions": versions(), "precision": resolve_precision(cfg.training.precision)}
    write_json(out / "pretrain_info.json", info)
    return info


class ContentSeededMLM(DataCollatorForLanguageModeling):
    """HF's masked-LM collator, with each batch's masks drawn from a generator seeded by the run's seed and
    the batch's token ids. With the global RNG (HF's default), a run resumed inside an epoch masked its
    first batch from another state than the uninterrupted run (the Trainer restores the checkpoint's RNG
    only after that batch is fetched) and ended with other weights; HF's own `seed` gives one generator
    whose state no checkpoint keeps. A batch's masks now depend on the seed and the batch alone: a resumed
    run repeats the uninterrupted one, with any number of DataLoader workers."""

    def torch_call(self, examples):
        h = hashlib.blake2b(str(self.seed).encode(), digest_size=8)
        for e in examples:
            h.update(torch.as_tensor(e["input_ids"], dtype=torch.int64).numpy().tobytes())
            h.update(b"|")
        self.generator = torch.Generator().manual_seed(int.from_bytes(h.digest(), "little") >> 1)
        self._generator_pid = os.getpid()  # the base class keeps this generator instead of making its own
        return super().torch_call(examples)
