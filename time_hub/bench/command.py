"""`time-hub bench`: time models on real sentences -> bench.json, a table with ratios, and plots.

    time-hub bench xlm-roberta-large m s xs --batch_sizes [1,32] --reference xlm-roberta-large --output_dir runs/bench

Models are folders or Hub ids, `.onnx` files (from `time-hub export`), architecture names (`xlm-roberta-large`,
`xlm-roberta-base`) or student shapes (`m`, `s`, `xs`, `L4-H256-A4`), the last two with random weights.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass, field
from pathlib import Path

from time_hub.arguments import parse_command
from time_hub.atomic import write_json
from time_hub.bench.measure import (
    TimingSettings,
    in_fresh_process,
    interleaved_ratios,
    interleaved_seconds,
    measure,
    measure_isolated,
    settings_dict,
    speedups,
)
from time_hub.bench.models import describe
from time_hub.bench.report import SCHEMA_VERSION, plot_pareto, plot_throughput, table
from time_hub.encoder import check_model_source
from time_hub.provenance import machine_info, software_versions
from time_hub.tasks.registry import TASKS
from time_hub.tasks.results import TaskResults

logger = logging.getLogger(__name__)


@dataclass
class BenchArguments:
    models: list[str] = field(metadata={"help": "models to time (also accepted as leading positional arguments)"})
    output_dir: str = field(default="runs/bench", metadata={"help": "where bench.json, bench.md and plots go"})
    sentences_file: str | None = field(
        default=None, metadata={"help": "one sentence per line (default: ../shared/data/text/<lang>.txt)"}
    )
    lang: str = field(default="da", metadata={"help": "language of the default sentence file"})
    num_sentences: int = field(default=4096, metadata={"help": "sentences read from the file (batches cycle)"})
    batch_sizes: list[int] = field(default_factory=lambda: [1, 8, 32, 128], metadata={"help": "batch sizes"})
    tokenizer: str = field(
        default="../shared/tokenizers/xlm-roberta",
        metadata={"help": "tokenizer for architecture names and shapes (e.g. FacebookAI/xlm-roberta-large)"},
    )
    reference: str | None = field(default=None, metadata={"help": "model the ratios are relative to (default: first)"})
    quality: list[str] = field(
        default_factory=list,
        metadata={"help": "MODEL=results.json pairs for the Pareto plot (a model folder's results.json is found)"},
    )
    isolate: bool = field(default=True, metadata={"help": "time each model in a fresh process (own peak memory)"})
    interleave: bool = field(
        default=True,
        metadata={"help": "latency ratios from a second pass with the models run in turn on each batch (robust to "
                  "the machine's slow phases); false: ratios of the per-model medians"},
    )  # fmt: skip

    def __post_init__(self):
        if not self.models:
            raise ValueError("give at least one model")
        if self.reference is None:
            self.reference = self.models[0]
        if self.reference not in self.models:
            raise ValueError(f"reference {self.reference!r} is not one of the models {self.models}")
        if any(b < 1 for b in self.batch_sizes):
            raise ValueError(f"batch sizes must be positive, got {self.batch_sizes}")
        for spec in self.models:
            if describe(spec) == "pretrained":
                check_model_source(spec)


def read_sentences(path: str | Path, limit: int) -> list[str]:
    lines = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()]
    sentences = [line for line in lines if line][:limit]
    if not sentences:
        raise ValueError(f"{path}: no non-empty lines to time models on")
    return sentences


def quality_scores(args: BenchArguments) -> tuple[dict[str, float], str | None]:
    """Model -> main task metric from results.json files (explicit pairs, or `<model folder>/results.json`)."""
    paths = {m: Path(m) / "results.json" for m in args.models if (Path(m) / "results.json").is_file()}
    for pair in args.quality:
        name, eq, path = pair.partition("=")
        if not eq:
            raise ValueError(f"quality: expected MODEL=results.json, got {pair!r}")
        paths[name] = Path(path)
    scores, metrics = {}, set()
    for name, path in paths.items():
        results = TaskResults.load(path)
        metric = TASKS[results.task].main_metric
        scores[name] = results.metrics[metric]
        metrics.add(f"{results.task} {metric}")
    if len(metrics) > 1:
        raise ValueError(f"quality files mix tasks/metrics {sorted(metrics)}: give results of one task")
    return scores, metrics.pop() if metrics else None


def bench(args: BenchArguments, timing: TimingSettings) -> dict:
    sentences_file = args.sentences_file or f"../shared/data/text/{args.lang}.txt"
    sentences = read_sentences(sentences_file, args.num_sentences)
    run = measure_isolated if args.isolate else measure
    entries = []
    for spec in args.models:
        logger.info("timing %s at batch sizes %s on %s", spec, args.batch_sizes, timing.device)
        entries.append(run(spec, args.tokenizer, sentences, args.batch_sizes, timing))
    interleaved = None
    if args.interleave and len(args.models) > 1:
        logger.info("timing %s in turn on each batch (latency ratios)", ", ".join(args.models))
        timing_args = (args.models, args.tokenizer, sentences, args.batch_sizes, timing)
        seconds = (
            in_fresh_process(interleaved_seconds, *timing_args) if args.isolate else interleaved_seconds(*timing_args)
        )
        interleaved = interleaved_ratios(seconds, args.models.index(args.reference))
    ratios = speedups(entries, args.reference, interleaved)
    return {
        "schema": SCHEMA_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "software": software_versions(),
        "settings": settings_dict(timing)
        | {
            "batch_sizes": sorted(args.batch_sizes),
            "sentences_file": sentences_file,
            "sentences": len(sentences),
            "tokenizer": args.tokenizer,
            "reference": args.reference,
            "latency_ratio": "median over batches of the reference's time / the model's, the models run in turn "
            "on each batch"
            if interleaved
            else "ratio of the per-model median latencies",
        },
        "models": entries,
        "ratios": {name: {str(b): r for b, r in rows.items()} for name, rows in ratios.items()},
    }


def write_outputs(result: dict, args: BenchArguments) -> list[Path]:
    out = Path(args.output_dir)
    written = [write_json(out / "bench.json", result)]
    text = table(result)
    (out / "bench.md").write_text(text + "\n", encoding="utf-8")
    written.append(out / "bench.md")
    written.append(plot_throughput(result, out / "throughput.png"))
    scores, metric = quality_scores(args)
    if scores:
        written.append(plot_pareto(result, scores, metric, out / "pareto-throughput.png"))
        if any(m["energy_counter"] for m in result["models"]):
            written.append(plot_pareto(result, scores, metric, out / "pareto-energy.png", "joules_per_sentence"))
    return written


def main(argv: list[str]) -> int:
    description, classes = __doc__.strip().splitlines()[0], (BenchArguments, TimingSettings)
    parsed = parse_command("time-hub bench", description, classes, argv, "models", many=True)
    if parsed is None:
        return 0
    (args, timing), _ = parsed
    result = bench(args, timing)
    written = write_outputs(result, args)
    print(table(result))
    print("\nwrote " + ", ".join(map(str, written)))
    return 0
