"""Training: config validation, the tiny path, AraBERT's loading path on a local checkpoint, the
missing-model message, determinism, resume after a kill, gradient accumulation, minimum score."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO_ROOT, TINY_FAST, cli
from nabra.config import ConfigError, load_train_config

TINY = REPO_ROOT / "configs/train/tiny.yaml"


def _metrics(run: Path) -> dict:
    m = json.loads((run / "dev_metrics.json").read_text())
    return {k: v for k, v in m.items() if "runtime" not in k and "per_second" not in k}


def _train_args(data, out, extra=()):
    args = ["train", "--config", TINY, "--data", data, "--out", out]
    for s in list(TINY_FAST) + list(extra):
        args += ["--set", s]
    return args


def test_config_files_validate_and_reject_unknown_keys():
    for f in (REPO_ROOT / "configs/train").glob("*.yaml"):
        load_train_config(f)
    with pytest.raises(ConfigError, match="unknown key 'training.learning_rat'"):
        load_train_config(TINY, ["training.learning_rat=1"])
    with pytest.raises(ConfigError, match="key 'training.epochs'"):
        load_train_config(TINY, ["training.epochs=many"])


def test_run_directory_contents(sample_run):
    for f in ("config.yaml", "run_info.json", "metrics.jsonl", "dev_metrics.json", "model/model.safetensors",
              "model/config.json", "model/tokenizer.json", "model/nabra_preprocess.json", "model/label_maps.json"):
        assert (sample_run / f).exists(), f
    info = json.loads((sample_run / "run_info.json").read_text())
    assert info["dataset_content_hash"] and info["versions"]["torch"] and "git_commit" in info
    maps = json.loads((sample_run / "model/label_maps.json").read_text())
    assert maps["stance"]["id2label"]["0"] == "conciliatory"  # sorted label list
    lines = [json.loads(l) for l in (sample_run / "metrics.jsonl").read_text().splitlines()]
    assert any("eval_combined_macro_f1" in l for l in lines) and any("loss" in l for l in lines)


def test_same_seed_same_numbers(sample_dataset, sample_run, tmp_path):
    assert cli(*_train_args(sample_dataset, tmp_path / "again")) == 0
    assert _metrics(tmp_path / "again") == _metrics(sample_run)


def test_precision_auto_and_bf16_on_cpu(sample_dataset, tmp_path, capsys):
    """auto picks bf16 autocast on a CPU with native bf16 (fp32 elsewhere); a bf16 CPU run trains, saves
    fp32 weights, records its precision and repeats to the digit; fp16 without a GPU is refused by name."""
    import torch

    from nabra.train.trainer import cpu_bf16, resolve_precision

    if not torch.cuda.is_available():
        assert resolve_precision("auto") == ("bf16" if cpu_bf16() else "fp32")
    assert cli(*_train_args(sample_dataset, tmp_path / "fp16", ["training.precision=fp16"])) == 2
    assert "training.precision: fp16 needs a GPU" in capsys.readouterr().err
    if not cpu_bf16():
        pytest.skip("this CPU has no native bf16")
    runs = [tmp_path / "bf16a", tmp_path / "bf16b"]
    for r in runs:
        assert cli(*_train_args(sample_dataset, r, ["training.precision=bf16", "training.epochs=2"])) == 0
    assert json.loads((runs[0] / "run_info.json").read_text())["precision"] == "bf16"
    assert _metrics(runs[0]) == _metrics(runs[1])
    from safetensors import safe_open

    with safe_open(runs[0] / "model/model.safetensors", "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float32}


def test_resume_after_a_kill_ends_with_the_same_metrics(sample_dataset, sample_run, tmp_path):
    from transformers import TrainerCallback

    from nabra.train.trainer import run

    class Kill(TrainerCallback):
        def on_save(self, args, state, control, **kw):
            raise KeyboardInterrupt("killed after the first checkpoint")

    cfg = load_train_config(TINY, TINY_FAST)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, sample_dataset, tmp_path / "run", callbacks=[Kill()])
    assert not (tmp_path / "run/model").exists()
    assert list((tmp_path / "run/checkpoints").glob("checkpoint-*"))
    # starting again without --resume is refused: the checkpoints are not silently overwritten
    assert cli(*_train_args(sample_dataset, tmp_path / "run")) == 2
    assert cli("train", "--resume", tmp_path / "run", "--set", "training.max_steps=40") == 2  # not silently ignored
    # a checkpoint cut short while saving (Ctrl-C): HF took the newest folder and failed on every --resume
    half = tmp_path / "run/checkpoints/checkpoint-99999"
    half.mkdir()
    (half / "config.json").write_text("{}")
    assert cli("train", "--resume", tmp_path / "run") == 0
    assert not half.exists()
    assert _metrics(tmp_path / "run") == _metrics(sample_run)
    # resuming a finished run changes nothing (it trained one step more and rewrote the model)
    written = [tmp_path / "run/model/model.safetensors", tmp_path / "run/dev_metrics.json"]
    ckpts, stamps = sorted((tmp_path / "run/checkpoints").iterdir()), [f.stat().st_mtime_ns for f in written]
    assert cli("train", "--resume", tmp_path / "run") == 0
    assert sorted((tmp_path / "run/checkpoints").iterdir()) == ckpts
    assert [f.stat().st_mtime_ns for f in written] == stamps  # not written again


def test_gradient_accumulation_gives_the_same_gradients(sample_dataset, tmp_path):
    """bs=8/GA=1 and bs=4/GA=2 must log the same gradient norm (transformers issue 37766)."""
    from transformers import TrainerCallback, set_seed

    from nabra.train.trainer import encode, load_data, make_model, train_model

    norms = {}
    for bs, ga in ((8, 1), (4, 2)):
        cfg = load_train_config(TINY, TINY_FAST + [f"training.batch_size={bs}", f"training.grad_accum={ga}",
                                                   "training.max_steps=1", "training.group_by_length=false",
                                                   "logging.logging_steps=1", "training.class_weights=none"])
        data, labels = load_data(cfg, sample_dataset)
        set_seed(0)  # same initial weights for both
        model, tok, pre = make_model(cfg, labels, data["train"])
        for m in model.modules():
            if m.__class__.__name__ == "Dropout":
                m.p = 0.0
        got = []

        class Grab(TrainerCallback):
            def on_log(self, args, state, control, logs=None, **kw):
                if logs and "grad_norm" in logs:
                    got.append(logs["grad_norm"])

        train_model(cfg, model, tok, encode(data["train"], tok, pre, 96, labels), encode(data["dev"], tok, pre, 96, labels),
                    tmp_path / f"ga{ga}", labels, callbacks=[Grab()])
        norms[ga] = got[0]
    assert norms[1] == pytest.approx(norms[2], rel=1e-4)


def test_freeze_layers_trains_only_the_upper_layers(sample_dataset, tmp_path):
    """model.freeze_layers=1 on the 2-layer tiny BERT: after a training step the embeddings and layer 0
    are bit-identical, layer 1 and the heads moved; more layers than the encoder has is refused by name."""
    import torch

    from nabra.train.trainer import encode, load_data, make_model, train_model

    cfg = load_train_config(TINY, TINY_FAST + ["model.freeze_layers=1", "training.max_steps=2",
                                               "training.select_best=false"])
    data, labels = load_data(cfg, sample_dataset)
    model, tok, pre = make_model(cfg, labels, data["train"])
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    train_model(cfg, model, tok, encode(data["train"], tok, pre, 96, labels), encode(data["dev"], tok, pre, 96, labels),
                tmp_path / "run", labels)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert not any(k.startswith(("encoder.embeddings.", "encoder.encoder.layer.0.")) for k in changed)
    assert any(k.startswith("encoder.encoder.layer.1.") for k in changed)
    assert any(k.startswith("heads.") for k in changed)
    with pytest.raises(ConfigError, match="model.freeze_layers: 3 is more than the encoder's 2 layers"):
        make_model(load_train_config(TINY, TINY_FAST + ["model.freeze_layers=3"]), labels, data["train"])


def test_layer_lr_decay_gives_each_layer_its_rate(sample_dataset):
    """training.layer_lr_decay=0.5 on the 2-layer tiny BERT: the top layer and the pooler train at the
    learning rate, layer 0 at half, the embeddings at a quarter, the heads at head_learning_rate; every
    trainable parameter is in exactly one group, and 1.0 without a head rate leaves the Trainer's own."""
    from nabra.train.trainer import grouped_optimizer, load_data, make_model

    cfg = load_train_config(TINY, TINY_FAST + ["training.layer_lr_decay=0.5", "training.learning_rate=1e-3",
                                               "training.head_learning_rate=2e-3"])
    data, labels = load_data(cfg, sample_dataset)
    model, _, _ = make_model(cfg, labels, data["train"])
    opt = grouped_optimizer(cfg, model)
    rate = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert sorted(rate) == sorted(id(p) for p in named.values() if p.requires_grad)
    expected = {"encoder.embeddings.": 2.5e-4, "encoder.encoder.layer.0.": 5e-4, "encoder.encoder.layer.1.": 1e-3,
                "encoder.pooler.": 1e-3, "heads.": 2e-3}
    for name, p in named.items():
        if p.requires_grad:
            want = [v for k, v in expected.items() if name.startswith(k)]
            assert want and rate[id(p)] == pytest.approx(want[0]), name
    assert grouped_optimizer(load_train_config(TINY, TINY_FAST), model) is None


def _tiny_batch(labels: dict):
    """Two short statements of token ids, their mask, and a label per task (its first and its last class)."""
    import torch

    ids = torch.tensor([[2, 40, 41, 42, 3], [2, 50, 51, 3, 0]])
    return ids, (ids != 0).long(), {f"labels_{t}": torch.tensor([0, len(labels[t]) - 1]) for t in labels}


def test_a_reloaded_model_computes_the_loss_it_was_trained_with(sample_dataset, tmp_path):
    """The class weights were non-persistent buffers, which from_pretrained (transformers 5, model built on
    the meta device) left as uninitialised memory: a reloaded model's loss was weighted by garbage (1e34)."""
    import torch

    from nabra.train.model import NabraModel
    from nabra.train.trainer import load_data, make_model

    cfg = load_train_config(TINY, TINY_FAST)
    data, labels = load_data(cfg, sample_dataset)
    model, _, _ = make_model(cfg, labels, data["train"])
    model.save_pretrained(tmp_path / "m")
    again = NabraModel.from_pretrained(tmp_path / "m")
    ids, mask, ys = _tiny_batch(labels)
    first, second = (m.eval()(input_ids=ids, attention_mask=mask, **ys).loss.item() for m in (model, again))
    assert second == pytest.approx(first, rel=1e-6)
    assert all(torch.equal(model.class_weight(t), again.class_weight(t)) for t in labels)


def test_label_smoothing_reaches_each_task_loss_and_the_saved_config(sample_dataset, tmp_path):
    """training.label_smoothing=0.2: the model's loss is the sum of each task's smoothed (and class-weighted)
    cross-entropy, the value travels in the model's config.json, and 0 gives the plain loss."""
    import torch

    from nabra.train.model import NabraModel
    from nabra.train.trainer import load_data, make_model

    cfg = load_train_config(TINY, TINY_FAST + ["training.label_smoothing=0.2"])
    data, labels = load_data(cfg, sample_dataset)
    model, _, _ = make_model(cfg, labels, data["train"])
    model.eval()
    ids, mask, ys = _tiny_batch(labels)
    out = model(input_ids=ids, attention_mask=mask, **ys)

    def loss(smoothing):
        return sum(torch.nn.functional.cross_entropy(lg, ys[f"labels_{t}"], weight=model.class_weight(t),
                                                     label_smoothing=smoothing)
                   for t, lg in zip(model.config.tasks, out.logits))

    assert out.loss.item() == pytest.approx(loss(0.2).item(), rel=1e-6)
    assert abs(loss(0.2).item() - loss(0.0).item()) > 1e-3
    model.save_pretrained(tmp_path / "m")
    again = NabraModel.from_pretrained(tmp_path / "m")
    assert again.config.label_smoothing == 0.2
    again.config.label_smoothing = 0.0
    again.eval()
    assert again(input_ids=ids, attention_mask=mask, **ys).loss.item() == pytest.approx(loss(0.0).item(), rel=1e-6)


def _save_local_bert(path: Path, texts: list[str]):
    from transformers import BertConfig, BertForMaskedLM

    from nabra.train.text import train_wordpiece

    tok = train_wordpiece(texts, 500, 64)
    model = BertForMaskedLM(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                       intermediate_size=64, pad_token_id=tok.pad_token_id))
    model.save_pretrained(path)
    tok.save_pretrained(path)


def test_local_bert_checkpoint_through_the_arabert_code_path(sample_dataset, tmp_path):
    """configs/train/arabert.yaml with model.name_or_path pointing at a folder: from_pretrained of a
    directory, the arabert preprocessor on: the exact path AraBERT takes."""
    import pandas as pd

    texts = pd.read_parquet(sample_dataset / "train.parquet").text.tolist()
    _save_local_bert(tmp_path / "bert", texts)
    out = tmp_path / "run"
    assert cli("train", "--config", REPO_ROOT / "configs/train/arabert.yaml", "--data", sample_dataset, "--out", out,
               "--set", f"model.name_or_path={tmp_path / 'bert'}", "--set", "training.epochs=1",
               "--set", "training.batch_size=8") == 0
    pre = json.loads((out / "model/nabra_preprocess.json").read_text())
    assert pre == {"kind": "arabert", "model_name": "aubmindlab/bert-base-arabertv02", "prefix": ""}
    from nabra.train.text import Preprocessor

    assert Preprocessor.load(out / "model")(["زوروا https://example.org الآن"]) == ["زوروا [رابط] الآن"]
    from nabra.train.model import NabraModel

    m = NabraModel.from_pretrained(out / "model")
    assert m.config.encoder["hidden_size"] == 32 and set(m.config.tasks) == {"stance", "sentiment"}


def test_missing_model_gives_one_clear_message(sample_dataset, tmp_path, capsys):
    code = cli("train", "--config", REPO_ROOT / "configs/train/arabert.yaml", "--data", sample_dataset,
               "--out", tmp_path / "run")
    err = capsys.readouterr().err
    assert code == 2
    assert "aubmindlab/bert-base-arabertv02" in err and "model.name_or_path" in err
    assert "Traceback" not in err


def test_missing_local_encoder_folder_says_how_to_make_one(sample_dataset, tmp_path, capsys, monkeypatch):
    """A path that is no hub id (absolute, or an empty folder): the message names the folder and the
    offline way to get an encoder (`nabra encoder import`), not `hf download /abs/path`."""
    (tmp_path / "empty").mkdir()
    for name, said in ((tmp_path / "models" / "nosuch", "no folder"), (tmp_path / "empty", "holds no loadable model")):
        code = cli("train", "--config", TINY, "--data", sample_dataset, "--out", tmp_path / "run",
                   "--set", "model.tiny=null", "--set", f"model.name_or_path={name}")
        err = capsys.readouterr().err
        assert code == 2 and f"{name}" in err and said in err, err
        assert "nabra encoder import" in err and "hf download" not in err and "Traceback" not in err
    # models/nosuch beside a models/ folder is a local folder: said at once (the hub was retried for 23 s),
    # and each command names its own way to give the name
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    assert cli("baseline", "--data", sample_dataset, "--out", tmp_path / "bl", "--encoder", "models/nosuch") == 2
    err = capsys.readouterr().err
    assert f"no folder {tmp_path / 'models' / 'nosuch'}" in err and "leave --encoder out" in err
    assert "hub" not in err and "model.name_or_path" not in err


@pytest.mark.shared
def test_tiny_model_on_gold_beats_the_majority_class(gold_run):
    m = _metrics(gold_run)
    # majority class macro-F1 on dev is ~0.08 (stance) and ~0.23 (sentiment); uniform random guesses reach at
    # most 0.18 / 0.39 (200 draws); this run gives 0.479 / 0.552 (gold_run): the floors sit just under it
    assert m["dev_stance_macro_f1"] >= 0.42
    assert m["dev_sentiment_macro_f1"] >= 0.50


def test_pretrain_then_train_from_the_checkpoint(sample_corpus, sample_dataset, tmp_path):
    assert cli("pretrain", "--config", REPO_ROOT / "configs/pretrain/tiny.yaml", "--corpus", sample_corpus,
               "--out", tmp_path / "mlm", "--set", "max_statements=60", "--set", "training.max_steps=4",
               "--set", "model.tiny.vocab_size=500") == 0
    info = json.loads((tmp_path / "mlm/pretrain_info.json").read_text())
    assert info["steps"] == 4 and (tmp_path / "mlm/model.safetensors").exists()
    out = tmp_path / "run"
    assert cli(*_train_args(sample_dataset, out, [f"model.name_or_path={tmp_path / 'mlm'}", "model.tiny=null"])) == 0
    from safetensors.numpy import load_file

    mlm = load_file(tmp_path / "mlm/model.safetensors")
    tuned = load_file(out / "model/model.safetensors")
    # the classifier started from the pretrained encoder: same shape, and values a few fine-tuning steps
    # moved only slightly (a freshly initialised encoder of the same shape correlates ~0 with it)
    a = tuned["encoder.embeddings.word_embeddings.weight"]
    b = mlm["bert.embeddings.word_embeddings.weight"]
    assert a.shape == b.shape
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.95
    assert np.abs(a - b).max() < 0.1


def test_a_killed_pretrain_resumes_from_its_last_checkpoint(sample_corpus, tmp_path, capsys):
    """`nabra pretrain` saved no checkpoint (save_strategy "no", the run in a temp folder): a kill lost
    every step done, hours of AraBERT's adaptation on a GPU. Now the same command resumes."""
    from transformers import TrainerCallback

    from nabra.config import load_pretrain_config
    from nabra.train.pretrain import run

    sets = ["max_statements=60", "training.max_steps=6", "model.tiny.vocab_size=500",
            "training.eval_strategy=steps", "training.eval_steps=2"]
    cmd = ["pretrain", "--config", REPO_ROOT / "configs/pretrain/tiny.yaml", "--corpus", sample_corpus,
           "--out", tmp_path / "mlm", *[a for s in sets for a in ("--set", s)]]

    class Kill(TrainerCallback):
        def on_save(self, args, state, control, **kw):  # called once the checkpoint is written
            if state.global_step == 4:
                raise KeyboardInterrupt

    def killed(extra=()):
        with pytest.raises(KeyboardInterrupt):
            run(load_pretrain_config(REPO_ROOT / "configs/pretrain/tiny.yaml", sets + list(extra)), sample_corpus,
                tmp_path / "mlm", log=lambda *a: None, callbacks=[Kill()])

    killed()
    ckpts = tmp_path / ".mlm.work/checkpoints"
    assert not (tmp_path / "mlm").exists() and sorted(c.name for c in ckpts.iterdir()) == ["checkpoint-2", "checkpoint-4"]
    (ckpts / "checkpoint-5").mkdir()  # a save cut short by the kill: no trainer_state.json
    capsys.readouterr()
    assert cli(*cmd) == 0
    out = capsys.readouterr().out
    assert f"resuming from {ckpts / 'checkpoint-4'}" in out and "checkpoint-5: saving was cut short" in out
    info = json.loads((tmp_path / "mlm/pretrain_info.json").read_text())
    assert info["steps"] == 6 and info["resumed_from"] == "checkpoint-4"
    assert not (tmp_path / ".mlm.work").exists()  # gone with the finished run: a rerun starts afresh
    # stopped again, then run with another learning rate: another run, which does not continue this one
    killed()
    assert cli(*cmd, "--set", "training.learning_rate=5e-4") == 0
    assert "resuming" not in capsys.readouterr().out
    assert json.loads((tmp_path / "mlm/pretrain_info.json").read_text())["resumed_from"] is None


def test_a_pretrain_resumed_inside_an_epoch_ends_with_the_uninterrupted_weights(sample_corpus, tmp_path):
    """The masked-LM collator drew its masks from torch's global RNG, which the Trainer restores only
    after fetching the first batch of a resumed epoch: that batch got other masks, and a run killed inside
    its second epoch ended with weights up to 5e-3 away from the uninterrupted run's."""
    from safetensors.numpy import load_file
    from transformers import TrainerCallback

    from nabra.config import load_pretrain_config
    from nabra.train.pretrain import run

    cfg = load_pretrain_config(REPO_ROOT / "configs/pretrain/tiny.yaml", [
        "max_statements=120", "training.epochs=3", "training.batch_size=16", "model.tiny.vocab_size=500",
        "training.eval_strategy=steps", "training.eval_steps=3"])

    class Kill(TrainerCallback):
        def on_save(self, args, state, control, **kw):
            if state.epoch > 1 and state.epoch % 1:  # inside the second epoch
                raise KeyboardInterrupt

    whole = run(cfg, sample_corpus, tmp_path / "whole", log=lambda *a: None)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, sample_corpus, tmp_path / "cut", log=lambda *a: None, callbacks=[Kill()])
    cut = run(cfg, sample_corpus, tmp_path / "cut", log=lambda *a: None)
    assert cut["resumed_from"] and cut["steps"] == whole["steps"]
    a, b = load_file(tmp_path / "whole/model.safetensors"), load_file(tmp_path / "cut/model.safetensors")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_linear_probe_starts_each_head_as_its_dev_chosen_logistic_regression(sample_dataset):
    """training.linear_probe (LP-FT): the heads hold the probes' weights, so the untrained model predicts
    dev as the chosen probe does and scores its dev macro-F1; a two-class head gives the logistic's
    probabilities."""
    import torch
    from sklearn.metrics import f1_score

    from nabra.train.trainer import encode, load_data, make_model, pooled_states, probe_heads

    cfg = load_train_config(TINY, TINY_FAST + ["training.linear_probe=true"])
    data, labels = load_data(cfg, sample_dataset)
    for df in data.values():  # a two-class task beside the six-class stance
        df["sentiment"] = np.where(df["sentiment"] == "negative", "negative", "other")
    labels["sentiment"] = ["negative", "other"]
    model, tok, pre = make_model(cfg, labels, data["train"])
    train, dev = (encode(data[s], tok, pre, 96, labels) for s in ("train", "dev"))
    probes = probe_heads(model, tok, train, dev, labels)
    assert set(probes) == {"stance", "sentiment"}
    x = torch.as_tensor(pooled_states(model, tok, dev))
    for t in labels:
        logits = model.heads[t](x).detach().numpy()
        y = np.asarray(dev[f"labels_{t}"])
        f1 = f1_score(y, logits.argmax(1), labels=list(range(len(labels[t]))), average="macro", zero_division=0)
        assert round(float(f1), 4) == probes[t]["dev_macro_f1"]
    w = model.heads["sentiment"].weight.detach()
    assert torch.allclose(w[0], -w[1])  # (-z/2, z/2): softmax of the two is the logistic of z


def test_resume_within_a_later_epoch_repeats_the_uninterrupted_run(sample_dataset, tmp_path):
    """Statements batched by length (the default) were shuffled by HF's LengthGroupedSampler from the
    global RNG, which --resume restores as it was at the checkpoint, not at the start of the epoch: a run
    resumed inside epoch 2 skipped the wrong statements and ended with other numbers."""
    from transformers import TrainerCallback

    from nabra.train.trainer import run

    steps = TINY_FAST + ["training.eval_strategy=steps", "training.eval_steps=5"]

    class Kill(TrainerCallback):
        def on_save(self, args, state, control, **kw):
            if state.epoch > 1 and state.epoch % 1:  # inside the second epoch or later
                raise KeyboardInterrupt

    cfg = load_train_config(TINY, steps)
    assert cfg.training.group_by_length
    run(cfg, sample_dataset, tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        run(cfg, sample_dataset, tmp_path / "cut", callbacks=[Kill()])
    # resuming on other data (a statement's text edited: the dataset's content hash does not cover text)
    import pandas as pd

    from nabra.config import ConfigError

    edited = tmp_path / "edited"
    shutil.copytree(sample_dataset, edited)
    df = pd.read_parquet(edited / "train.parquet")
    df.loc[0, "text"] = df.loc[0, "text"] + " نص آخر"
    df.to_parquet(edited / "train.parquet", index=False)
    with pytest.raises(ConfigError, match="train_rows_hash changed"):
        run(cfg, edited, tmp_path / "cut", resume=True)
    assert cli("train", "--resume", tmp_path / "cut") == 0
    assert _metrics(tmp_path / "cut") == _metrics(tmp_path / "whole")


def test_a_local_encoder_folder_is_recorded_by_its_absolute_path(tmp_path, monkeypatch):
    """An e5 run trained from `models/e5-small-snn` recorded that relative name: `nabra evaluate` from
    another folder took it for a hub id for its embeddings baseline (40 s of retries, then a hint to
    download it). A hub id, or a name that is no folder here, is kept as given."""
    from nabra.train.trainer import absolute_model_path

    (tmp_path / "models" / "enc").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    cfg = load_train_config(TINY, ["model.name_or_path=models/enc", "model.tiny=null"])
    assert absolute_model_path(cfg).model.name_or_path == str(tmp_path / "models" / "enc")
    for name in ("aubmindlab/bert-base-arabertv02", str(tmp_path / "models" / "enc")):
        cfg = load_train_config(TINY, [f"model.name_or_path={name}", "model.tiny=null"])
        assert absolute_model_path(cfg).model.name_or_path == name


def test_an_empty_dev_split_is_named_before_training(sample_dataset, tmp_path, capsys):
    """A dataset with no dev statements trained, then ended in HF's IndexError when it chose a checkpoint."""
    import pandas as pd

    ds = tmp_path / "ds"
    shutil.copytree(sample_dataset, ds)
    pd.read_parquet(ds / "dev.parquet").iloc[:0].to_parquet(ds / "dev.parquet", index=False)
    assert cli(*_train_args(ds, tmp_path / "run")) == 2
    err = capsys.readouterr().err
    assert "its dev split is empty (0 statements): nothing to choose the best checkpoint on" in err
    assert not (tmp_path / "run").exists()


def test_out_holding_other_files_is_refused_before_training(sample_dataset, tmp_path, capsys):
    """`--out` naming the dataset folder (or any folder of other files) trained for minutes and wrote
    checkpoints/, config.yaml, tokenizer/ into it; now refused at once, the folder untouched."""
    ds = tmp_path / "ds"
    shutil.copytree(sample_dataset, ds)
    before = sorted(p.name for p in ds.iterdir())
    assert cli(*_train_args(ds, ds)) == 2
    assert "holds dev.parquet, manifest.json" in capsys.readouterr().err
    assert sorted(p.name for p in ds.iterdir()) == before


@pytest.mark.parametrize("damage, message", [
    ("config", "config.yaml: invalid YAML"),
    ("run_info", "run_info.json: missing"),
    ("trainer_state", "no complete checkpoint to resume from"),
])
def test_resume_of_a_damaged_run_is_one_line(sample_run, tmp_path, capsys, damage, message):
    """--resume of a run whose config.yaml was broken, whose run_info.json was deleted, or whose
    checkpoint's trainer_state.json was cut short (HF writes it in place) ended in a traceback."""
    run = tmp_path / "run"
    shutil.copytree(sample_run, run)
    shutil.rmtree(run / "model")
    (run / "dev_metrics.json").unlink()
    if damage == "config":
        (run / "config.yaml").write_text("model: [\n")
    elif damage == "run_info":
        (run / "run_info.json").unlink()
    else:
        for c in (run / "checkpoints").glob("checkpoint-*"):
            (c / "trainer_state.json").write_text('{"global_step": ')
    assert cli("train", "--resume", str(run)) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_pretrain_refuses_a_dataset_as_corpus_or_out(sample_corpus, sample_dataset, tmp_path, capsys):
    """pretrain --corpus DATASET said only 'nabra pretrain: error: DATASET/statements.parquet'; --out DATASET
    pretrained and wrote config.json, model.safetensors, tokenizer files and checkpoints/ into the dataset."""
    ds = tmp_path / "ds"
    shutil.copytree(sample_dataset, ds)
    before = sorted(p.name for p in ds.iterdir())
    base = ["pretrain", "--config", REPO_ROOT / "configs/pretrain/tiny.yaml", "--set", "max_statements=20",
            "--set", "training.max_steps=1", "--set", "model.tiny.vocab_size=300"]
    assert cli(*base, "--corpus", ds, "--out", tmp_path / "mlm") == 2
    assert "no statements.parquet, not a corpus folder" in capsys.readouterr().err
    assert cli(*base, "--corpus", sample_corpus, "--out", ds) == 2
    assert "not an earlier `nabra pretrain` output" in capsys.readouterr().err
    assert sorted(p.name for p in ds.iterdir()) == before
    assert cli(*base, "--corpus", sample_corpus, "--out", tmp_path / "mlm") == 0
    assert cli(*base, "--corpus", sample_corpus, "--out", tmp_path / "mlm") == 0  # its own earlier output


def test_resume_does_not_log_the_redone_steps_twice(sample_dataset, tmp_path):
    """Steps logged after the last checkpoint by the killed run stayed in metrics.jsonl; --resume redid
    them and logged them again (another loss value), so a step had two loss lines, old and new mixed."""
    from transformers import TrainerCallback

    from nabra.train.trainer import run

    class Kill(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if state.global_step == 6 and "loss" in (logs or {}):  # after checkpoint-4, before checkpoint-8
                raise KeyboardInterrupt

    cfg = load_train_config(TINY, TINY_FAST + ["training.eval_strategy=steps", "training.eval_steps=4",
                                               "training.max_steps=8", "logging.logging_steps=2"])
    with pytest.raises(KeyboardInterrupt):
        run(cfg, sample_dataset, tmp_path / "run", callbacks=[Kill()])
    log = tmp_path / "run/metrics.jsonl"
    assert any(json.loads(line)["step"] == 6 for line in log.read_text().splitlines())
    with log.open("a") as fh:
        fh.write('{"step": 7, "loss')  # a line cut short by a kill
    assert cli("train", "--resume", tmp_path / "run") == 0
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    kinds = [(r["step"], tuple(sorted(k for k in r if k not in ("step", "epoch")))) for r in lines]
    assert len(kinds) == len(set(kinds)), "a step logged twice"
    assert [r["step"] for r in lines] == sorted(r["step"] for r in lines)


def test_a_run_killed_while_saving_its_model_leaves_no_model_and_resumes(sample_run, tmp_path, monkeypatch, capsys):
    """model/ was written in place: a run killed while saving it left a model/ without nabra_pipeline.json,
    which export and predict took for an old model ("retrain or re-export") and train for a finished run."""
    import nabra.train.trainer as trainer

    run = tmp_path / "run"
    shutil.copytree(sample_run, run)
    shutil.rmtree(run / "model")  # killed after training, before the model was saved
    (run / "dev_metrics.json").unlink()

    def killed(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "save_pipeline", killed)
    assert cli("train", "--resume", run) == 130
    assert not (run / "model").exists() and not list(run.glob(".model.tmp-*"))
    capsys.readouterr()
    assert cli("export", "--model", run, "--out", tmp_path / "export") == 2
    assert f"continue it with `nabra train --resume {run}`" in capsys.readouterr().err
    monkeypatch.undo()
    assert cli("train", "--resume", run) == 0
    assert _metrics(run) == _metrics(sample_run)


def test_resume_of_a_run_stopped_before_its_first_checkpoint_says_how_to_go_on(tmp_path, capsys):
    """Ctrl-C before the first checkpoint removes the run folder (a kill then leaves nothing to resume);
    `--resume` of it said only "no config.yaml; not a nabra run directory"."""
    assert cli("train", "--resume", tmp_path / "run") == 2
    assert "run: no such run directory (a run stopped before its first checkpoint leaves none behind): start " \
           "it again with --config, --data and --out" in capsys.readouterr().err


def test_a_wandb_run_records_the_config_labels_and_data_hashes(sample_dataset, tmp_path, monkeypatch):
    """With logging.wandb the wandb run held only the Trainer's arguments and the model config: nothing named
    the dataset, its hash or nabra's own settings (the pooling, the prefix, the label maps)."""
    import wandb
    from transformers import TrainerCallback

    from nabra.train.trainer import run

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    seen = {}

    class Seen(TrainerCallback):
        def on_train_end(self, args, state, control, **kw):
            seen.update(dict(wandb.run.config))

    cfg = load_train_config(TINY, TINY_FAST + ["training.max_steps=2", "logging.wandb=true"])
    try:
        run(cfg, sample_dataset, tmp_path / "run", callbacks=[Seen()], log=lambda *a: None)
    finally:
        wandb.finish()
    rec, info = seen["nabra"], json.loads((tmp_path / "run/run_info.json").read_text())
    assert rec["dataset_content_hash"] == info["dataset_content_hash"] and rec["train_ids_hash"] == info["train_ids_hash"]
    assert rec["config"]["model"]["pooling"] == cfg.model.pooling and rec["label_maps"] == info["label_maps"]
    assert list(tmp_path.glob("wandb/offline-run-*"))


def test_a_batch_without_labels_of_one_task_leaves_the_weights_finite():
    """Statements may lack a task's label (-100). A batch where none has it made cross_entropy's mean over no
    element NaN, and one backward step turned every weight NaN, silently."""
    import torch

    from nabra.config import TinyModel
    from nabra.train.model import NabraModel, tiny_bert_config

    torch.manual_seed(0)
    model = NabraModel.from_encoder_config(tiny_bert_config(TinyModel(vocab_size=50), 50, 0, 32),
                                           {"stance": ["a", "b", "c"], "sentiment": ["x", "y"]})
    ids = torch.randint(1, 50, (4, 8))
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels_stance=torch.tensor([0, 1, 2, 0]),
                labels_sentiment=torch.full((4,), -100))
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert model.heads["sentiment"].weight.grad is not None  # still in the graph: several processes need it
