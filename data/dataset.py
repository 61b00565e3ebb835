"""`nabra dataset build`: gold (or weak) labels + corpus -> leak-free train/dev/test splits.

Writes, into OUT (atomically): train.parquet, dev.parquet, test.parquet (statement_id,
article_id, group, text, one column per task), test-v2.parquet when a second test split exists,
optionally weak_train.parquet (weak-labelled statements, gold and every gold group excluded, above a
confidence threshold), and manifest.json (corpus hash, annotation hash, split ids hash, counts per
class and split, label maps).

Frozen splits: data/splits/<name>_ids.txt, name one of train, dev, test, test-v2 (any other
<name>_ids.txt is refused). A statement listed there keeps its split on every rebuild, and so does
every statement of its group. Statements not listed are split by stratified group folds, with one
rule: once test_ids.txt exists the test split is closed, and new statements (of groups not yet in
any split) go to train and dev only (`grow_test=True`, `--grow-test`, lets them into test again).
A new statement of a group already in a closed test split (test, test-v2) is left out of the
dataset and counted in the manifest (`held_out_closed_test`): it cannot join train/dev without its
group straddling two splits, and joining the test split would change a frozen test set.

test-v2 is a second frozen test split for statements annotated after test was frozen: designate
its statements once with `--test-v2 FILE` (ids, or standoff JSONL); the build then writes
test-v2_ids.txt (their whole groups), and later builds read it like the other frozen files.

Groups: statements of one article, and articles that share any near-duplicate cluster (reprinted
wire stories), never straddle two splits.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from nabra.config import ConfigError, LabelSchema
from nabra.data.corpus import UnionFind, load_corpus
from nabra.errors import UserError
from nabra.io import atomic_dir, provenance, read_json, read_parquet, write_atomic, write_json
from nabra.paths import splits_dir

SPLITS_DIR = splits_dir()
SPLITS = ("train", "dev", "test", "test-v2")
TEST_SPLITS = ("test", "test-v2")  # scored only by `nabra evaluate`, never tuned on (baselines.refuse_test)


def article_groups(statements: pd.DataFrame) -> dict[str, str]:
    """article_id -> group id: articles linked by a shared duplicate cluster form one group."""
    arts = sorted(statements.article_id.unique())
    index = {a: i for i, a in enumerate(arts)}
    uf = UnionFind(len(arts))
    multi = statements[statements.cluster_size > 1]
    for _, g in multi.groupby("dup_cluster").article_id:
        ids = [index[a] for a in g.unique()]
        for other in ids[1:]:
            uf.union(ids[0], other)
    return {a: arts[uf.find(index[a])] for a in arts}


def linked_to(statements: pd.DataFrame, ids: set[str], scope: str = "group",
              groups: pd.Series | None = None) -> pd.Series:
    """Mask of the statements linked to `ids`: the same article group (scope "group", the unit the
    splits are drawn by), duplicate cluster or text; scope "article": the same article or duplicate
    cluster only (the annotation sampler's rule before, kept so its earlier batches reproduce).
    groups: statements.article_id mapped by article_groups, when the caller has it already."""
    seen = statements[statements.statement_id.isin(ids)]
    clusters = statements.dup_cluster.isin(set(seen.dup_cluster.dropna()))
    if scope == "article":
        return statements.article_id.isin(set(seen.article_id)) | clusters
    if scope != "group":
        raise ValueError(f"scope must be group or article, got {scope!r}")
    if groups is None:
        groups = statements.article_id.map(article_groups(statements))
    return groups.isin(set(groups[seen.index])) | clusters | statements.text_sha1.isin(set(seen.text_sha1))


def assign_splits(df: pd.DataFrame, seed: int, frozen: dict[str, str], dev_share: float = 0.15,
                  test_share: float = 0.15, grow_test: bool = True) -> pd.Series:
    """Stratified (by stance) group split; groups holding a frozen id follow that id. With
    grow_test=False the other groups go to train and dev only (the dev share of train+dev kept)."""
    from sklearn.model_selection import StratifiedGroupKFold

    group_split: dict[str, str] = {}
    for sid, grp in zip(df.statement_id, df.group):
        if sid in frozen:
            prev = group_split.setdefault(grp, frozen[sid])
            if prev != frozen[sid]:
                raise ConfigError(f"frozen splits put group {grp} in both {prev} and {frozen[sid]}")
    free = ~df.group.isin(group_split)
    if free.any():
        n_folds = max(3, int(round(1 / min(dev_share, test_share)))) if grow_test else \
            max(3, int(round((1 - test_share) / dev_share)))
        sub = df[free]
        y = sub["stance"].to_numpy()
        # fewer folds than wanted when even the largest stance class cannot fill them (a small gold set):
        # StratifiedGroupKFold refuses more folds than that
        k = min(n_folds, sub.group.nunique(), int(pd.Series(y).value_counts().max()))
        if k < 3:
            # a corpus of part of SaudiNewsNet (the README's one-zip trial) ends here: say the way out
            into = "train, dev and test" if grow_test else "train and dev"
            raise ConfigError(f"{len(sub)} gold statement(s) in {sub.group.nunique()} article group(s) outside the "
                              f"frozen splits are too few to split into {into} (at least 3 groups and 3 statements "
                              "of one stance are needed)"
                              + ("; a corpus of part of SaudiNewsNet? `--splits none` splits every gold statement "
                                 "afresh, without the frozen splits" if frozen else ""))
        sgkf = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        folds = np.zeros(len(sub), dtype=int)
        for f, (_, te) in enumerate(sgkf.split(np.zeros(len(sub)), y, sub.group.to_numpy())):
            folds[te] = f
        n_test = max(1, int(round(test_share * k))) if grow_test else 0
        n_dev = max(1, int(round(dev_share * k)))
        names = np.where(folds < n_test, "test", np.where(folds < n_test + n_dev, "dev", "train"))
        for grp, name in zip(sub.group, names):
            group_split.setdefault(grp, name)
    return df.group.map(group_split)


def read_frozen(splits_dir: Path) -> dict[str, str]:
    """statement id -> frozen split name, from every <name>_ids.txt in `splits_dir`."""
    out: dict[str, str] = {}
    for f in sorted(Path(splits_dir).glob("*_ids.txt")):
        name = f.name[:-len("_ids.txt")]
        if name not in SPLITS:
            raise ConfigError(f"{f}: unknown split '{name}' (frozen split files: "
                              + ", ".join(f"{s}_ids.txt" for s in SPLITS) + ")")
        for sid in f.read_text().split():
            if out.setdefault(sid, name) != name:
                raise ConfigError(f"{sid} is frozen in two splits: {out[sid]} and {name} ({splits_dir})")
    return out


def ids_hash(ids) -> str:
    return hashlib.sha1("\n".join(sorted(ids)).encode()).hexdigest()


def rows_hash(df: pd.DataFrame) -> str:
    """The rows of a split as read, in order, every column (ids, text, labels): the content hash covers
    ids, splits and labels, not the statement text."""
    return hashlib.sha1(pd.util.hash_pandas_object(df, index=False).values.tobytes()).hexdigest()


def build(corpus_dir: str | Path, out: str | Path, schema: LabelSchema, annotations: str | Path | None = None,
          weak_dir: str | Path | None = None, weak_threshold: float = 0.75, seed: int = 13,
          splits_dir: str | Path | None = SPLITS_DIR, freeze: bool = False, test_v2: list[str] | None = None,
          grow_test: bool | None = None, log=print) -> dict:
    """Builds the splits (see module docstring). With no annotations, weak labels become the labels
    (the offline sample pipeline); the manifest says so. `test_v2`: statement ids that open the
    test-v2 split (frozen into splits_dir/test-v2_ids.txt). `grow_test`: None = only while the test
    split is not frozen."""
    from nabra.data.annotate import finals, join, read_records

    st, _, cman = load_corpus(corpus_dir)
    groups = article_groups(st)
    tasks = list(schema.tasks)
    weak = None
    if weak_dir:
        weak = read_parquet(weak_labels_of(weak_dir, corpus_dir, cman["content_hash"]))
    problems: list[str] = []
    bad: list[str] = []  # records that are no annotation record (bad JSON, shape, label): file:line and why
    if annotations:
        where: dict = {}  # record -> file:line, so that every line of rejects.txt names its record's place
        recs = read_records(annotations, rejects=bad, schema=schema, where=where)
        fin = finals(recs)
        # without a final record it said "no gold record matches this corpus", of readings that did match
        if recs and not fin:
            raise ConfigError(f"{annotations}: {len(recs)} reading(s) (pass 1/2) and no final record: "
                              "`nabra annotate finalize` makes one a statement (the dataset's labels)")
        if not recs:
            raise ConfigError(f"{annotations}: no valid annotation record"
                              + (f" ({len(bad)} invalid, e.g. {bad[0]})" if bad else ""))
        df, problems = join(fin, st, where)
        for what, items in (("are not valid annotation records", bad), ("do not match the corpus", problems)):
            if items:
                log(f"warning: {len(items)} gold record(s) {what}:")
                for p in items[:20]:
                    log("  " + p)
                if len(items) > 20:
                    log(f"  ... and {len(items) - 20} more")
        if df.empty:
            raise ConfigError("no gold record matches this corpus: was it built from ../shared/data/saudinewsnet "
                              "with configs/corpus.yaml?")
        label_source = "gold"
        ann_hash = ids_hash(f"{r['statement_id']}|{r['stance']}|{r['sentiment']}|{r['pass']}" for r in recs)
    elif weak is not None:
        df = st.merge(weak, on="statement_id")
        df = df[~df.is_duplicate]
        label_source = "weak"
        ann_hash = None
    else:
        raise ConfigError("give --annotations (gold) or --weak (weak labels as labels)")
    df = df.copy()
    df["group"] = df.article_id.map(groups)
    missing = [t for t in tasks if t not in df.columns]
    if missing:
        raise ConfigError(f"labels lack task column(s) {missing}")
    frozen = read_frozen(Path(splits_dir)) if (splits_dir and label_source == "gold") else {}
    if test_v2:
        frozen = designate_test_v2(frozen, test_v2, set(df.statement_id), log)
    if grow_test is None:
        grow_test = "test" not in frozen.values()
    df["split"] = assign_splits(df.reset_index(drop=True), seed, frozen, grow_test=grow_test).to_numpy()
    closed = {"test-v2"} | (set() if grow_test else {"test"})
    late = df.split.isin(closed) & ~df.statement_id.isin(frozen)
    if late.any():
        log(f"left out {int(late.sum())} new statement(s) whose group is in a closed test split "
            f"({', '.join(f'{k} {v}' for k, v in df.split[late].value_counts().sort_index().items())})")
        df = df[~late]
    present = [s for s in SPLITS if s != "test-v2" or (df.split == s).any()]
    cols = ["statement_id", "article_id", "group", "text"] + tasks
    counts = {}
    info = {"label_source": label_source, "corpus_content_hash": cman["content_hash"], "annotation_hash": ann_hash,
            "seed": seed, "mismatches": len(problems), "invalid_records": len(bad),
            "held_out_closed_test": int(late.sum()), "tasks": {t: schema.tasks[t].names for t in tasks},
            # carried into every model trained on this dataset, so that prediction cuts statements the same way
            "corpus_config": cman.get("config"),
            "corpus_inputs": sorted({Path(i["path"]).name for i in cman.get("inputs", [])}),
            "corpus_input_sha256": sorted({i["sha256"] for i in cman.get("inputs", [])})}
    with atomic_dir(out) as tmp:
        for name in present:
            part = df[df.split == name].sort_values("statement_id")[cols]
            part.to_parquet(tmp / f"{name}.parquet", index=False)
            counts[name] = {"statements": len(part), "articles": int(part.article_id.nunique()),
                            **{t: part[t].value_counts().sort_index().to_dict() for t in tasks}}
            info[f"{name}_ids_hash"] = ids_hash(part.statement_id)
        if weak is not None and label_source == "gold":
            gold_groups = set(df.group)
            w = st.merge(weak, on="statement_id")
            w = w[(~w.is_duplicate) & (~w.article_id.map(groups).isin(gold_groups))]
            w = w[(w[[f"{t}_conf" for t in tasks]].min(axis=1) >= weak_threshold)]
            w = w.assign(group=w.article_id.map(groups))[cols].sort_values("statement_id")
            w.to_parquet(tmp / "weak_train.parquet", index=False)
            counts["weak_train"] = {"statements": len(w), **{t: w[t].value_counts().sort_index().to_dict() for t in tasks}}
            info["weak_threshold"] = weak_threshold
        info["counts"] = counts
        info["content_hash"] = ids_hash(f"{r.statement_id}|{r.split}|" + "|".join(str(getattr(r, t)) for t in tasks)
                                        for r in df.itertuples())
        if bad or problems:  # the gold records left out, each with its reason (the log shows the first 20)
            info["rejects"] = "rejects.txt"
            write_atomic(tmp / "rejects.txt", "\n".join(bad + problems) + "\n")
        write_json(tmp / "manifest.json", {**info, **provenance()})
    if bad or problems:  # named once it exists: a build that fails (too few to split, --out taken) writes none
        log(f"  (all {len(bad) + len(problems)} left-out gold record(s), with reasons: {Path(out) / 'rejects.txt'})")
    if label_source == "gold" and splits_dir:
        for name in present if freeze else ["test-v2"] if test_v2 else []:
            ids = sorted(df.statement_id[df.split == name])
            write_atomic(Path(splits_dir) / f"{name}_ids.txt", "\n".join(ids) + "\n")
    return info


def weak_labels_of(weak_dir: str | Path, corpus_dir: str | Path, corpus_hash: str) -> Path:
    """weak_dir's weak_labels.parquet, if they label this corpus: labels of another corpus (or of this one
    before a rebuild with other inputs or config) matched only the statement ids the two share, and the
    rest left the dataset (or weak_train) without a word."""
    f = Path(weak_dir) / "weak_labels.parquet"
    redo = f"make them with `nabra label weak --corpus {corpus_dir} --out {weak_dir}`"
    if not f.is_file():
        raise UserError(f"--weak {weak_dir}: not a weak labels folder (no {f.name}); {redo}")
    made_from = (read_json(f.parent / "weak_manifest.json").get("corpus_content_hash")
                 if (f.parent / "weak_manifest.json").is_file() else None)
    if made_from and made_from != corpus_hash:
        raise UserError(f"--weak {weak_dir}: labels another corpus (content hash {made_from}) than --corpus "
                        f"{corpus_dir} ({corpus_hash}); label this one: `nabra label weak --corpus {corpus_dir} "
                        "--out NEW_FOLDER`")
    return f


def designate_test_v2(frozen: dict[str, str], ids: list[str], gold_ids: set[str], log=print) -> dict[str, str]:
    """frozen + `ids` in test-v2. Refuses ids frozen elsewhere and a second, different designation."""
    ids = sorted(set(ids))
    old = sorted(s for s, n in frozen.items() if n == "test-v2")
    if old and not set(ids) <= set(old):
        raise ConfigError(f"test-v2 is frozen already ({len(old)} statements in test-v2_ids.txt): "
                          "delete that file to designate it anew")
    elsewhere = [s for s in ids if frozen.get(s, "test-v2") != "test-v2"]
    if elsewhere:
        raise ConfigError(f"{len(elsewhere)} test-v2 statement(s) are frozen in another split, e.g. "
                          f"{elsewhere[0]} in {frozen[elsewhere[0]]}")
    unknown = [s for s in ids if s not in gold_ids]
    if unknown:
        log(f"warning: {len(unknown)} test-v2 id(s) have no gold label, e.g. {unknown[0]}")
    return {**frozen, **{s: "test-v2" for s in ids if s in gold_ids}}


def load_split(dataset_dir: str | Path, split: str, use: str | None = None) -> pd.DataFrame:
    """One split of a dataset folder. use: what the command does with it ("score", "fit the baselines
    on"), which needs statements: an empty split is then a UserError (it was a scikit-learn traceback)."""
    p = Path(dataset_dir) / f"{split}.parquet"
    if not Path(dataset_dir).is_dir():
        raise UserError(f"{dataset_dir}: no such dataset folder (build one with `nabra dataset build`)")
    if not p.exists():
        raise UserError(f"{dataset_dir}: the dataset has no {split} split ({p.name}); it has {held_splits(dataset_dir)}")
    df = read_parquet(p)
    if use and df.empty:
        raise UserError(f"{dataset_dir}: its {split} split is empty (0 statements): nothing to {use}; "
                        f"it has {held_splits(dataset_dir)}")
    return df


def held_splits(dataset_dir: str | Path) -> str:
    """The splits a dataset folder holds, with their sizes, e.g. "train (50), dev (10), test (0)"."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    held = []
    for name in (*SPLITS, "weak_train"):
        p = Path(dataset_dir) / f"{name}.parquet"
        if p.exists():
            try:  # the footer only: no table is read
                held.append(f"{name} ({pq.ParquetFile(p).metadata.num_rows})")
            except (pa.ArrowException, OSError):
                held.append(f"{name} (damaged)")
    return ", ".join(held) + " statements" if held else "no split (*.parquet)"


def dataset_manifest(dataset_dir: str | Path) -> dict:
    p = Path(dataset_dir) / "manifest.json"
    if not p.exists():
        raise FileNotFoundError(f"{dataset_dir}: not a dataset (no manifest.json)")
    return read_json(p)
