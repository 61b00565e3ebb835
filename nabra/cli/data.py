"""`nabra data fetch saudinewsnet --out DIR`: the public articles the gold annotations point into."""
from __future__ import annotations

from nabra.cli.main import positive_float

DATASETS = ("saudinewsnet",)


def register(sub) -> None:
    p = sub.add_parser("data", help="fetch public data sets (SaudiNewsNet, for the gold annotations)")
    s = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    f = s.add_parser("fetch", help="download a public data set and check it against the committed sha256 list")
    f.add_argument("name", choices=DATASETS)
    f.add_argument("--out", required=True, help="folder to put the files in (e.g. ../shared/data/saudinewsnet)")
    f.add_argument("--from", dest="source", metavar="DIR", help="copy from a local folder instead of downloading")
    # 0 or less reached urllib: -1 a ValueError traceback, 0 a non-blocking socket ("cannot download")
    f.add_argument("--timeout", type=positive_float, default=30.0, help="seconds to wait for the server (> 0)")
    f.set_defaults(func=run_fetch)


def run_fetch(args) -> int:
    from nabra.data.fetch import UPSTREAM, fetch

    print(f"SaudiNewsNet ({UPSTREAM}, CC BY-NC-SA 4.0) -> {args.out}")
    paths = fetch(args.out, args.source, timeout=args.timeout)
    print(f"{len(paths)} files in {args.out}, each matching its sha256; "
          f"next: nabra corpus build --input {args.out} --out corpus/snn")
    return 0
