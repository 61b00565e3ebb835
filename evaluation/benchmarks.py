"""Public benchmarks through one generic loader: CSV / JSONL / Parquet + a column mapping in YAML.

`load_benchmark` turns the files named in configs/benchmarks/NAME.yaml into the same dataset
folder `nabra dataset build` writes (train/dev/test parquet, manifest with label lists and the
benchmark's headline labels), so training, baselines and reports need no benchmark-specific code.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from nabra.config import BenchmarkConfig, ConfigError, shared_dir
from nabra.io import atomic_dir, read_parquet, write_json


def read_table(path: Path, fmt: str) -> pd.DataFrame:
    if not path.exists():
        raise FileNotFoundError(f"{path}: benchmark file not found (set NABRA_SHARED to the shared data folder)")
    try:
        if fmt == "csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        if fmt == "jsonl":
            return pd.read_json(path, lines=True, dtype=str)
        return read_parquet(path)
    except (UnicodeDecodeError, ValueError, OSError) as e:  # pandas' ParserError is a ValueError; pyarrow's an OSError or ValueError
        raise ConfigError(f"{path}: not a readable {fmt} file ({str(e).splitlines()[0][:200]})") from None


def map_columns(df: pd.DataFrame, cfg: BenchmarkConfig, source: str) -> pd.DataFrame:
    """Checks and renames columns: text[, text_pair], one column per task, values renamed."""
    need = [cfg.text_column] + ([cfg.text_pair_column] if cfg.text_pair_column else []) + \
        [t.column for t in cfg.tasks.values()] + ([cfg.id_column] if cfg.id_column else [])
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ConfigError(f"{source}: column(s) {missing} not found (has {list(df.columns)}); fix the column mapping")
    out = pd.DataFrame({"statement_id": (df[cfg.id_column].astype(str) if cfg.id_column else
                                         pd.Series(range(len(df))).astype(str)).map(lambda x: f"{cfg.name}-{x}"),
                        "text": df[cfg.text_column].astype(str).str.strip()})
    out["article_id"] = out.statement_id
    out["group"] = out.statement_id
    if cfg.text_pair_column:
        out["text_pair"] = df[cfg.text_pair_column].astype(str)
    for task, t in cfg.tasks.items():
        out[task] = df[t.column].astype(str).str.strip().map(lambda v: t.rename.get(v, v))
    return out


def load_benchmark(cfg: BenchmarkConfig, out: str | Path, shared: Path | None = None) -> dict:
    """Writes the benchmark as a dataset folder; returns its manifest."""
    from sklearn.model_selection import train_test_split

    shared = shared or shared_dir()
    parts = {s: map_columns(read_table(shared / f, cfg.format), cfg, str(shared / f)) for s, f in cfg.files.items()}
    if "train" not in parts or "test" not in parts:
        raise ConfigError(f"benchmark {cfg.name}: files must name train and test")
    if "dev" not in parts:
        first = next(iter(cfg.tasks))
        tr, dv = train_test_split(parts["train"], test_size=cfg.dev_share, random_state=cfg.seed,
                                  stratify=parts["train"][first])
        parts["train"], parts["dev"] = tr.sort_index(), dv.sort_index()
    tasks = {t: sorted(set().union(*(set(p[t]) for p in parts.values()))) for t in cfg.tasks}
    from nabra.data.dataset import ids_hash

    man = {"label_source": f"benchmark:{cfg.name}", "tasks": tasks,
           "headline_labels": {t: c.headline_labels for t, c in cfg.tasks.items() if c.headline_labels},
           "counts": {s: {"statements": len(p), **{t: p[t].value_counts().sort_index().to_dict() for t in tasks}}
                      for s, p in parts.items()},
           "published": [p.model_dump() for p in cfg.published]}
    man["content_hash"] = ids_hash(f"{s}|{r.statement_id}|{r.text}|" + "|".join(getattr(r, t) for t in tasks)
                                   for s, p in parts.items() for r in p.itertuples())
    with atomic_dir(out) as tmp:
        for s, p in parts.items():
            p.reset_index(drop=True).to_parquet(tmp / f"{s}.parquet", index=False)
        write_json(tmp / "manifest.json", man)
    return man


def published_lines(report: dict, cfg: BenchmarkConfig) -> list[str]:
    lines = []
    for p in cfg.published:
        ours = {}
        if p.task in report["tasks"]:
            ours["model"] = report["tasks"][p.task]["model"].get(p.metric)
        for name, m in report["baselines"].get(p.task, {}).items():
            ours[name] = m.get(p.metric)
        got = ", ".join(f"{k} {v:.4f}" for k, v in ours.items() if v is not None)
        lines.append(f"{cfg.name} {p.task} {p.metric}: published {p.value:.4f} ({p.source}); ours: {got}")
    return lines
