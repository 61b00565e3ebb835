"""Config files and `--set` overrides: every mistake a user can make is one ConfigError naming it."""
from __future__ import annotations

import pytest

from conftest import cli
from nabra.config import (ConfigError, load_benchmark_config, load_corpus_config, load_labels, load_train_config,
                          parse_overrides)


# ----------------------------------------------------------------------------- --set
def test_a_key_under_a_value_that_is_not_a_mapping_names_both_pairs(tmp_path, capsys):
    """`training=1` then `training.seed=2` was a TypeError traceback. The other order is last-wins, as
    `model.tiny.vocab_size=600` then `model.tiny=null` (drop the tiny geometry): `training` is then 1,
    refused by validation with the pair named."""
    pairs = ["training=1", "training.seed=2"]
    with pytest.raises(ConfigError) as e:
        load_train_config("tiny", pairs)
    assert f"--set '{pairs[0]}' and --set '{pairs[1]}' conflict" in str(e.value)
    args = ["train", "--config", "tiny", "--data", tmp_path, "--out", tmp_path / "run"]
    assert cli(*args, "--set", pairs[0], "--set", pairs[1]) == 2
    err = capsys.readouterr().err
    assert pairs[0] in err and pairs[1] in err and "Traceback" not in err
    with pytest.raises(ConfigError, match="--set training=1: key 'training'"):
        load_train_config("tiny", pairs[::-1])
    assert load_train_config("tiny", ["model.tiny.vocab_size=600", "model.tiny=null",
                                      "model.name_or_path=x"]).model.tiny is None


def test_overrides_merge_under_a_mapping_and_the_last_of_one_key_wins():
    assert parse_overrides(["training={seed: 1}", "training.epochs=2", "training.seed=3"]) == \
        {"training": {"seed": 3, "epochs": 2}}
    assert load_train_config("tiny", ["training.seed=1", "training.seed=5"]).training.seed == 5


def test_a_key_twice_in_an_override_value_is_refused():
    with pytest.raises(ConfigError, match="key 'seed' appears twice in the value"):
        parse_overrides(["training={seed: 1, seed: 2}"])


# ----------------------------------------------------------------------------- duplicate keys
def test_a_duplicate_key_in_a_config_names_the_file_the_key_and_both_lines(tmp_path, capsys):
    """Two `training:` blocks silently kept the second only."""
    cfg = tmp_path / "dup.yaml"
    cfg.write_text("training:\n  seed: 1\nmodel:\n  max_length: 64\ntraining:\n  epochs: 2\n", encoding="utf-8")
    assert cli("train", "--config", cfg, "--data", tmp_path, "--out", tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert f"{cfg}: key 'training' appears twice (lines 1 and 5)" in err


@pytest.mark.parametrize("loader", [load_corpus_config, load_labels, load_benchmark_config])
def test_every_config_loader_refuses_duplicate_keys(loader, tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("a:\n  b: 1\n  b: 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"c\.yaml: key 'b' appears twice \(lines 2 and 3\)"):
        loader(str(f))


def test_merge_keys_and_the_same_key_in_two_mappings_are_no_duplicates(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("base: &b\n  min_chars: 5\nfurniture:\n  bullet: x\n  headline_max_words: 3\n"
                 "x: {<<: *b, min_chars: 7}\n", encoding="utf-8")
    from nabra.config import read_yaml

    assert read_yaml(f)["x"] == {"min_chars": 7}


# ----------------------------------------------------------------------------- shipped configs
def test_readme_config_paths_resolve_outside_the_checkout(tmp_path, monkeypatch):
    """After `pip install .`, run from another folder: configs/corpus.yaml and configs/benchmarks/*.yaml
    were not found (train configs were, through nabra.config.shipped)."""
    monkeypatch.chdir(tmp_path)
    assert load_corpus_config("configs/corpus.yaml") == load_corpus_config()
    assert load_benchmark_config("configs/benchmarks/mawqif.yaml").name == "mawqif"
    assert load_benchmark_config("mawqif.yaml").name == "mawqif"
    mine = tmp_path / "configs" / "corpus.yaml"  # a file that exists wins over the shipped one
    mine.parent.mkdir()
    mine.write_text("min_chars: 3\n", encoding="utf-8")
    assert load_corpus_config("configs/corpus.yaml").min_chars == 3


def test_an_unknown_config_lists_the_shipped_ones(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli("benchmark", "nosuch", "--out", tmp_path / "b") == 2
    err = capsys.readouterr().err
    assert "nosuch: config file not found, nor the name of a shipped benchmark config (shipped: arsarcasm-v2, mawqif)" in err
    assert cli("corpus", "build", "--config", "configs/nosuch.yaml", "--input", tmp_path, "--out", tmp_path / "c") == 2
    assert "shipped corpus config (shipped: corpus)" in capsys.readouterr().err
    assert cli("train", "--config", tmp_path, "--data", tmp_path, "--out", tmp_path / "r") == 2
    assert "is a folder, not a config file" in capsys.readouterr().err


def test_a_lexicon_with_a_key_twice_is_refused(tmp_path):
    """The weak labeller's cue lexicon was read with yaml.safe_load: a second `negators:` list silently
    replaced the first."""
    from nabra.data.weak import WeakLabeler
    from nabra.paths import rules_file

    raw = rules_file().read_text(encoding="utf-8")
    (tmp_path / "rules.yaml").write_text("negators: [لا]\n" + raw, encoding="utf-8")
    with pytest.raises(ConfigError, match="key 'negators' appears twice"):
        WeakLabeler(load_labels(), tmp_path / "rules.yaml")


def test_shares_and_caps_out_of_range_are_refused_by_key(tmp_path):
    """mlm_probability 2 was a transformers ValueError traceback, max_statements 0 silently pretrained on every
    statement, a benchmark's dev_share 1.5 was a scikit-learn InvalidParameterError traceback."""
    from nabra.config import REPO_ROOT, load_pretrain_config

    tiny = REPO_ROOT / "configs/pretrain/tiny.yaml"
    with pytest.raises(ConfigError, match=r"mlm_probability.*less than 1"):
        load_pretrain_config(tiny, ["mlm_probability=2"])
    with pytest.raises(ConfigError, match=r"max_statements.*greater than or equal to 1"):
        load_pretrain_config(tiny, ["max_statements=0"])
    bench = (REPO_ROOT / "configs/benchmarks/mawqif.yaml").read_text(encoding="utf-8")
    (tmp_path / "b.yaml").write_text(bench + "dev_share: 1.5\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"dev_share.*less than 1"):
        load_benchmark_config(str(tmp_path / "b.yaml"))
