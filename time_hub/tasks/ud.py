"""Fine-tuning and evaluation of the multi-task UD model (`ud_model.UDModel`) with the Hugging Face `Trainer`.

`finetune` trains on a CoNLL-U file, evaluates on the dev file during training with the CoNLL 2018 metrics (the
Trainer's `evaluate` is replaced by tree decoding + `ud_metrics`, so model selection uses real LAS, not loss), keeps
the best model, saves it and writes `results.json`. `evaluate` reloads a saved model, predicts a file and scores it.

Model selection (`training.dev_selection_args`): with a dev file, evaluation and saving default to every epoch and
the best model is reloaded at the end; `metric_for_best_model` becomes LAS when it is unset or a loss (the evaluation
computes no loss), another UD metric name (e.g. "UPOS") is kept. `remove_unused_columns` is always turned off (the
collator needs every field).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import (
    AutoTokenizer,
    PreTrainedTokenizerBase,
    TrainingArguments,
    set_seed,
)

from time_hub.encoder import load_encoder
from time_hub.tasks import committee, segment, silver
from time_hub.tasks.committee import UDCommittee
from time_hub.tasks.conllu import Sentence, read_conllu, resolve_conllu, write_conllu
from time_hub.tasks.results import TaskResults
from time_hub.tasks.training import TaskTrainer, dev_selection_args, train_and_save
from time_hub.tasks.ud_metrics import ud_scores
from time_hub.tasks.ud_model import UDCollator, UDLabels, UDModel, UDSettings, encode_sentences, predict

logger = logging.getLogger(__name__)

SELECTION_METRIC = "LAS"


class UDTrainer(TaskTrainer):
    """A `TaskTrainer` whose evaluation decodes trees and computes the CoNLL 2018 metrics on gold `Sentence`s.

    `eval_dataset` is the list of gold dev sentences (not features); metrics are logged as `eval_LAS` etc.
    """

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False):
        """Checkpoints keep the Trainer's state-dict layout (best-model reloading reads it); the final model is saved
        as a `UDModel` folder (encoder, heads, label sets, tokenizer) that `evaluate` and `load_ud_model` read."""
        if _internal_call:
            return super().save_model(output_dir, _internal_call)
        self.model.save_pretrained(output_dir or self.args.output_dir, self.processing_class)

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        gold: list[Sentence] = eval_dataset if eval_dataset is not None else self.eval_dataset
        start = time.time()
        predicted, _ = predict(self.model, self.processing_class, gold, self.args.per_device_eval_batch_size)
        metrics = {f"{metric_key_prefix}_{name}": value for name, value in ud_scores(gold, predicted).items()}
        metrics[f"{metric_key_prefix}_runtime"] = round(time.time() - start, 4)
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics


def finetune(
    model_name_or_path: str,
    train_file: str,
    dev_file: str | None,
    output_dir: str,
    training_args: TrainingArguments,
    max_length: int = 256,
    *,
    early_stopping_patience: int | None = None,
    head_learning_rate: float | None = 2e-3,
    segmenter_steps: int = 0,
    silver_teacher: str | None = None,
    silver_text: Sequence[str] = (),
    silver_file: str | None = None,
    silver_max_bytes: int | None = None,
    gold_repeat: int = 4,
) -> TaskResults:
    """Fine-tune on train_file, select on dev_file, save the best model to output_dir (loadable by evaluate),
    evaluate it on dev_file and return + save output_dir/results.json (TaskResults, split='dev').

    Without a dev file the final model is saved and scored on the training file (split='train').
    `early_stopping_patience`: stop after that many evaluations without LAS improvement (needs a dev file).
    `head_learning_rate`: peak learning rate of the randomly initialised heads (the encoder uses
    `training_args.learning_rate`); None trains everything at `training_args.learning_rate`. Random heads need far
    more than an encoder's fine-tuning rate; 2e-3 is Dozat & Manning's rate (me5-small, 451 Danish sentences, encoder
    1e-4, batch 8: LAS 39.7 / 56.2 / 66.8 after 1 / 2 / 5 epochs).
    `segmenter_steps`: also train the raw-text segmenter (`time_hub.tasks.segment`) from the same encoder into
    `output_dir/segmenter` (first, on the gold sentences), selected on the dev boundaries; its summary goes into
    results.json.
    `silver_teacher` (a UD folder with a segmenter): its analysis of `silver_text` (lines holding a train or dev
    sentence left out; at most `silver_max_bytes`) is added to the training data, the gold sentences repeated
    `gold_repeat` times (`time_hub.tasks.silver`; the analysis is kept in `silver_file`, default
    `output_dir/silver.conllu`, and re-used for the same inputs). A teacher without a segmenter of its own reads the
    text with the one trained here.
    """
    set_seed(training_args.seed)  # before the heads are initialised
    train = read_conllu(resolve_conllu(train_file, "train"))
    dev = read_conllu(resolve_conllu(dev_file, "dev")) if dev_file else None
    tokenizer = AutoTokenizer.from_pretrained(model_name_or_path)
    segmenter_dir, segmenter_summary = Path(output_dir) / segment.FOLDER, None
    if segmenter_steps:  # first: a teacher without a segmenter of its own reads the silver text with this one
        segmenter_summary = segment.finetune(
            model_name_or_path, train, dev, segmenter_dir, training_args, segmenter_steps
        )
        set_seed(training_args.seed)  # the heads start as they would without a segmenter
    gold, silver_summary = train, None
    if silver_teacher:
        output = silver_file or Path(output_dir) / "silver.conllu"
        extra = silver.silver_sentences(
            silver_teacher, silver_text, [*train, *(dev or [])], output, silver_max_bytes,
            segmenter_dir if segmenter_steps else None,
        )  # fmt: skip
        train, silver_summary = silver.mixed(gold, extra, gold_repeat, silver_teacher, output)
    labels = UDLabels.from_sentences(train)
    model = UDModel(load_encoder(model_name_or_path), labels, UDSettings(max_length=max_length))
    features, truncated = encode_sentences(train, tokenizer, max_length, labels)
    if truncated:
        logger.warning("%d training words beyond max_length=%d pieces are left out of the loss", truncated, max_length)

    # The collator needs every field; selection on dev LAS (UD evaluation computes no loss).
    args = dev_selection_args(training_args, output_dir, SELECTION_METRIC, dev is not None)
    args = dataclasses.replace(args, remove_unused_columns=False)
    trainer = UDTrainer(
        model=model,
        args=args,
        train_dataset=features,
        eval_dataset=dev,
        data_collator=UDCollator(tokenizer.pad_token_id),
        processing_class=tokenizer,
        head_learning_rate=head_learning_rate,
    )
    summary = train_and_save(trainer, output_dir, early_stopping_patience)

    results = evaluate(output_dir, dev_file or train_file, split="dev" if dev_file else "train")
    results.extra["training"] = {
        "train_file": str(train_file),
        "sentences": len(gold),
        "train_truncated_words": truncated,
        **summary,
        "dev_las": [entry["eval_LAS"] for entry in trainer.state.log_history if "eval_LAS" in entry],
        "labels": {name: len(values) for name, values in dataclasses.asdict(labels).items()},
    }
    if segmenter_summary:
        results.extra["segmenter"] = segmenter_summary
    if silver_summary:
        results.extra["training"]["silver"] = silver_summary
    results.save(Path(output_dir) / "results.json")
    return results


def load_ud_model(model_dir: str | Path) -> tuple[UDModel | UDCommittee, PreTrainedTokenizerBase]:
    """A fine-tuned model or committee (eval mode, on GPU when available) and its tokenizer."""
    model = committee.load(model_dir, UDModel.from_pretrained, committee.UDCommittee)
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    return model, AutoTokenizer.from_pretrained(model_dir)


def evaluate(
    model_dir: str, data_file: str, split: str = "dev", batch_size: int = 32, predictions_file: str | None = None
) -> TaskResults:
    """Predict data_file with the fine-tuned model in model_dir, write CoNLL-U predictions if asked,
    return TaskResults with UPOS/XPOS/UFeats/AllTags/Lemmas/UAS/LAS/MLAS/BLEX."""
    start = time.time()
    model, tokenizer = load_ud_model(model_dir)
    gold = read_conllu(resolve_conllu(data_file, split))
    predict_start = time.time()
    predicted, truncated = predict(model, tokenizer, gold, batch_size)
    predict_seconds = time.time() - predict_start
    if predictions_file:
        write_conllu(predictions_file, predicted)
    return TaskResults(
        task="ud",
        dataset=str(data_file),
        split=split,
        metrics=ud_scores(gold, predicted),
        model=str(model_dir),
        num_parameters=model.num_parameters(),
        seconds=round(time.time() - start, 3),
        examples=len(gold),
        extra={
            "words": sum(len(s.words) for s in gold),
            "truncated_words": truncated,
            "max_length": model.settings.max_length,
            "predict_seconds": round(predict_seconds, 3),
            "predictions_file": str(predictions_file) if predictions_file else None,
        },
    )
