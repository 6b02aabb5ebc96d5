"""Soft committees of N shallow students (N = 1, 2, 4) vs one deep student of equal total compute, on Danish UD and
NER with the fine-tuning of `task_table.py`: scores, parameters, and CPU batch-1 latency with the members run one
after another (sequential) and on a thread each (parallel).

Members i = 0..3 are fine-tuned once (`time-hub finetune --committee 4` semantics, seed 42 + i); the committees of 1
and 2 are their first members (committee folders pointing at the same member folders).

    python benchmarks/committee.py --members 'runs/committee-da/member-{i}/best' --deep runs/demo-da/best \\
        --deep_results benchmarks/results/da_tasks_demo/distilled --out benchmarks/results/compression/committee
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from pathlib import Path

import torch
from task_table import METRICS, SHARED, prepare_data, training_args
from transformers import AutoModel, AutoModelForTokenClassification, AutoTokenizer

from time_hub.atomic import write_json
from time_hub.bench.measure import latency_summary, make_batches
from time_hub.distill.student import count_parameters
from time_hub.provenance import machine_info, software_versions
from time_hub.tasks import committee, ner, ud
from time_hub.tasks.results import TaskResults

SIZES = (1, 2, 4)


def finetune_committees(opts, data) -> dict[int, dict[str, TaskResults]]:
    """Scores of every committee size on both tasks; the largest committee is trained, the others reuse members."""
    largest, scores = max(SIZES), {n: {} for n in SIZES}
    for task, module, (train, dev), epochs, batch, lr in (
        ("ud", ud, data["ud"], opts.ud_epochs, 8, opts.ud_lr),
        ("ner", ner, data["ner"], opts.ner_epochs, 16, opts.ner_lr),
    ):
        full = opts.work / f"{task}-{largest}"
        if not (full / "results.json").exists():
            args = training_args(opts.work / "checkpoints", epochs, batch, lr, opts.seed)
            committee.finetune(task, module, opts.members, largest, str(train), str(dev), str(full), args)
        members = json.loads((full / committee.COMMITTEE_FILE).read_text())["members"]
        for n in SIZES:
            folder = opts.work / f"{task}-{n}"
            if n != largest:
                subset = [m | {"folder": f"../{full.name}/{m['folder']}"} for m in members[:n]]
                payload = {"format": committee.FORMAT, "task": task, "members": subset}
                write_json(folder / committee.COMMITTEE_FILE, payload)
                AutoTokenizer.from_pretrained(full).save_pretrained(folder)
            scores[n][task] = module.evaluate(str(folder), str(dev), "dev", 32)
            print(f"committee of {n}, {task}:", {m: round(scores[n][task].metrics[m], 2) for m in METRICS[task]})
    return scores


def time_model(model, batches: list[dict], warmup: int) -> dict[str, float]:
    with torch.inference_mode():
        for batch in batches[:warmup]:
            model(**batch)
        seconds = []
        for batch in batches[warmup:]:
            start = time.perf_counter()
            model(**batch)
            seconds.append(time.perf_counter() - start)
    return latency_summary(seconds)


def latencies(opts, num_labels: int) -> dict[str, dict]:
    """Batch-1 latency of the NER models: the deep student, then each committee sequential and parallel."""
    tokenizer = AutoTokenizer.from_pretrained(opts.deep)
    sentences = (SHARED / "data/text/da.txt").read_text(encoding="utf-8").splitlines()[-2000:]  # not the held-out
    batches = make_batches(sentences, tokenizer, 1, opts.warmup + opts.repeats, 128)
    deep = AutoModelForTokenClassification.from_pretrained(opts.deep, num_labels=num_labels).eval()
    rows = {"deep": {"sequential": time_model(deep, batches, opts.warmup)}}
    load = functools.partial(AutoModelForTokenClassification.from_pretrained, dtype=torch.float32)
    for n in SIZES:
        folder = opts.work / f"ner-{n}"
        rows[f"committee-{n}"] = {
            mode: time_model(
                committee.load(folder, load, functools.partial(committee.LogitsCommittee, parallel=parallel)).eval(),
                batches,
                opts.warmup,
            )
            for mode, parallel in (("sequential", False), ("parallel", True))
        }
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", required=True, help="distilled members, {i} = 0..3")
    parser.add_argument("--deep", type=Path, required=True, help="the deep student (for latency)")
    parser.add_argument("--deep_results", type=Path, required=True, help="its task_table.py ud.json / ner.json")
    parser.add_argument("--teacher_results", type=Path, default=Path("benchmarks/results/da_tasks_demo/teacher"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/compression/committee"))
    parser.add_argument("--work", type=Path, default=Path("runs/committee-da/finetuned"))
    parser.add_argument("--ud_epochs", type=int, default=5)
    parser.add_argument("--ner_epochs", type=int, default=2)
    parser.add_argument("--ner_train_sentences", type=int, default=2000)
    parser.add_argument("--ud_lr", type=float, default=1e-4)
    parser.add_argument("--ner_lr", type=float, default=5e-5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads for the latency runs")
    opts = parser.parse_args()

    (ud_files, ner_files) = prepare_data(opts.work, opts.ner_train_sentences)
    scores = finetune_committees(opts, {"ud": ud_files, "ner": ner_files})
    torch.set_num_threads(opts.threads)
    num_labels = len(AutoModelForTokenClassification.from_pretrained(opts.work / "ner-4" / "member-0").config.id2label)
    timing = latencies(opts, num_labels)

    reference = {task: TaskResults.load(opts.teacher_results / f"{task}.json") for task in METRICS}
    deep = {task: TaskResults.load(opts.deep_results / f"{task}.json") for task in METRICS}
    encoder_params = count_parameters(AutoModel.from_pretrained(committee.member_sources(opts.members, 1)[0]))
    rows = {"deep": {"encoder_parameters": count_parameters(AutoModel.from_pretrained(opts.deep)), "tasks": deep}}
    rows |= {f"committee-{n}": {"encoder_parameters": n * encoder_params, "tasks": scores[n]} for n in SIZES}

    header = ["model", "encoder params", *(f"{t} {m}" for t, ms in METRICS.items() for m in ms)]
    header += ["batch-1 ms sequential", "batch-1 ms parallel"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    summary = {}
    for name, row in rows.items():
        cells = [name, f"{row['encoder_parameters'] / 1e6:.1f}M"]
        metrics = {}
        for task, names in METRICS.items():
            for m in names:
                value, ref = row["tasks"][task].metrics[m], reference[task].metrics[m]
                metrics[f"{task} {m}"] = value
                cells.append(f"{value:.2f} ({100 * value / ref:.1f}%)")
        for mode in ("sequential", "parallel"):
            latency = timing[name].get(mode)
            cells.append(f"{latency['median']:.2f}" if latency else "-")
        lines.append("| " + " | ".join(cells) + " |")
        summary[name] = {"encoder_parameters": row["encoder_parameters"], "metrics": metrics, "latency": timing[name]}
    table = "\n".join(lines)
    setup = {k: str(v) for k, v in vars(opts).items()}
    opts.out.mkdir(parents=True, exist_ok=True)
    (opts.out / "table.md").write_text(f"{__doc__.splitlines()[0]}\n\nSetup: `{json.dumps(setup)}`\n\n{table}\n")
    write_json(
        opts.out / "summary.json",
        {"setup": setup, "machine": machine_info(), "software": software_versions(), "rows": summary},
    )
    for n in SIZES:
        for task in METRICS:
            scores[n][task].save(opts.out / f"committee-{n}" / f"{task}.json")
    print(table)


if __name__ == "__main__":
    main()
