"""`nabra export`: a trained model in the forms people deploy.

Writes into OUT:
  hf:        model.safetensors + config.json (label maps per task), tokenizer, nabra_preprocess.json,
             label_maps.json and README.md (model card generated from an evaluation report)
  onnx:      model.onnx with dynamic batch and sequence axes, one output per task (logits_<task>)
  onnx-int8: model.int8.onnx, dynamic int8 quantisation with onnxruntime's tooling
  export_info.json: parity figures (max |ONNX - PyTorch| logit difference; int8 macro-F1 change)
optimum does not support transformers 5, so the graph comes from torch.onnx.export (for BERT encoders the
traced graph with a bounded attention mask, or onnxruntime's transformer fusion with --onnx-graph fused).
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np

from nabra.io import atomic_dir, read_json, readable_weights, versions, write_atomic, write_json
from nabra.train.model_dir import PIPELINE_FILE
from nabra.train.predict import StanceClassifier, check_model_dir

FORMATS = ("hf", "onnx", "onnx-int8")
REDUCE_RANGE_CHOICES = ("auto", "on", "off")
PARITY_TOL = 1e-3


class ExportError(RuntimeError):
    pass


def export_hf(clf: StanceClassifier, out: Path, report: dict | None) -> None:
    src, model = clf.dir, clf.model
    model.save_pretrained(out)  # safetensors only in transformers 5
    readable_weights(out)
    for f in src.iterdir():
        if f.name.startswith("tokenizer") or f.name in ("special_tokens_map.json", "vocab.txt", "nabra_preprocess.json",
                                                        "label_maps.json", PIPELINE_FILE):
            shutil.copy2(f, out / f.name)
    write_atomic(out / "README.md", model_card(model.config, src, report, clf.pipeline.get("training_data") or {}))


def export_onnx(clf: StanceClassifier, out: Path, sample_texts: list[str], opset: int = 18, graph: str = "plain",
                model=None) -> int:
    """Writes out/model.onnx from the loaded PyTorch model (loaded once per export, see run). graph: "plain"
    (the traced graph, onnxruntime fuses what it fuses at load) or "fused" (onnxruntime's BERT optimizer).
    model: what to trace instead of clf.model (split_outlier_channels' copy). Returns how many
    attention-mask constants were bounded (bound_attention_mask)."""
    import torch

    model = model if model is not None else clf.model
    tasks = list(clf.tasks)  # the output order the ONNX backend reads back
    enc = clf.tokenizer(clf.pre(sample_texts[:8]), padding=True, truncation=True, max_length=clf.max_length,
                        return_tensors="pt")
    names = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]

    class WithTypes(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):
            return tuple(self.m(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits)

    class NoTypes(WithTypes):
        def forward(self, input_ids, attention_mask):
            return tuple(self.m(input_ids=input_ids, attention_mask=attention_mask).logits)

    wrapper = (WithTypes if "token_type_ids" in names else NoTypes)(model).eval()
    path = out / "model.onnx"
    out_names = [f"logits_{t}" for t in tasks]
    enc_cfg = model.encoder.config
    if enc_cfg.model_type != "bert":
        batch, seq = torch.export.Dim("batch", min=1, max=1024), torch.export.Dim("sequence", min=2, max=clf.max_length)
        torch.onnx.export(wrapper, tuple(enc[k] for k in names), str(path), input_names=names, output_names=out_names,
                          opset_version=opset, dynamo=True, dynamic_shapes={k: {0: batch, 1: seq} for k in names},
                          external_data=False, verbose=False)
        return 0
    # BERT: trace with the classic attention (MatMul-Softmax-MatMul) through the TorchScript exporter.
    # Left plain by default: on a 2-core Xeon with VNNI/AMX, onnxruntime 1.32's fused kernels were the
    # slow part of the int8 e5-small graph (SkipLayerNormalization 3.7 ns an element against 1.0 for
    # LayerNormalization; QAttention 36% of the time); the plain graph with its mask bounded (below)
    # and without the SkipLayerNorm fusion at load (predict.ORT_DISABLED_OPTIMIZERS) runs int8 at 1.94x
    # PyTorch eager where the fused one ran 1.58x (`nabra bench predict`, 2,000 corpus statements).
    # `graph="fused"` applies onnxruntime's transformer fusion (Attention, BiasGelu), which measured
    # faster on an AMD EPYC (AVX2) in an earlier session; on the Xeon, split int8 e5-small, 2.50x
    # PyTorch against the plain graph's 2.55x in the same run.
    model.encoder.config._attn_implementation = "eager"
    torch.onnx.export(wrapper, tuple(enc[k] for k in names), str(path), input_names=names, output_names=out_names,
                      dynamic_axes={k: {0: "batch", 1: "sequence"} for k in names}, opset_version=17,
                      dynamo=False)
    n_mask = bound_attention_mask(path)
    if graph == "fused":
        fuse_bert(path, enc_cfg.num_attention_heads, enc_cfg.hidden_size)
    return n_mask


def fuse_bert(path: Path, num_heads: int, hidden_size: int) -> None:
    """onnxruntime's BERT fusion of the (mask-bounded) traced graph at `path`, in place, without the
    SkipLayerNorm fusions (slow here, see predict.ORT_DISABLED_OPTIMIZERS) and EmbedLayerNorm (the
    graph measured above fused without it). The fused Attention masks padded keys with its own constant
    (mask_filter_value, -10000 by default): set to MASK_FLOOR for the same reason as the traced mask."""
    from onnx import helper
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    opts = FusionOptions("bert")
    opts.enable_skip_layer_norm = opts.enable_bias_skip_layer_norm = opts.enable_embed_layer_norm = False
    fused = optimizer.optimize_model(str(path), model_type="bert", num_heads=num_heads, hidden_size=hidden_size,
                                     optimization_options=opts)
    for n in fused.model.graph.node:
        if n.op_type == "Attention":
            n.attribute.append(helper.make_attribute("mask_filter_value", MASK_FLOOR))
    fused.save_model_to_file(str(path))


# The additive attention mask puts float32's minimum on padded keys. onnxruntime's Softmax is 5-14x
# slower on rows where exp underflows (measured on a [32, 12, 71, 71] batch: 1.0 ms without padding,
# 5.8-14.6 ms with masked entries at -90 ... -1e4 or -inf; denormals-as-zero does not help), and
# with length-sorted batches some of every batch is padding. MASK_FLOOR keeps masked scores where exp
# stays normal for any realistic spread of scores, while a padded key still weighs at most
# e^-50 (2e-22) of the row: the logits do not move (the parity check below guards it).
MASK_FLOOR = -50.0


def bound_attention_mask(path: Path) -> int:
    """Replaces the float32-minimum constant of the additive attention mask (a Where's "masked"
    branch in the traced graph) by MASK_FLOOR. Returns how many constants were replaced."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(path))
    fmin = np.finfo(np.float32).min
    where_inputs = {i for n in m.graph.node if n.op_type == "Where" for i in n.input}
    n = 0
    for node in m.graph.node:
        if node.op_type != "Constant" or node.output[0] not in where_inputs:
            continue
        t = node.attribute[0].t
        a = numpy_helper.to_array(t)
        if a.dtype == np.float32 and a.size == 1 and a.item() == fmin:
            t.CopyFrom(numpy_helper.from_array(np.full(a.shape, MASK_FLOOR, np.float32), t.name))
            n += 1
    if n:
        onnx.save(m, str(path))
    return n


def parity(ref: dict, onnx_clf: StanceClassifier, texts: list[str]) -> dict:
    """Max absolute logit difference ONNX vs PyTorch (`ref`: its logits) on a held batch (odd lengths,
    padding inside)."""
    got = onnx_clf.logits(texts)
    return {t: float(np.abs(ref[t] - got[t]).max()) for t in ref}


def ffn_out_nodes(path: Path) -> list[str]:
    """Names of the feed-forward output MatMuls (weight [intermediate, hidden]) of a BERT-style graph."""
    import onnx

    g = onnx.load(str(path), load_external_data=False).graph
    shapes = {i.name: tuple(i.dims) for i in g.initializer}
    wide = {s for s in shapes.values() if len(s) == 2 and s[0] > s[1]}  # [intermediate, hidden]: FFN down-projection
    return [n.name for n in g.node if n.op_type == "MatMul" and OUTLIER_BRANCH not in n.name
            and any(shapes.get(i) in wide for i in n.input)]


# Per-tensor uint8 activations (dynamic quantisation) round away what lies far below an outlier: the
# step is (max - min) / 255. In multilingual-e5-small a single channel of the post-GELU activation
# reaches 230x the layer's RMS in layer 4 (150-175x in layers 0 and 5; the next channel ~20x), on
# every fine-tuned seed. "split" moves the channels whose maximum would make that step exceed
# OUTLIER_STEP x RMS into a small fp32 side branch of their layer (as LLM.int8() decomposes outliers;
# onnxruntime's quantiser has no such option, so it is done here, fixed at export from calibration
# statements), so the rest of every feed-forward output runs int8. Measured on the gold splits, seeds
# 42/43/44, against PyTorch: dev stance +0.58 / -0.44 / +1.21, sentiment -0.13 / +0.48 / +0.14 macro-F1
# points, 96.0-97.6% same label; with the threshold at 0.5 (only layers 0, 4, 5 split, one channel
# each) 96.0 / 96.5% same label on dev for seed 42 against 96.6 / 96.7%. `nabra bench predict`: whole
# feed-forward outputs fp32 1.94x PyTorch, split 2.75x, all int8 2.8x.
OUTLIER_STEP = 0.1
OUTLIER_BRANCH = "/outlier_"  # in the traced node names of split_outlier_channels' side branches
FFN_OUT_CHOICES = ("split", "none", "all")
GRAPH_CHOICES = ("plain", "fused")  # export_onnx's graph: traced as is, or with onnxruntime's BERT fusion


def outlier_channels(clf: StanceClassifier, texts: list[str]) -> dict[int, list[int]]:
    """Per BERT layer, the post-GELU channels whose largest |activation| on `texts` exceeds
    OUTLIER_STEP x 255 x the layer's RMS (mean over batches). Layers with none are left out."""
    import torch

    peak: dict[int, torch.Tensor] = {}
    rms: dict[int, list[float]] = {}

    def hook(i):
        def f(_mod, _inp, out):
            a = out.detach().flatten(0, -2)
            m = a.abs().amax(0)
            peak[i] = torch.maximum(peak[i], m) if i in peak else m
            rms.setdefault(i, []).append(float(a.pow(2).mean().sqrt()))
        return f

    hooks = [m.register_forward_hook(hook(int(re.search(r"layer\.(\d+)\.intermediate$", n).group(1))))
             for n, m in clf.model.named_modules() if re.search(r"layer\.\d+\.intermediate$", n)]
    try:
        clf.logits(texts)
    finally:
        for h in hooks:
            h.remove()
    found = {i: torch.nonzero(peak[i] > OUTLIER_STEP * 255 * float(np.mean(rms[i]))).flatten().tolist()
             for i in sorted(peak)}
    return {i: c for i, c in found.items() if c}


def split_outlier_channels(model, channels: dict[int, list[int]]):
    """A copy of a BERT-encoder model whose feed-forward blocks in `channels` compute those intermediate
    channels in a side branch (outlier_in / outlier_out, kept fp32 by quantize) beside the main
    one: the same function, reordered (the parity check compares its logits with the original's)."""
    import copy

    import torch

    class SplitFFN(torch.nn.Module):
        def __init__(self, inter, dense_out, ch: list[int]):
            super().__init__()
            keep = [j for j in range(inter.dense.out_features) if j not in set(ch)]
            w1, b1, w2 = inter.dense.weight.data, inter.dense.bias.data, dense_out.weight.data

            def linear(w, b):
                lin = torch.nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
                lin.weight.data = w.clone()
                if b is not None:
                    lin.bias.data = b.clone()
                return lin

            self.main_in, self.outlier_in = linear(w1[keep], b1[keep]), linear(w1[ch], b1[ch])
            self.main_out = linear(w2[:, keep], dense_out.bias.data)
            self.outlier_out = linear(w2[:, ch], None)
            self.act = inter.intermediate_act_fn

        def forward(self, x):
            return self.main_out(self.act(self.main_in(x))) + self.outlier_out(self.act(self.outlier_in(x)))

    class Passthrough(torch.nn.Module):  # the block's input goes on to SplitFFN, which does the whole FFN
        def forward(self, x):
            return x

    model = copy.deepcopy(model)
    for i, ch in channels.items():
        layer = model.encoder.encoder.layer[i]
        layer.output.dense = SplitFFN(layer.intermediate, layer.output.dense, ch)
        layer.intermediate = Passthrough()
    return model


def outlier_nodes(path: Path) -> list[str]:
    """The side-branch MatMuls split_outlier_channels adds (a handful of channels: they stay fp32)."""
    import onnx

    g = onnx.load(str(path), load_external_data=False).graph
    return [n.name for n in g.node if n.op_type == "MatMul" and OUTLIER_BRANCH in n.name]


def cpu_int8_dot() -> bool:
    """True unless this is an x86 CPU without VNNI (AVX512-VNNI, AVX-VNNI, AMX-INT8). Without it
    onnxruntime's int8 kernel (AVX2 vpmaddubsw) adds pairs of u8 x s8 products in int16, which saturates
    with full 8-bit weights; onnxruntime's docs advise 7-bit weights (reduce_range) on such machines."""
    try:
        flags = " " + Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").replace("\n", " ") + " "
    except OSError:
        return True  # not Linux: nothing known to saturate
    return " avx2 " not in flags or any(f" {f} " in flags for f in ("avx512_vnni", "avx_vnni", "amx_int8"))


def quantize(out: Path, keep: list[str], reduce_range: bool = False) -> list[str]:
    """model.onnx -> model.int8.onnx: dynamic int8, weights per output channel (7-bit with
    `reduce_range`); the MatMul nodes in `keep` stay fp32. Returns them."""
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its "consider pre-processing" advice is for vision models
    try:
        # fused nodes (Attention, ...) come from the com.microsoft domain: their outputs are float
        quantize_dynamic(str(out / "model.onnx"), str(out / "model.int8.onnx"), weight_type=QuantType.QInt8,
                         per_channel=True, nodes_to_exclude=keep, reduce_range=reduce_range,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        root.setLevel(level)
    return keep


def f1_change(torch_clf: StanceClassifier, int8_clf: StanceClassifier, df) -> dict:
    """Per task: macro-F1 of PyTorch and of int8 ONNX on a labelled split, and the change in points."""
    from sklearn.metrics import f1_score

    ref = torch_clf.predict_proba(df.text.tolist())
    q = int8_clf.predict_proba(df.text.tolist())
    tasks = torch_clf.tasks
    res = {}
    for t, labels in tasks.items():
        if t not in df:
            continue
        y = df[t].tolist()
        a = f1_score(y, [labels[i] for i in ref[t].argmax(1)], average="macro", zero_division=0)
        b = f1_score(y, [labels[i] for i in q[t].argmax(1)], average="macro", zero_division=0)
        res[t] = {"torch_macro_f1": round(a, 4), "int8_macro_f1": round(b, 4), "change_points": round(100 * (b - a), 2),
                  "label_agreement": round(float((ref[t].argmax(1) == q[t].argmax(1)).mean()), 4)}
    return res


def run(model_dir: str | Path, out: str | Path, formats: list[str], eval_df=None, report: dict | None = None,
        sample_texts: list[str] | None = None, log=print, int8_ffn_out: str = "split", graph: str = "plain",
        calib_texts: list[str] | None = None, int8_reduce_range: str = "auto") -> dict:
    """Exports `model_dir` into `out` in `formats`. int8_ffn_out: how the feed-forward output MatMuls
    go to int8: "split" (int8, their outlier channels, found on `calib_texts` (default the sample
    texts), in an fp32 side branch), "none" (they stay fp32) or "all" (int8, outliers too). int8_reduce_range: 7-bit int8 weights
    "on", "off", or "auto": on where this CPU lacks VNNI (cpu_int8_dot), for the machine that serves it."""
    if int8_ffn_out not in FFN_OUT_CHOICES:
        raise ExportError(f"int8_ffn_out must be one of {', '.join(FFN_OUT_CHOICES)}, got {int8_ffn_out!r}")
    if int8_reduce_range not in REDUCE_RANGE_CHOICES:
        raise ExportError(f"int8_reduce_range must be one of {', '.join(REDUCE_RANGE_CHOICES)}, got {int8_reduce_range!r}")
    if graph not in GRAPH_CHOICES:
        raise ExportError(f"graph must be one of {', '.join(GRAPH_CHOICES)}, got {graph!r}")
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise ExportError(f"unknown format(s) {bad}; choose from {', '.join(FORMATS)}")
    src = check_model_dir(model_dir, "torch")
    # built in a temp folder that replaces `out` in one rename: a killed export leaves no folder that
    # predicts half-made (weights without graphs, a graph of an earlier export beside new weights)
    with atomic_dir(out, also=EARLIER_EXPORT) as tmp:
        reduce = {"on": True, "off": False}.get(int8_reduce_range, not cpu_int8_dot())
        info = _export(src, tmp, formats, eval_df, report, sample_texts, log, int8_ffn_out, graph, calib_texts, reduce)
    return info


# what an earlier export may hold that this one does not write (its other formats): replaced with it
EARLIER_EXPORT = ("model.onnx", "model.onnx.data", "model.int8.onnx", "README.md", "export_info.json")


def _export(src: Path, out: Path, formats, eval_df, report, sample_texts, log, int8_ffn_out, graph,
            calib_texts, reduce_range: bool) -> dict:
    info: dict = {"source": str(src), "formats": formats, "versions": versions()}
    # each model is loaded once: the PyTorch model here, each ONNX graph once below
    clf = StanceClassifier(src, backend="torch")
    export_hf(clf, out, report)  # the ONNX files sit beside a full HF folder: tokenizer, labels, preprocessing
    texts = sample_texts or (eval_df.text.tolist()[:32] if eval_df is not None else None) or _default_texts()
    ref = clf.logits(texts)
    if "onnx" in formats or "onnx-int8" in formats:
        traced = None
        split = "onnx-int8" in formats and int8_ffn_out == "split" and clf.model.encoder.config.model_type == "bert"
        if split:
            info["int8_outlier_channels"] = outlier_channels(clf, calib_texts or texts)
            traced = split_outlier_channels(clf.model, info["int8_outlier_channels"])
            log("int8: outlier channels in fp32 side branches: " + (", ".join(
                f"layer {i} {len(c)}" for i, c in info["int8_outlier_channels"].items()) or "none"))
        n_mask = export_onnx(clf, out, texts, graph=graph, model=traced)
        info["onnx_graph"] = graph
        info["attention_mask_floor"] = {"value": MASK_FLOOR, "constants": n_mask}
        diff = parity(ref, StanceClassifier(out, backend="onnx"), texts)
        info["onnx_max_abs_logit_diff"] = diff
        log("ONNX fp32 parity, max |logit diff| vs PyTorch: " + ", ".join(f"{t} {d:.2e}" for t, d in diff.items()))
        if max(diff.values()) > PARITY_TOL:
            raise ExportError(f"ONNX logits differ from PyTorch by {max(diff.values()):.2e} > {PARITY_TOL}")
    if "onnx-int8" in formats:
        mode = int8_ffn_out if int8_ffn_out != "split" or split else "none"  # split needs a BERT encoder
        info["int8_ffn_out"] = mode
        keep = {"split": outlier_nodes, "none": ffn_out_nodes, "all": lambda _p: []}[mode](out / "model.onnx")
        info["int8_reduce_range"] = reduce_range
        if reduce_range:
            log("int8: 7-bit weights (reduce_range; on an x86 CPU without VNNI 8-bit weights saturate)")
        info["int8_fp32_nodes"] = quantize(out, keep, reduce_range)
        int8 = StanceClassifier(out, backend="onnx", onnx_file="model.int8.onnx")
        info["int8_max_abs_logit_diff"] = parity(ref, int8, texts)
        if eval_df is not None:
            info["int8_f1"] = f1_change(clf, int8, eval_df)
            for t, r in info["int8_f1"].items():
                log(f"int8 {t}: macro-F1 {r['int8_macro_f1']:.4f} vs PyTorch {r['torch_macro_f1']:.4f} "
                    f"({r['change_points']:+.2f} points), same label on {100 * r['label_agreement']:.1f}%")
    # with onnx-int8 alone, model.onnx stays too: the int8 graph is derived from it and it documents the fp32 parity
    for f in out.glob("*.onnx"):
        info.setdefault("sizes_mb", {})[f.name] = round(f.stat().st_size / 2**20, 2)
    write_json(out / "export_info.json", info)
    return info


def _data_origin(data: dict) -> str:
    inputs = data.get("corpus_inputs") or []
    if data.get("embedded_sample"):
        return "nabra's embedded sample (20 short articles written for the project, not real news)"
    if inputs and all(n.startswith("2015-") and n.endswith(".zip") for n in inputs):
        return f"SaudiNewsNet, 2015 Saudi newspaper articles ({len(inputs)} daily zip files)"
    if inputs:
        return "articles from " + ", ".join(inputs[:5]) + (f" and {len(inputs) - 5} more file(s)" if len(inputs) > 5 else "")
    return "the dataset recorded below"


def training_data_lines(data: dict, info: dict) -> list[str]:
    """What the model learnt from, as recorded at training time: where the statements came from and
    whether their labels were gold annotations or the weak labeller's guesses."""
    source = data.get("label_source") or info.get("dataset_label_source")
    labels = {"gold": "gold labels (each statement read against the project's label spec by independent annotators, who were LLM agents, a sample read twice and adjudicated; see data/DATASET_CARD.md)",
              "weak": "weak labels from nabra's cue-lexicon labeller, not human annotations: the model imitates the "
                      "rules, and its scores measure agreement with them, not quality"}.get(source, f"{source} labels")
    n_tr = data.get("train_statements", info.get("train_statements"))
    n_dev = data.get("dev_statements", info.get("dev_statements"))
    return [f"{n_tr} training and {n_dev} dev statements from {_data_origin(data)}, with {labels}.", "",
            f"Dataset content hash `{data.get('dataset_content_hash', info.get('dataset_content_hash'))}`; "
            f"seed {info.get('seed', data.get('seed'))}; git commit `{info.get('git_commit', data.get('git_commit'))}`."]


def _default_texts() -> list[str]:
    return ["أجرى وزير الخارجية اتصالا هاتفيا مع نظيره.", "أدانت الوزارة الهجوم الإرهابي بشدة",
            "حذرت الهيئة المخالفين من عقوبات صارمة تصل إلى السجن والغرامة المالية الكبيرة",
            "بعث الرئيس برقية عزاء", "ارتفع المؤشر 20 نقطة"]


def encoder_line(run_dir: Path, config, data: dict | None = None) -> str:
    """Which pretrained encoder the model was fine-tuned from (the run's config, else the one the model
    folder records), or that it was built from a config."""
    import yaml

    cfg = run_dir / "config.yaml"
    m = (yaml.safe_load(cfg.read_text(encoding="utf-8")) or {}).get("model", {}) if cfg.exists() else \
        ((data or {}).get("run_config") or {}).get("model", {})
    enc = config.encoder.get("model_type", "?")
    pooling = getattr(config, "pooling", "cls")
    if m.get("name_or_path"):
        src = Path(m["name_or_path"]) / "nabra_encoder.json"
        origin = ""
        if src.exists():
            e = json.loads(src.read_text(encoding="utf-8"))
            origin = f" ({e.get('upstream_model')} from the {e.get('source_package')} wheel, {e.get('pieces'):,} pieces)"
        return (f"Fine-tuned from `{Path(m['name_or_path']).name}`{origin}, a {enc} encoder; {pooling} pooling; "
                f"input prefix {m.get('input_prefix') or 'none'!r}.")
    return f"A {enc} encoder built from a config and trained from scratch (no pretrained weights); {pooling} pooling."


def model_card(config, src: Path, report: dict | None, data: dict | None = None) -> str:
    """The README.md of an exported model. `data`: the training_data facts of nabra_pipeline.json, so the
    card says what this model was really trained on (weak labels of the embedded sample are not gold)."""
    data = data or {}
    tasks = config.tasks
    run_dir = src.parent if src.name == "model" else src
    info = read_json(run_dir / "run_info.json") if (run_dir / "run_info.json").exists() else {}
    L = ["---", "language: ar", "library_name: transformers", "pipeline_tag: text-classification", "tags: [stance, sentiment, arabic, news, nabra]", "---", "",
         "# nabra stance and sentiment model", "",
         "One shared encoder with one classification head per task, trained with "
         "nabra to label each statement of an Arabic news article.", "",
         "## Intended use", "",
         "Label statements (sentences) of Modern Standard Arabic news for stance "
         "(" + ", ".join(tasks.get("stance", [])) + ") and sentiment (" + ", ".join(tasks.get("sentiment", [])) +
         ") as defined in the project's label specification. Use `nabra predict MODEL_DIR article.txt` or "
         "`StanceClassifier.from_pretrained(MODEL_DIR)`. Not for social-media text, dialects, or decisions about "
         "people without human review.", "",
         "## Labels", ""]
    for t, labels in tasks.items():
        L.append(f"- **{t}**: " + ", ".join(f"`{i}` {l}" for i, l in enumerate(labels)))
    L += ["", "## Encoder", "", encoder_line(run_dir, config, data), ""]
    L += ["## Training data", "", *training_data_lines(data, info), ""]
    L += ["## Evaluation", ""]
    if report and report.get("tasks"):
        L.append(f"On the `{report['split']}` split ({report['n_statements']} statements), with 95% bootstrap intervals:")
        L += ["", "| task | system | macro-F1 | accuracy |", "|---|---|---|---|"]
        for t, d in report["tasks"].items():
            for name, m in {"this model": d["model"], **report.get("baselines", {}).get(t, {})}.items():
                ci = m.get("ci95", {}).get("macro_f1", [None, None])
                ci_s = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci[0] is not None else ""
                L.append(f"| {t} | {name} | {m['macro_f1']:.3f}{ci_s} | {m['accuracy']:.3f} |")
    else:
        L.append("No evaluation report was given at export time (`nabra export --report DIR/report.json`).")
    L += ["", "## Limits", "",
          f"- Trained on {_data_origin(data)}: other regions, periods and outlets shift the label distribution.",
          "- Statements are judged alone; irony and context across sentences are out of reach.",
          f"- {data.get('train_statements', info.get('train_statements'))} training statements in all: "
          "the rare classes have few examples each, expect wide intervals.",
          "- Preprocessing (nabra_preprocess.json) must be applied before the tokenizer; the nabra API does it.", ""]
    return "\n".join(L)
