"""`nabra export`: thin wrapper over nabra.train.export.run."""
from __future__ import annotations

import json
from pathlib import Path

from nabra.errors import UserError

# the choices `nabra export` and `nabra bench predict` share (kept here, not in nabra.train.export: the
# CLI stays light to start; a test keeps them equal to export.run's FFN_OUT_CHOICES and GRAPH_CHOICES)
INT8_FFN_OUT = ("split", "none", "all")
ONNX_GRAPHS = ("plain", "fused")
REDUCE_RANGE = ("auto", "on", "off")


def register(sub) -> None:
    p = sub.add_parser("export", help="export a model: HF folder + model card, ONNX, int8 ONNX (with parity checks)")
    p.add_argument("--model", required=True, help="run directory or model folder")
    p.add_argument("--out", required=True)
    p.add_argument("--format", default="hf,onnx,onnx-int8", help="comma list of hf, onnx, onnx-int8")
    p.add_argument("--data", help="dataset folder: int8 macro-F1 is checked on its --split")
    p.add_argument("--split", default="test", choices=["dev", "test"], help="split for the int8 F1 check")
    p.add_argument("--report", help="report.json from `nabra evaluate`, for the model card")
    p.add_argument("--int8-ffn-out", choices=INT8_FFN_OUT, default="split",
                   help="feed-forward output MatMuls in int8: split (int8, with the few channels whose activations "
                        "have outliers, found on --data's train split, in an fp32 side branch), none (they stay "
                        "fp32: slower) or all (int8 outliers too: least accurate)")
    p.add_argument("--onnx-graph", choices=ONNX_GRAPHS, default="plain",
                   help="BERT encoders: the traced graph (onnxruntime fuses at load; faster on the Xeon measured) "
                        "or onnxruntime's transformer fusion (Attention, BiasGelu; faster on the AMD EPYC measured)")
    p.add_argument("--int8-reduce-range", choices=REDUCE_RANGE, default="auto",
                   help="7-bit int8 weights: on, off, or auto = on where this CPU is x86 without VNNI (AVX2 only), "
                        "whose int8 kernel saturates 8-bit weights (there: same label as PyTorch on 96.5/97.4%% of "
                        "test statements instead of 92.6/96.5%%); export on the kind of machine that will serve")
    p.set_defaults(func=run)


def run(args) -> int:
    from nabra.train.export import ExportError, run as export_run

    df = calib = None
    if args.data:
        from nabra.data.dataset import load_split

        df = load_split(args.data, args.split)
        calib = load_split(args.data, "train").text.tolist()[:256]  # int8 calibration: never the scored split
    report = read_report(Path(args.report), args.model) if args.report else None
    if Path(args.out).resolve() == Path(args.model).resolve() or Path(args.out).resolve() == (Path(args.model) / "model").resolve():
        raise UserError(f"--out {args.out} is the model folder itself; export into a new folder")
    try:
        info = export_run(args.model, args.out, [f.strip() for f in args.format.split(",") if f.strip()], df, report, int8_ffn_out=args.int8_ffn_out,
                          graph=args.onnx_graph, calib_texts=calib, int8_reduce_range=args.int8_reduce_range)
    except ExportError as e:
        raise UserError(str(e)) from None
    for name, mb in info.get("sizes_mb", {}).items():
        print(f"{name}: {mb} MB")
    print(f"exported to {args.out}")
    return 0


def read_report(path: Path, model: str | Path | None = None) -> dict:
    """The `nabra evaluate` report.json whose figures go into the model card, checked for what the card
    reads and, given `model`, that it scored this model (another run's figures went into the card)."""
    try:
        rep = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"--report {path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"--report {path}: not a JSON report ({e})") from None
    missing = [k for k in ("split", "n_statements", "tasks") if not isinstance(rep, dict) or k not in rep]
    bad = [t for t, d in (rep.get("tasks") or {}).items() if not isinstance(d, dict) or "model" not in d] \
        if isinstance(rep, dict) and isinstance(rep.get("tasks"), dict) else []
    if missing or bad:
        raise UserError(f"--report {path}: not a `nabra evaluate` report.json (lacks {', '.join(missing) or 'tasks.' + bad[0] + '.model'})")
    if model is not None:
        check_report_model(rep, path, model)
    return rep


# what a report records of each model it scored, and the same facts in the model folder's nabra_pipeline.json
RUN_FACTS = {"run_config": "run_config", "run_seed": "seed", "run_dataset_content_hash": "dataset_content_hash"}


def check_report_model(rep: dict, path: Path, model: str | Path) -> None:
    """The report must have scored a model trained as `model` was (same resolved config, seed and
    dataset): a report of another run put that run's figures into this model's card."""
    from nabra.train.model_dir import load_pipeline, resolve

    try:
        facts = load_pipeline(resolve(model)).get("training_data") or {}
    except (OSError, ValueError):
        return  # a missing or damaged model folder is reported by the export itself, with its file named
    scored = [m for m in (rep.get("provenance") or {}).get("models") or [] if isinstance(m, dict)]
    if not scored:
        raise UserError(f"--report {path}: scored no model (a baselines-only report); evaluate {model} with "
                        "`nabra evaluate --model` and pass that report")
    mine = {k: facts.get(v) for k, v in RUN_FACTS.items()}
    if not mine["run_config"] or any(all(m.get(k) == mine[k] for k in RUN_FACTS) for m in scored):
        return  # a model folder without its run's record cannot be told apart: accepted as before
    other = scored[0]
    diff = [k for k in RUN_FACTS if other.get(k) != mine[k]]
    raise UserError(f"--report {path}: scores {other.get('model')}, not {model} (they differ in "
                    f"{', '.join(diff)}); evaluate {model} and pass its report")
