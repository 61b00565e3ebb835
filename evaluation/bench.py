"""Speed and memory benchmarks (`nabra bench corpus|train|predict`): they print figures, they pass
or fail nothing. Run them alone on the machine: a parallel job halves them."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def _line(name: str, **figs) -> str:
    return f"{name:34s} " + "  ".join(f"{k} {v}" for k, v in figs.items())


# ----------------------------------------------------------------------------- corpus
def bench_corpus(inputs: list[str], out: str | Path, workers: int | None = None, name: str = "corpus build",
                 log=print) -> dict:
    """Builds the corpus of `inputs` in a child process and prints wall time, rates and the peak RSS of
    the largest process: each task and the driver record their own peak (ru_maxrss) in the manifest,
    and the process tree is sampled as well (it also sees datatrove's pool and manager processes)."""
    import json
    import subprocess
    import sys
    import threading

    import psutil

    cmd = [sys.executable, "-m", "nabra.cli.main", "corpus", "build", "--input", *map(str, inputs), "--out", str(out),
           "--no-progress"] + (["--workers", str(workers)] if workers else [])
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    sampled = [0.0]

    def sample():
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                tree = [root] + root.children(recursive=True)
                sampled[0] = max([sampled[0]] + [p.memory_info().rss / 2**20 for p in tree if p.is_running()])
            except psutil.Error:
                pass
            time.sleep(0.05)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    if proc.wait() != 0:  # the build printed its own one-line error above; a traceback here said nothing more
        from nabra.errors import UserError

        raise UserError(f"the corpus build being measured failed (its error is above): nabra corpus build "
                        f"--input {' '.join(map(str, inputs))} --out {out}")
    wall = time.perf_counter() - t0
    th.join()
    man = json.loads((Path(out) / "manifest.json").read_text())
    c, t = man["counts"], man["timing"]
    res = {"wall_s": round(wall, 2), "workers": workers or "default", "tasks": man["pipeline"]["tasks"],
           "articles": c["articles_read"], "statements": c["statements_kept"],
           "articles_per_s": round(c["articles_read"] / wall), "statements_per_s": round(c["statements_kept"] / wall),
           "peak_rss_mb_largest_process": round(max(t["peak_rss_mb"], sampled[0])),
           "peak_rss_mb_by_stage": t["peak_rss_mb_by_stage"], "stage_s": {k: t[k] for k in ("segment_s", "dedup_s")},
           "cpu_s_by_stage": t["cpu_s_by_stage"],
           "content_hash": man["content_hash"]}  # the same corpus whatever the workers: compare across rows
    log(_line(name, **{k: v for k, v in res.items() if k not in ("peak_rss_mb_by_stage", "cpu_s_by_stage")}))
    return res


# ----------------------------------------------------------------------------- training throughput
BASE_VOCAB = 64000  # AraBERT v0.2's vocabulary size
BENCH_TASKS = {"stance": list("abcdef"), "sentiment": list("abc")}  # our two heads' sizes; names do not matter


def base_bert_config(vocab_size: int):
    """BERT-base geometry (AraBERT's), for random-weight speed figures."""
    from transformers import BertConfig

    return BertConfig(vocab_size=max(BASE_VOCAB, vocab_size), hidden_size=768, num_hidden_layers=12,
                      num_attention_heads=12, intermediate_size=3072)


def matmul_peak(n: int = 2048, reps: int = 5, dtype: str = "float32") -> float:
    """Measured matmul GFLOP/s on this machine (the roofline the training figures are read against)."""
    import torch

    a, b = torch.randn(n, n, dtype=getattr(torch, dtype)), torch.randn(n, n, dtype=getattr(torch, dtype))
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def _train_flops(cfg, batch_tokens: int, seq: int, batch: int) -> float:
    """Forward+backward FLOPs of a BERT step: 6 x non-embedding params per token, plus attention
    (QK^T and AV: 4 x layers x hidden x seq^2 per sequence, x3 for forward+backward)."""
    h, L, inter = cfg.hidden_size, cfg.num_hidden_layers, cfg.intermediate_size
    params = L * (4 * h * h + 2 * h * inter)
    return 6 * params * batch_tokens + 3 * 4 * L * h * seq * seq * batch


def length_grouped(lengths: list[int], batch_size: int, rng) -> list[np.ndarray]:
    """Batches as the Trainer's length-grouped sampler makes them: sorted within megabatches of 50 batches."""
    mega, n, batches = 50 * batch_size, len(lengths), []
    for m0 in range(0, n, mega):
        part = np.arange(m0, min(m0 + mega, n))
        part = part[np.argsort([-lengths[i] for i in part], kind="stable")]
        batches += [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


def bench_train(texts: list[str], geometry: str, steps: int = 20, batch_size: int = 16, seed: int = 0,
                tokenizer_texts: list[str] | None = None, log=print) -> dict:
    """statements/s of training steps (forward, backward, AdamW) with dynamic padding and length-grouped
    batches (fp32, and bf16 autocast where the CPU has it), against static padding to 128 tokens in fp32
    (HF run_classification's default on CPU), same statements. The speedup is read at the precision the
    geometry's config (tiny.yaml / arabert.yaml) resolves to on this machine."""
    import contextlib

    import torch

    from nabra.config import load_train_config
    from nabra.paths import config_file
    from nabra.train.model import NabraModel, tiny_bert_config
    from nabra.train.text import train_wordpiece
    from nabra.train.trainer import cpu_bf16, resolve_precision

    torch.manual_seed(seed)
    # the tiny config's own geometry and vocabulary; AraBERT's geometry and vocabulary size for base
    cfg_file = config_file("train/tiny.yaml" if geometry == "tiny" else "train/arabert.yaml")
    train_cfg = load_train_config(cfg_file)
    if geometry == "tiny":
        tiny = train_cfg.model.tiny
        tok = train_wordpiece(tokenizer_texts or texts, tiny.vocab_size, 128)
        enc_cfg = tiny_bert_config(tiny, len(tok), tok.pad_token_id, 128)
    else:
        tok = train_wordpiece(tokenizer_texts or texts, BASE_VOCAB, 128)
        enc_cfg = base_bert_config(len(tok))
    model = NabraModel.from_encoder_config(enc_cfg, BENCH_TASKS)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)  # the Trainer's default (adamw_torch_fused)
    rng = np.random.default_rng(seed)
    n_needed = steps * batch_size
    idx = rng.choice(len(texts), size=n_needed, replace=len(texts) < n_needed)
    chosen = [texts[i] for i in idx]
    lengths = [len(x) for x in tok(chosen, truncation=True, max_length=128)["input_ids"]]
    res = {"geometry": geometry, "steps": steps, "batch_size": batch_size,
           "mean_tokens_per_statement": round(float(np.mean(lengths)), 1)}
    peak = matmul_peak()
    res["matmul_peak_gflops"] = round(peak, 1)
    if cpu_bf16():
        res["matmul_peak_gflops_bf16"] = round(matmul_peak(dtype="bfloat16"), 1)
    # nabra's setting for this geometry: the precision its config resolves to on this machine
    nabra_precision = resolve_precision(train_cfg.training.precision)
    res["nabra_precision"] = nabra_precision
    modes = ["static128", "dynamic"] + (["dynamic_bf16"] if cpu_bf16() else [])
    for mode in modes:
        if mode != "static128":
            batches = length_grouped(lengths, batch_size, rng)
        else:
            batches = [np.arange(i, i + batch_size) for i in range(0, n_needed, batch_size)]
        flops, t_total = 0.0, 0.0
        for b, bi in enumerate(batches):
            batch = [chosen[i] for i in bi]
            kw = dict(truncation=True, max_length=128, return_tensors="pt")
            enc = tok(batch, padding="max_length", **kw) if mode == "static128" else tok(batch, padding=True, **kw)
            y1 = torch.randint(0, 6, (len(batch),))
            y2 = torch.randint(0, 3, (len(batch),))
            # bf16: autocast with fp32 master weights, what the Trainer does with bf16=True
            ctx = torch.autocast("cpu", dtype=torch.bfloat16) if mode == "dynamic_bf16" else contextlib.nullcontext()
            t = time.perf_counter()
            with ctx:
                out = model(**enc, labels_stance=y1, labels_sentiment=y2)
            out.loss.backward()
            opt.step()
            opt.zero_grad()
            dt = time.perf_counter() - t
            if b > 0:  # first step warms up allocators
                t_total += dt
                seq = enc["input_ids"].shape[1]
                flops += _train_flops(enc_cfg, seq * len(batch), seq, len(batch))
        n = (len(batches) - 1) * batch_size
        res[mode] = {"statements_per_s": round(n / t_total, 1), "gflops": round(flops / t_total / 1e9, 1)}
    nabra_mode = "dynamic_bf16" if nabra_precision == "bf16" and "dynamic_bf16" in res else "dynamic"
    res["speedup_padding_only"] = round(res["dynamic"]["statements_per_s"] / res["static128"]["statements_per_s"], 2)
    res["speedup"] = round(res[nabra_mode]["statements_per_s"] / res["static128"]["statements_per_s"], 2)
    figs = {"static128 fp32 st/s": res["static128"]["statements_per_s"],
            "dynamic fp32 st/s": res["dynamic"]["statements_per_s"]}
    if "dynamic_bf16" in res:
        figs["dynamic bf16 st/s"] = res["dynamic_bf16"]["statements_per_s"]
    figs.update({f"nabra ({nabra_precision}) speedup": f"{res['speedup']}x",
                 "padding alone": f"{res['speedup_padding_only']}x",
                 "GFLOP/s static/dynamic" + ("/bf16" if "dynamic_bf16" in res else ""):
                     "/".join(str(res[m]["gflops"]) for m in modes),
                 "fp32 matmul peak GFLOP/s": res["matmul_peak_gflops"],
                 "mean tokens": res["mean_tokens_per_statement"]})
    if "dynamic_bf16" in res:
        figs["bf16 matmul peak GFLOP/s"] = res["matmul_peak_gflops_bf16"]
    log(_line(f"train {geometry}", **figs))
    return res


# ----------------------------------------------------------------------------- a pretrained encoder folder
def bench_encoder(encoder: str | Path, texts: list[str], work: Path, steps: int = 12, batch_size: int = 16,
                  prefix: str = "passage: ", n_predict: int = 500, seed: int = 0, log=print) -> dict:
    """One encoder folder (e.g. `nabra encoder import` before and after `prune`) under nabra's multi-task
    model with mean pooling: checkpoint size, training statements/s with the word embeddings trained and
    frozen (length-grouped dynamic padding, fused AdamW as the Trainer), then PyTorch / ONNX fp32 / int8
    prediction statements/s and the int8 file size (bench_predict)."""
    import torch
    from transformers import AutoTokenizer

    from nabra.train.model import NabraModel
    from nabra.train.text import Preprocessor

    name = Path(encoder).name
    tok = AutoTokenizer.from_pretrained(encoder)
    tok.model_max_length = 128
    rng = np.random.default_rng(seed)
    chosen = [prefix + texts[i] for i in rng.choice(len(texts), size=steps * batch_size, replace=False)]
    lengths = [len(x) for x in tok(chosen, truncation=True, max_length=128)["input_ids"]]
    res = {"encoder": str(encoder), "steps": steps, "batch_size": batch_size}
    for frozen in (False, True):
        torch.manual_seed(seed)
        model = NabraModel.from_encoder(str(encoder), BENCH_TASKS, pooling="mean").train()
        model.encoder.get_input_embeddings().weight.requires_grad_(not frozen)
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5, fused=True)
        t_total, n = 0.0, 0
        for b, bi in enumerate(length_grouped(lengths, batch_size, rng)):
            enc = tok([chosen[i] for i in bi], padding=True, truncation=True, max_length=128, return_tensors="pt")
            t = time.perf_counter()
            out = model(**enc, labels_stance=torch.randint(0, 6, (len(bi),)), labels_sentiment=torch.randint(0, 3, (len(bi),)))
            out.loss.backward()
            opt.step()
            opt.zero_grad()
            if b > 0:  # first step warms up allocators
                t_total += time.perf_counter() - t
                n += len(bi)
        res["train_st_per_s_" + ("frozen_embeddings" if frozen else "all_weights")] = round(n / t_total, 2)
    res["parameters_m"] = round(sum(p.numel() for p in model.parameters()) / 1e6, 1)
    res["embedding_rows"] = model.encoder.get_input_embeddings().num_embeddings
    save_bench_model(model, tok, Preprocessor("none", prefix=prefix), work / f"model_{name}")
    res["checkpoint_mb"] = round((work / f"model_{name}" / "model.safetensors").stat().st_size / 2**20, 1)
    log(_line(f"train {name}", **{"params M": res["parameters_m"], "rows": res["embedding_rows"],
                                  "checkpoint MB": res["checkpoint_mb"],
                                  "st/s all weights": res["train_st_per_s_all_weights"],
                                  "st/s frozen embeddings": res["train_st_per_s_frozen_embeddings"]}))
    res["predict"] = bench_predict(work / f"model_{name}", texts[:n_predict], work, name, log=log)
    res["int8_mb"] = round((work / f"export_{name}" / "model.int8.onnx").stat().st_size / 2**20, 1)
    res["onnx_mb"] = round((work / f"export_{name}" / "model.onnx").stat().st_size / 2**20, 1)
    log(_line(f"size {name}", **{"checkpoint MB": res["checkpoint_mb"], "onnx MB": res["onnx_mb"], "int8 MB": res["int8_mb"]}))
    return res


# ----------------------------------------------------------------------------- inference
def base_model_dir(texts: list[str], out: Path) -> Path:
    """A BERT-base sized nabra model (random weights) with a corpus tokenizer, saved like a run's model."""
    from nabra.train.model import NabraModel
    from nabra.train.text import Preprocessor, train_wordpiece

    tok = train_wordpiece(texts, BASE_VOCAB, 128)
    model = NabraModel.from_encoder_config(base_bert_config(len(tok)), BENCH_TASKS)
    save_bench_model(model, tok, Preprocessor("none"), out)
    return out


def save_bench_model(model, tok, pre, out: Path) -> None:
    """A random-head model saved like a run's model (with the default corpus config and max length 128)."""
    from nabra.config import load_corpus_config
    from nabra.train.model_dir import save_pipeline
    from nabra.train.trainer import save_model

    save_model(model, tok, pre, out)
    save_pipeline(out, load_corpus_config().model_dump(), 128, {"source": "nabra bench: random heads, no training data"})


def bench_predict(model_dir: str | Path, texts: list[str], work: Path, name: str, threads: int = 2,
                  batch_size: int = 32, repeat: int = 2, log=print, int8_ffn_out: str = "split",
                  graph: str = "plain") -> dict:
    """statements/s for PyTorch fp32 eager, ONNX Runtime fp32 and int8 on the same statements (best of
    `repeat` rounds each, as timeit does: the least disturbed pass), plus the parity figures (max logit
    difference, label agreement)."""
    import torch

    from nabra.train import export
    from nabra.train.predict import StanceClassifier

    torch.set_num_threads(threads)
    exp = work / f"export_{name}"
    # int8 calibration (outlier channels) on 256 of the statements
    export.run(model_dir, exp, ["hf", "onnx", "onnx-int8"], sample_texts=texts[:16], log=lambda s: None,
               int8_ffn_out=int8_ffn_out, calib_texts=texts[:256], graph=graph)
    res = {"model": name, "statements": len(texts), "threads": threads, "batch_size": batch_size, "repeat": repeat,
           "int8_ffn_out": int8_ffn_out, "onnx_graph": graph}
    logits, clfs, best = {}, {}, {}
    for label, backend, f in (("torch_fp32", "torch", None), ("onnx_fp32", "onnx", "model.onnx"),
                              ("onnx_int8", "onnx", "model.int8.onnx")):
        kw = {"batch_size": batch_size, "threads": threads}
        if f:
            kw["onnx_file"] = f
        clfs[label] = StanceClassifier.from_pretrained(exp, backend=backend, **kw)
        clfs[label].predict(texts[:64])  # warm-up
        best[label] = float("inf")
    # the backends take turns in each round, so a slow spell of a shared machine does not fall on one alone
    for _ in range(max(1, repeat)):
        for label, clf in clfs.items():
            t = time.perf_counter()
            logits[label] = clf.logits(texts)
            best[label] = min(best[label], time.perf_counter() - t)
    for label in clfs:
        res[label] = round(len(texts) / best[label], 1)
    res["int8_speedup_vs_torch"] = round(res["onnx_int8"] / res["torch_fp32"], 2)
    res["onnx_fp32_max_abs_diff"] = float(max(np.abs(logits["torch_fp32"][t] - logits["onnx_fp32"][t]).max()
                                              for t in logits["torch_fp32"]))
    res["int8_label_agreement"] = {t: round(float((logits["torch_fp32"][t].argmax(1) == logits["onnx_int8"][t].argmax(1)).mean()), 4)
                                   for t in logits["torch_fp32"]}
    log(_line(f"predict {name}", **{"torch fp32 st/s": res["torch_fp32"], "onnx fp32 st/s": res["onnx_fp32"],
                                    "onnx int8 st/s": res["onnx_int8"], "int8/torch": f"{res['int8_speedup_vs_torch']}x",
                                    "max|dlogit| fp32": f"{res['onnx_fp32_max_abs_diff']:.1e}",
                                    "int8 same label": res["int8_label_agreement"]}))
    return res
