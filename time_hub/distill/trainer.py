"""`DistillationTrainer`: a `transformers.Trainer` whose model is the student and whose loss is MiniLMv2's."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel, Trainer

from time_hub.distill.config import TEACHER_DTYPES, DistillationConfig
from time_hub.distill.qkv import QKVCapture, adapter_for, truncate_after
from time_hub.distill.relations import minilm_relation_loss

# Written into every checkpoint: what `time-hub select` needs to score it with exactly the training loss.
SETTINGS_FILE = "distillation.json"


def load_teacher(name_or_path: str, dtype: str = "float32", trust_remote_code: bool = False) -> PreTrainedModel:
    """The teacher as a base encoder, without the pooler of BERT-like models (never used, often not even stored).

    Its own modeling code (config.json `auto_map`) runs only with `trust_remote_code`. LTG-BERT-family configs
    (recognised by `position_bucket_size`, as in `qkv.model_family`) are refused without it: LTG's own config says
    model_type "bert", so transformers would quietly load a BERT that ignores their weights.
    """
    if trust_remote_code:
        return AutoModel.from_pretrained(name_or_path, dtype=TEACHER_DTYPES[dtype], trust_remote_code=True)
    config_dict, _ = PretrainedConfig.get_config_dict(name_or_path)
    if "position_bucket_size" in config_dict:
        raise ValueError(
            f"the teacher {name_or_path} is an LTG-BERT-family model (LTG-BERT, HPLT-BERT, NorBERT3) that needs its "
            "own modeling code: set teacher_trust_remote_code: true (if you trust that code)"
        )
    config = AutoConfig.from_pretrained(name_or_path)
    kwargs = {"add_pooling_layer": False} if config.model_type in ("bert", "roberta", "xlm-roberta") else {}
    return AutoModel.from_pretrained(name_or_path, config=config, dtype=TEACHER_DTYPES[dtype], **kwargs)


class DistillationTrainer(Trainer):
    """Trains `model` (the student) to match the teacher's Q-Q/K-K/V-V self-attention relations.

    The teacher is frozen, in eval mode, without gradients, in `args.teacher_dtype`, and truncated after its
    distillation layer. Only the student is saved (`save_pretrained` + tokenizer in every checkpoint), together with
    `distillation.json` (the resolved loss settings). `teacher_model` may be given directly (a model already in memory,
    used in its own dtype); otherwise it is loaded from `args.teacher_name_or_path` in `args.teacher_dtype`.
    """

    # compute_loss returns a per-batch mean; the Trainer divides by the accumulation steps.
    loss_is_scaled_for_ga = False

    def __init__(
        self, model: PreTrainedModel, args: DistillationConfig, teacher_model: PreTrainedModel | None = None, **kwargs
    ):
        teacher = (
            teacher_model
            if teacher_model is not None
            else load_teacher(args.teacher_name_or_path, args.teacher_dtype, args.teacher_trust_remote_code)
        )
        for checked in (teacher, model):  # fail early, naming an unsupported model_type
            adapter_for(checked)
        self.distillation_settings = args.resolve(teacher.config, model.config)
        truncate_after(teacher, self.distillation_settings["teacher_layer"])
        teacher.requires_grad_(False).eval()
        super().__init__(model=model, args=args, **kwargs)
        self.teacher = teacher.to(self.accelerator.device)
        self._teacher_qkv = QKVCapture(self.teacher, self.distillation_settings["teacher_layer"])
        self._student_qkv = QKVCapture(model, self.distillation_settings["student_layer"])
        self._relation_logs: dict[str, dict[str, list[torch.Tensor]]] = {
            "train": defaultdict(list),
            "eval": defaultdict(list),
        }

    def compute_loss(self, model: nn.Module, inputs: dict, return_outputs: bool = False, num_items_in_batch=None):
        model_inputs = {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"]}
        with torch.no_grad():
            self.teacher(**model_inputs)
        with self._student_qkv.as_model_output():
            student_qkv = model(**model_inputs)
        losses = minilm_relation_loss(
            self._teacher_qkv.qkv,
            student_qkv,
            inputs["attention_mask"],
            self.distillation_settings["num_relation_heads"],
            self.distillation_settings["relations"],
        )
        logs = self._relation_logs["train" if model.training else "eval"]
        for name in self.distillation_settings["relations"]:
            logs[name].append(losses[name].detach())
        return (losses["loss"], student_qkv) if return_outputs else losses["loss"]

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """Evaluation is the held-out relation loss: no logits, no labels."""
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the mean qq/kk/vv losses since the last log (averaged over processes too)."""
        mode = "eval" if any(key.startswith("eval_") for key in logs) else "train"
        prefix = "eval_" if mode == "eval" else ""
        for name, values in self._relation_logs[mode].items():
            if values:
                logs[f"{prefix}{name}"] = self.accelerator.gather(torch.stack(values).mean()).mean().item()
        self._relation_logs[mode].clear()
        super().log(logs, start_time)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        super()._save(output_dir, state_dict)
        if self.args.should_save:
            path = Path(output_dir or self.args.output_dir, SETTINGS_FILE)
            path.write_text(json.dumps(self.distillation_settings, indent=2) + "\n")
