"""Prediction: the Python API (`StanceClassifier`) behind `nabra predict` and `nabra evaluate`.

    from nabra import StanceClassifier
    clf = StanceClassifier.from_pretrained("runs/tiny/model")        # or an exported folder
    clf.predict(["أدان الوزير الهجوم"])                               # one dict per text
    clf.predict_article(open("article.txt").read())                  # every statement, with offsets

The same cleaning and segmentation as the corpus builder (ArticleProcessor, shared code), the
same preprocessing as training (read from the model folder). Backends: PyTorch, or ONNX Runtime
when the folder holds model.onnx / model.int8.onnx (from `nabra export`).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Iterable

import numpy as np

from nabra.train.model_dir import ModelDirError, check_head_widths, corpus_config, load_pipeline, no_onnx, validate
from nabra.train.text import Preprocessor


# onnxruntime's SkipLayerNormalization kernel (what it fuses Add + LayerNormalization into at load)
# took 3.7 ns an element on a 2-core Xeon (VNNI/AMX) against 1.0 for LayerNormalization itself:
# without that fusion the int8 e5-small graph ran 1.2-1.5x faster on the gold dev split (two runs:
# 96 -> 141 and 107 -> 125 statements/s).
ORT_DISABLED_OPTIMIZERS = ["SkipLayerNormFusion"]


def check_model_dir(path: str | Path, backend: str, onnx_file: str | None = None) -> Path:
    """The model folder to load (a run directory means its best model), checked file by file."""
    return validate(path, backend, onnx_file)


def _softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(-1, keepdims=True)


class StanceClassifier:
    def __init__(self, directory: Path, backend: str = "torch", onnx_file: str = "model.onnx",
                 batch_size: int = 32, threads: int | None = None):
        from transformers import AutoConfig, AutoTokenizer

        self.dir = directory
        self.backend = backend
        self.onnx_file = onnx_file if backend == "onnx" else None  # the graph in use (from_pretrained may pick int8)
        cfg = json.loads((directory / "config.json").read_text(encoding="utf-8"))
        order = cfg.get("task_order") or list(cfg["tasks"])
        self.tasks: dict[str, list[str]] = {t: cfg["tasks"][t] for t in order}
        self.text_pair = bool(cfg.get("text_pair"))
        # the encoder's own config tells AutoTokenizer the model type: left to read config.json, it met
        # "nabra-multitask" (unregistered until the PyTorch model is imported) and warned that loading
        # "can yield errors" on every Python-API load
        enc = dict(cfg.get("encoder") or {})
        enc_cfg = AutoConfig.for_model(enc.pop("model_type"), **enc) if "model_type" in enc else None
        self.tokenizer = AutoTokenizer.from_pretrained(directory, config=enc_cfg)
        # everything about the input side comes from the model folder, never from the repo's configs/
        self.pipeline = load_pipeline(directory)
        self.max_length = self.pipeline["max_length"]
        self.pre = Preprocessor.load(directory)
        self.batch_size = batch_size
        self._processor = None
        if backend == "torch":
            import torch

            from nabra.train.model import NabraModel

            if threads:
                torch.set_num_threads(threads)
            try:
                self.model = NabraModel.from_pretrained(directory).eval()
            except Exception as e:  # noqa: BLE001 - any load failure is a damaged folder; name it, no traceback
                raise ModelDirError(f"{directory / 'model.safetensors'}: cannot be loaded "
                                    f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
        elif backend == "onnx":
            import onnxruntime as ort

            f = directory / onnx_file
            if not f.exists():
                raise ModelDirError(no_onnx(directory, onnx_file))
            so = ort.SessionOptions()
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            if threads:
                so.intra_op_num_threads = threads
            try:
                self.session = ort.InferenceSession(str(f), so, providers=["CPUExecutionProvider"],
                                                    disabled_optimizers=ORT_DISABLED_OPTIMIZERS)
            except Exception as e:  # noqa: BLE001 - onnxruntime raises its own InvalidProtobuf/Fail types
                raise ModelDirError(f"{f}: not a loadable ONNX model, probably truncated or damaged "
                                    f"({str(e).splitlines()[0][:200]}); export it again") from None
            self.onnx_inputs = [i.name for i in self.session.get_inputs()]
            # the graph's logits must fit the label maps of config.json (an edited or mismatched config
            # broke later, inside numpy, with a shape error)
            check_head_widths(f, [o.shape[-1] for o in self.session.get_outputs()], self.tasks)
        else:
            raise ValueError(f"backend must be torch or onnx, got {backend!r}")

    @classmethod
    def from_pretrained(cls, path: str | Path, backend: str = "torch", **kw) -> "StanceClassifier":
        d = check_model_dir(path, backend, kw.get("onnx_file"))
        if backend == "onnx" and "onnx_file" not in kw and not (d / "model.onnx").exists() and (d / "model.int8.onnx").exists():
            kw["onnx_file"] = "model.int8.onnx"
        return cls(d, backend=backend, **kw)

    # ------------------------------------------------------------------ core
    def _batches(self, texts: list[str], pairs: list[str] | None = None):
        """(row indices, tokenized batch) over `texts`, batched by similar length (less padding)."""
        texts_p = self.pre(list(texts))
        pairs_p = self.pre(list(pairs), pair=True) if pairs is not None else None
        order = np.argsort([len(t) for t in texts_p], kind="stable")
        for b in range(0, len(order), self.batch_size):
            idx = order[b:b + self.batch_size]
            a = [texts_p[i] for i in idx]
            kw = dict(truncation=True, max_length=self.max_length, padding=True, return_tensors="np")
            yield idx, (self.tokenizer(a, [pairs_p[i] for i in idx], **kw) if pairs_p is not None
                        else self.tokenizer(a, **kw))

    def logits(self, texts: list[str], pairs: list[str] | None = None) -> dict[str, np.ndarray]:
        """Raw logits per task for `texts`."""
        out = {t: np.zeros((len(texts), len(l)), dtype=np.float32) for t, l in self.tasks.items()}
        for idx, enc in self._batches(texts, pairs):
            for t, lg in zip(self.tasks, self._forward(enc)):
                out[t][idx] = lg
        return out

    def logits_and_embeddings(self, texts: list[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Logits per task and the pooled encoder state the heads read (the model's own pooling, not
        normalised), from one forward pass per batch. PyTorch backend only."""
        import torch

        if self.backend != "torch":
            raise ValueError("embeddings need the torch backend")
        out = {t: np.zeros((len(texts), len(l)), dtype=np.float32) for t, l in self.tasks.items()}
        emb = None
        for idx, enc in self._batches(texts):
            with torch.inference_mode():
                h = self.model.pool(**{k: torch.from_numpy(v) for k, v in enc.items()})
                for t in self.tasks:
                    out[t][idx] = self.model.heads[t](h).float().numpy()
            if emb is None:
                emb = np.zeros((len(texts), h.shape[1]), dtype=np.float32)
            emb[idx] = h.float().numpy()
        return out, (emb if emb is not None else np.zeros((0, 0), dtype=np.float32))

    def _forward(self, enc) -> list[np.ndarray]:
        if self.backend == "onnx":
            feed = {k: enc[k].astype(np.int64) for k in self.onnx_inputs}
            return self.session.run(None, feed)
        import torch

        with torch.inference_mode():
            res = self.model(**{k: torch.from_numpy(v) for k, v in enc.items()})
        return [x.float().numpy() for x in res.logits]

    def predict_proba(self, texts: list[str], pairs: list[str] | None = None) -> dict[str, np.ndarray]:
        return {t: _softmax(v) for t, v in self.logits(texts, pairs).items()}

    def predict(self, texts: Iterable[str], pairs: list[str] | None = None) -> list[dict]:
        """One dict per text: per task its label and the probability of every label."""
        if isinstance(texts, (str, bytes)):  # list("...") is its characters: one row per letter, silently
            raise TypeError("predict takes a list of texts: predict([text]); for a whole article use "
                            "predict_article(text)")
        texts = list(texts)
        bad = next((type(t).__name__ for t in texts if not isinstance(t, str)), None)
        if bad:  # None or bytes failed inside the preprocessor with "sequence item 2: expected str instance"
            raise TypeError(f"predict takes texts (str), got a {bad}")
        if not texts:
            return []
        probs = self.predict_proba(texts, pairs)
        out = []
        for i, text in enumerate(texts):
            row = {"text": text}
            for t, labels in self.tasks.items():
                p = probs[t][i]
                row[t] = labels[int(p.argmax())]
                row[f"{t}_prob"] = round(float(p.max()), 4)
                row[f"{t}_probs"] = {l: round(float(x), 4) for l, x in zip(labels, p)}
            out.append(row)
        return out

    # ------------------------------------------------------------------ articles
    @property
    def processor(self):
        if self._processor is None:
            from nabra.data.corpus import ArticleProcessor

            self._processor = ArticleProcessor(corpus_config(self.pipeline))
        return self._processor

    def segment_article(self, text: str, **meta):
        """(article row, statement rows): the corpus builder's cleaning and segmentation."""
        from nabra.data.ingest import RawArticle

        art = RawArticle(content=text, input_file=meta.get("input_file", "<text>"), title=meta.get("title", ""),
                         url=meta.get("url", ""), source=meta.get("source", ""))
        article, statements, _ = self.processor.process(art)
        return article, statements

    def predict_article(self, text: str, **meta) -> list[dict]:
        """Every body statement of an article (furniture removed) with labels; start/end are offsets
        into `text` as given (text[start:end] is the statement, up to the cleaner's character fixes)."""
        if not isinstance(text, str):  # a list of texts or bytes failed deep in the cleaner
            raise TypeError(f"predict_article takes one article's text (str), got a {type(text).__name__}"
                            + ("; for several texts use predict(texts)" if isinstance(text, (list, tuple)) else ""))
        article, statements = self.segment_article(text, **meta)
        preds = self.predict([s["text"] for s in statements])
        return [{"article_id": article["article_id"], "statement_id": s["statement_id"], "start": s["raw_start"],
                 "end": s["raw_end"], **p} for s, p in zip(statements, preds)]


def predict_inputs(clf: StanceClassifier, inputs: list[str], chunk: int = 64):
    """Streams (article, rows, problem) over any mix of inputs; memory stays flat (articles are read,
    segmented and labelled a chunk at a time). A bad input yields a problem and the rest go on."""
    from nabra.data.ingest import read_inputs

    yield from predict_items(clf, read_inputs(inputs), chunk)


def repeat_problem(where: str, first: str) -> str:
    """The warning for an article seen before (one process, or a later task of predict --workers)."""
    return f"{where}: the same article as {first}; labelled once"


def predict_items(clf: StanceClassifier, items, chunk: int = 64):
    """predict_inputs over ingest's items (RawArticle or Problem). An article's record carries
    `where` (file and locator), so that a caller merging several streams can name a repeat; with a
    problem, the record is None (unreadable input), the article with no statement, or a repeat's
    {article_id, where, input_file, repeat: True}. Records come in input order."""
    from nabra.data.corpus import why_empty
    from nabra.data.ingest import Problem

    pending: list[tuple[dict, list[dict]]] = []

    def flush():
        texts = [s["text"] for _, sts, _ in pending for s in sts]
        preds = iter(clf.predict(texts)) if texts else iter(())
        for art, sts, problem in pending:
            rows = [{"article_id": art["article_id"], "statement_id": s["statement_id"], "start": s["raw_start"],
                     "end": s["raw_end"], **next(preds)} for s in sts]
            yield art, rows, problem
        pending.clear()

    from tqdm import tqdm

    bar = tqdm(desc="articles", unit=" art", disable=not sys.stderr.isatty(), mininterval=1.0, file=sys.stderr)
    seen: dict[str, str] = {}
    for item in items:
        if isinstance(item, Problem):
            yield None, [], str(item)
            continue
        where = f"{item.input_file}{' ' + item.locator if item.locator else ''}"
        art, sts, rejects = clf.processor.process(item)
        bar.update()
        # every record, repeats and empty articles too, goes out in input order, with the article's id
        # and place, so that a caller merging task streams (predict --workers) names the first copy of all
        if art["article_id"] in seen:  # the same record twice (e.g. two identical zip members): labelled once
            rep = {"article_id": art["article_id"], "where": where, "input_file": item.input_file, "repeat": True}
            pending.append((rep, [], repeat_problem(where, seen[art["article_id"]])))
            continue
        seen[art["article_id"]] = art["where"] = where
        if not sts:
            pending.append((art, [], f"{where}: no Arabic statement found ({why_empty(rejects, clf.processor.cfg)})"))
            continue
        pending.append((art, sts, None))
        if sum(len(s) for _, s, _ in pending) >= chunk * clf.batch_size // 8:
            yield from flush()
    yield from flush()
    bar.close()
