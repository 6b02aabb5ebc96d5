"""Teacher vs distilled student vs random-init student on Danish UD and NER, same fine-tuning for all three.

UD: `../shared/data/ud/da/dev.conllu` split 80/20 (train / eval); NER: `../shared/data/ner/da/{train,dev}.iob2`.
Writes every run's results.json under --out and a markdown table with retention (model / teacher) per metric. A
(model, task) whose results.json already exists under --out is read, not re-run (e.g. to compare a new student).

    python benchmarks/task_table.py --student runs/demo-da/best --out benchmarks/results/da_tasks
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from transformers import AutoModel, TrainingArguments

from time_hub.distill.student import count_parameters
from time_hub.encoder import random_init_copy
from time_hub.tasks import ner, ud
from time_hub.tasks.conllu import split_conllu_file
from time_hub.tasks.results import TaskResults

SHARED = Path(__file__).resolve().parents[2] / "shared"
METRICS = {"ud": ("UPOS", "Lemmas", "LAS"), "ner": ("f1",)}


def training_args(out: Path, epochs: int, batch: int, lr: float, seed: int) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(out),
        num_train_epochs=epochs,
        per_device_train_batch_size=batch,
        per_device_eval_batch_size=32,
        learning_rate=lr,
        warmup_steps=50,
        weight_decay=0.01,
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=1,
        load_best_model_at_end=True,
        seed=seed,
        use_cpu=True,
        report_to="none",
        disable_tqdm=True,
        logging_steps=50,
    )


def prepare_data(work: Path, ner_train_sentences: int) -> tuple[tuple[Path, Path], tuple[Path, Path]]:
    """(train, eval) files of UD (an 80/20 split of da/dev.conllu) and NER (the first sentences of train.iob2, and
    dev.iob2), written under `work`."""
    work.mkdir(parents=True, exist_ok=True)
    ud_train, ud_eval = work / "ud-da-train.conllu", work / "ud-da-eval.conllu"
    split_conllu_file(SHARED / "data/ud/da/dev.conllu", ud_train, ud_eval, eval_fraction=0.2)
    ner_train = work / "ner-da-train.iob2"
    blocks = (SHARED / "data/ner/da/train.iob2").read_text(encoding="utf-8").split("\n\n")
    ner_train.write_text("\n\n".join(blocks[:ner_train_sentences]).strip() + "\n\n", encoding="utf-8")
    return (ud_train, ud_eval), (ner_train, SHARED / "data/ner/da/dev.iob2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", type=Path, default=SHARED / "teachers" / "me5-small")
    parser.add_argument("--student", type=Path, required=True, help="a distilled student (e.g. runs/demo-da/best)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/da_tasks"))
    parser.add_argument("--work", type=Path, default=Path("runs/da_tasks"), help="fine-tuned models (large)")
    parser.add_argument("--ud_epochs", type=int, default=5)
    parser.add_argument("--ner_epochs", type=int, default=2)
    parser.add_argument("--ner_train_sentences", type=int, default=2000, help="first N of train.iob2 (CPU time)")
    parser.add_argument("--ud_lr", type=float, default=1e-4, help="encoder rate (heads: ud.finetune's default)")
    parser.add_argument("--ner_lr", type=float, default=5e-5, help="encoder rate (head: ner.finetune's default)")
    parser.add_argument("--seed", type=int, default=42)
    opts = parser.parse_args()

    (ud_train, ud_eval), (ner_train, ner_dev) = prepare_data(opts.work, opts.ner_train_sentences)

    models = {
        "teacher": opts.teacher,
        "distilled": opts.student,
        "random-init": random_init_copy(opts.student, opts.work / "random-init-student", opts.seed),
    }
    rows = {}
    for name, path in models.items():
        rows[name] = {"encoder_parameters": count_parameters(AutoModel.from_pretrained(path))}
        for task, module, train, dev, epochs, batch, lr in (
            ("ud", ud, ud_train, ud_eval, opts.ud_epochs, 8, opts.ud_lr),
            ("ner", ner, ner_train, ner_dev, opts.ner_epochs, 16, opts.ner_lr),
        ):
            saved = opts.out / name / f"{task}.json"
            if saved.exists():
                result = TaskResults.load(saved)
            else:
                run_dir = opts.work / name / task
                args = training_args(run_dir, epochs, batch, lr, opts.seed)
                result = module.finetune(str(path), str(train), str(dev), str(run_dir), args)
                result.save(saved)
            rows[name][task] = {m: result.metrics[m] for m in METRICS[task]}
            print(name, task, rows[name][task], flush=True)

    header = ["model", "encoder params", *(f"{t} {m}" for t, ms in METRICS.items() for m in ms)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in rows.items():
        cells = [name, f"{row['encoder_parameters'] / 1e6:.1f}M"]
        for task, metrics in METRICS.items():
            for m in metrics:
                value, ref = row[task][m], rows["teacher"][task][m]
                cells.append(f"{value:.2f}" + ("" if name == "teacher" else f" ({100 * value / ref:.1f}%)"))
        lines.append("| " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    setup = {k: str(v) for k, v in vars(opts).items()}
    (opts.out / "table.md").write_text(f"{__doc__.splitlines()[0]}\n\nSetup: `{json.dumps(setup)}`\n\n{table}\n")
    (opts.out / "summary.json").write_text(json.dumps({"setup": setup, "rows": rows}, indent=2) + "\n")
    print(table)


if __name__ == "__main__":
    main()
