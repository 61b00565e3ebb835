"""`nabra predict --workers N`: label many input files with datatrove's executors (local processes or
Ray), and give the rows back in input order.

Each task takes a contiguous block of the sorted input files, loads the model once and writes its
(article, rows, problem) records as JSONL under a work folder; the caller reads the tasks' files in
rank order, so the output is the same, row for row, as one process would give.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from datatrove.pipeline.base import PipelineStep


class PredictFiles(PipelineStep):
    type = "🔮 - INFERENCE"
    name = "nabra predict"

    def __init__(self, files: list[str], work: str, model: str, backend: str, model_kw: dict):
        super().__init__()
        self.files, self.work, self.model, self.backend, self.model_kw = files, work, model, backend, model_kw

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        from nabra.data.pipeline import shard
        from nabra.train.predict import StanceClassifier, predict_inputs

        a, b = shard(self.files, rank, world_size)
        out = Path(self.work) / f"{rank:05d}.jsonl"
        tmp = out.with_suffix(".tmp")
        # one thread per task: the workers share the cores instead of fighting over them
        clf = StanceClassifier.from_pretrained(self.model, backend=self.backend, threads=1, **self.model_kw)
        with open(tmp, "w", encoding="utf-8") as fh:
            for art, rows, problem in predict_inputs(clf, self.files[a:b]):
                art = {"input_file": art["input_file"], "article_id": art["article_id"]} if art else None
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
    from nabra.data.pipeline import _executor, file_weights

    files, problems = expand_inputs(inputs)
    for p in problems:
        yield None, [], str(p)
    names = [str(f) for f in files]
    if not names:
        return
    tasks = max(1, min(tasks or len(names), len(names)))
    work = Path(tempfile.mkdtemp(prefix="nabra-predict-"))
    try:
        logger.disable("datatrove")  # the summary line and warnings are printed by `nabra predict`
        _executor(executor, [PredictFiles(names, str(work), model, backend, model_kw)], tasks, workers,
                  work / "logs", weights=file_weights(names, tasks)).run()
        for r in range(tasks):
            path = work / f"{r:05d}.jsonl"
            if not path.exists():
                raise RuntimeError(f"prediction task {r} did not finish; see {work / 'logs'}")
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    art, rows, problem = json.loads(line)
                    yield art, rows, problem
    finally:
        shutil.rmtree(work, ignore_errors=True)
