"""`time-hub release RECIPE`: build the hub -- every language x size of a release recipe through `time-hub run`.

    time-hub release recipes/release/cpu.yaml                        # all 16 languages on ../shared, 2 CPU cores
    time-hub release recipes/release/cpu.yaml --languages '[da, hu]' --finetune.max_steps 20   # a quick subset

For every language the teacher is fine-tuned once with the same recipes on the same data (the card's and the
leaderboard's retention), and for the sizes in `random_init_sizes` a random-init copy of the student too (the
distilled-minus-random gap). Each model is a `time-hub run` (resumable: finished stages are skipped, so an interrupted
build continues where it stopped). As each model finishes, its results, bench.json and card (README + assets, no
weights) are copied under `results_dir/<lang>/<size>/` and the leaderboard (`leaderboard.md` + `.json`) is rewritten
from the files under `results_dir` alone, so a build continued on another machine loses nothing that was committed:
there a model whose results are committed but whose run is not under `output_dir` is skipped (not rebuilt, and not
published: its weights are on the machine that built it; `--rebuild_committed true` builds it again). A failing
model (a missing or empty text file, an empty treebank, ...) is reported in one line and the others go on; the
summary lists what failed and why. With `publish: true` every model and its task models are pushed (one
repository each, a release tag, one collection) to the Hub at HF_ENDPOINT.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from time_hub.arguments import build, load_recipe, parse_command
from time_hub.atomic import write_json
from time_hub.encoder import random_init_copy
from time_hub.leaderboard import MODEL_FILE, write_leaderboard
from time_hub.pipeline import Pipeline, RunArguments, from_recipe, run, task_data, task_overrides
from time_hub.run_dir import RunDir
from time_hub.tasks.results import TaskResults

logger = logging.getLogger(__name__)
TEACHER, RANDOM_SUFFIX = "teacher", "-random"


@dataclass
class ReleaseArguments:
    models: dict = field(metadata={"help": "language -> sizes to build, e.g. {da: [m, s, xs], en: [s]}"})
    run_recipe: str = field(default="recipes/run/cpu/{lang}.yaml", metadata={"help": "'{lang}' is filled"})
    output_dir: str = field(default="runs/hub", metadata={"help": "the runs (weights; not committed)"})
    results_dir: str = field(default="benchmarks/results/hub", metadata={"help": "results, cards, leaderboard"})
    languages: list[str] | None = field(default=None, metadata={"help": "build only these of `models`"})
    random_init_sizes: list[str] = field(
        default_factory=lambda: ["s"], metadata={"help": "sizes whose random-init copy is fine-tuned too (the gap)"}
    )
    distill: dict = field(default_factory=dict, metadata={"help": "distillation overrides (--distill.KEY VALUE)"})
    finetune: dict = field(default_factory=dict, metadata={"help": "fine-tuning overrides (--finetune.KEY VALUE)"})
    run: dict = field(default_factory=dict, metadata={"help": "other RunArguments overrides (--run.KEY VALUE)"})
    organization: str = field(default="time", metadata={"help": "Hub namespace of every repository"})
    publish: bool = field(default=False, metadata={"help": "push every model (needs a token and HF_ENDPOINT's Hub)"})
    collection: str = field(default="TiME tiny encoders", metadata={"help": "Hub collection of the release"})
    tag: str | None = field(default=None, metadata={"help": "release tag (default v<time-hub version>)"})
    silver: dict = field(
        default_factory=dict,
        metadata={"help": "students' UD fine-tuning also reads the language's teacher's analysis of its text "
                  "(time_hub.tasks.silver); these keys override the UD recipe for it, e.g. {max_steps: 1000}; "
                  "empty: gold data only"},
    )  # fmt: skip
    rebuild_committed: bool = field(
        default=False, metadata={"help": "build again a model whose results are in results_dir but whose run is not"}
    )

    def __post_init__(self):
        for lang, sizes in self.models.items():
            if not isinstance(sizes, list) or not sizes or not all(isinstance(s, str) for s in sizes):
                raise ValueError(f"models: {lang}: expected a list of sizes, got {sizes!r}")
        unknown = sorted(set(self.languages or ()) - set(self.models))
        if unknown:
            raise ValueError(f"languages {unknown} are not in models ({', '.join(self.models)})")

    def plan(self) -> list[tuple[str, str]]:
        langs = self.languages or list(self.models)
        return [(lang, size) for lang in langs for size in self.models[lang]]


def run_arguments(args: ReleaseArguments, lang: str, size: str) -> RunArguments:
    """The language's run recipe for `size`, with the release's overrides and output folder."""
    recipe = args.run_recipe.format(lang=lang)
    values, sources = load_recipe(recipe)
    overrides = args.run | {
        "size": size,
        "output_dir": str(Path(args.output_dir) / f"time-{lang}-{size}"),
        "organization": args.organization,
        "distill": values.get("distill", {}) | args.distill,
        "finetune": values.get("finetune", {}) | args.finetune,
    }
    sources |= dict.fromkeys(overrides, "time-hub release")
    (run_args,) = build((RunArguments,), values | overrides, sources)
    return run_args


def fine_tune_reference(run_args: RunArguments, model: str, out: Path) -> list[Path]:
    """`model` fine-tuned with the run's recipes on the run's data, each task a skippable stage under `out`."""
    from transformers import TrainingArguments

    from time_hub.tasks.commands import FinetuneArguments, finetune

    pipeline, results = Pipeline(out), []
    for task in run_args.tasks:
        recipe, task_dir = run_args.finetune_recipe.format(task=task), RunDir(out).task(task)

        # a reference is scored, never published: no raw-text segmenter for it
        overrides = task_overrides(run_args.finetune, task) | ({"segmenter_steps": 0} if task == "ud" else {})

        def stage(task=task, recipe=recipe, task_dir=task_dir, overrides=overrides):
            train, dev = task_data(run_args, out, task)
            values = {"task": task, "model": model, "train": train, "dev": dev or train, "output_dir": str(task_dir)}
            finetune(*from_recipe((FinetuneArguments, TrainingArguments), recipe, **(overrides | values)))

        data = {key: value for key, value in vars(run_args).items() if key.startswith(f"{task}_")}  # files, splits
        inputs = [model, recipe, overrides, data]
        pipeline.stage(f"finetune-{task}", inputs, [task_dir / "results.json"], stage)
        results.append(task_dir / "results.json")
    return results


def copy_results(results: list[Path], target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for path in results:
        shutil.copyfile(path, target / f"{TaskResults.load(path).task}.json")


def build_model(args: ReleaseArguments, lang: str, size: str) -> None:
    """One language x size: the teacher's reference (once per language), the run, the random-init gap, the copies."""
    run_args = run_arguments(args, lang, size)
    distill = load_recipe(run_args.distill_recipe)[0] | run_args.distill  # the distillation as the run sees it
    teacher = distill.get("teacher_name_or_path")
    out, results = Path(args.output_dir), Path(args.results_dir) / lang
    # First (without the tasks when they need the teacher), so that unusable text is refused before the teacher is
    # fine-tuned.
    run(replace(run_args, tasks=[]) if args.silver else run_args)
    teacher_results = fine_tune_reference(run_args, teacher, out / f"{TEACHER}-{lang}")
    copy_results(teacher_results, results / TEACHER)
    if args.silver and "ud" in run_args.tasks:
        silver = {"silver_teacher": str(RunDir(out / f"{TEACHER}-{lang}").task("ud")),
                  "silver_text": distill.get("train_files"),
                  "silver_file": str(out / f"silver-{lang}.conllu")}  # fmt: skip
        ud = run_args.finetune.get("ud", {}) | args.silver | silver
        run_args = replace(run_args, finetune=run_args.finetune | {"ud": ud})
    # Again with the teacher's results: every stage that is up to date is skipped (without silver: all but the card).
    report = run(replace(run_args, teacher_results=[str(p) for p in teacher_results]))
    model_run = RunDir(run_args.output_dir)
    copy_results([model_run.task_results(task) for task in run_args.tasks], results / size)
    shutil.copyfile(model_run.bench, results / size / "bench.json")
    card = Path(report["card"]).parent
    shutil.rmtree(results / size / "card", ignore_errors=True)
    (results / size / "card").mkdir()
    shutil.copyfile(card / "README.md", results / size / "card" / "README.md")
    shutil.copytree(card / "assets", results / size / "card" / "assets")
    weights = sorted(model_run.best.glob("*.safetensors"))
    write_json(
        results / size / MODEL_FILE,
        {
            "repo_id": f"{args.organization}/time-{lang}-{size}",
            "teacher": teacher,
            "disk_bytes": sum(p.stat().st_size for p in weights),
            "run": str(model_run.root),
        },
    )
    if size in args.random_init_sizes:
        random_dir = random_init_copy(model_run.best, out / f"random-{lang}-{size}" / "encoder")
        random_results = fine_tune_reference(run_args, str(random_dir), random_dir.parent)
        copy_results(random_results, results / f"{size}{RANDOM_SUFFIX}")


def publish_model(args: ReleaseArguments, lang: str, size: str) -> list[str]:
    """Push the encoder and its task models; returns their repository ids."""
    from time_hub.publish.hub import PublishArguments, publish

    run_args = run_arguments(args, lang, size)
    teacher_dir = RunDir(Path(args.output_dir) / f"{TEACHER}-{lang}")
    common = {
        "run_dir": run_args.output_dir, "lang": lang, "size": size, "organization": args.organization,
        "license": run_args.license, "tag": args.tag, "collection": args.collection,
        "teacher_results": [str(teacher_dir.task(t) / "results.json") for t in run_args.tasks],
        "bench_model": str(RunDir(run_args.output_dir).best),  # a task model runs on this encoder: same speed
    }  # fmt: skip
    encoder_id = f"{args.organization}/time-{lang}-{size}"
    ids = [publish(PublishArguments(**common, base_model=run_args.base_model))["repo_id"]]
    for task in run_args.tasks:
        ids.append(publish(PublishArguments(**common, task=task, base_model=encoder_id))["repo_id"])
    return ids


def built_elsewhere(args: ReleaseArguments, lang: str, size: str) -> bool:
    """Its results are in `results_dir` (committed) but its run is not under `output_dir`: another machine built it."""
    committed = (Path(args.results_dir) / lang / size / MODEL_FILE).is_file()
    return committed and not (Path(args.output_dir) / f"time-{lang}-{size}").exists()


def release(args: ReleaseArguments) -> dict:
    plan, failures, seconds, published, elsewhere = args.plan(), {}, [], [], []
    for i, (lang, size) in enumerate(plan, 1):
        name = f"time-{lang}-{size}"
        if not args.rebuild_committed and built_elsewhere(args, lang, size):
            elsewhere.append(name)
            logger.info("[%d/%d] %s: its results are committed and its run is not here: skipped", i, len(plan), name)
            continue
        start = time.perf_counter()
        try:
            build_model(args, lang, size)
        except (ValueError, OSError, RuntimeError) as e:  # one model's bad input must not stop the others
            failures[name] = " ".join(str(e).split())
            logger.error("[%d/%d] %s failed: %s", i, len(plan), name, failures[name])
            continue
        finally:
            write_leaderboard(Path(args.results_dir))
        seconds.append(time.perf_counter() - start)
        eta = sum(seconds) / len(seconds) * (len(plan) - i)
        logger.info("[%d/%d] %s done in %.0f s; about %.0f min left", i, len(plan), name, seconds[-1], eta / 60)
    if args.publish:
        for lang, size in plan:
            if f"time-{lang}-{size}" not in failures and f"time-{lang}-{size}" not in elsewhere:
                published += publish_model(args, lang, size)
    built = len(plan) - len(failures) - len(elsewhere)
    report = {"built": built, "failed": failures, "elsewhere": elsewhere, "published": published}
    return report | {"seconds": sum(seconds)}


def main(argv: list[str]) -> int:
    parsed = parse_command("time-hub release", __doc__.strip().splitlines()[0], (ReleaseArguments,), argv, "config")
    if parsed is None:
        return 0
    ((args,), _) = parsed
    report = release(args)
    print(f"built {report['built']} of {report['built'] + len(report['failed'])} models in {report['seconds']:.0f} s")
    if report["elsewhere"]:
        print(f"skipped {len(report['elsewhere'])} built elsewhere (results committed, no run here; not published): "
              f"{', '.join(report['elsewhere'])} (--rebuild_committed true builds them again)")  # fmt: skip
    for name, reason in report["failed"].items():
        print(f"FAILED {name}: {reason}")
    for repo_id in report["published"]:
        print(f"published {repo_id}")
    print(f"leaderboard: {Path(args.results_dir) / 'leaderboard.md'}")
    return 1 if report["failed"] else 0
