"""The comparison protocol: fine-tune encoders on UD (and NER) with dev-based early stopping over several seeds.

For one language and a list of encoders (the teacher is always one of them), every encoder is fine-tuned with the
same recipe per task and seed: UD (UPOS, Lemmas, LAS) and, where ../shared has NER data, NER (entity F1). Training
stops when the dev score has not improved for `patience` evaluations (one per epoch), or at the cap. The table
reports, per encoder and metric, mean +- sd over seeds, retention (encoder / teacher, same protocol), the gain over a
random-init copy of the same shape (`--random_init NAME`, re-initialised with each fine-tuning seed) and the batch-1
CPU latency ratio vs the teacher, measured in one run when the table is written (`table.md`, `summary.json`, and
`frontier.png`: retention vs speed-up per metric).

Data (UD dev is all ../shared has for most languages, so dev is split; tune on dev only):
- da: UD `ud/da/dev.conllu` split 80/20 (train / eval); NER the first 2,000 sentences of `ner/da/train.iob2`, dev.
- hu: UD `ud/hu/train.conllu` / `ud/hu/dev.conllu`.
- ga (and every other language but hu): UD `ud/<lang>/dev.conllu` split 80/20.
The eval part selects the checkpoint and is also the one scored (as for every dev number in this project).

Every (encoder, task, seed) result is written to `--out/<encoder>/<task>-seed<N>.json` and re-used when it exists,
so an interrupted run continues where it stopped:

    python benchmarks/protocol.py --lang da --encoder cpu-m=runs/cpu-m-da/best --random_init cpu-m \
        --out benchmarks/results/protocol/da
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
from dataclasses import dataclass
from pathlib import Path

from transformers import AutoModel, TrainingArguments

from time_hub.bench.measure import TimingSettings, interleaved_ratios, interleaved_seconds
from time_hub.distill.student import count_parameters
from time_hub.encoder import random_init_copy
from time_hub.tasks import ner, ud
from time_hub.tasks.conllu import split_conllu_file
from time_hub.tasks.results import TaskResults

SHARED = Path(__file__).resolve().parents[2] / "shared"
METRICS = {"ud": ("UPOS", "Lemmas", "LAS"), "ner": ("f1",)}
TEACHER = "teacher"
RANDOM_SUFFIX = "/random-init"


@dataclass(frozen=True)
class TaskProtocol:
    """One task's fine-tuning recipe, the same for every encoder."""

    batch_size: int
    learning_rate: float  # the encoder's; heads use the task module's default head rate
    max_epochs: int
    patience: int
    max_length: int = 128


PROTOCOL = {
    "ud": TaskProtocol(batch_size=8, learning_rate=1e-4, max_epochs=20, patience=3),
    "ner": TaskProtocol(batch_size=16, learning_rate=5e-5, max_epochs=8, patience=2),
}
MODULES = {"ud": ud, "ner": ner}
NER_TRAIN_SENTENCES = 2000


def prepare_data(lang: str, work: Path) -> dict[str, tuple[Path, Path]]:
    """task -> (train, eval) files for `lang`, written under `work` where a split is needed."""
    work.mkdir(parents=True, exist_ok=True)
    ud_dir = SHARED / "data" / "ud" / lang
    if (ud_dir / "train.conllu").exists():
        data = {"ud": (ud_dir / "train.conllu", ud_dir / "dev.conllu")}
    else:
        train, held_out = work / f"ud-{lang}-train.conllu", work / f"ud-{lang}-eval.conllu"
        split_conllu_file(ud_dir / "dev.conllu", train, held_out, eval_fraction=0.2)
        data = {"ud": (train, held_out)}
    ner_dir = SHARED / "data" / "ner" / lang
    if (ner_dir / "train.iob2").exists():
        ner_train = work / f"ner-{lang}-train.iob2"
        sentences = (ner_dir / "train.iob2").read_text(encoding="utf-8").split("\n\n")
        ner_train.write_text("\n\n".join(sentences[:NER_TRAIN_SENTENCES]).strip() + "\n\n", encoding="utf-8")
        data["ner"] = (ner_train, ner_dir / "dev.iob2")
    return data


def training_args(out: Path, protocol: TaskProtocol, metric: str, seed: int) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(out),
        num_train_epochs=protocol.max_epochs,
        per_device_train_batch_size=protocol.batch_size,
        per_device_eval_batch_size=64,
        learning_rate=protocol.learning_rate,
        warmup_steps=50,
        weight_decay=0.01,
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=1,
        save_only_model=True,
        load_best_model_at_end=True,
        metric_for_best_model=metric,
        train_sampling_strategy="group_by_length",  # less padding; the same batches for every encoder of a seed
        seed=seed,
        use_cpu=True,
        report_to="none",
        disable_tqdm=True,
        logging_steps=50,
    )


def run_one(
    name: str, path: Path, task: str, files: tuple[Path, Path], seed: int, out: Path, work: Path, table_only: bool
) -> dict:
    """Fine-tune and score one (encoder, task, seed), or read its saved result; returns the task's metrics (none
    when `table_only` and nothing is saved)."""
    saved = out / name / f"{task}-seed{seed}.json"
    if not saved.exists() and table_only:
        return {}
    if not saved.exists():
        protocol = PROTOCOL[task]
        run_dir = work / name / f"{task}-seed{seed}"
        metric = "LAS" if task == "ud" else "f1"
        result = MODULES[task].finetune(
            str(path),
            str(files[0]),
            str(files[1]),
            str(run_dir),
            training_args(run_dir, protocol, metric, seed),
            protocol.max_length,
            early_stopping_patience=protocol.patience,
        )
        result.save(saved)
        shutil.rmtree(run_dir, ignore_errors=True)  # the fine-tuned weights are not needed, the scores are
    result = TaskResults.load(saved)
    print(name, task, seed, {m: round(result.metrics[m], 2) for m in METRICS[task]}, flush=True)
    return {m: result.metrics[m] for m in METRICS[task]}


def mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(scores: dict[str, dict[str, list[float]]], randoms: dict[str, str]) -> dict[str, dict]:
    """Per encoder and metric: mean, sd, n, retention (% of the teacher's mean) and the gain over its random-init
    copy (difference of means, with the random copy's sd). `scores[encoder][metric]` lists one value per seed;
    `randoms` maps an encoder to the name of its random-init copy."""
    teacher = scores[TEACHER]
    out: dict[str, dict] = {}
    for name, metrics in scores.items():
        row = {}
        for metric, values in metrics.items():
            mean, sd = mean_sd(values)
            cell = {"mean": mean, "sd": sd, "n": len(values)}
            if metric in teacher:
                cell["retention"] = 100.0 * mean / statistics.fmean(teacher[metric])
            random_name = randoms.get(name)
            if random_name and metric in scores.get(random_name, {}):
                random_mean, random_sd = mean_sd(scores[random_name][metric])
                cell["gain_over_random"] = mean - random_mean
                cell["random_sd"] = random_sd
            row[metric] = cell
        out[name] = row
    return out


def markdown_table(summary: dict[str, dict], extras: dict[str, dict]) -> str:
    """One row per encoder: parameters, batch-1 latency and speed-up, then per metric `mean ± sd (retention%)
    [+gain]`."""
    metrics = [m for task in METRICS for m in METRICS[task] if any(m in row for row in summary.values())]
    header = ["encoder", "params", "latency b1", "speed-up", *metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in summary.items():
        extra = extras.get(name, {})
        latency = extra.get("latency_ms")
        cells = [
            name,
            f"{extra['parameters'] / 1e6:.1f}M" if extra.get("parameters") else "-",
            f"{latency:.2f} ms" if latency else "-",
            f"{extra['speedup']:.2f}x" if extra.get("speedup") else "-",
        ]
        for metric in metrics:
            cell = row.get(metric)
            if cell is None:
                cells.append("-")
                continue
            text = f"{cell['mean']:.2f} ± {cell['sd']:.2f}"
            if name != TEACHER and "retention" in cell:
                text += f" ({cell['retention']:.1f}%)"
            if "gain_over_random" in cell:
                text += f" [{cell['gain_over_random']:+.2f}]"
            cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_frontier(summary: dict[str, dict], extras: dict[str, dict], path: Path, title: str) -> None:
    """Retention (mean over seeds, with the sd as error bars) vs batch-1 speed-up, one panel per metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for task in METRICS for m in METRICS[task] if m in summary[TEACHER]]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        teacher = summary[TEACHER][metric]["mean"]
        for name, row in summary.items():
            speedup = extras.get(name.removesuffix(RANDOM_SUFFIX), {}).get("speedup")
            if metric not in row or speedup is None:
                continue
            cell = row[metric]
            random = name.endswith(RANDOM_SUFFIX)
            ax.errorbar(speedup, cell["retention"], yerr=100 * cell["sd"] / teacher, fmt="x" if random else "o",
                        color="grey" if random else None, capsize=3)  # fmt: skip
            ax.annotate(name, (speedup, cell["retention"]), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch-1 CPU speed-up vs the teacher")
        ax.set_ylabel(f"{metric}: % of the teacher")
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def batch1_latency(
    encoders: dict[str, Path], lang: str, threads: int, repeats: int, warmup: int = 10
) -> tuple[dict[str, float], dict[str, float]]:
    """Batch-1 CPU latency, interleaved (`time_hub.bench.measure.interleaved_seconds`): every sentence of the
    language's text is run by each encoder in turn (the order rotating), so a slow phase of the machine hits all of
    them alike. Returns the median latency (ms) per encoder and its speed-up: the median over sentences of teacher
    time / encoder time on the same sentence."""
    lines = (SHARED / "data" / "text" / f"{lang}.txt").read_text(encoding="utf-8").splitlines()
    sentences = [line for line in lines if line.strip()][: warmup + repeats]
    settings = TimingSettings(threads=threads, warmup=warmup, repeats=repeats, sort_by_length=False)
    names, paths = list(encoders), [str(path) for path in encoders.values()]
    seconds = interleaved_seconds(paths, str(encoders[TEACHER]), sentences, [1], settings)
    latency = {name: 1000 * statistics.median(times[1]) for name, times in zip(names, seconds)}
    ratios = interleaved_ratios(seconds, names.index(TEACHER))
    speedup = {name: ratio[1]["latency"] for name, ratio in zip(names, ratios)}
    return latency, speedup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lang", required=True, choices=sorted(p.name for p in (SHARED / "data" / "ud").iterdir()))
    parser.add_argument("--teacher", type=Path, default=SHARED / "teachers" / "me5-small")
    parser.add_argument("--encoder", action="append", default=[], help="NAME=PATH (repeatable)")
    parser.add_argument("--random_init", nargs="*", default=[], help="encoders to compare with a random-init copy")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--tasks", nargs="+", default=list(METRICS), choices=list(METRICS))
    parser.add_argument("--out", type=Path, required=True, help="results (small; commit them)")
    parser.add_argument("--work", type=Path, default=None, help="fine-tuning folders (default runs/protocol/<lang>)")
    parser.add_argument("--latency_repeats", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2, help="torch threads for the latency measurement")
    parser.add_argument(
        "--table_only", action="store_true", help="fine-tune nothing: tabulate the saved results (and time again)"
    )
    opts = parser.parse_args()
    work = opts.work or Path("runs/protocol") / opts.lang

    encoders = {TEACHER: opts.teacher}
    for spec in opts.encoder:
        name, sep, path = spec.partition("=")
        if not sep or not name or name == TEACHER or not Path(path).is_dir():
            parser.error(f"--encoder {spec}: expected NAME=FOLDER with an existing folder and NAME != {TEACHER}")
        encoders[name] = Path(path)
    unknown = [n for n in opts.random_init if n not in encoders]
    if unknown:
        parser.error(f"--random_init {unknown}: not among the encoders {list(encoders)}")
    data = {task: files for task, files in prepare_data(opts.lang, work).items() if task in opts.tasks}

    scores: dict[str, dict[str, list[float]]] = {}
    randoms = {name: name + RANDOM_SUFFIX for name in opts.random_init}
    runs = [(name, encoders[name], False) for name in encoders] + [(n, encoders[n], True) for n in opts.random_init]
    for name, path, random in runs:
        label = name + RANDOM_SUFFIX if random else name
        for task, files in data.items():
            for seed in opts.seeds:
                saved = (opts.out / label / f"{task}-seed{seed}.json").exists()
                fresh = random and not saved and not opts.table_only
                source = random_init_copy(path, work / label / f"init-seed{seed}", seed) if fresh else path
                for metric, value in run_one(
                    label, source, task, files, seed, opts.out, work, opts.table_only
                ).items():
                    scores.setdefault(label, {}).setdefault(metric, []).append(value)

    latency, speedup = batch1_latency(encoders, opts.lang, opts.threads, opts.latency_repeats)
    extras = {
        name: {
            "parameters": count_parameters(AutoModel.from_pretrained(path)),
            "latency_ms": latency[name],
            "speedup": speedup[name],
        }
        for name, path in encoders.items()
    }
    summary = summarize(scores, randoms)
    table = markdown_table(summary, extras)
    setup = {
        "lang": opts.lang,
        "encoders": {k: str(v) for k, v in encoders.items()},
        "seeds": opts.seeds,
        "protocol": {task: vars(PROTOCOL[task]) for task in data},
        "data": {task: [str(f) for f in files] for task, files in data.items()},
        "latency": {"batch_size": 1, "threads": opts.threads, "repeats": opts.latency_repeats},
    }
    opts.out.mkdir(parents=True, exist_ok=True)
    (opts.out / "summary.json").write_text(
        json.dumps({"setup": setup, "encoders": extras, "summary": summary, "scores": scores}, indent=2) + "\n"
    )
    (opts.out / "table.md").write_text(
        f"# Protocol: {opts.lang}, seeds {opts.seeds}\n\nmean ± sd over seeds (retention vs the teacher) "
        f"[gain over a random-init copy of the same shape]; speed-up = median over sentences of teacher / encoder "
        f"batch-1 latency, the encoders timed in turn on each sentence (interleaved).\n\n"
        f"Setup: `{json.dumps(setup)}`\n\n{table}\n"
    )
    plot_frontier(summary, extras, opts.out / "frontier.png", f"{opts.lang}: mean over seeds {opts.seeds}")
    print(table)


if __name__ == "__main__":
    main()
