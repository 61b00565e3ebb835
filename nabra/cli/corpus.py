"""`nabra corpus build`: thin wrapper over nabra.data.corpus.build."""
from __future__ import annotations

import sys
from pathlib import Path

from nabra.cli.main import positive_int
from nabra.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("corpus", help="build the statement corpus from raw articles")
    csub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = csub.add_parser("build", help="clean, segment and deduplicate articles into a statement corpus")
    # extend: `--input a.txt --input b.txt` reads both (a plain nargs="+" kept the last only)
    b.add_argument("--input", nargs="+", action="extend", required=True, metavar="PATH",
                   help="SaudiNewsNet zips, .jsonl/.json, .txt, .html files, folders or globs (any mix); "
                        "may be given more than once")
    b.add_argument("--out", required=True, help="output folder (replaced atomically when the build succeeds)")
    b.add_argument("--config", default=None, help="corpus config YAML (default: configs/corpus.yaml)")
    b.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set min_chars=30")
    b.add_argument("--strict", action="store_true", help="exit non-zero on any input problem")
    b.add_argument("--no-progress", action="store_true", help="no per-task progress log")
    b.add_argument("--tasks", type=positive_int, default=None,
                   help="blocks of input processed independently (default: one per file, and a JSON Lines "
                        "file over 64 MB cut at line starts into ~64 MB ranges); more tasks than that cut JSON "
                        "Lines files further; memory per worker follows the size of one block")
    b.add_argument("--workers", type=positive_int, default=None, help="tasks run at a time (default: config workers)")
    b.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="datatrove executor: local processes, or a Ray cluster (pip install 'nabra[ray]')")
    b.add_argument("--ray-address", default=None,
                   help="Ray cluster to join (default: $RAY_ADDRESS, else a local Ray instance)")
    b.add_argument("--work", default=None,
                   help="folder for the stages' parts and completion records (default: .OUT.work beside OUT; "
                        "on a cluster, a folder every node sees); kept after a failure, so the same command resumes")
    b.set_defaults(func=run)


def run(args) -> int:
    from nabra.config import load_corpus_config
    from nabra.data.corpus import BuildError, build, summary

    cfg = load_corpus_config(args.config, args.overrides)
    if args.executor == "ray":
        check_cluster_paths([*args.input, args.out, *([args.work] if args.work else [])])
        _connect_ray(args.ray_address)
    try:
        res = build(args.input, args.out, cfg, progress=not args.no_progress, tasks=args.tasks,
                    workers=args.workers, executor=args.executor, work=args.work)
    except BuildError as e:
        raise UserError(str(e)) from None
    print(summary(res.manifest))
    print(f"corpus written to {res.out}")
    if res.problems and args.strict:
        print(f"--strict: {len(res.problems)} input problem(s), see warnings above", file=sys.stderr)
        return 1
    return 0


def _connect_ray(address: str | None) -> None:
    try:
        import ray
    except ImportError:
        raise UserError("--executor ray needs Ray: pip install 'nabra[ray]'") from None
    if not ray.is_initialized():
        try:
            ray.init(address=address, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise UserError(f"cannot join the Ray cluster at {address or 'RAY_ADDRESS / a new local one'}: "
                            f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


def check_cluster_paths(paths: list[str]) -> None:
    """Ray's workers do not run in this folder: a relative path would be read (or written) elsewhere."""
    rel = [p for p in paths if p != "-" and not Path(p).is_absolute()]
    if rel:
        raise UserError(f"--executor ray needs absolute paths, on storage every node sees: {', '.join(rel)} "
                        f"(e.g. {Path(rel[0]).resolve()})")
