"""The model folder is the contract (issue 11, part 2): it carries what prediction needs, is checked file
by file before loading, exports load each model once, the card tells the truth, baselines are no pickles."""
from __future__ import annotations

import json
import pickle
import shutil

import pytest
import yaml

from conftest import SAMPLE, cli
from nabra.config import CorpusConfig
from nabra.paths import config_file


@pytest.fixture(scope="module")
def exported(sample_run, sample_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("export11") / "model"
    assert cli("export", "--model", sample_run, "--out", out, "--data", sample_dataset, "--split", "test") == 0
    return out


def _predict_rows(model, capsys, *extra) -> list[dict]:
    capsys.readouterr()
    assert cli("predict", model, SAMPLE / "articles.jsonl", "--format", "jsonl", *extra) == 0
    return [json.loads(l) for l in capsys.readouterr().out.splitlines()]


def test_editing_the_repo_corpus_config_does_not_change_an_old_models_predictions(sample_run, tmp_path,
                                                                                   monkeypatch, capsys):
    before = _predict_rows(sample_run, capsys)
    edited = yaml.safe_load(config_file("corpus.yaml").read_text(encoding="utf-8"))
    edited.update(min_words=12, abbreviations=[])
    edited["furniture"]["drop_line"] = edited["furniture"]["drop_line"] + ["وزير"]
    (tmp_path / "corpus.yaml").write_text(yaml.safe_dump(edited, allow_unicode=True), encoding="utf-8")
    real = config_file
    monkeypatch.setattr("nabra.config.config_file",
                        lambda rel: tmp_path / "corpus.yaml" if rel == "corpus.yaml" else real(rel))
    from nabra.config import load_corpus_config

    assert load_corpus_config().min_words == 12  # the edit is what the repo's default now says
    assert _predict_rows(sample_run, capsys) == before


def test_model_folder_records_corpus_config_max_length_and_training_data(sample_run, sample_corpus):
    pipe = json.loads((sample_run / "model/nabra_pipeline.json").read_text(encoding="utf-8"))
    corpus_cfg = json.loads((sample_corpus / "manifest.json").read_text(encoding="utf-8"))["config"]
    assert CorpusConfig.model_validate(pipe["corpus_config"]) == CorpusConfig.model_validate(corpus_cfg)
    run_cfg = yaml.safe_load((sample_run / "config.yaml").read_text(encoding="utf-8"))
    assert pipe["max_length"] == run_cfg["model"]["max_length"]
    assert pipe["training_data"]["label_source"] == "weak" and pipe["training_data"]["embedded_sample"] is True
    from nabra import StanceClassifier

    assert StanceClassifier.from_pretrained(sample_run).max_length == run_cfg["model"]["max_length"]


def _copy_model(sample_run, tmp_path):
    d = tmp_path / "m"
    shutil.copytree(sample_run / "model", d)
    return d


def test_truncated_safetensors_is_named(sample_run, tmp_path, capsys):
    d = _copy_model(sample_run, tmp_path)
    f = d / "model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    assert cli("predict", d, SAMPLE / "article.txt") == 2
    err = capsys.readouterr().err
    assert f"{f}: truncated safetensors file" in err and "Traceback" not in err


def test_broken_config_json_is_named(sample_run, tmp_path, capsys):
    d = _copy_model(sample_run, tmp_path)
    (d / "config.json").write_text((d / "config.json").read_text()[:-40], encoding="utf-8")
    assert cli("predict", d, SAMPLE / "article.txt") == 2
    assert f"{d / 'config.json'}: broken JSON" in capsys.readouterr().err


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "tokenizer_config.json").unlink(), "model folder lacks tokenizer_config.json"),
    (lambda d: (d / "tokenizer.json").write_text("{}"), "tokenizer.json: not a tokenizers file"),
    (lambda d: (d / "nabra_preprocess.json").write_text("{}"), "nabra_preprocess.json: kind must be one of none, arabert"),
    (lambda d: (d / "nabra_preprocess.json").write_text('{"kind": "bogus", "prefix": ""}'), "(got 'bogus')"),
    (lambda d: (d / "config.json").write_text(
        (d / "config.json").read_text().replace('"task_order": [', '"task_order": ["foo", ')), "does not list the tasks"),
])
def test_damaged_tokenizer_preprocessing_or_task_order_is_named(sample_run, tmp_path, capsys, damage, message):
    """Were: a pad-token ValueError after loading, KeyError 'kind' / 'added_tokens' / 'foo', and an unknown
    preprocessing kind silently read as none."""
    d = _copy_model(sample_run, tmp_path)
    damage(d)
    assert cli("predict", d, SAMPLE / "article.txt") == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_truncated_onnx_is_named(exported, tmp_path, capsys):
    d = tmp_path / "e"
    shutil.copytree(exported, d)
    f = d / "model.int8.onnx"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])
    assert cli("predict", d, SAMPLE / "article.txt", "--backend", "onnx", "--onnx-file", "model.int8.onnx") == 2
    err = capsys.readouterr().err
    assert f"{f}: not a loadable ONNX model" in err and "Traceback" not in err


def test_export_carries_the_pipeline_and_predicts_like_the_run(sample_run, exported, capsys):
    assert (exported / "nabra_pipeline.json").read_text() == (sample_run / "model/nabra_pipeline.json").read_text()
    want = [(r["statement_id"], r["stance"]) for r in _predict_rows(sample_run, capsys)]
    got = [(r["statement_id"], r["stance"]) for r in _predict_rows(exported, capsys, "--backend", "onnx")]
    assert got == want


def test_export_loads_each_model_once(sample_run, sample_dataset, tmp_path, monkeypatch):
    from nabra.train.model import NabraModel
    from nabra.train.predict import StanceClassifier

    torch_loads, classifiers = [], []
    real_load, real_init = NabraModel.from_pretrained.__func__, StanceClassifier.__init__

    def count_load(cls, *a, **kw):
        torch_loads.append(a[0])
        return real_load(cls, *a, **kw)

    def count_init(self, directory, backend="torch", onnx_file="model.onnx", **kw):
        classifiers.append(backend if backend == "torch" else onnx_file)
        real_init(self, directory, backend, onnx_file, **kw)

    monkeypatch.setattr(NabraModel, "from_pretrained", classmethod(count_load))
    monkeypatch.setattr(StanceClassifier, "__init__", count_init)
    assert cli("export", "--model", sample_run, "--out", tmp_path / "x", "--data", sample_dataset) == 0
    assert len(torch_loads) == 1  # seven before: each step loaded its own copy
    assert sorted(classifiers) == ["model.int8.onnx", "model.onnx", "torch"]


def test_model_card_describes_the_data_really_trained_on(exported):
    card = (exported / "README.md").read_text(encoding="utf-8")
    assert "example.org" not in card and "SaudiNewsNet" not in card
    assert "embedded sample" in card and "weak labels" in card and "not human annotations" in card


# ----------------------------------------------------------------------------- baselines
def test_baselines_are_saved_without_pickle_and_load_back(sample_dataset, sample_run, tmp_path):
    assert cli("baseline", "--data", sample_dataset, "--out", tmp_path / "b") == 0
    names = sorted(p.name for p in (tmp_path / "b").iterdir())
    assert not [n for n in names if n.endswith((".joblib", ".pkl"))] and any(n.endswith(".skops") for n in names)
    assert cli("evaluate", "--model", sample_run, "--data", sample_dataset, "--baselines", tmp_path / "b",
               "--bootstrap", "20", "--out", tmp_path / "r") == 0


class _Boom:
    def __reduce__(self):
        import os

        return (os.mkdir, (str(_Boom.target),))


def test_a_pickle_in_a_baselines_folder_is_never_loaded(sample_dataset, sample_run, tmp_path, capsys):
    assert cli("baseline", "--data", sample_dataset, "--out", tmp_path / "b") == 0
    skops_file = next((tmp_path / "b").glob("stance.*.skops"))
    skops_file.unlink()
    _Boom.target = tmp_path / "pwned"
    skops_file.with_suffix(".joblib").write_bytes(pickle.dumps(_Boom()))
    assert cli("evaluate", "--model", sample_run, "--data", sample_dataset, "--baselines", tmp_path / "b",
               "--bootstrap", "20", "--out", tmp_path / "r") == 2
    assert "a pickle from an older nabra, which is never loaded" in capsys.readouterr().err
    assert not _Boom.target.exists()


def test_a_model_from_a_pretrained_encoder_loads_without_a_missing_pooler_report(tmp_path, capfd):
    """A pretrained encoder is loaded without its (unused) pooler; loading the trained model again must
    not report the pooler as missing, as if the model were incomplete."""
    import torch
    from transformers import BertConfig, BertModel
    from transformers.utils import logging as hf_logging

    from nabra.train.model import NabraModel

    enc = BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=32, max_position_embeddings=32))
    enc.save_pretrained(tmp_path / "enc")
    model = NabraModel.from_encoder(str(tmp_path / "enc"), {"stance": ["a", "b"]}, pooling="mean")
    assert not any("pooler" in k for k in model.state_dict())
    model.save_pretrained(tmp_path / "model")
    capfd.readouterr()
    before = hf_logging.get_verbosity()
    hf_logging.set_verbosity_warning()  # as a notebook user has it (the tests and the CLI set "error")
    try:
        again = NabraModel.from_pretrained(tmp_path / "model")
    finally:
        hf_logging.set_verbosity(before)
    err = "".join(capfd.readouterr())
    assert "MISSING" not in err and "pooler" not in err
    ids = torch.tensor([[2, 7, 9, 3]])
    torch.testing.assert_close(again(input_ids=ids).logits[0], model.eval()(input_ids=ids).logits[0])


def test_a_model_folder_copied_away_from_its_run_keeps_its_record(sample_run, sample_dataset, tmp_path):
    """The card and the evaluation provenance read the run's config.yaml / run_info.json beside the model
    folder; a folder copied elsewhere said "seed None; git commit None" and lost its config."""
    d = _copy_model(sample_run, tmp_path)
    assert not (d.parent / "config.yaml").exists()
    assert cli("export", "--model", d, "--out", tmp_path / "exp", "--format", "hf") == 0
    card = (tmp_path / "exp/README.md").read_text(encoding="utf-8")
    assert "seed 42;" in card and "git commit `None`" not in card
    assert cli("evaluate", "--model", tmp_path / "exp", "--data", sample_dataset, "--split", "test", "--no-baselines",
               "--bootstrap", "20", "--out", tmp_path / "ev") == 0
    prov = json.loads((tmp_path / "ev/report.json").read_text())["provenance"]["models"][0]
    run_cfg = yaml.safe_load((sample_run / "config.yaml").read_text(encoding="utf-8"))
    assert prov["run_config"] == run_cfg and prov["run_seed"] == 42
    assert prov["run_dataset_content_hash"] == json.loads((sample_dataset / "manifest.json").read_text())["content_hash"]


def test_onnx_outputs_that_do_not_fit_the_label_maps_are_named(exported, tmp_path, capsys):
    d = tmp_path / "m"
    shutil.copytree(exported, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["tasks"]["stance"] = cfg["tasks"]["stance"][:3]
    (d / "config.json").write_text(json.dumps(cfg))
    assert cli("predict", d, SAMPLE / "article.txt", "--backend", "onnx") == 2
    err = capsys.readouterr().err
    # worded as for model.safetensors below: config.json is what no longer fits
    assert (f"{d / 'config.json'}: its label maps do not fit model.onnx (stance 6 in the weights, 3 in config.json)"
            in err) and "Traceback" not in err


def test_an_unfinished_run_is_named_as_one(sample_run, tmp_path, capsys):
    """A run without model/ (killed before the end) was told it 'lacks config.json, tokenizer.json, ...
    retrain or re-export an older model'; it says the run did not finish and how to continue it."""
    run = tmp_path / "run"
    shutil.copytree(sample_run, run, ignore=shutil.ignore_patterns("model", "checkpoints"))
    assert cli("predict", run, SAMPLE / "articles.jsonl") == 2
    assert f"nabra train --resume {run}" in capsys.readouterr().err
    assert cli("export", "--model", run, "--out", tmp_path / "exp") == 2
    assert "a run directory with no model/ yet" in capsys.readouterr().err


def test_label_maps_that_do_not_fit_the_weights_are_named(sample_run, tmp_path, capsys):
    """config.json with a label dropped was 'model.safetensors: cannot be loaded (... look at the above
    report!)' with no report: the weights blamed for the config (the ONNX path already named config.json)."""
    d = _copy_model(sample_run, tmp_path)
    cfg = json.loads((d / "config.json").read_text(encoding="utf-8"))
    cfg["tasks"]["stance"] = cfg["tasks"]["stance"][:-1]
    (d / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
    assert cli("predict", d, SAMPLE / "article.txt") == 2
    n = len(cfg["tasks"]["stance"])
    assert (f"{d / 'config.json'}: its label maps do not fit model.safetensors (stance {n + 1} in the weights, "
            f"{n} in config.json)") in capsys.readouterr().err


def test_a_file_or_a_folder_of_no_model_is_not_called_an_old_model(sample_run, tmp_path, capsys):
    """model.onnx given itself was 'no such model folder'; an input folder given as the model was told to
    'retrain or re-export an older model'."""
    (tmp_path / "model.onnx").write_bytes(b"x")
    assert cli("predict", tmp_path / "model.onnx", SAMPLE / "article.txt") == 2
    assert f"{tmp_path / 'model.onnx'}: a file, not a model folder" in capsys.readouterr().err
    assert cli("predict", SAMPLE, SAMPLE / "article.txt") == 2
    err = capsys.readouterr().err
    assert "model folder lacks config.json" in err and ": not a model folder; give one written by" in err
    assert "re-export an older model" not in err
