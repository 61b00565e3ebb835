"""`nabra`: one console command; each subcommand lives in its own module under nabra/cli/.

Each module exposes `register(subparsers)` and a `run(args)` that reads flags and calls a plain,
importable function. User errors (bad config, missing files, missing model) print one message and
exit 2, without a stack trace.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> module; the order is the pipeline's order in `nabra --help`.
COMMANDS = {
    "demo": "nabra.cli.demo",
    "corpus": "nabra.cli.corpus",
    "label": "nabra.cli.label",
    "annotate": "nabra.cli.annotate",
    "dataset": "nabra.cli.dataset",
    "encoder": "nabra.cli.encoder",
    "pretrain": "nabra.cli.pretrain",
    "train": "nabra.cli.train",
    "baseline": "nabra.cli.baseline",
    "evaluate": "nabra.cli.evaluate",
    "benchmark": "nabra.cli.benchmark",
    "export": "nabra.cli.export",
    "predict": "nabra.cli.predict",
    "bench": "nabra.cli.bench",
}


class UserError(Exception):
    """An error the user can fix; printed without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nabra",
        description="Stance and sentiment of statements in Arabic news: corpus -> labels -> train -> evaluate -> export -> predict.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in COMMANDS.items():
        importlib.import_module(module).register(sub)
    return parser


def quiet_libraries() -> None:
    """Library chatter (deprecations inside torch/transformers, progress of the ONNX exporter) is
    hidden unless NABRA_VERBOSE=1; nabra's own messages and real errors still show."""
    import os
    import warnings

    if os.environ.get("NABRA_VERBOSE"):
        return
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for mod in ("torch", "transformers", "onnxscript", "onnxruntime", "sklearn", "datasets", "accelerate"):
        warnings.filterwarnings("ignore", module=mod)


def main(argv: list[str] | None = None) -> int:
    from nabra.config import ConfigError
    from nabra.train.text import MissingModelError

    quiet_libraries()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (UserError, ConfigError, FileNotFoundError, MissingModelError) as e:
        print(f"nabra {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
