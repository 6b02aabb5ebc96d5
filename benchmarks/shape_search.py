"""Student shape search: batch-1 CPU latency (measured) vs held-out relation loss after a short distillation.

Every candidate shape is cut out of the teacher (`student_init: prune`, the CPU operating points' recipe,
`recipes/distill/cpu/base.yaml`), its held-out relation loss (qq + kk + vv at the teacher's top layer, on the
recipe's held-out lines) is scored before and after `--steps` distillation steps, and its batch-1 latency is
measured beside the teacher's in one run at the end. The table and `frontier.png` mark the Pareto-optimal shapes
(no other shape is both faster and lower in loss), the candidates for operating points; the operating points' task
retention is then measured by benchmarks/protocol.py. Resumable: a shape whose result exists is not distilled again.

    python benchmarks/shape_search.py --lang da --out benchmarks/results/shape_search/da
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from time_hub.arguments import parse
from time_hub.bench.measure import TimingSettings, measure
from time_hub.distill.command import DATACLASSES, distill
from time_hub.distill.student import count_parameters

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
RECIPE = ROOT / "recipes" / "distill" / "cpu" / "base.yaml"
SHAPES = [
    "L1-H384-A12",
    "L2-H384-A12",
    "L3-H384-A12",
    "L4-H384-A12",
    "L6-H384-A12",
    "L2-H256-A8-I1024",
    "L4-H256-A8-I1024",
    "L6-H256-A8-I1024",
]


def relation_loss(metrics: dict) -> float:
    return sum(metrics[f"eval_{name}"] for name in ("qq", "kk", "vv"))


def distill_shape(shape: str, lang: str, steps: int, work: Path) -> dict:
    """Prune `shape` out of the teacher, score, distill `steps` steps, score again."""
    argv = ["--config", str(RECIPE), "--student_shape", shape, "--output_dir", str(work / shape)]
    argv += ["--train_files", f"[{SHARED / 'data' / 'text' / f'{lang}.txt'}]", "--max_steps", str(steps)]
    argv += [
        "--save_strategy",
        "no",
        "--eval_strategy",
        "steps",
        "--eval_steps",
        str(steps),
        "--eval_on_start",
        "true",
    ]
    argv += ["--prune_importance_lines", "500"]
    argv += ["--disable_tqdm", "true", "--logging_steps", str(max(1, steps // 4))]
    (args, student_args, corpus_args), recipe = parse(DATACLASSES, argv)
    trainer = distill(args, student_args, corpus_args, recipe)
    before, after = [entry for entry in trainer.state.log_history if "eval_loss" in entry][:2]
    return {
        "shape": shape,
        "parameters": count_parameters(trainer.model),
        "steps": steps,
        "train_seconds": round(trainer.state.log_history[-1]["train_runtime"], 1),
        "relation_loss_before": relation_loss(before),
        "relation_loss_after": relation_loss(after),
        "hidden_loss_after": next((v for k, v in after.items() if k.startswith("eval_hidden@")), None),
        "folder": str(work / shape),
    }


def pareto(rows: list[dict]) -> set[str]:
    """Shapes that no other shape beats on both speed-up (higher) and relation loss (lower)."""
    return {
        r["shape"]
        for r in rows
        if not any(
            o["speedup"] >= r["speedup"]
            and o["relation_loss_after"] <= r["relation_loss_after"]
            and (o["speedup"], o["relation_loss_after"]) != (r["speedup"], r["relation_loss_after"])
            for o in rows
        )
    }


def plot(rows: list[dict], front: set[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for row in rows:
        on_front = row["shape"] in front
        ax.scatter(row["speedup"], row["relation_loss_after"], color="C0" if on_front else "grey")
        ax.annotate(row["shape"], (row["speedup"], row["relation_loss_after"]), fontsize=7, xytext=(4, 3),
                    textcoords="offset points")  # fmt: skip
    best = sorted((r for r in rows if r["shape"] in front), key=lambda r: r["speedup"])
    ax.plot([r["speedup"] for r in best], [r["relation_loss_after"] for r in best], color="C0", alpha=0.5)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch-1 CPU speed-up vs the teacher")
    ax.set_ylabel("held-out relation loss (qq+kk+vv)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lang", default="da")
    parser.add_argument("--shapes", nargs="+", default=SHAPES)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("runs/shape_search"))
    parser.add_argument("--latency_repeats", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    opts = parser.parse_args()
    opts.out.mkdir(parents=True, exist_ok=True)
    teacher = SHARED / "teachers" / "me5-small"

    rows = []
    for shape in opts.shapes:
        saved = opts.out / f"{shape}.json"
        if not saved.exists():
            saved.write_text(json.dumps(distill_shape(shape, opts.lang, opts.steps, opts.work / opts.lang), indent=2))
        rows.append(json.loads(saved.read_text()))
        print(rows[-1], flush=True)

    sentences = (SHARED / "data" / "text" / f"{opts.lang}.txt").read_text(encoding="utf-8").splitlines()
    settings = TimingSettings(threads=opts.threads, warmup=10, repeats=opts.latency_repeats)
    latency = {
        name: measure(str(path), str(teacher), sentences[: opts.latency_repeats], [1], settings)["results"][0]
        for name, path in [("teacher", teacher), *((r["shape"], r["folder"]) for r in rows)]
    }
    for row in rows:
        row["latency_ms"] = latency[row["shape"]]["latency_ms"]["median"]
        row["speedup"] = latency["teacher"]["latency_ms"]["median"] / row["latency_ms"]
    front = pareto(rows)
    lines = [
        "| shape | params | latency b1 | speed-up | relation loss before | after | Pareto |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: -r["speedup"]):
        lines.append(
            f"| {r['shape']} | {r['parameters'] / 1e6:.1f}M | {r['latency_ms']:.2f} ms | {r['speedup']:.2f}x | "
            f"{r['relation_loss_before']:.3f} | {r['relation_loss_after']:.3f} | "
            f"{'yes' if r['shape'] in front else ''} |"
        )
    teacher_ms = latency["teacher"]["latency_ms"]["median"]
    header = (
        f"# Shape search: {opts.lang}, {opts.steps} distillation steps per shape ({RECIPE.relative_to(ROOT)})\n\n"
        f"Teacher batch-1 latency {teacher_ms:.2f} ms ({opts.threads} threads, median of {opts.latency_repeats}).\n\n"
    )
    (opts.out / "table.md").write_text(header + "\n".join(lines) + "\n")
    (opts.out / "summary.json").write_text(
        json.dumps({"teacher_latency_ms": teacher_ms, "rows": rows, "pareto": sorted(front)}, indent=2) + "\n"
    )
    plot(rows, front, opts.out / "frontier.png", f"{opts.lang}: {opts.steps} steps per shape")
    print(header + "\n".join(lines))


if __name__ == "__main__":
    main()
