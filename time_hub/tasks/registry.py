"""The task registry: one `TaskSpec` per downstream task, the only table of task facts.

Everything that varies by task — the module that fine-tunes and evaluates it, its metrics, its Hub metadata, the
options only it takes — is read from here by the commands, the pipeline, the bench, the cards and the Space. Adding a
task is one module (with `finetune`, `evaluate` and `predict`, see `time_hub.tasks.commands`) and one entry below.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class TaskSpec:
    name: str  # as in results.json, recipes and folder names
    module: str  # provides finetune(...), evaluate(...) and predict(...)
    title: str  # card heading
    main_metric: str  # the one number: bench quality plots, dev selection
    summary_metrics: tuple[str, ...]  # what `time-hub run` prints, with retention vs the teacher
    pipeline_tag: str  # Hub pipeline tag of the fine-tuned model
    model_index: tuple[str, str, tuple[str, ...]]  # Hub (task type, task name, metrics) for the card's model-index
    options: tuple[str, ...] = ()  # finetune/evaluate keys only this task takes
    evaluate_options: tuple[str, ...] = ()  # evaluate keys this task takes (its options included)
    # finetune options its final evaluation must reuse (a committee is scored the same way); ner scores at the
    # model's own max_length, not the training one; ud keeps its settings in the saved model
    scored_with: tuple[str, ...] = ()
    short_name: str = ""  # UI label

    def load(self) -> ModuleType:
        """The task's module (imported only when the task is used)."""
        return importlib.import_module(self.module)


QA_OPTIONS = ("doc_stride", "max_answer_length", "n_best")
TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec(
            name="ud",
            module="time_hub.tasks.ud",
            title="UD tagging, lemmatization and dependency parsing",
            main_metric="LAS",
            summary_metrics=("UPOS", "Lemmas", "LAS"),
            # The UD model is the stock encoder + small heads that time_hub loads: token-level.
            pipeline_tag="token-classification",
            model_index=(
                "token-classification",
                "UD tagging, lemmas and parsing",
                ("UPOS", "UFeats", "Lemmas", "UAS", "LAS"),
            ),
            options=(
                "segmenter_steps",
                "silver_teacher",
                "silver_text",
                "silver_file",
                "silver_max_bytes",
                "gold_repeat",
            ),
            short_name="UD",
        ),
        TaskSpec(
            name="ner",
            module="time_hub.tasks.ner",
            title="Named-entity recognition",
            main_metric="f1",
            summary_metrics=("f1",),
            pipeline_tag="token-classification",
            model_index=("token-classification", "Named-entity recognition", ("f1", "precision", "recall")),
            options=("silver_teacher", "silver_text", "silver_file", "silver_max_bytes", "gold_repeat"),
            evaluate_options=("max_length",),
            short_name="NER",
        ),
        TaskSpec(
            name="qa",
            module="time_hub.tasks.qa",
            title="Extractive question answering",
            main_metric="f1",
            summary_metrics=("exact_match", "f1"),
            pipeline_tag="question-answering",
            model_index=("question-answering", "Extractive question answering", ("exact_match", "f1")),
            options=QA_OPTIONS,
            evaluate_options=("max_length", *QA_OPTIONS),
            scored_with=("max_length", *QA_OPTIONS),
            short_name="QA",
        ),
    )
}
ENCODER_PIPELINE_TAG = "feature-extraction"  # a student without a task head


def task_spec(name: str) -> TaskSpec:
    """The spec of task `name`, or one clear error listing the tasks."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}: choose from {list(TASKS)}")
    return TASKS[name]
