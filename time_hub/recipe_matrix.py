"""`time-hub recipes`: the release matrix (list), checking every recipe file (validate), costing one (plan), and
writing the recipes of a new language (new). Loading one recipe into dataclasses is `time_hub.arguments`'s job.

    time-hub recipes list
    time-hub recipes validate [FILE ...]          # default: every recipe under recipes/
    time-hub recipes plan recipes/distill/da/m.yaml [--gpu H100 --mfu 0.4]
    time-hub recipes new --lang mt --name Maltese --treebank UD_Maltese-MUDT --flores mlt_Latn

Recipe kinds by folder: `distill/` and `demo/distill-*` (DistillationConfig, StudentArguments, CorpusArguments; the
per-size `distill/base-*.yaml` are their `defaults`), `finetune/` and `demo/finetune-*` (FinetuneArguments and
TrainingArguments), `run/` and `demo/run-*` (RunArguments of `time-hub run`), `accelerate/` (accelerate configs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from time_hub.arguments import RecipeError, load_recipe, parse, parse_command
from time_hub.run_dir import RunConfig, RunDir, Selection

ROOT = Path("recipes")
SIZES = ("xs", "s", "m")
# Peak dense bf16 tensor throughput (TFLOP/s) of GPUs `plan` can cost a run on.
GPU_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0}
# `time-hub distill` output files that make a checkpoint: weights (4 B/param), Adam moments (8 B/param) and a little.
CHECKPOINT_BYTES_PER_PARAM = 12


def kind_of(path: Path) -> str | None:
    parts, name = path.parts, path.name
    if "accelerate" in parts:
        return "accelerate"
    if "release" in parts:
        return "release"
    if "distill" in parts and not name.startswith("base-") or name.startswith("distill-"):
        return "distill"
    if "finetune" in parts or name.startswith("finetune-"):
        return "finetune"
    if "run" in parts or name.startswith("run-"):
        return "run"
    return None


def _dataclasses(kind: str) -> tuple[type, ...]:
    if kind == "distill":
        from time_hub.distill.command import DATACLASSES

        return DATACLASSES
    if kind == "finetune":
        from transformers import TrainingArguments

        from time_hub.tasks.commands import FinetuneArguments

        return FinetuneArguments, TrainingArguments
    if kind == "release":
        from time_hub.release import ReleaseArguments

        return (ReleaseArguments,)
    from time_hub.pipeline import RunArguments

    return (RunArguments,)


# Values a recipe cannot know (they are given at run time by `time-hub run` or the command line).
_RUNTIME = {"finetune": ["--model", "<encoder>", "--train", "<data>", "--output_dir", "<run>"]}


def _device_free(kind: str) -> list[str]:
    """TrainingArguments refuses bf16 where no GPU is visible; release recipes are bf16 and must validate anywhere
    (CI, laptops), so off-GPU they are parsed as if on CPU. Whether the device fits is the run's concern."""
    import torch

    return [] if kind in ("run", "release") or torch.cuda.is_available() else ["--use_cpu", "true"]


def _local_paths(value) -> list[str]:
    if isinstance(value, dict):  # a stage's overrides (time-hub run's `distill:`)
        return [path for v in value.values() for path in _local_paths(v)]
    values = value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, str) and v.startswith(("./", "../", "/", "recipes/", "benchmarks/"))]


def validate_file(path: Path) -> list:
    """Parse one recipe into its dataclasses (RecipeError naming file and key); check the local files it names."""
    kind = kind_of(path)
    if kind is None:
        raise RecipeError(
            f"{path}: not a known recipe kind (distill/, finetune/, run/, release/, accelerate/ or demo/*-)"
        )
    if kind == "accelerate":
        data = yaml.safe_load(path.read_text())
        if not isinstance(data, dict) or "compute_environment" not in data or "distributed_type" not in data:
            raise RecipeError(f"{path}: an accelerate config needs compute_environment and distributed_type")
        return [data]
    values, sources = load_recipe(path)
    argv = ["--config", str(path), *_RUNTIME.get(kind, []), *_device_free(kind)]
    parsed, _ = parse(_dataclasses(kind), argv, check_models=False)  # a model may be another recipe's output
    for key, value in values.items():
        if key in ("output_dir", "results_dir"):  # written by the run
            continue
        for local in _local_paths(value):
            target = local.replace("{size}", "xs").replace("{task}", "ud")
            if "{" not in target and not Path(target).exists():
                raise RecipeError(
                    f"{sources[key]}: key '{key}': {local} does not exist (paths are relative to the repo)"
                )
    if kind == "run":
        (args,) = parsed
        for size in SIZES if "{size}" in values["distill_recipe"] else [args.size]:
            validate_file(Path(values["distill_recipe"].format(size=size)))
        for task in args.tasks:
            validate_file(Path(args.finetune_recipe.format(task=task)))
    return list(parsed)


def all_recipes(root: Path = ROOT) -> list[Path]:
    return sorted(p for p in root.rglob("*.yaml") if kind_of(p) and not p.name.startswith("base-"))


def validate(paths: list[Path]) -> list[tuple[Path, str | None]]:
    results = []
    for path in paths:
        try:
            validate_file(path)
            results.append((path, None))
        except RecipeError as e:
            results.append((path, str(e)))
    return results


def matrix(root: Path = ROOT, runs: Path = Path("runs")) -> str:
    """Language x size table: the distill recipe's state, the language's run recipe, and progress of its run."""
    langs = sorted(p.name for p in (root / "distill").iterdir() if p.is_dir())
    lines = ["| lang | " + " | ".join(SIZES) + " | run recipe |", "|---|" + "---|" * (len(SIZES) + 1)]
    for lang in langs:
        cells = []
        for size in SIZES:
            path = root / "distill" / lang / f"{size}.yaml"
            if not path.exists():
                cells.append("missing")
                continue
            ((_, error),) = validate([path])
            done = RunDir(runs / f"time-{lang}-{size}")
            state = "carded" if done.staged_cards() else "selected" if done.best.is_dir() else ""
            cells.append("INVALID" if error else f"ok{', ' + state if state else ''}")
        run_recipe = root / "run" / f"{lang}.yaml"
        cells.append("yes" if run_recipe.exists() else "missing")
        lines.append(f"| {lang} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def runs_table(runs: Path = Path("runs")) -> str:
    """Every distillation run under `runs/` (the matrix's, the demo's, any other): how far it got."""
    found = sorted(
        {p.parent for p in runs.glob("*/" + RunConfig.FILE)} | {p.parent for p in runs.glob("*/*/" + RunConfig.FILE)}
    )
    if not found:
        return f"no distillation runs under {runs}/"
    lines = ["| run | distilled | selected | tasks | card |", "|---|---|---|---|---|"]
    for folder in found:
        run = RunDir(folder)
        max_steps = RunConfig.load(folder).recipe.get("max_steps")
        steps = [int(p.name.split("-")[-1]) for p in run.checkpoints()]
        final = (folder / "model.safetensors").is_file()
        distilled = f"{max(steps, default=0)}/{max_steps if max_steps is not None else '?'} steps" + (
            ", final" if final else ""
        )
        tasks = ", ".join(p.parent.name for p in run.all_task_results() if p.name == "results.json") or "-"
        carded = ", ".join(card.parent.name for card in run.staged_cards()) or "-"
        lines.append(
            f"| {folder} | {distilled} | {'yes' if Selection.exists(folder) else 'no'} | {tasks} | {carded} |"
        )
    return "\n".join(lines)


class _VocabOnly:
    """The tokenizer facts `student_config` reads, from the teacher's config (plans need no tokenizer download)."""

    def __init__(self, config):
        self.vocab_size, self.model_max_length = config.vocab_size, config.max_position_embeddings
        self.pad_token_id = config.pad_token_id
        self.bos_token_id = self.cls_token_id = config.bos_token_id
        self.eos_token_id = self.sep_token_id = config.eos_token_id

    def __len__(self) -> int:
        return self.vocab_size


def plan(path: Path, gpu: str = "H100", mfu: float = 0.4) -> dict:
    """Student size, tokens seen, training FLOPs, GPU-hours on `gpu` at `mfu`, checkpoint disk of a distill recipe."""
    import torch
    from transformers import AutoConfig, AutoModel

    from time_hub.bench.models import CONFIGS
    from time_hub.distill.student import student_config

    args, student_args, corpus = validate_file(path)
    name = args.teacher_name_or_path
    teacher = CONFIGS.get(name.split("/")[-1]) or AutoConfig.from_pretrained(name)
    config = student_config(teacher, _VocabOnly(teacher), student_args.student_shape)
    with torch.device("meta"):
        student = AutoModel.from_config(config, add_pooling_layer=False)
    params = student.num_parameters()
    embeddings = student.get_input_embeddings().weight.numel()
    layer = args.teacher_layer or teacher.num_hidden_layers
    teacher_layer_params = 12 * teacher.hidden_size**2 * layer  # attention 4h^2 + FFN 8h^2 per layer (FFN = 4h)
    batch = args.per_device_train_batch_size * args.gradient_accumulation_steps * max(args.world_size, 1)
    tokens = args.max_steps * batch * corpus.max_seq_length
    # Student forward + backward (6 N), frozen truncated teacher forward only (2 N); embeddings are lookups.
    flops = tokens * (6 * (params - embeddings) + 2 * teacher_layer_params)
    checkpoints = max(args.max_steps // args.save_steps, 1) if args.save_strategy != "no" else 1
    if args.save_total_limit:
        checkpoints = min(checkpoints, args.save_total_limit)
    return {
        "recipe": str(path),
        "student_parameters": params,
        "embedding_parameters": embeddings,
        "teacher_layers_run": layer,
        "batch_size": batch,
        "tokens_seen": tokens,
        "flops": flops,
        "gpu": gpu,
        "mfu": mfu,
        "gpu_hours": flops / (GPU_TFLOPS[gpu] * 1e12 * mfu) / 3600,
        "checkpoints": checkpoints,
        "checkpoint_disk_gb": checkpoints * params * CHECKPOINT_BYTES_PER_PARAM / 1e9,
    }


DISTILL_TEMPLATE = """\
# TiME {size} student for {name} ({lang}): the shared settings are in ../base-{size}.yaml.
# Corpus: CulturaX ({lang}), streamed as parquet (datasets 5.x runs no loading scripts; gated: accept its terms and log
# in). Held-out text for checkpoint selection: FLORES+ dev ({flores}), parquet as well.
defaults: ../base-{size}.yaml
dataset_name: uonlp/CulturaX
dataset_config: {lang}
validation_dataset_name: openlanguagedata/flores_plus
validation_dataset_config: {flores}
validation_dataset_split: dev
output_dir: runs/time-{lang}-{size}
"""

RUN_TEMPLATE = """\
# `time-hub run recipes/run/{lang}.yaml --size xs|s|m`: distill -> select -> fine-tune -> bench -> card for {name}.
# Fine-tuning data: {treebank} (a UD release folder with *-ud-{{train,dev}}.conllu, or a Hub repository of those raw
# files; the script-based universal_dependencies dataset does not load in datasets 5.x), WikiANN ({lang}, parquet).
lang: {lang}
distill_recipe: recipes/distill/{lang}/{{size}}.yaml
tasks: [{tasks}]
ud_train: data/ud/{treebank}
ner_train: unimelb-nlp/wikiann:{lang}
{qa}base_model: FacebookAI/xlm-roberta-large
datasets: [uonlp/CulturaX]
"""


CPU_RUN_TEMPLATE = """\
# Offline CPU run for {name}: `time-hub run recipes/run/cpu/{lang}.yaml --size m|s|xs` (the operating points of
# recipes/distill/cpu/: the teacher's bottom 6/3/2 layers, no distillation step, selected on held-out {name} text).
# Written by `time-hub recipes new`; UD fine-tuning with recipes/finetune/ud-cpu.yaml on {ud_text}.
lang: {lang}
distill_recipe: recipes/distill/cpu/{{size}}.yaml
distill:
  train_files: [{text}]
tasks: [ud]
{ud_lines}finetune_recipe: recipes/finetune/{{task}}-cpu.yaml
data_names:
  ud: universal_dependencies/{treebank}
base_model: intfloat/multilingual-e5-small
license: mit
"""


def cpu_run_fields(text: str, ud: str, ud_dev: str | None) -> dict[str, str]:
    """The offline branch's local files, checked: text to select on, a treebank (with a dev file, or split 80/20)."""
    for key, path in (("text", text), ("ud", ud), ("ud_dev", ud_dev)):
        if path is not None and not Path(path).is_file():
            raise ValueError(f"--{key} {path}: no such file")
    if ud_dev:
        return {
            "text": text,
            "ud_text": f"{ud}, scored on {ud_dev}",
            "ud_lines": f"ud_train: {ud}\nud_dev: {ud_dev}\n",
        }
    lines = f"ud_train: {ud}\nud_eval_fraction: 0.2\n"
    return {"text": text, "ud_text": f"80% of {ud}, scored on the other 20%", "ud_lines": lines}


def new_language(
    lang: str,
    name: str,
    treebank: str,
    flores: str,
    qa: str | None,
    root: Path = ROOT,
    offline: dict[str, str] | None = None,
) -> list[Path]:
    """Write distill/<lang>/{xs,s,m}.yaml and run/<lang>.yaml (and, with `offline` (`cpu_run_fields`),
    run/cpu/<lang>.yaml); refuses to overwrite."""
    if not re.fullmatch(r"[a-z]{2,3}", lang):
        raise ValueError(f"--lang must be an ISO 639 code like 'mt', got {lang!r}")
    if not re.fullmatch(r"UD_[A-Za-z_]+-[A-Za-z0-9]+", treebank):
        raise ValueError(f"--treebank must be a UD treebank name like UD_Maltese-MUDT, got {treebank!r}")
    files = {root / "distill" / lang / f"{size}.yaml": DISTILL_TEMPLATE for size in SIZES}
    files[root / "run" / f"{lang}.yaml"] = RUN_TEMPLATE
    if offline:
        files[root / "run" / "cpu" / f"{lang}.yaml"] = CPU_RUN_TEMPLATE
    existing = [str(p) for p in files if p.exists()]
    if existing:
        raise ValueError(f"already there (not overwritten): {existing}")
    fields = {"lang": lang, "name": name, "treebank": treebank, "flores": flores, **(offline or {})}
    fields["tasks"] = "ud, ner, qa" if qa else "ud, ner"
    fields["qa"] = f"qa_train: {qa}\n" if qa else ""
    for path, template in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        size = path.stem if path.parent.name == lang else ""
        path.write_text(template.format(size=size, **fields), encoding="utf-8")
    return list(files)


@dataclass
class ListArguments:
    """The language x size matrix, then every distillation run under runs/ and how far it got."""

    runs: str = field(default="runs", metadata={"help": "folder of the runs"})


@dataclass
class ValidateArguments:
    """Parse and check recipe files (default: every recipe under recipes/)."""

    files: list[str] = field(default_factory=list, metadata={"help": "recipe files"})


@dataclass
class PlanArguments:
    """Parameters, tokens, FLOPs, GPU-hours and checkpoint disk of a distill recipe."""

    recipe: str = field(metadata={"help": "distill recipe"})
    gpu: str = field(default="H100", metadata={"help": f"GPU to cost on: {', '.join(sorted(GPU_TFLOPS))}"})
    mfu: float = field(default=0.4, metadata={"help": "assumed model FLOPs utilisation"})

    def __post_init__(self):
        if self.gpu not in GPU_TFLOPS:
            raise ValueError(f"gpu must be one of {sorted(GPU_TFLOPS)}, got {self.gpu!r}")
        if not 0 < self.mfu <= 1:
            raise ValueError(f"mfu must be in (0, 1], got {self.mfu}")


@dataclass
class NewArguments:
    """Write the recipes of a new language."""

    lang: str = field(metadata={"help": "ISO 639-1 code"})
    name: str = field(metadata={"help": "the language's English name"})
    treebank: str = field(metadata={"help": "UD treebank, e.g. UD_Maltese-MUDT"})
    flores: str = field(metadata={"help": "FLORES+ config for held-out text, e.g. mlt_Latn"})
    qa: str | None = field(default=None, metadata={"help": "Hub id of a SQuAD-format QA set, if the language has one"})
    text: str | None = field(
        default=None, metadata={"help": "offline: local running text (writes run/cpu/<lang>.yaml)"}
    )
    ud: str | None = field(default=None, metadata={"help": "offline: local CoNLL-U to fine-tune on (with --text)"})
    ud_dev: str | None = field(default=None, metadata={"help": "offline: its dev file (default: an 80/20 split)"})

    def __post_init__(self):
        if (self.text is None) != (self.ud is None):
            raise ValueError("the offline branch needs both --text and --ud")


# subcommand -> (its arguments, the key its leading values fill, whether several)
SUBCOMMANDS = {
    "list": (ListArguments, "runs", False),
    "validate": (ValidateArguments, "files", True),
    "plan": (PlanArguments, "recipe", False),
    "new": (NewArguments, None, False),
}


def main(argv: list[str]) -> int:
    description = " ".join(__doc__.split("\n\n")[0].split())
    if not argv or argv[0] not in SUBCOMMANDS:
        parse_command("time-hub recipes {list,validate,plan,new}", description, _classes(), ["--help"])
        if argv and argv[0] not in ("-h", "--help"):
            raise RecipeError(f"the command line: unknown recipes command {argv[0]!r} ({', '.join(SUBCOMMANDS)})")
        return 0
    command = argv[0]
    cls, positional, many = SUBCOMMANDS[command]
    parsed = parse_command(f"time-hub recipes {command}", cls.__doc__, (cls,), argv[1:], positional, many,
                           empty_is_help=command in ("plan", "new"))  # fmt: skip
    if parsed is None:
        return 0
    ((args,), _) = parsed
    if command == "list":
        print(matrix(runs=Path(args.runs)))
        print()
        print(runs_table(Path(args.runs)))
    elif command == "validate":
        results = validate([Path(f) for f in args.files] or all_recipes())
        for path, error in results:
            print(f"{'ok ' if error is None else 'ERR'}  {error or path}")
        failed = sum(error is not None for _, error in results)
        print(f"{len(results) - failed} valid, {failed} invalid")
        return 1 if failed else 0
    elif command == "plan":
        p = plan(Path(args.recipe), args.gpu, args.mfu)
        print(f"{p['recipe']}: student {p['student_parameters'] / 1e6:.1f}M parameters "
              f"({p['embedding_parameters'] / 1e6:.1f}M embeddings); teacher run to layer {p['teacher_layers_run']}\n"
              f"tokens seen: {p['tokens_seen'] / 1e9:.1f}B (batch {p['batch_size']}); training compute "
              f"{p['flops']:.2e} FLOPs = {p['gpu_hours']:.0f} {p['gpu']} GPU-hours at {p['mfu']:.0%} MFU\n"
              f"checkpoints: {p['checkpoints']} x {p['checkpoint_disk_gb'] / p['checkpoints']:.1f} GB "
              f"(weights + Adam state) = {p['checkpoint_disk_gb']:.0f} GB")  # fmt: skip
    else:
        offline = cpu_run_fields(args.text, args.ud, args.ud_dev) if args.text else None
        written = new_language(args.lang, args.name, args.treebank, args.flores, args.qa, offline=offline)
        print("wrote " + ", ".join(map(str, written)))
        print(f"next: time-hub recipes validate {' '.join(map(str, written))}")
    return 0


def _classes() -> tuple[type, ...]:
    return tuple(cls for cls, _, _ in SUBCOMMANDS.values())
