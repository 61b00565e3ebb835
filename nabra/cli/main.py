"""`nabra`: one console command; each subcommand lives in its own module under nabra/cli/.

Each module exposes `register(subparsers)` and a `run(args)` that reads flags and calls a plain,
importable function. User errors (bad config, missing files, missing model) print one message and
exit 2, without a stack trace.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import math
import os
import signal
import sys
import threading

from nabra.errors import UserError

# subcommand -> module; the order is the pipeline's order in `nabra --help`.
COMMANDS = {
    "demo": "nabra.cli.demo",
    "data": "nabra.cli.data",
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



def _number(cast, ok, want: str, must: str):
    """An argparse type: `cast` the value, refuse it unless ok(value), with one line that names the flag."""
    def parse(value: str):
        try:
            x = cast(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {want}, got {value!r}") from None
        if not ok(x):  # nan fails every comparison
            raise argparse.ArgumentTypeError(f"must be {must}, got {value}")
        return x
    return parse


# Refused by the flag, before any work: `--epochs 0`, `-1` or `nan` trained nothing or crashed; `--batch-size 0`
# failed after the model loaded; `--random -5` drew nothing and `--double 2` or `nan` was taken as it came.
positive_float = _number(float, lambda x: x > 0 and math.isfinite(x), "a number > 0", "a finite number > 0")
positive_int = _number(int, lambda n: n >= 1, "a whole number >= 1", ">= 1")
count = _number(int, lambda n: n >= 0, "a whole number >= 0", ">= 0")
share = _number(float, lambda x: 0 <= x <= 1, "a number from 0 to 1", "from 0 to 1")


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
    import warnings

    if os.environ.get("NABRA_VERBOSE"):
        return
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    # no fork warning from `tokenizers`; on few cores also faster: its threads compete with torch's and
    # ONNX Runtime's while predicting (tiny model, 2 cores: PyTorch 690-750 statements/s off, 560-590 on)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # per-file bars of transformers ("Loading weights", "Writing model shards") and datasets; the
    # Trainer's own bar stays
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    for mod in ("torch", "transformers", "onnxscript", "onnxruntime", "sklearn", "datasets", "accelerate"):
        warnings.filterwarnings("ignore", module=mod)


def main(argv: list[str] | None = None) -> int:
    from nabra.config import ConfigError
    from nabra.train.text import MissingModelError

    quiet_libraries()
    parser = build_parser()
    args = parser.parse_args(argv)
    stop, previous = _terminate_as_interrupt()
    try:
        return int(args.func(args) or 0)
    except (UserError, ConfigError, FileNotFoundError, MissingModelError) as e:
        print(f"nabra {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Ctrl-C: outputs are written under a temporary name and renamed, so none is left half-written
        print(f"nabra {args.command}: interrupted" + (" (SIGTERM)" if stop["signal"] else ""), file=sys.stderr)
        return 128 + (stop["signal"] or signal.SIGINT)
    except BrokenPipeError:
        # the reader went away (`nabra predict ... | head`): stop quietly, as `cat` does. stdout is
        # pointed at devnull so that the interpreter's final flush does not raise the same error again.
        _silence_stdout()
        return 0
    except OSError as e:
        if e.errno not in WRITE_ERRORS:  # anything else is a bug to report, with its traceback
            raise
        # a full disk names no file: the output being written is the one the user can act on; a temporary
        # name (.out.tmp-*, written then renamed) is the folder it was to go into
        where = e.filename or (f"writing {args.out}" if getattr(args, "out", None) else "writing")
        if isinstance(where, str) and os.path.basename(where).startswith(".") and ".tmp" in os.path.basename(where):
            where = os.path.dirname(where) or "."
        print(f"nabra {args.command}: error: {where}: {WRITE_ERRORS[e.errno]}", file=sys.stderr)
        return 2
    finally:
        if previous is not None:  # main() called in-process (tests, scripts) leaves the caller's handler
            signal.signal(signal.SIGTERM, previous)


def _terminate_as_interrupt() -> tuple[dict, object]:
    """SIGTERM (`kill`, a job scheduler's time limit) ends the command as Ctrl-C does: the temporary folders
    are removed and 'interrupted' is printed. It ended the process at once, leaving them (an export: 12 MB).
    Only in this process: a pool worker forked from it still dies of SIGTERM at once."""
    stop = {"signal": None}
    main_pid = os.getpid()

    def handler(signum, frame):
        if os.getpid() != main_pid:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        stop["signal"] = signum
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():  # signal handlers can only be set there
        return stop, None
    return stop, signal.signal(signal.SIGTERM, handler)


# OSErrors a user causes by where they write (a read-only folder, a full disk or quota): one line, no traceback
WRITE_ERRORS = {errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
                errno.EROFS: "read-only file system", errno.ENOSPC: "no space left on device",
                errno.EDQUOT: "disk quota exceeded", errno.EFBIG: "file too large"}


def _silence_stdout() -> None:
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real stream (a test's capture): nothing will be flushed to a closed pipe
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
