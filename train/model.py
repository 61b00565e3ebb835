"""One shared encoder (any HF encoder), one classification head per task.

Saved and loaded with save_pretrained / from_pretrained (safetensors). The config carries the
encoder's config, the tasks with their label maps (label2id / id2label per task), loss weights
and class weights, so a saved folder is self-describing.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput


class NabraConfig(PretrainedConfig):
    model_type = "nabra-multitask"

    def __init__(self, encoder: dict | None = None, tasks: dict[str, list[str]] | None = None,
                 loss_weights: dict[str, float] | None = None, class_weights: dict[str, list[float]] | None = None,
                 classifier_dropout: float | None = None, text_pair: bool = False,
                 task_order: list[str] | None = None, pooling: str = "cls", label_smoothing: float = 0.0, **kw):
        super().__init__(**kw)
        self.encoder = encoder or {}
        tasks = tasks or {}
        # task -> sorted label list (index = class id); config.json sorts keys, so the task order
        # (heads, logits, ONNX outputs, report columns) is kept separately
        self.task_order = list(task_order or tasks)
        self.tasks = {t: list(tasks[t]) for t in self.task_order}
        self.loss_weights = loss_weights or {}
        self.class_weights = class_weights or {}
        self.classifier_dropout = classifier_dropout
        self.text_pair = text_pair
        self.pooling = pooling  # "cls": first token; "mean": mask-weighted mean of the last hidden states
        self.label_smoothing = label_smoothing

    def task_label2id(self, task: str) -> dict[str, int]:
        return {l: i for i, l in enumerate(self.tasks[task])}

    def task_id2label(self, task: str) -> dict[int, str]:
        return dict(enumerate(self.tasks[task]))

    def encoder_config(self) -> PretrainedConfig:
        enc = dict(self.encoder)
        return AutoConfig.for_model(enc.pop("model_type"), **enc)


@dataclass
class MultiTaskOutput(ModelOutput):
    loss: torch.Tensor | None = None
    logits: tuple[torch.Tensor, ...] | None = None  # one tensor per task, in config.tasks order


class NabraModel(PreTrainedModel):
    config_class = NabraConfig
    base_model_prefix = "encoder"
    supports_gradient_checkpointing = True
    # The loss is a weighted sum of per-task means: the Trainer must scale it for gradient
    # accumulation itself (transformers issue 37766; see shared/notes/stack.md).
    accepts_loss_kwargs = False
    # The heads read the token states, never the encoder's pooler. A pretrained encoder is loaded without
    # it (from_encoder), so its checkpoint has none, while from_pretrained rebuilds the encoder from its
    # config with one: without this, every load of such a model warned that the pooler was MISSING, as
    # if the model were incomplete. (Not built without the pooler: that would change the random init of
    # the models built from a config, and the numbers recorded for them.)
    _keys_to_ignore_on_load_missing = [r"^encoder\.pooler\."]

    def __init__(self, config: NabraConfig, encoder: PreTrainedModel | None = None):
        super().__init__(config)
        self.encoder = encoder if encoder is not None else AutoModel.from_config(config.encoder_config())
        hidden = self.encoder.config.hidden_size
        p = config.classifier_dropout
        if p is None:
            p = getattr(self.encoder.config, "hidden_dropout_prob", 0.1)
        self.dropout = nn.Dropout(p)
        self.heads = nn.ModuleDict({t: nn.Linear(hidden, len(labels)) for t, labels in config.tasks.items()})
        self.post_init()

    def class_weight(self, task: str) -> torch.Tensor | None:
        """The task's per-class loss weights (config.class_weights), or None. Made from the config at each
        call, not kept as a non-persistent buffer: from_pretrained (transformers 5 builds the model on the
        meta device) left such a buffer as uninitialised memory, and a loaded model's loss was weighted by it."""
        w = self.config.class_weights.get(task)
        return None if w is None else torch.tensor(w, dtype=torch.float, device=self.heads[task].weight.device)

    def _init_weights(self, module):
        # only the heads: a pretrained encoder keeps its weights, a fresh one initialised itself
        heads = getattr(self, "heads", None)
        if heads is not None and isinstance(module, nn.Linear) and any(module is h for h in heads.values()):
            std = getattr(self.encoder.config, "initializer_range", 0.02)
            module.weight.data.normal_(0.0, std)
            module.bias.data.zero_()

    @classmethod
    def from_encoder(cls, name_or_path: str, tasks: dict[str, list[str]], **cfg_kw) -> "NabraModel":
        """Pretrained encoder (AraBERT or any HF encoder, hub name or folder) + fresh heads."""
        encoder = AutoModel.from_pretrained(name_or_path, add_pooling_layer=False) \
            if _is_bert_like(name_or_path) else AutoModel.from_pretrained(name_or_path)
        config = NabraConfig(encoder=encoder.config.to_dict(), tasks=tasks, **cfg_kw)
        return cls(config, encoder=encoder)

    @classmethod
    def from_encoder_config(cls, encoder_config: PretrainedConfig, tasks: dict[str, list[str]], **cfg_kw) -> "NabraModel":
        config = NabraConfig(encoder=encoder_config.to_dict(), tasks=tasks, **cfg_kw)
        return cls(config)

    def pool(self, input_ids=None, attention_mask=None, token_type_ids=None) -> torch.Tensor:
        """The pooled encoder state the heads read (before dropout), with the config's pooling; also the
        statement embedding of `nabra annotate suggest`."""
        kw = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kw["token_type_ids"] = token_type_ids
        states = self.encoder(**kw).last_hidden_state
        if self.config.pooling == "mean":
            mask = (attention_mask if attention_mask is not None else torch.ones_like(input_ids)).unsqueeze(-1).to(states.dtype)
            return (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return states[:, 0]  # [CLS] / <s>

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, **labels) -> MultiTaskOutput:
        hidden = self.dropout(self.pool(input_ids, attention_mask, token_type_ids))
        logits = tuple(self.heads[t](hidden) for t in self.config.tasks)
        loss = None
        if any(f"labels_{t}" in labels and labels[f"labels_{t}"] is not None for t in self.config.tasks):
            loss = 0.0
            for t, lg in zip(self.config.tasks, logits):
                y = labels.get(f"labels_{t}")
                if y is None:
                    continue
                if not (y != -100).any():  # no label of this task in the batch: cross_entropy's mean over none is
                    loss = loss + lg.sum() * 0.0  # NaN, which made every weight NaN; the zero keeps the head in
                    continue  # the graph, as several processes (DDP) need
                task_loss = nn.functional.cross_entropy(lg.float(), y, weight=self.class_weight(t), ignore_index=-100,
                                                        label_smoothing=self.config.label_smoothing)
                loss = loss + self.config.loss_weights.get(t, 1.0) * task_loss
        return MultiTaskOutput(loss=loss, logits=logits)


def tiny_bert_config(tiny, vocab_size: int, pad_token_id: int, max_length: int):
    """The BertConfig of the offline tiny model (configs/train/tiny.yaml's `model.tiny`)."""
    from transformers import BertConfig

    return BertConfig(vocab_size=vocab_size, hidden_size=tiny.hidden_size, num_hidden_layers=tiny.num_hidden_layers,
                      num_attention_heads=tiny.num_attention_heads, intermediate_size=tiny.intermediate_size,
                      max_position_embeddings=max(tiny.max_position_embeddings, max_length + 2),
                      pad_token_id=pad_token_id)


def _is_bert_like(name_or_path: str) -> bool:
    try:
        cfg = AutoConfig.from_pretrained(name_or_path)
    except Exception:
        return False
    return cfg.model_type in ("bert", "roberta", "xlm-roberta", "electra")


AutoConfig.register(NabraConfig.model_type, NabraConfig)
AutoModel.register(NabraConfig, NabraModel)
