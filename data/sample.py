"""`nabra annotate sample`: choose the statements to annotate, reproducibly from a seed.

Writes data/annotations/sample.jsonl: one standoff record per chosen statement (ids, offsets,
text_sha1, the stratum it was drawn from, and whether it gets a second independent reading).
No text is written: the statements are rebuilt from the corpus.

Strategy (issue 3): political and diplomatic articles first; for every non-neutral stance, the
statements some labelling function flags for that stance (so rare classes reach >= 100 gold);
plus a uniform random slice of the same pool that keeps the natural distribution.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from nabra.config import LabelSchema
from nabra.data.weak import WeakLabeler

POLITICAL = re.compile(
    "وزير|الخارجية|الرئيس|رئيس الوزراء|الحكومة|مجلس الأمن|الأمم المتحدة|سفير|دبلوماسي|الملك|ولي العهد"
    "|قمة|مباحثات|محادثات|اتصال هاتفي|الحوثي|إيران|اليمن|سوريا|العراق|فلسطين|إسرائيل|الإرهاب|داعش"
    "|التحالف|البرلمان|الجيش|المعارضة|اتفاق|الاحتلال|مجلس الوزراء|الجامعة العربية|مجلس التعاون|روسيا"
    "|الولايات المتحدة|واشنطن|تركيا|مصر|لبنان|ليبيا|هجوم|تفجير|عزاء|تعزية|إدانة|أدان")


def political_articles(articles: pd.DataFrame, min_hits: int = 4) -> set[str]:
    keep = set()
    for aid, title, body in zip(articles.article_id, articles.title, articles.body):
        hits = set(POLITICAL.findall(title + "\n" + body[:1500]))
        if len(hits) >= min_hits:
            keep.add(aid)
    return keep


def draw(statements: pd.DataFrame, articles: pd.DataFrame, schema: LabelSchema, seed: int = 13,
         per_class: int = 220, neutral_flagged: int = 150, random_slice: int = 350,
         double_share: float = 0.2, max_per_article: int = 2, exclude: set[str] | None = None,
         exclude_scope: str = "group") -> pd.DataFrame:
    """Returns the chosen statements with columns stratum and double (second reading).

    exclude: ids of statements already annotated or held out. With exclude_scope "group" their article
    groups (articles linked by a shared duplicate cluster: the unit `dataset build` splits by),
    duplicate clusters and texts leave the pool, as in `annotate suggest`, so every statement of a new
    batch can go to any split (issue 12's test-v2). "article" leaves out only their articles and
    duplicate clusters: the rule r29 and s31 were drawn with, kept so those batches reproduce; a pick
    of a group already in a closed test split is then left out of the dataset (320 of r29's 1,200
    share a group with earlier gold).
    """
    from nabra.data.dataset import linked_to

    rng = np.random.default_rng(seed)
    pol = political_articles(articles)
    keep = (~statements.is_duplicate) & statements.article_id.isin(pol)
    if exclude:
        keep &= ~linked_to(statements, exclude, exclude_scope)
    pool = statements[keep].reset_index(drop=True)
    names = schema.tasks["stance"].names
    votes = WeakLabeler(schema).votes(pool.text.tolist(), "stance")
    per_article: dict[str, int] = {}
    chosen: list[tuple[int, str]] = []
    taken: set[int] = set()

    def take(indices, n, stratum):
        got = 0
        for i in indices:
            if got >= n:
                break
            aid = pool.article_id[i]
            if i in taken or per_article.get(aid, 0) >= max_per_article:
                continue
            taken.add(i)
            per_article[aid] = per_article.get(aid, 0) + 1
            chosen.append((i, stratum))
            got += 1

    # random slice first, so it is a true sample of the pool, untouched by the flagged strata
    take(rng.permutation(len(pool)), random_slice, "random")
    for label in names:
        flagged = np.where((votes == names.index(label)).any(1))[0]
        if label == "neutral":
            nonneutral = ((votes >= 0) & (votes != names.index("neutral"))).any(1)
            flagged = np.where((votes == names.index(label)).any(1) & ~nonneutral)[0]
        take(rng.permutation(flagged), neutral_flagged if label == "neutral" else per_class, f"flagged:{label}")
    out = pool.loc[[i for i, _ in chosen], ["statement_id", "article_id", "start", "end", "text_sha1"]].copy()
    out["stratum"] = [s for _, s in chosen]
    out["double"] = rng.random(len(out)) < double_share
    return out.sort_values("statement_id").reset_index(drop=True)


def write_sample(df: pd.DataFrame, path: str | Path) -> None:
    from nabra.io import write_atomic

    lines = [json.dumps({k: (v.item() if hasattr(v, "item") else v) for k, v in rec.items()}, ensure_ascii=False)
             for rec in df.to_dict("records")]
    write_atomic(path, "\n".join(lines) + "\n")
