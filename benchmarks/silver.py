"""Task distillation through text: the teacher's analysis of monolingual text as extra training data for a student.

The students cut from the teacher (`recipes/distill/cpu/`) keep its tags and lemmas but lose parsing (cpu-s: 75% of
the teacher's LAS on the protocol) and some NER (85% of its F1). Here the fine-tuned teacher annotates running text
and the student is fine-tuned on its analysis (silver) together with the gold training sentences: hard-label
knowledge distillation at the task level, from text any language has.

1. Silver text: the language's text in ../shared minus every line that holds a train or eval sentence (../shared's
   text files include the UD dev sentences, which are this project's UD train/eval data and DaNE's NER dev set:
   kept out, and counted), cut to `--silver_kb`, annotated by the teacher (`--teacher`: its model for `--task`,
   fine-tuned on the gold train part only; UD: with its segmenter): `time_hub.tasks.silver`, what `time-hub
   finetune --silver_teacher` runs. `--silver_kb 0` is the same-budget control: no silver, the gold part x
   `--gold_repeat` for the same steps.
2. Each encoder is fine-tuned on the gold train part (repeated `--gold_repeat` times) plus the silver sentences for
   `--steps` steps (batch 16 and the protocol's rates: UD encoder 1e-4, heads 2e-3; NER 5e-5, head 1e-2),
   evaluated on the protocol's eval part every `--eval_every` steps and the best evaluation kept, over 3 seeds.
3. Results in the protocol's layout (`<out>/<encoder>/<task>-seed<N>.json`, re-used when present) and a table
   against the protocol's teacher and gold-only students (`--reference NAME=FOLDER` of saved protocol results).

    python benchmarks/silver.py --lang da --teacher runs/pipeline/da/teacher/ud \
        --encoder cpu-s-silver=runs/first3-da --encoder cpu-xs-silver=runs/first2-da \
        --reference teacher=benchmarks/results/protocol/da/teacher \
        --reference cpu-s=benchmarks/results/protocol/da/first3-no-kd --out benchmarks/results/protocol/da-silver-mix
    python benchmarks/silver.py --task ner --lang da --teacher runs/hub/teacher-da/tasks/ner \
        --encoder cpu-s-silver=runs/first3-da --reference teacher=benchmarks/results/protocol/da/teacher \
        --reference cpu-s=benchmarks/results/protocol/da/first3-no-kd --out benchmarks/results/protocol/da-silver-ner

(`runs/pipeline/da/teacher/ud`: `benchmarks/pipeline.py`'s teacher, fine-tuned on the protocol's UD train part with
its segmenter; `runs/hub/teacher-da/tasks/ner`: `time-hub release recipes/release/cpu.yaml`'s Danish teacher
reference, fine-tuned 500 steps on the same first 2,000 NER training sentences as the protocol;
`runs/first{3,2}-da`: `time-hub prune --layers first-3|first-2`.)
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from transformers import TrainingArguments

sys.path.insert(0, str(Path(__file__).resolve().parent))
from protocol import METRICS, SHARED, TEACHER, markdown_table, prepare_data, summarize  # noqa: E402

from time_hub.tasks import ner, ud  # noqa: E402
from time_hub.tasks.results import TaskResults  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


RATES = {"ud": (1e-4, 2e-3), "ner": (5e-5, 1e-2)}  # the protocol's encoder and head learning rates


def finetune(encoder: Path, train: Path, dev: Path, run_dir: Path, seed: int, opts, silver_file: Path) -> TaskResults:
    rate, head_rate = RATES[opts.task]
    args = TrainingArguments(
        output_dir=str(run_dir),
        max_steps=opts.steps,
        per_device_train_batch_size=16,
        per_device_eval_batch_size=64,
        learning_rate=rate,
        warmup_steps=0.1,
        weight_decay=0.01,
        eval_strategy="steps",
        eval_steps=opts.eval_every,
        save_strategy="steps",
        save_steps=opts.eval_every,
        save_total_limit=1,
        save_only_model=True,
        load_best_model_at_end=True,
        metric_for_best_model=METRICS[opts.task][-1],
        seed=seed,
        use_cpu=True,
        report_to="none",
        disable_tqdm=True,
        logging_steps=50,
    )
    module = ud if opts.task == "ud" else ner
    return module.finetune(
        str(encoder), str(train), str(dev), str(run_dir), args, 128, head_learning_rate=head_rate,
        silver_teacher=str(opts.teacher), silver_text=[str(SHARED / "data" / "text" / f"{opts.lang}.txt")],
        silver_file=str(silver_file), silver_max_bytes=None if opts.silver_kb is None else opts.silver_kb * 1000,
        gold_repeat=opts.gold_repeat,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lang", required=True)
    parser.add_argument("--task", choices=sorted(METRICS), default="ud")
    parser.add_argument(
        "--teacher", type=Path, required=True, help="the teacher's model for the task (UD: with segmenter/)"
    )
    parser.add_argument("--encoder", action="append", default=[], help="NAME=FOLDER (repeatable)")
    parser.add_argument("--reference", action="append", default=[], help="NAME=FOLDER of saved protocol results")
    parser.add_argument("--silver_kb", type=int, default=None, help="at most this much text (default: all)")
    parser.add_argument("--gold_repeat", type=int, default=4)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--eval_every", type=int, default=250)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "silver")
    opts = parser.parse_args()

    gold, dev = prepare_data(opts.lang, ROOT / "runs" / "protocol" / opts.lang)[opts.task]
    name = f"{opts.lang}-all" if opts.silver_kb is None else f"{opts.lang}-{opts.silver_kb}kb"
    suffix = {"ud": "conllu", "ner": "iob2"}[opts.task]
    silver_file = opts.work / f"{name}-teacher.{suffix}"  # made by the first fine-tuning, re-used by the others
    metrics = METRICS[opts.task]

    scores: dict[str, dict[str, list[float]]] = {}
    for spec in opts.reference:
        label, _, folder = spec.partition("=")
        for path in sorted(Path(folder).glob(f"{opts.task}-seed*.json")):
            for metric, value in TaskResults.load(path).metrics.items():
                if metric in metrics:
                    scores.setdefault(label, {}).setdefault(metric, []).append(value)
    for spec in opts.encoder:
        label, _, folder = spec.partition("=")
        for seed in opts.seeds:
            saved = opts.out / label / f"{opts.task}-seed{seed}.json"
            if not saved.exists():
                run_dir = opts.work / "runs" / label / f"seed{seed}"
                finetune(Path(folder), gold, dev, run_dir, seed, opts, silver_file).save(saved)
                shutil.rmtree(run_dir, ignore_errors=True)
            result = TaskResults.load(saved)
            print(label, seed, {m: round(result.metrics[m], 2) for m in metrics}, flush=True)
            for metric in metrics:
                scores.setdefault(label, {}).setdefault(metric, []).append(result.metrics[metric])
    if TEACHER not in scores:
        parser.error(f"--reference {TEACHER}=FOLDER is needed for retention")
    summary = summarize(scores, {})
    settings = {k: getattr(opts, k) for k in ("task", "silver_kb", "gold_repeat", "steps", "eval_every", "seeds")}
    counts = json.loads(silver_file.with_suffix(".json").read_text())
    report = {"silver": counts, "settings": settings, "summary": summary}
    (opts.out / "summary.json").write_text(json.dumps(report, indent=1) + "\n")
    table = markdown_table(summary, {})
    (opts.out / "table.md").write_text(table + "\n")
    print(json.dumps(counts), table, sep="\n")


if __name__ == "__main__":
    main()
