"""Model cards: the run's JSON files -> `TimeModelCardData` (Hub metadata + body, typed) -> the Jinja template.

Sources, all optional except the model folder and the distillation run: `run_config.json`, `selection.json`,
`trainer_state.json` and `card_data.json` (written by `CardDataCallback`) of the distillation run; `results.json`
files of downstream evaluations (this model's, and the teacher's for retention); a `bench.json`. Every source file
is published under `provenance/`, and the card names them, so each number in a card can be traced to a file.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import safetensors
from huggingface_hub import EvalResult
from transformers import AutoConfig

from time_hub.bench.report import load_bench, pyplot
from time_hub.card_data import BOOKKEEPING, COUNTRY_ENV
from time_hub.publish.model_card_data import (
    CheckpointSelection,
    Distillation,
    FineTuning,
    ResultRow,
    Speed,
    SpeedRow,
    StudentShape,
    Teacher,
    TimeModelCardData,
    render,
)
from time_hub.run_dir import DistillationSettings, RunConfig, RunDir, Selection
from time_hub.tasks.registry import ENCODER_PIPELINE_TAG, TASKS
from time_hub.tasks.results import TaskResults

LANGUAGES = {
    "en": "English", "de": "German", "fr": "French", "es": "Spanish", "it": "Italian", "nl": "Dutch", "da": "Danish",
    "sv": "Swedish", "fi": "Finnish", "et": "Estonian", "hu": "Hungarian", "pl": "Polish", "cs": "Czech",
    "el": "Greek", "ga": "Irish", "ur": "Urdu", "mt": "Maltese", "sw": "Swahili",
}  # fmt: skip
TAGS = ["time", "distillation", "minilmv2", "tiny-encoder"]


@dataclass
class CardInputs:
    run_dir: Path
    model_dir: Path
    repo_id: str
    language: list[str]
    license: str = "apache-2.0"
    base_model: str | None = None
    task: str | None = None
    results: list[Path] = field(default_factory=list)
    teacher_results: list[Path] = field(default_factory=list)
    bench: Path | None = None
    bench_model: str | None = None
    datasets: list[str] = field(default_factory=list)
    dataset_names: dict[str, str] = field(default_factory=dict)  # results.json "dataset" -> Hub id or public name

    def dataset(self, results: TaskResults) -> str:
        return self.dataset_names.get(results.dataset, results.dataset)


INIT_TEXT = {
    "random": "at random (the paper's choice)",
    "teacher": "from the teacher (embeddings and evenly spaced layers copied where shapes match)",
    "prune": "from the teacher (`student_init: prune`: its layers, heads, FFN neurons and hidden size cut out by "
    "`time-hub prune`, see prune_report.json of the run)",
}


def extra_terms_text(settings: DistillationSettings) -> str:
    """The loss terms next to the main relations, in words; "" when there are none."""
    parts = []
    if settings.extra_relation_layers:
        pairs = ", ".join(f"{t}/{s}" for t, s in settings.extra_relation_layers)
        parts.append(f"the same relations at teacher/student layers {pairs} (weight {settings.extra_relation_weight})")
    if settings.hidden_layers:
        pairs = ", ".join(f"{t}/{s}" for t, s in settings.hidden_layers)
        parts.append(
            f"hidden-state MSE at teacher/student layers {pairs} through a learned projection "
            f"(weight {settings.hidden_loss_weight})"
        )
    return "; plus " + " and ".join(parts) if parts else ""


def _read_json(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None


def count_weights(model_dir: Path) -> tuple[int, int]:
    """(all parameters, embedding parameters) from the safetensors headers, without loading the model."""
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise ValueError(f"{model_dir}: no *.safetensors weights (publishing requires safetensors)")
    total = embeddings = 0
    for path in files:
        with safetensors.safe_open(str(path), "pt") as f:
            for name in f.keys():
                size = 1
                for dim in f.get_slice(name).get_shape():
                    size *= dim
                total += size
                embeddings += size if "embeddings" in name else 0
    return total, embeddings


def _curve(card_data: dict | None, run_dir: Path) -> list[dict]:
    if card_data and card_data.get("curve"):
        return card_data["curve"]
    state = _read_json(run_dir / RunDir.TRAINER_STATE) or {}
    return [e for e in state.get("log_history", []) if "loss" in e or "eval_loss" in e]


def plot_curve(curve: list[dict], path: Path) -> Path | None:
    points = {k: [(e["step"], e[k]) for e in curve if k in e] for k in ("loss", "eval_loss")}
    if not any(points.values()):
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for key, label in (("loss", "training relation loss"), ("eval_loss", "held-out relation loss")):
        if points[key]:
            ax.plot(*zip(*points[key]), marker="." if key == "eval_loss" else None, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("MiniLMv2 loss (KL)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _results(inputs: CardInputs) -> list[ResultRow]:
    teacher = {}
    for path in inputs.teacher_results:
        r = TaskResults.load(path)
        teacher[(r.task, r.split)] = r
    rows = []
    for path in inputs.results:
        r = TaskResults.load(path)
        ref = teacher.get((r.task, r.split))
        for metric in TASKS[r.task].model_index[2]:
            if metric not in r.metrics:
                continue
            t = ref.metrics.get(metric) if ref else None
            value = r.metrics[metric]
            rows.append(ResultRow(r.task, inputs.dataset(r), r.split, metric, value, t, value / t if t else None))
    return rows


def _eval_results(inputs: CardInputs) -> list[EvalResult]:
    """The results as the Hub's model-index entries."""
    eval_results = []
    for path in inputs.results:
        r = TaskResults.load(path)
        task_type, task_name, metrics = TASKS[r.task].model_index
        eval_results += [
            EvalResult(
                task_type=task_type,
                task_name=task_name,
                dataset_type=inputs.dataset(r).split(" (")[0],  # a Hub id; the name may say which part was used
                dataset_name=inputs.dataset(r),
                dataset_split=r.split,
                metric_type=metric.lower(),
                metric_name=metric,
                metric_value=round(r.metrics[metric], 2),
            )
            for metric in metrics
            if metric in r.metrics
        ]
    return eval_results


def _speed(inputs: CardInputs) -> tuple[Speed | None, list[Path]]:
    if inputs.bench is None:
        return None, []
    bench = load_bench(inputs.bench)
    name = inputs.bench_model or str(inputs.model_dir)
    entry = next((m for m in bench["models"] if m["name"] == name), None)
    if entry is None:
        names = [m["name"] for m in bench["models"]]
        raise ValueError(f"{inputs.bench}: no model named {name!r} (give --bench_model; it has {names})")
    ratios = bench["ratios"].get(name, {})
    rows = [
        SpeedRow(
            batch_size=r["batch_size"],
            latency_ms=r["latency_ms"]["median"],
            sentences_per_s=r["sentences_per_s"],
            latency_ratio=ratios[str(r["batch_size"])]["latency"],
            throughput_ratio=ratios[str(r["batch_size"])]["throughput"],
        )
        for r in entry["results"]
        if str(r["batch_size"]) in ratios
    ]
    counter = entry["energy_counter"]
    plots = sorted(inputs.bench.parent.glob("*.png"))
    settings, machine = bench["settings"], bench["machine"]
    speed = Speed(
        device=settings["device"],
        dtype=settings["dtype"],
        hardware=machine["gpu"] or f"{machine['processor']}, {entry['threads']} threads",
        reference=settings["reference"],
        energy=f"{counter['name']} ({counter['kind']})" if counter else "not available (no NVML/RAPL counter)",
        rows=rows,
        plots=[f"assets/{p.name}" for p in plots],
    )
    return speed, plots


def collect(inputs: CardInputs) -> tuple[TimeModelCardData, dict[str, Path]]:
    """The card's data and the files to publish with it (repo path -> local path)."""
    run_dir, model_dir = Path(inputs.run_dir), Path(inputs.model_dir)
    run = RunDir(run_dir)
    if not RunConfig.exists(run_dir):
        raise ValueError(f"{run_dir}: no {RunConfig.FILE} (is this a `time-hub distill` output folder?)")
    run_config = RunConfig.load(run_dir)
    recipe, settings = run_config.recipe, run_config.distillation
    selection = Selection.load(run_dir) if Selection.exists(run_dir) else None
    recorded = _read_json(run.card_data) or {}
    files = {
        f"provenance/{path.name}": path for path in (run_dir / RunConfig.FILE, run_dir / Selection.FILE, run.card_data)
    }
    files = {k: v for k, v in files.items() if v.is_file()}

    config = AutoConfig.from_pretrained(run.encoder)
    total, embeddings = count_weights(run.encoder)
    steps = recorded.get("global_step") or _last_step(run_dir) or recipe.get("max_steps")
    batch = recorded.get("train_batch_size") or recipe.get("per_device_train_batch_size", 8)
    tokens, tokens_kind = recorded.get("tokens_seen"), recorded.get("tokens_seen_kind")
    if not tokens and steps and recipe.get("max_seq_length"):
        tokens, tokens_kind = steps * batch * recipe["max_seq_length"], "upper bound: steps x batch x sequence length"
    corpus = recipe.get("train_files") or [recipe.get("dataset_name", "unknown corpus")]

    for i, path in enumerate(inputs.results):
        files[f"provenance/results-{i}-{TaskResults.load(path).task}.json"] = Path(path)
    for i, path in enumerate(inputs.teacher_results):
        files[f"provenance/teacher-results-{i}-{TaskResults.load(path).task}.json"] = Path(path)
    speed, plots = _speed(inputs)
    if inputs.bench:
        files["provenance/bench.json"] = Path(inputs.bench)
    files.update({f"assets/{p.name}": p for p in plots})

    hardware, emissions = _hardware(recorded), recorded.get("emissions")
    finetuning = None
    if inputs.task:
        finetuning = _finetuning(inputs, model_dir)
        if (model_dir / RunDir.CARD_DATA).is_file():
            files["provenance/finetune_card_data.json"] = model_dir / RunDir.CARD_DATA
    eval_results = _eval_results(inputs)
    from_teacher = inputs.task is not None or recipe.get("student_init", "random") != "random"
    base_model = inputs.base_model if from_teacher else None
    data = TimeModelCardData(
        language=inputs.language,
        license=inputs.license,
        pipeline_tag=TASKS[inputs.task].pipeline_tag if inputs.task else ENCODER_PIPELINE_TAG,
        # The Hub knows adapter/merge/quantized/finetune. A task model is a fine-tune of its encoder, and a student
        # whose weights start from the teacher's (prune/teacher init) is closest to a fine-tune of it; a random-init
        # student holds none of the teacher's weights, so its metadata names no base model (the body names it).
        base_model=base_model,
        base_model_relation="finetune" if base_model else None,
        datasets=inputs.datasets or None,
        metrics=sorted({e.metric_type for e in eval_results}) or None,
        tags=TAGS + ([inputs.task] if inputs.task else []) + inputs.language,
        model_name=inputs.repo_id,
        eval_results=eval_results or None,
        co2_eq_emissions={
            "emissions": round(emissions["co2_eq_grams"], 3),
            "source": emissions["source"],
            "training_type": "fine-tuning" if inputs.task else "distillation",
            "hardware_used": hardware,
        }
        if emissions and emissions.get("co2_eq_grams") is not None
        else None,
        repo_id=inputs.repo_id,
        task=inputs.task,
        language_names=", ".join(LANGUAGES.get(code, code) for code in inputs.language),
        # A local teacher folder means little on the Hub: name the base model it is a copy of, when given.
        teacher=Teacher(
            name=inputs.base_model if inputs.base_model and not inputs.task else settings.teacher,
            path=settings.teacher,
        ),
        student=StudentShape(
            architecture=type(config).__name__.replace("Config", "Model"),
            layers=config.num_hidden_layers,
            hidden=config.hidden_size,
            heads=config.num_attention_heads,
            ffn=config.intermediate_size,
            vocab_size=config.vocab_size,
            max_positions=config.max_position_embeddings,
            parameters=total,
            embedding_parameters=embeddings,
        ),
        distillation=Distillation(
            teacher_layer=settings.teacher_layer,
            student_layer=settings.student_layer,
            relations=settings.relations,
            relation_heads=settings.num_relation_heads,
            init=INIT_TEXT.get(recipe.get("student_init", "random"), recipe.get("student_init"))
            + (f", layers `{recipe['student_layers']}`" if recipe.get("student_layers") else ""),
            extra_terms=extra_terms_text(settings),
            corpus=corpus,
            steps=steps,
            batch_size=batch,
            tokens_seen=tokens,
            tokens_seen_kind=tokens_kind,
            hyperparameters={
                k: v for k, v in (recorded.get("hyperparameters") or recipe).items() if k not in BOOKKEEPING
            },
        ),
        selection=CheckpointSelection(
            checkpoint=selection.best["checkpoint"],
            step=selection.best["step"],
            loss=selection.best["loss"],
            random_loss=selection.random_init["loss"],
            candidates=len(selection.checkpoints),
        )
        if selection
        else None,
        finetuning=finetuning,
        results=_results(inputs),
        speed=speed,
        hardware=hardware,
        software=", ".join(f"{k} {v}" for k, v in recorded.get("software", {}).items()) or "not recorded",
        emissions_text=_emissions_text(emissions),
        example_sentence=_example_sentence(corpus),
        time_hub_version=metadata.version("time-hub"),
    )
    return data, files


def _last_step(run_dir: Path) -> int | None:
    return (_read_json(run_dir / RunDir.TRAINER_STATE) or {}).get("global_step")


def _emissions_text(emissions: dict | None) -> str:
    if not emissions:
        return "not estimated (no codecarbon tracker ran during training)"
    energy = f"{emissions['energy_kwh']:.4f} kWh ({emissions['kind']}: {emissions['source']})"
    if emissions.get("co2_eq_grams") is None:
        return f"{energy}; CO2 not estimated: the grid's country was not set (${COUNTRY_ENV})"
    return f"{emissions['co2_eq_grams']:.1f} g CO2eq, {energy}"


def _hardware(card_data: dict | None) -> str:
    if not card_data or "hardware" not in card_data:
        return "not recorded"
    hw = card_data["hardware"]
    where = hw.get("gpu") or f"{hw['processor']} ({hw['cpu_count']} cores)"
    return f"{where} x {card_data.get('world_size', 1)} process(es), {card_data.get('seconds', 0) / 60:.1f} min"


def _example_sentence(corpus: list[str]) -> str:
    for path in corpus:
        if Path(path).is_file():
            with open(path, encoding="utf-8") as f:
                for line in f:
                    line = line.strip()
                    if 30 <= len(line) <= 100 and '"' not in line and "\\" not in line:
                        return line
    return "Replace this with a sentence in the model's language."


def _finetuning(inputs: CardInputs, model_dir: Path) -> FineTuning:
    config = AutoConfig.from_pretrained(model_dir)
    state = _read_json(model_dir / RunDir.TRAINER_STATE) or {}
    datasets = sorted({inputs.dataset(TaskResults.load(p)) for p in inputs.results}) or ["(not recorded)"]
    summary = f"{state.get('global_step', '?')} steps, {state.get('num_train_epochs', '?')} epochs"
    if state.get("best_metric") is not None:
        summary += f", best dev score {state['best_metric']:.4f} at {state.get('best_model_checkpoint', '?')}"
    finetuned = _read_json(model_dir / RunDir.CARD_DATA)  # the fine-tuning run's own record, not the distillation's
    if finetuned:
        summary += f"; {_hardware(finetuned)}; emissions {_emissions_text(finetuned.get('emissions'))}"
    segmenter = next(
        (r.extra["segmenter"] for r in map(TaskResults.load, inputs.results) if "segmenter" in r.extra), None
    )
    if segmenter and segmenter.get("dev"):
        dev = segmenter["dev"]
        summary += (f"; raw-text segmenter (`segmenter/`, for `time-hub annotate`): {segmenter['steps']} steps, dev "
                    f"token F1 {dev['tokens']:.2f}, sentence F1 {dev['sentences']:.2f}")  # fmt: skip
    silver = next((r.extra["training"]["silver"] for r in map(TaskResults.load, inputs.results)
                   if "silver" in r.extra.get("training", {})), None)  # fmt: skip
    if silver and silver["sentences"]:
        summary += (f"; plus {silver['sentences']:,} silver sentences (the fine-tuned teacher's analysis of running "
                    f"text, lines holding a gold sentence left out) next to the gold sentences x "
                    f"{silver['gold_repeat']}")  # fmt: skip
    return FineTuning(
        title=TASKS[inputs.task].title,
        labels=list(config.id2label.values()) if inputs.task == "ner" else [],
        data=", ".join(datasets),
        summary=summary,
    )


def write_card(inputs: CardInputs, folder: Path) -> tuple[Path, list[str]]:
    """Render README.md into `folder`, copy sources and plots next to it; returns the card path and copied files."""
    folder.mkdir(parents=True, exist_ok=True)
    data, files = collect(inputs)
    (folder / "assets").mkdir(exist_ok=True)
    curve = _curve(_read_json(RunDir(inputs.run_dir).card_data), Path(inputs.run_dir))
    if plot_curve(curve, folder / "assets" / "training_curve.png"):
        data.curve_plot = "assets/training_curve.png"
    for repo_path, local in files.items():
        (folder / repo_path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, folder / repo_path)
    data.sources = sorted(files)
    path = folder / "README.md"
    render(data).save(path)
    return path, sorted(files) + ([data.curve_plot] if data.curve_plot else [])
