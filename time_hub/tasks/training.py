"""What the task modules (ner, qa, ud) share: a Trainer whose new head learns at its own rate, dev-based model
selection, train-and-save with a summary, and batched prediction."""

from __future__ import annotations

import dataclasses
import logging
import re
import tempfile
import time

from datasets import Dataset
from torch.utils.data import SequentialSampler
from transformers import EarlyStoppingCallback, Trainer, TrainingArguments

from time_hub.card_data import CardDataCallback
from time_hub.progress import EtaCallback, add_once

logger = logging.getLogger(__name__)
# Our split names -> the usual Hub split names.
HUB_SPLITS = {"dev": "validation"}


def hub_dataset_id(source: str, example: str, with_config: bool = False) -> str:
    """`source` (not a local path) as a Hub dataset id `org/name` (or `org/name:config`), else one clear error."""
    pattern = r"[\w.-]+/[\w.-]+" + (r"(:[\w.-]+)?" if with_config else "")
    if not re.fullmatch(pattern, str(source)):
        raise FileNotFoundError(f"{source}: no such file or folder (nor a Hub dataset id like '{example}')")
    return str(source)


def dev_selection_args(args: TrainingArguments, output_dir: str, metric: str, has_dev: bool) -> TrainingArguments:
    """A copy of `args` writing checkpoints to `output_dir` and, with a dev set, reloading the best one by the dev
    `metric` at the end.

    Evaluation and saving default to every epoch when the caller left evaluation off; a `metric_for_best_model` the
    caller chose is kept unless it is a loss (the Trainer's default). Without a dev set, evaluation during training
    and best-model selection are turned off.
    """
    changes: dict = {"output_dir": output_dir}
    if has_dev:
        if args.eval_strategy == "no":
            changes |= {"eval_strategy": "epoch", "save_strategy": "epoch"}
        changes["load_best_model_at_end"] = True
        if args.metric_for_best_model is None or args.metric_for_best_model.endswith("loss"):
            changes |= {"metric_for_best_model": metric, "greater_is_better": True}
    elif args.eval_strategy != "no" or args.load_best_model_at_end:
        logger.warning("no dev file: turning off evaluation during training and best-model selection")
        changes |= {"eval_strategy": "no", "load_best_model_at_end": False}
    return dataclasses.replace(args, **changes)


class TaskTrainer(Trainer):
    """A `Trainer` whose task head (the parameters outside the encoder) can learn at its own rate.

    Why: the head starts from random, and Adam moves each weight by about the learning rate per step. On top of a
    sentence-embedding encoder such as me5-small, whose last-layer token states are nearly parallel (mean cosine
    0.8), a head at the encoder's rate learns so slowly that the encoder instead collapses every token onto the
    majority class (cosine 0.995). Measured on Danish NER (me5-small, 100 steps of batch 16, 150 dev sentences):
    dev F1 0 with everything at 3e-5 or 1e-4; 56 with the encoder at 5e-5 and the head at 1e-2.
    """

    def __init__(self, *args, head_learning_rate: float | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.head_learning_rate = head_learning_rate
        add_once(self, CardDataCallback, EtaCallback)

    def _get_eval_sampler(self, eval_dataset):
        """Dev examples in file order, always: task metrics align predictions with per-example word maps (NER's first
        subwords), which `train_sampling_strategy: group_by_length` would otherwise reorder for evaluation too."""
        return SequentialSampler(eval_dataset) if eval_dataset is not None else None

    def create_optimizer(self, model=None):
        if self.optimizer is not None or self.head_learning_rate is None:
            return super().create_optimizer(model)
        optimizer = super().create_optimizer(model)
        model = model or self.model
        # Stock task models keep the encoder in `base_model`; our UD model (a plain nn.Module) in `encoder`.
        encoder = {id(p) for p in (getattr(model, "base_model", None) or model.encoder).parameters()}
        groups = []
        for group in optimizer.param_groups:  # split each (weight-decay) group into encoder and head parts
            for head in (False, True):
                params = [p for p in group["params"] if (id(p) not in encoder) == head]
                if params:
                    groups.append({**group, "params": params} | ({"lr": self.head_learning_rate} if head else {}))
        optimizer.param_groups.clear()  # nothing has stepped yet, so regrouping loses no state
        for group in groups:
            optimizer.add_param_group(group)
        return optimizer


def train_and_save(trainer: TaskTrainer, output_dir: str, early_stopping_patience: int | None = None) -> dict:
    """Train (optionally stopping after `early_stopping_patience` evaluations without improvement), save the final
    model (the best one under dev selection), tokenizer and trainer state; return a summary for `results.json`."""
    if early_stopping_patience:
        if not trainer.args.load_best_model_at_end:
            raise ValueError("early_stopping_patience needs a dev file to evaluate on")
        trainer.add_callback(EarlyStoppingCallback(early_stopping_patience=early_stopping_patience))
    start = time.perf_counter()
    output = trainer.train()
    trainer.save_model(output_dir)
    trainer.save_state()
    return {
        "steps": trainer.state.global_step,
        "train_loss": output.training_loss,
        "train_seconds": time.perf_counter() - start,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "best_dev_metric": trainer.state.best_metric,
        "seed": trainer.args.seed,
        "learning_rate": trainer.args.learning_rate,
        "head_learning_rate": trainer.head_learning_rate,
    }


def predict(model, tokenizer, dataset: Dataset, collator, batch_size: int, preprocess_logits=None):
    """Run `model` over `dataset` with a throw-away Trainer (device placement, batching) and return predictions."""
    with tempfile.TemporaryDirectory() as scratch:
        args = TrainingArguments(output_dir=scratch, per_device_eval_batch_size=batch_size, report_to="none")
        trainer = Trainer(
            model=model,
            args=args,
            data_collator=collator,
            processing_class=tokenizer,
            preprocess_logits_for_metrics=preprocess_logits,
        )
        return trainer.predict(dataset).predictions
