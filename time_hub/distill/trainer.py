"""`DistillationTrainer`: a `transformers.Trainer` whose model is the student and whose loss is MiniLMv2's."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import torch
from torch import nn
from transformers import PreTrainedModel, Trainer, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from time_hub.card_data import CardDataCallback
from time_hub.distill.config import TEACHER_DTYPES, DistillationConfig
from time_hub.distill.hidden import hidden_mse_loss, hidden_projection
from time_hub.distill.qkv import HiddenCapture, QKVCapture, adapter_for, truncate_after
from time_hub.distill.relations import minilm_relation_loss
from time_hub.encoder import load_encoder
from time_hub.progress import EtaCallback, add_once
from time_hub.run_dir import RunDir, mark_complete


def load_teacher(name_or_path: str, dtype: str = "float32", trust_remote_code: bool = False) -> PreTrainedModel:
    """The teacher as a base encoder in `dtype` (`time_hub.encoder.load_encoder`: no pooler, remote code only when
    trusted)."""
    return load_encoder(name_or_path, TEACHER_DTYPES[dtype], trust_remote_code)


class _ZeroGradients(TrainerCallback):
    """Clears the gradients of modules outside the model after each optimizer step, as the Trainer does the model's."""

    def __init__(self, modules: nn.Module):
        self.modules = modules

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.modules.zero_grad(set_to_none=True)


class DistillationTrainer(Trainer):
    """Trains `model` (the student) to match the teacher's Q-Q/K-K/V-V self-attention relations.

    The loss is the main layer pair's relation loss, plus `extra_relation_weight` x the relation loss of each extra
    layer pair and `hidden_loss_weight` x the hidden-state MSE of each hidden pair (through learned projections,
    saved in checkpoints as training state); each term is logged by name.

    The teacher is frozen, in eval mode, without gradients, in `args.teacher_dtype`, and truncated after the
    highest layer any term uses. Only the student is saved (`save_pretrained` + tokenizer in every checkpoint),
    together with `distillation.json` (the resolved loss settings). `teacher_model` may be given directly (a model
    already in memory, used in its own dtype); otherwise it is loaded from `args.teacher_name_or_path` in
    `args.teacher_dtype`.
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
        settings = self.distillation_settings = args.resolve(teacher.config, model.config)
        self._relation_pairs, self._hidden_pairs = settings.relation_pairs, settings.hidden_pairs
        truncate_after(teacher, max(t for t, _ in self._relation_pairs + self._hidden_pairs))
        teacher.requires_grad_(False).eval()
        super().__init__(model=model, args=args, **kwargs)
        device = self.accelerator.device
        self.teacher = teacher.to(device)
        self._teacher_qkv = {t: QKVCapture(self.teacher, t) for t in dict.fromkeys(t for t, _ in self._relation_pairs)}
        self._student_qkv = {s: QKVCapture(model, s) for s in dict.fromkeys(s for _, s in self._relation_pairs)}
        self._teacher_hidden = HiddenCapture(self.teacher, sorted({t for t, _ in self._hidden_pairs}))
        self._student_hidden = HiddenCapture(model, sorted({s for _, s in self._hidden_pairs}))
        # Learned with the student, saved in checkpoints for resuming, never published.
        self.hidden_projections = nn.ModuleDict(
            {
                f"{t}:{s}": hidden_projection(model.config.hidden_size, teacher.config.hidden_size)
                for t, s in self._hidden_pairs
            }
        ).to(device)
        if len(self.hidden_projections):  # the Trainer zeroes the model's gradients only
            self.add_callback(_ZeroGradients(self.hidden_projections))
        add_once(self, CardDataCallback, EtaCallback)
        # Inside compute_loss the student's forward returns every captured tensor the loss uses: DDP synchronises
        # only gradients that flow back through the outputs of the wrapped forward.
        self._capturing = False
        model.register_forward_hook(self._captured_outputs)
        self._relation_logs: dict[str, dict[str, list[torch.Tensor]]] = {
            "train": defaultdict(list),
            "eval": defaultdict(list),
        }

    def _captured_outputs(self, module, args, output):
        if not self._capturing:
            return output
        return {
            "qkv": {layer: capture.qkv for layer, capture in self._student_qkv.items()},
            "hidden": dict(self._student_hidden.states),
        }

    def compute_loss(self, model: nn.Module, inputs: dict, return_outputs: bool = False, num_items_in_batch=None):
        model_inputs = {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"]}
        mask = inputs["attention_mask"]
        settings = self.distillation_settings
        with torch.no_grad():
            self.teacher(**model_inputs)
        self._capturing = True
        try:
            student = model(**model_inputs)
        finally:
            self._capturing = False
        parts: dict[str, torch.Tensor] = {}
        total = None
        for index, (t, s) in enumerate(self._relation_pairs):
            losses = minilm_relation_loss(
                self._teacher_qkv[t].qkv,
                student["qkv"][s],
                mask,
                settings.num_relation_heads,
                settings.relations,
            )
            if index == 0:  # the main pair: its qq/kk/vv are logged by name, as without extra pairs
                parts |= {name: losses[name] for name in settings.relations}
                total = losses["loss"]
            else:
                parts[f"rel@{t}:{s}"] = losses["loss"]
                total = total + settings.extra_relation_weight * losses["loss"]
        for t, s in self._hidden_pairs:
            projected = self.hidden_projections[f"{t}:{s}"](student["hidden"][s])
            parts[f"hidden@{t}:{s}"] = hidden_mse_loss(self._teacher_hidden.states[t], projected, mask)
            total = total + settings.hidden_loss_weight * parts[f"hidden@{t}:{s}"]
        logs = self._relation_logs["train" if model.training else "eval"]
        for name, value in parts.items():
            logs[name].append(value.detach())
        return (total, student) if return_outputs else total

    def create_optimizer(self, model=None):
        """The Trainer's optimizer, plus one group (no weight decay) for the hidden-state projections."""
        if self.optimizer is not None or not len(self.hidden_projections):
            return super().create_optimizer(model)
        optimizer = super().create_optimizer(model)
        optimizer.add_param_group({"params": list(self.hidden_projections.parameters()), "weight_decay": 0.0})
        return optimizer

    def _save_checkpoint(self, model, trial) -> None:
        """The Trainer's checkpoint, then its completion marker: a checkpoint without one was interrupted, and
        resuming (`last`) and `select` skip it."""
        super()._save_checkpoint(model, trial)
        if self.args.should_save:
            folder = Path(self._get_output_dir(trial=trial)) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            mark_complete(folder, self.state.global_step)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: nn.Module | None = None) -> None:
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        saved = Path(resume_from_checkpoint, RunDir.PROJECTIONS)
        if len(self.hidden_projections) and saved.is_file():
            self.hidden_projections.load_state_dict(torch.load(saved, map_location=self.accelerator.device))

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """Evaluation is the held-out relation loss: no logits, no labels."""
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the mean of each loss term since the last log: qq/kk/vv, rel@T:S, hidden@T:S (over processes too)."""
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
            folder = Path(output_dir or self.args.output_dir)
            self.distillation_settings.save(folder)
            if len(self.hidden_projections):
                torch.save(self.hidden_projections.state_dict(), folder / RunDir.PROJECTIONS)
