"""`nabra corpus build`: thin wrapper over nabra.data.corpus.build."""
from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser("corpus", help="build the statement corpus from raw articles")
    csub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = csub.add_parser("build", help="clean, segment and deduplicate articles into a statement corpus")
    b.add_argument("--input", nargs="+", required=True, metavar="PATH",
                   help="SaudiNewsNet zips, .jsonl/.json, .txt, .html files, folders or globs (any mix)")
    b.add_argument("--out", required=True, help="output folder (replaced atomically when the build succeeds)")
    b.add_argument("--config", default=None, help="corpus config YAML (default: configs/corpus.yaml)")
    b.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set min_chars=30")
    b.add_argument("--strict", action="store_true", help="exit non-zero on any input problem")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.set_defaults(func=run)


def run(args) -> int:
    from nabra.cli.main import UserError
    from nabra.config import load_corpus_config
    from nabra.data.corpus import BuildError, build, summary

    cfg = load_corpus_config(args.config, args.overrides)
    try:
        res = build(args.input, args.out, cfg, progress=not args.no_progress)
    except BuildError as e:
        raise UserError(str(e)) from None
    print(summary(res.manifest))
    print(f"corpus written to {res.out}")
    if res.problems and args.strict:
        print(f"--strict: {len(res.problems)} input problem(s), see warnings above", file=sys.stderr)
        return 1
    return 0
