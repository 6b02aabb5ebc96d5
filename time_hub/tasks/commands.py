"""`time-hub finetune`, `time-hub evaluate` and `time-hub compare`: argument parsing and dispatch by task.

finetune/evaluate read `[--config RECIPE.yaml] [--key value ...]` through `time_hub.arguments` (flat keys = fields of
the dataclasses below and, for finetune, `TrainingArguments`; command-line keys override the recipe; unknown keys and
ill-typed values are errors naming the file or command line and the key). Each task module (`time_hub.tasks.ud`,
`.ner`, `.qa`) is imported only when its task is asked for, and provides
`finetune(model, train, dev, output_dir, training_args, max_length=...)` and
`evaluate(model_dir, data_file, split, batch_size, predictions_file)`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from transformers import TrainingArguments

from time_hub.arguments import RecipeError, parse_command
from time_hub.tasks import committee
from time_hub.tasks.registry import TASKS, task_spec
from time_hub.tasks.results import TaskResults

Task = Literal[tuple(TASKS)]  # a recipe's `task` is checked against the registry, naming the key
# Keys that only some tasks take (which ones: each TaskSpec's `options` / `evaluate_options`).
TASK_OPTIONS = tuple(dict.fromkeys(o for spec in TASKS.values() for o in spec.options))
EVALUATE_OPTIONS = tuple(dict.fromkeys(o for spec in TASKS.values() for o in spec.evaluate_options))
logger = logging.getLogger(__name__)


@dataclass
class FinetuneArguments:
    """What to fine-tune on what; the training loop itself is configured by `TrainingArguments` keys."""

    task: Task = field(metadata={"help": "ud (tagging, lemmas, parsing), ner (IOB2 entities) or qa (SQuAD v1.1)"})
    model: str = field(metadata={"help": "encoder folder or Hub id to fine-tune"})
    train: str = field(metadata={"help": "training file (.conllu, .iob2, SQuAD .json) or Hub dataset id"})
    dev: str | None = field(default=None, metadata={"help": "dev file for model selection and the final score"})
    max_length: int | None = field(default=None, metadata={"help": "subwords per sequence (task default if unset)"})
    early_stopping_patience: int | None = field(
        default=None, metadata={"help": "stop after this many evaluations without dev improvement"}
    )
    head_learning_rate: float | None = field(
        default=None, metadata={"help": "peak learning rate of the new task head(s) (default: the task's own)"}
    )
    doc_stride: int | None = field(default=None, metadata={"help": "qa: overlap of context windows, in subwords"})
    max_answer_length: int | None = field(default=None, metadata={"help": "qa: longest answer span, in subwords"})
    n_best: int | None = field(default=None, metadata={"help": "qa: start/end candidates per window"})
    segmenter_steps: int | None = field(
        default=None,
        metadata={"help": "ud: also train the raw-text segmenter (tokens, sentences, multiword tokens) for N steps "
                  "into <output_dir>/segmenter, what `time-hub annotate` needs (0: none, the default)"},
    )  # fmt: skip
    silver_teacher: str | None = field(
        default=None,
        metadata={"help": "ud, ner: the teacher's fine-tuned model for the task (ud: with a segmenter) whose "
                  "analysis of --silver_text is added to the training data: task distillation through text "
                  "(time_hub.tasks.silver)"},
    )  # fmt: skip
    silver_text: list[str] | None = field(
        default=None, metadata={"help": "ud, ner: raw text files for --silver_teacher (lines holding a train/dev "
                                "sentence are left out)"},
    )  # fmt: skip
    silver_file: str | None = field(
        default=None,
        metadata={"help": "ud, ner: where the teacher's analysis is kept and re-used (<output_dir>/silver.conllu, "
                  "silver.iob2)"},
    )  # fmt: skip
    silver_max_bytes: int | None = field(default=None, metadata={"help": "ud, ner: use at most this much text"})
    gold_repeat: int | None = field(
        default=None, metadata={"help": "ud, ner: with silver data, the gold sentences repeated N times (default 4)"}
    )
    committee: int | None = field(
        default=None,
        metadata={
            "help": "fine-tune a soft committee of N students whose logits are averaged; model must name member i "
            "with {i}, e.g. runs/committee-da/member-{i}/best (time_hub.tasks.committee)"
        },
    )

    def __post_init__(self):
        _check_task_options(self, TASK_OPTIONS, task_spec(self.task).options)
        if self.committee is not None:
            committee.member_sources(self.model, self.committee)
        if (self.silver_teacher is None) != (self.silver_text is None):
            raise ValueError("silver_teacher and silver_text go together: the teacher annotates the text")
        for path in self.silver_text or ():
            if not Path(path).is_file():
                raise ValueError(f"{path}: no such file (silver_text)")


@dataclass
class EvaluateArguments:
    """Score a fine-tuned model folder on one data file and write `results.json`."""

    task: Task = field(metadata={"help": "ud, ner or qa"})
    model: str = field(metadata={"help": "fine-tuned model folder (output_dir of time-hub finetune)"})
    data: str = field(metadata={"help": "data file (.conllu, .iob2, SQuAD .json) or Hub dataset id"})
    split: str = field(default="dev", metadata={"help": "split name recorded in the results (and Hub split)"})
    output: str | None = field(default=None, metadata={"help": "where to write results.json"})
    predictions: str | None = field(default=None, metadata={"help": "where to write the predictions"})
    batch_size: int = 32
    max_length: int | None = field(default=None, metadata={"help": "ner, qa: subwords per sequence"})
    doc_stride: int | None = field(default=None, metadata={"help": "qa: overlap of context windows"})
    max_answer_length: int | None = field(default=None, metadata={"help": "qa: longest answer span"})
    n_best: int | None = field(default=None, metadata={"help": "qa: start/end candidates per window"})

    def __post_init__(self):
        _check_task_options(self, EVALUATE_OPTIONS, task_spec(self.task).evaluate_options)


def _check_task_options(args, options: tuple[str, ...], allowed: tuple[str, ...]) -> None:
    wrong = [name for name in options if getattr(args, name) is not None and name not in allowed]
    if wrong:
        raise ValueError(f"{', '.join(wrong)} do not apply to task {args.task}")


def _set(args, names: tuple[str, ...]) -> dict:
    """The options among `names` that were given (None means: the task function's default)."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def finetune(args: FinetuneArguments, training_args: TrainingArguments) -> TaskResults:
    """Fine-tune `args.model` on `args.task` (or a committee of N): the best model and results.json in output_dir."""
    spec = task_spec(args.task)
    options = _set(args, ("max_length", "early_stopping_patience", "head_learning_rate", *spec.options))
    module = spec.load()
    if args.committee is None:
        return module.finetune(args.model, args.train, args.dev, training_args.output_dir, training_args, **options)
    evaluate_options = {k: v for k, v in options.items() if k in spec.scored_with}
    return committee.finetune(
        args.task, module, args.model, args.committee, args.train, args.dev, training_args.output_dir,
        training_args, evaluate_options, **options,
    )  # fmt: skip


def evaluate(args: EvaluateArguments) -> TaskResults:
    """Score a fine-tuned model on one data file; results.json written to `args.output` when given."""
    spec = task_spec(args.task)
    options = _set(args, spec.evaluate_options)
    module = spec.load()
    results = module.evaluate(args.model, args.data, args.split, args.batch_size, args.predictions, **options)
    if args.output:
        results.save(args.output)
    return results


def parse_finetune(argv: list[str]) -> tuple[FinetuneArguments, TrainingArguments] | None:
    """Recipe + overrides -> dataclasses (None after --help). `output_dir` must be given: a default folder would
    collect stray runs."""
    description = "Fine-tune an encoder on a task; save the best model and results.json in output_dir."
    parsed = parse_command("time-hub finetune", description, (FinetuneArguments, TrainingArguments), argv)
    if parsed is None:
        return None
    (finetune_args, training_args), values = parsed
    if "output_dir" not in values:
        raise RecipeError("the command line: --output_dir is required")
    return finetune_args, training_args


def finetune_main(argv: list[str]) -> int:
    """`time-hub finetune --task ud|ner|qa --model M --train F [--dev F] --output_dir D [--committee N] [--config R]
    [--key v]`."""
    parsed = parse_finetune(argv)
    if parsed is None:
        return 0
    args, training_args = parsed
    results = finetune(args, training_args)
    print(f"{args.task} model saved to {training_args.output_dir}; {results.split} {_summary(results)}")
    return 0


def evaluate_main(argv: list[str]) -> int:
    """`time-hub evaluate --task ud|ner|qa --model DIR --data FILE [--split dev] [--output results.json]`."""
    description = "Score a fine-tuned model on a data file; print the metrics, optionally save results.json."
    parsed = parse_command("time-hub evaluate", description, (EvaluateArguments,), argv)
    if parsed is None:
        return 0
    ((args,), _) = parsed
    results = evaluate(args)
    print(json.dumps(results.metrics, indent=2))
    print(f"{args.task} {args.split}: {_summary(results)}" + (f" -> {args.output}" if args.output else ""))
    return 0


def _summary(results: TaskResults) -> str:
    return ", ".join(f"{name} {value:.2f}" for name, value in results.metrics.items())


def format_comparison(rows: list[tuple[str, TaskResults]], reference: TaskResults, markdown: bool = False) -> str:
    """A table with one row per model and one column per metric of `reference`'s task.

    Each cell is `value (retention)`, retention = value / reference value in percent; `-` where a model lacks the
    metric, `n/a` where the reference value is 0.
    """
    tasks = {r.task for _, r in rows} | {reference.task}
    if len(tasks) > 1:
        raise ValueError(f"cannot compare results of different tasks: {sorted(tasks)}")
    metrics = list(reference.metrics)
    header = ["model", "params (M)", *metrics]
    table = []
    for name, result in rows:
        cells = [name, f"{result.num_parameters / 1e6:.1f}"]
        for metric in metrics:
            value, ref = result.metrics.get(metric), reference.metrics[metric]
            if value is None:
                cells.append("-")
            else:
                retention = f"{100.0 * value / ref:.1f}%" if ref else "n/a"
                cells.append(f"{value:.2f} ({retention})")
        table.append(cells)
    datasets = sorted({f"{r.dataset} [{r.split}]" for _, r in rows} | {f"{reference.dataset} [{reference.split}]"})
    note = f"{reference.task}: value (retention = value / reference {reference.model}) on {'; '.join(datasets)}"
    if len(datasets) > 1:
        note += "\nwarning: the results come from different data, so retention compares unlike things"
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
        lines += ["| " + " | ".join(cells) + " |" for cells in table]
    else:
        widths = [max(len(row[i]) for row in [header, *table]) for i in range(len(header))]
        lines = [
            "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()
            for row in [header, *table]
        ]
    return "\n".join([*lines, "", note])


@dataclass
class CompareArguments:
    results: list[str] = field(metadata={"help": "results.json files, one per model"})
    reference: str | None = field(default=None, metadata={"help": "results.json of the reference (default: first)"})
    markdown: bool = field(default=False, metadata={"help": "print a Markdown table"})


def compare_main(argv: list[str]) -> int:
    """`time-hub compare RESULTS.json... [--reference FILE] [--markdown]`."""
    description = "Compare results.json files: one row per model, retention vs the reference."
    parsed = parse_command("time-hub compare", description, (CompareArguments,), argv, "results", many=True)
    if parsed is None:
        return 0
    ((args,), _) = parsed
    paths = ([args.reference] if args.reference and args.reference not in args.results else []) + args.results
    loaded = [TaskResults.load(path) for path in paths]
    reference = TaskResults.load(args.reference) if args.reference else loaded[0]
    names = [r.model for r in loaded]
    if len(set(names)) < len(names):  # the same model on several files: tell the rows apart by file
        names = paths
    print(format_comparison(list(zip(names, loaded)), reference, args.markdown))
    return 0
