"""`time-hub run RECIPE`: distill -> select -> fine-tune (+ dev scores) -> test evaluation -> bench -> card.

    time-hub run recipes/demo/run-da.yaml                   # the offline demo chain (2 CPU cores, ~12 minutes)
    time-hub run recipes/run/da.yaml --size xs              # a release recipe (GPU; data from the Hub)

A run recipe (`RunArguments` keys) names the distillation recipe and the data of each task; the stages write under
`output_dir`: the distillation run itself, `tasks/<task>/` (fine-tuned model + results.json), `bench/` and
`publish/<name>/` (the staged Hub repository with its card; pushing is `time-hub publish`, separately). Each stage
records a fingerprint of its inputs (recipe files, settings, the fingerprints of the stages it reads) in
`stages.json`: a stage whose outputs exist and whose fingerprint is unchanged is skipped, and an interrupted
distillation resumes from its last checkpoint. Under `accelerate launch` / torchrun every process distills (DDP); the
later stages run on the main process only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from time_hub.arguments import build, load_recipe, parse_command
from time_hub.atomic import write_json
from time_hub.cli import process_rank
from time_hub.run_dir import RunDir, Selection
from time_hub.tasks.registry import TASKS
from time_hub.tasks.results import TaskResults

logger = logging.getLogger(__name__)


@dataclass
class RunArguments:
    lang: str = field(metadata={"help": "ISO 639-1 code of the language"})
    distill_recipe: str = field(metadata={"help": "distillation recipe; '{size}' is replaced by --size"})
    size: str = field(default="xs", metadata={"help": "xs, s, m (fills '{size}' and names the model)"})
    output_dir: str | None = field(default=None, metadata={"help": "default: runs/time-<lang>-<size>"})
    tasks: list[str] = field(default_factory=lambda: ["ud", "ner"], metadata={"help": "of ud, ner, qa"})
    ud_train: str | None = field(default=None, metadata={"help": "CoNLL-U file, UD treebank folder or Hub repo"})
    ud_dev: str | None = field(default=None, metadata={"help": "default: the treebank's dev split"})
    ud_eval_fraction: float | None = field(
        default=None, metadata={"help": "split ud_train's sentences into train/dev by this fraction (no dev set)"}
    )
    ner_train: str | None = field(default=None, metadata={"help": "IOB2 file or e.g. unimelb-nlp/wikiann:da"})
    ner_dev: str | None = field(default=None, metadata={"help": "default: ner_train's dev split"})
    ner_train_sentences: int | None = field(default=None, metadata={"help": "first N training sentences (CPU)"})
    ner_eval_fraction: float | None = field(
        default=None, metadata={"help": "split ner_train's sentences into train/dev by this fraction (no dev set)"}
    )
    qa_train: str | None = field(default=None, metadata={"help": "SQuAD v1.1 JSON or Hub id (e.g. rajpurkar/squad)"})
    qa_dev: str | None = field(default=None, metadata={"help": "default: qa_train's dev split"})
    test_data: list[str] = field(
        default_factory=list, metadata={"help": "TASK=DATA pairs: also evaluate on a test set (results-test.json)"}
    )
    finetune_recipe: str = field(
        default="recipes/finetune/{task}.yaml", metadata={"help": "fine-tuning recipe per task ('{task}' filled)"}
    )
    bench_reference: str | None = field(default=None, metadata={"help": "model to compare speed with (teacher)"})
    bench_batch_sizes: list[int] = field(default_factory=lambda: [1, 32], metadata={"help": "batch sizes"})
    bench_repeats: int = field(default=10, metadata={"help": "timed batches per batch size"})
    teacher_results: list[str] = field(
        default_factory=list, metadata={"help": "the teacher's results.json files (retention in the card)"}
    )
    distill: dict = field(
        default_factory=dict, metadata={"help": "keys overriding the distillation recipe's (--distill.KEY VALUE)"}
    )
    finetune: dict = field(
        default_factory=dict,
        metadata={
            "help": "keys overriding every fine-tuning recipe's (--finetune.KEY VALUE); a key only some tasks "
            "take (segmenter_steps, doc_stride, ...) goes to those; a task's name holds its own keys ({ud: {...}})"
        },
    )
    license: str = field(default="apache-2.0", metadata={"help": "license of the weights (the teacher's terms apply)"})
    organization: str = field(default="time", metadata={"help": "Hub namespace of the card's repo id"})
    base_model: str | None = field(default=None, metadata={"help": "Hub id of the teacher (card metadata)"})
    datasets: list[str] = field(default_factory=list, metadata={"help": "Hub ids of the distillation corpus"})
    dataset_names: list[str] = field(default_factory=list, metadata={"help": "RESULTS_DATASET=NAME for the card"})
    data_names: dict = field(default_factory=dict, metadata={"help": "task -> public name of its data, for the card"})

    def __post_init__(self):
        unknown = set(self.tasks) - set(TASKS)
        if unknown:
            raise ValueError(f"tasks: unknown {sorted(unknown)}, choose from {list(TASKS)}")
        for task in self.tasks:
            if getattr(self, f"{task}_train") is None:
                raise ValueError(f"task {task!r} needs {task}_train")
        for pair in self.test_data:
            if pair.partition("=")[0] not in self.tasks:
                raise ValueError(f"test_data: expected TASK=DATA for one of {self.tasks}, got {pair!r}")
        self.distill_recipe = self.distill_recipe.format(size=self.size)
        if self.output_dir is None:
            self.output_dir = f"runs/time-{self.lang}-{self.size}"


def fingerprint(*parts) -> str:
    """sha256 of JSON-serialisable parts, with each existing file path replaced by its content hash."""

    def expand(value):
        if isinstance(value, str) and Path(value).is_file():
            return {"file": value, "sha256": hashlib.sha256(Path(value).read_bytes()).hexdigest()}
        if isinstance(value, dict):
            return {k: expand(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [expand(v) for v in value]
        return value

    return hashlib.sha256(json.dumps(expand(list(parts)), sort_keys=True, default=str).encode()).hexdigest()


class Pipeline:
    """Stages in order; each is skipped when its outputs exist and its fingerprint matches stages.json."""

    def __init__(self, output_dir: Path):
        self.output_dir = output_dir
        self.path = RunDir(output_dir).stages
        self.done = json.loads(self.path.read_text()) if self.path.is_file() else {}
        self.summary: list[dict] = []

    def stage(self, name: str, inputs: list, outputs: list[Path], run: Callable[[], object]) -> str:
        key = fingerprint(*inputs)
        if self.done.get(name, {}).get("fingerprint") == key and all(p.exists() for p in outputs):
            self.summary.append({"stage": name, "status": "skipped (up to date)", "seconds": 0.0})
            return key
        logger.info("stage %s: running", name)
        start = time.perf_counter()
        run()
        if process_rank() != 0:  # under DDP, rank 0 saves the outputs (maybe after this rank returns) and the record
            return key
        missing = [str(p) for p in outputs if not p.exists()]
        if missing:
            raise RuntimeError(f"stage {name} finished without writing {missing}")
        seconds = time.perf_counter() - start
        self.done[name] = {"fingerprint": key, "seconds": seconds}
        write_json(self.path, self.done)
        self.summary.append({"stage": name, "status": "ran", "seconds": seconds})
        return key


def from_recipe(classes: tuple[type, ...], recipe: str, check_models: bool = True, **values) -> tuple:
    """A stage's dataclasses: its recipe's keys, with the values this run sets (named as `time-hub run` in errors)."""
    recipe_values, sources = load_recipe(recipe)
    sources |= dict.fromkeys(values, "time-hub run")
    return build(classes, recipe_values | values, sources, check_models)


DEV_SPLIT_FILES = {"ud": "ud-dev.conllu", "ner": "ner-dev.iob2"}  # what _ud_data / _ner_data write when they split


def _ud_data(args: RunArguments, out: Path) -> tuple[str, str]:
    if args.ud_eval_fraction is None:
        return args.ud_train, args.ud_dev or args.ud_train
    from time_hub.tasks.conllu import resolve_conllu, split_conllu_file

    train, dev = out / "data" / "ud-train.conllu", out / "data" / DEV_SPLIT_FILES["ud"]
    split_conllu_file(resolve_conllu(args.ud_train, "train"), train, dev, eval_fraction=args.ud_eval_fraction)
    return str(train), str(dev)


def _ner_data(args: RunArguments, out: Path) -> tuple[str, str]:
    dev = args.ner_dev or args.ner_train
    if args.ner_train_sentences is None and args.ner_eval_fraction is None:
        return args.ner_train, dev
    from time_hub.tasks.conllu import split_sentences
    from time_hub.tasks.ner import load_ner

    def write(name: str, sentences) -> str:
        path = out / "data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as f:
            for s in sentences:
                f.write("".join(f"{token}\t{tag}\n" for token, tag in zip(s.tokens, s.tags)) + "\n")
        return str(path)

    sentences = load_ner(args.ner_train, "train")
    if args.ner_eval_fraction is not None:
        sentences, held_out = split_sentences(sentences, eval_fraction=args.ner_eval_fraction)
        dev = write(DEV_SPLIT_FILES["ner"], held_out)
    sentences = sentences[: args.ner_train_sentences]
    return write(f"ner-train-{len(sentences)}.iob2", sentences), dev


def leave_distributed() -> int:
    """After a distributed distillation every rank leaves the process group, so that rank 0 can run the later stages
    alone (their Trainers would otherwise wait for ranks that have finished); returns this process's rank."""
    import torch.distributed as dist

    rank = process_rank()
    if not dist.is_initialized():
        return rank
    dist.barrier()  # rank 0 has saved the student
    dist.destroy_process_group()
    if rank == 0:
        from accelerate.state import AcceleratorState

        for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK"):
            os.environ.pop(name, None)
        AcceleratorState._reset_state(reset_partial_state=True)
    return rank


def task_data(args: RunArguments, out: Path, task: str) -> tuple[str, str | None]:
    """(train, dev) files of `task` as the run fine-tunes on them (split or cut under `out/data` where asked)."""
    if task == "ud":
        return _ud_data(args, out)
    if task == "ner":
        return _ner_data(args, out)
    return args.qa_train, args.qa_dev


def _data_names(args: RunArguments, out: Path) -> list[str]:
    """RESULTS_DATASET=NAME pairs for the card: each task's dev file by its public name and the part of it used."""
    pairs = list(args.dataset_names)
    for task, name in args.data_names.items():
        fraction = getattr(args, f"{task}_eval_fraction", None)
        if fraction is not None:
            pairs.append(f"{out / 'data' / DEV_SPLIT_FILES[task]}={name} ({fraction:.0%} of dev, not trained on)")
        else:
            pairs.append(f"{getattr(args, f'{task}_dev') or getattr(args, f'{task}_train')}={name}")
    return pairs


def task_overrides(overrides: dict, task: str) -> dict:
    """`--finetune.KEY` values for one task's recipe: a key only some tasks take goes to those tasks only, and a key
    named after a task holds that task's own values (e.g. `finetune: {ud: {max_steps: 1000}}`)."""
    from time_hub.tasks.commands import TASK_OPTIONS
    from time_hub.tasks.registry import task_spec

    options = task_spec(task).options
    shared = {k: v for k, v in overrides.items() if k not in TASKS and (k not in TASK_OPTIONS or k in options)}
    return shared | overrides.get(task, {})


def run(args: RunArguments) -> dict:
    from transformers import TrainingArguments

    from time_hub.distill.command import DATACLASSES, distill
    from time_hub.distill.select import SelectArguments, select
    from time_hub.tasks.commands import EvaluateArguments, FinetuneArguments, evaluate, finetune

    out, run = Path(args.output_dir), RunDir(args.output_dir)
    # Every stage's recipe, with this run's overrides, must parse before anything is written (keys, types, ranges,
    # devices: a GPU recipe on a CPU machine stops here with one line); the models it names are made by earlier stages.
    from_recipe(DATACLASSES, args.distill_recipe, check_models=False, **(args.distill | {"output_dir": str(out)}))
    for task in args.tasks:
        stage_values = {"task": task, "model": str(run.best), "train": "-", "output_dir": str(run.task(task))}
        from_recipe((FinetuneArguments, TrainingArguments), args.finetune_recipe.format(task=task), check_models=False,
                    **(task_overrides(args.finetune, task) | stage_values))  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    pipeline = Pipeline(out)
    distill_values = load_recipe(args.distill_recipe)[0] | args.distill

    def distill_stage():
        values = args.distill | {"output_dir": str(out)}
        if any(out.glob("checkpoint-*")):
            values["resume_from_checkpoint"] = "last"
        config, student_args, corpus_args = from_recipe(DATACLASSES, args.distill_recipe, **values)
        distill(config, student_args, corpus_args, recipe=distill_values | values)

    distilled = pipeline.stage("distill", [distill_values], [out / "model.safetensors"], distill_stage)
    if leave_distributed() != 0:
        return {"stages": pipeline.summary}
    selected = pipeline.stage(
        "select", [distilled], [out / Selection.FILE, run.best], lambda: select(SelectArguments(str(out)))
    )

    task_keys, results = {}, []
    for task in args.tasks:
        recipe = args.finetune_recipe.format(task=task)
        task_dir = run.task(task)
        inputs = [
            selected,
            recipe,
            task_overrides(args.finetune, task),
            asdict(args)[f"{task}_train"],
            asdict(args).get(f"{task}_dev"),
        ]
        inputs += [
            args.ud_eval_fraction if task == "ud" else None,
            args.ner_train_sentences if task == "ner" else None,
            args.ner_eval_fraction if task == "ner" else None,
        ]

        def finetune_stage(task=task, recipe=recipe, task_dir=task_dir):
            train, dev = task_data(args, out, task)
            values = {"task": task, "model": str(run.best), "train": train, "dev": dev or train,
                      "output_dir": str(task_dir)}  # fmt: skip
            overrides = task_overrides(args.finetune, task) | values
            finetune(*from_recipe((FinetuneArguments, TrainingArguments), recipe, **overrides))

        task_keys[task] = pipeline.stage(f"finetune-{task}", inputs, [task_dir / "results.json"], finetune_stage)
        results.append(task_dir / "results.json")
        test = dict(pair.split("=", 1) for pair in args.test_data).get(task)
        if test:
            evaluate_args = EvaluateArguments(task, str(task_dir), test, "test", str(task_dir / "results-test.json"))
            task_keys[task] = pipeline.stage(
                f"evaluate-{task}", [task_keys[task], test], [task_dir / "results-test.json"],
                lambda evaluate_args=evaluate_args: evaluate(evaluate_args),
            )  # fmt: skip
            results.append(task_dir / "results-test.json")

    reference = args.bench_reference or distill_values.get("teacher_name_or_path")
    bench_dir = run.bench_dir

    teacher_ner = [p for p in args.teacher_results if TaskResults.load(p).task == "ner"]  # plotted against speed

    def bench_stage():
        from time_hub.bench.command import BenchArguments, bench, write_outputs
        from time_hub.bench.measure import TimingSettings

        quality = [f"{run.best}={p}" for p in results if TaskResults.load(p).task == "ner"]
        quality += [f"{reference}={p}" for p in teacher_ner]
        bench_args = BenchArguments(
            models=[reference, str(run.best)],
            output_dir=str(bench_dir),
            lang=args.lang,
            batch_sizes=args.bench_batch_sizes,
            tokenizer=str(run.best),
            reference=reference,
            quality=quality,
            sentences_file=(distill_values.get("train_files") or [None])[0],  # the language's own text, when local
        )
        write_outputs(bench(bench_args, TimingSettings(repeats=args.bench_repeats)), bench_args)

    bench_inputs = [selected, task_keys, reference, args.bench_batch_sizes, args.bench_repeats, teacher_ner]
    benched = pipeline.stage("bench", bench_inputs, [run.bench], bench_stage)

    from time_hub.publish.hub import PublishArguments, repo_name, stage

    name = repo_name(args.organization, args.lang, args.size).split("/")[1]
    publish_args = PublishArguments(
        run_dir=str(out),
        lang=args.lang,
        size=args.size,
        organization=args.organization,
        base_model=args.base_model,
        teacher_results=args.teacher_results,
        bench_model=str(run.best),
        datasets=args.datasets,
        dataset_names=_data_names(args, out),
        license=args.license,
        dry_run=True,
    )
    pipeline.stage(
        "card",
        [
            selected,
            benched,
            task_keys,
            args.teacher_results,
            args.base_model,
            args.organization,
            args.dataset_names,
            args.data_names,
            args.license,
        ],  # fmt: skip
        [run.publish(name) / "README.md"],
        lambda: stage(publish_args),
    )
    return {"stages": pipeline.summary, "output_dir": str(out), "card": str(run.publish(name) / "README.md")}


def summary_text(report: dict, teacher_results: list[str] = ()) -> str:
    """Stage times, selection, task scores (with retention vs the teacher's results of the same task), speed-ups."""
    from time_hub.bench.report import load_bench

    out, run = Path(report["output_dir"]), RunDir(report["output_dir"])
    teacher = {result.task: result.metrics for result in map(TaskResults.load, teacher_results)}
    lines = ["| stage | status | seconds |", "|---|---|---|"]
    lines += [f"| {s['stage']} | {s['status']} | {s['seconds']:.0f} |" for s in report["stages"]]
    selection = Selection.load(out)
    lines += ["", f"held-out relation loss: {selection.best['loss']:.4f} ({selection.best['checkpoint']}); "
              f"random-init student: {selection.random_init['loss']:.4f}"]  # fmt: skip
    for path in run.all_task_results():
        if path.name != "results.json":
            continue
        results = TaskResults.load(path)
        reference = teacher.get(results.task, {})
        metrics = ", ".join(
            f"{k} {v:.2f}" + (f" ({100 * v / reference[k]:.1f}% of the teacher)" if reference.get(k) else "")
            for k, v in results.metrics.items()
            if k in TASKS[results.task].summary_metrics
        )
        lines.append(f"{results.task}: {metrics}")
    bench = load_bench(run.bench)
    for batch, ratio in bench["ratios"].get(str(run.best), {}).items():
        lines.append(f"batch {batch}: {ratio['latency']:.2f}x lower latency, {ratio['throughput']:.2f}x throughput vs "
                     f"{bench['settings']['reference']}")  # fmt: skip
    lines.append(f"card: {report['card']} (push with `time-hub publish {out}`)")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parsed = parse_command("time-hub run", __doc__.strip().splitlines()[0], (RunArguments,), argv, "config")
    if parsed is None:
        return 0
    ((args,), _) = parsed
    start = time.perf_counter()
    report = run(args)
    if "card" in report:
        print(summary_text(report, args.teacher_results))
        print(f"total: {time.perf_counter() - start:.0f} s")
    return 0
