"""`nabra predict --workers N`: label many input files with datatrove's executors (local processes or
Ray), and give the rows back in input order.

Each task takes a contiguous block of the input units (the sorted input files, a JSON Lines file over
64 MB cut into byte ranges: nabra.data.pipeline.plan_units, as `nabra corpus build`), loads the model
once and writes its (article, rows, problem) records as JSONL under a work folder; the caller reads the
tasks' files in rank order and names an article seen in an earlier task as a repeat, so the output is
the same, row for row, as one process would give.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from datatrove.pipeline.base import PipelineStep


class PredictFiles(PipelineStep):
    type = "🔮 - INFERENCE"
    name = "nabra predict"

    def __init__(self, units: list, work: str, model: str, backend: str, model_kw: dict):
        super().__init__()
        self.units, self.work, self.model, self.backend, self.model_kw = units, work, model, backend, model_kw

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        from nabra.data.pipeline import read_units, shard
        from nabra.train.predict import StanceClassifier, predict_items

        a, b = shard(self.units, rank, world_size)
        out = Path(self.work) / f"{rank:05d}.jsonl"
        tmp = out.with_suffix(".tmp")
        # one thread per task: the workers share the cores instead of fighting over them
        clf = StanceClassifier.from_pretrained(self.model, backend=self.backend, threads=1, **self.model_kw)
        with open(tmp, "w", encoding="utf-8") as fh:
            for art, rows, problem in predict_items(clf, read_units(self.units[a:b])):
                art = {k: art[k] for k in ("input_file", "locator", "article_id", "where", "repeat") if k in art} if art else None
                fh.write(json.dumps([art, rows, problem], ensure_ascii=False) + "\n")
                self.stat_update("problems" if problem else "articles")
        tmp.replace(out)
        return
        yield


def predict_parallel(model: str, inputs: list[str], workers: int, backend: str = "torch", executor: str = "local",
                     tasks: int | None = None, **model_kw) -> Iterator[tuple[dict | None, list[dict], str | None]]:
    """Like nabra.train.predict.predict_inputs, over `workers` processes; same records, same order."""
    from loguru import logger

    from nabra.data.ingest import expand_inputs
    from nabra.data.pipeline import _executor, plan_tasks, unit_weights
    from nabra.train.predict import repeat_problem

    files, problems = expand_inputs(inputs)
    for p in problems:
        yield None, [], str(p)
    if not files:
        return
    units, tasks = plan_tasks([str(f) for f in files], tasks)
    work = Path(tempfile.mkdtemp(prefix="nabra-predict-"))
    try:
        logger.disable("datatrove")  # the summary line and warnings are printed by `nabra predict`
        # and in the task processes: they import nabra.data.pipeline, which reads this (set before the
        # pool's forkserver starts; as `nabra corpus build --no-progress` does)
        os.environ["NABRA_TASK_LOGS"] = "0"
        _executor(executor, [PredictFiles(units, str(work), model, backend, model_kw)], tasks, workers,
                  work / "logs", weights=unit_weights(units, tasks)).run()
        seen: dict[str, str] = {}  # the first copy of each article over all tasks, in input order
        for r in range(tasks):
            path = work / f"{r:05d}.jsonl"
            if not path.exists():
                raise RuntimeError(f"prediction task {r} did not finish; see {work / 'logs'}")
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    art, rows, problem = json.loads(line)
                    if art and art["article_id"] in seen:  # a repeat in this task or across tasks: named
                        yield None, [], repeat_problem(art["where"], seen[art["article_id"]])  # after the first of all
                        continue
                    if art:
                        seen[art["article_id"]] = art["where"]
                    yield art, rows, problem
    finally:
        shutil.rmtree(work, ignore_errors=True)
